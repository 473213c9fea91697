package session

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// Result is the kept outcome of a session's last applied command: the
// entry it was applied at and the application's response and error,
// encoded by the node's codec (Err is nil when the command succeeded).
// Lost marks a result that could not be encoded: the command was
// applied, but a retry cannot be answered with its result.
type Result struct {
	Index, Term uint64
	Resp, Err   []byte
	Lost        bool
}

// Verdict says what to do with a session command.
type Verdict uint8

const (
	// Apply: a new sequence number; apply the command and Record it.
	Apply Verdict = iota
	// Duplicate: this sequence number was applied; answer with its Result
	// and do not apply again.
	Duplicate
	// Stale: an older sequence number than the last applied one; its
	// result is no longer kept. Refuse it.
	Stale
	// Unknown: no such session (never opened, closed, expired or
	// evicted). Refuse it.
	Unknown
)

// record is one session.
type record struct {
	id, ttl uint64
	// last is the index of the last entry that touched the session.
	last   uint64
	seq    uint64
	result Result
}

func (r *record) expired(index uint64) bool {
	return r.ttl > 0 && index > r.last && index-r.last > r.ttl
}

// Table is the session table. The zero value is empty and ready to use.
type Table struct {
	recs map[uint64]*record
}

// Len returns how many sessions the table holds (expired ones not yet
// swept included).
func (t *Table) Len() int { return len(t.recs) }

// Open opens the session whose ID is index, the open entry's log index,
// first making room: expired sessions are swept, then the least
// recently used ones evicted, until fewer than max remain (max 0: no
// bound).
func (t *Table) Open(index, ttl, max uint64) {
	if t.recs == nil {
		t.recs = map[uint64]*record{}
	}
	if max > 0 && uint64(len(t.recs)) >= max {
		for id, r := range t.recs {
			if r.expired(index) {
				delete(t.recs, id)
			}
		}
		for uint64(len(t.recs)) >= max {
			t.evictLRU()
		}
	}
	t.recs[index] = &record{id: index, ttl: ttl, last: index}
}

// evictLRU removes the session touched least recently (the lowest ID
// among equals), the same one on every node.
func (t *Table) evictLRU() {
	var victim *record
	for _, r := range t.recs {
		if victim == nil || r.last < victim.last || (r.last == victim.last && r.id < victim.id) {
			victim = r
		}
	}
	delete(t.recs, victim.id)
}

// Close removes session id (a no-op if it is unknown).
func (t *Table) Close(id uint64) { delete(t.recs, id) }

// Check decides a session command applied at index: the session is
// looked up (an expired one is removed) and seq compared with its last.
func (t *Table) Check(index, id, seq uint64) (Verdict, Result) {
	r := t.recs[id]
	if r == nil {
		return Unknown, Result{}
	}
	if r.expired(index) {
		delete(t.recs, id)
		return Unknown, Result{}
	}
	switch {
	case seq == r.seq && r.seq > 0:
		r.last = index
		return Duplicate, r.result
	case seq < r.seq:
		r.last = index
		return Stale, Result{}
	}
	return Apply, Result{}
}

// Record keeps res as session id's result for seq, applied at index. It
// must follow a Check of the same command that returned Apply.
func (t *Table) Record(index, id, seq uint64, res Result) {
	if r := t.recs[id]; r != nil {
		r.last, r.seq, r.result = index, seq, res
	}
}

// Peek is Check without effects, for a leader that wants to answer a
// retry before proposing it again: Duplicate with the result, Stale, or
// Apply (the log decides the rest).
func (t *Table) Peek(id, seq uint64) (Verdict, Result) {
	r := t.recs[id]
	switch {
	case r == nil:
		return Apply, Result{}
	case seq == r.seq && r.seq > 0:
		return Duplicate, r.result
	case seq < r.seq:
		return Stale, Result{}
	}
	return Apply, Result{}
}

// Marshal encodes the table, sessions in ID order (the same bytes for
// the same table).
func (t *Table) Marshal() []byte {
	ids := make([]uint64, 0, len(t.recs))
	for id := range t.recs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b := []byte{tableVersion}
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		r := t.recs[id]
		for _, v := range []uint64{r.id, r.ttl, r.last, r.seq, r.result.Index, r.result.Term} {
			b = binary.AppendUvarint(b, v)
		}
		var flags uint64
		if r.result.Lost {
			flags |= 1
		}
		if r.result.Err != nil {
			flags |= 2
		}
		b = binary.AppendUvarint(b, flags)
		b = binary.AppendUvarint(b, uint64(len(r.result.Resp)))
		b = append(b, r.result.Resp...)
		if r.result.Err != nil {
			b = binary.AppendUvarint(b, uint64(len(r.result.Err)))
			b = append(b, r.result.Err...)
		}
	}
	return b
}

const tableVersion = 1

// Unmarshal replaces the table with the one encoded in b.
func (t *Table) Unmarshal(b []byte) error {
	if len(b) == 0 || b[0] != tableVersion {
		return fmt.Errorf("%w: session table version %v, want %d", ErrCorrupt, firstByte(b), tableVersion)
	}
	r := reader{b: b[1:]}
	n := r.uvarint()
	// Each session takes at least 8 bytes: a count beyond that is a lie
	// that must not size an allocation.
	if r.err == nil && n > uint64(len(r.b))/8 {
		return fmt.Errorf("%w: session table claims %d sessions in %d bytes", ErrCorrupt, n, len(r.b))
	}
	recs := make(map[uint64]*record, n)
	for i := uint64(0); i < n && r.err == nil; i++ {
		rec := &record{}
		rec.id, rec.ttl, rec.last, rec.seq = r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint()
		rec.result.Index, rec.result.Term = r.uvarint(), r.uvarint()
		flags := r.uvarint()
		rec.result.Lost = flags&1 != 0
		rec.result.Resp = r.bytes()
		if flags&2 != 0 {
			rec.result.Err = r.bytes()
		}
		if _, dup := recs[rec.id]; dup && r.err == nil {
			return fmt.Errorf("%w: session %d appears twice", ErrCorrupt, rec.id)
		}
		recs[rec.id] = rec
	}
	if r.err != nil {
		return fmt.Errorf("%w: session table: %v", ErrCorrupt, r.err)
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes after the session table", ErrCorrupt, len(r.b))
	}
	t.recs = recs
	return nil
}

func firstByte(b []byte) any {
	if len(b) == 0 {
		return "none"
	}
	return b[0]
}
