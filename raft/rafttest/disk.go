package rafttest

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"

	"github.com/typedraft/typedraft/raft"
)

// snapshot is a state machine snapshot in a node's snapshot store.
type snapshot struct {
	meta raft.SnapshotMeta
	data []byte
	// phash is the prefix hash of the log the snapshot covers.
	phash uint64
}

// disk is one node's simulated stable storage: what survives a crash. The
// log holds entries base+1.. (entries up to base are compacted); alongside
// each entry it keeps the hash of the whole log prefix ending there, which
// makes log comparisons O(1). snap is the newest committed snapshot.
//
// disk implements raft.LogReader for the node's Core.
type disk struct {
	hs    raft.HardState
	base  uint64
	bterm uint64
	bhash uint64
	ents  []raft.Entry
	phash []uint64
	snap  *snapshot
	// gen counts changes of the log (saves and compactions), for caches.
	gen uint64
}

func (d *disk) FirstIndex() (uint64, error) { return d.base + 1, nil }

func (d *disk) LastIndex() (uint64, error) { return d.last(), nil }

func (d *disk) Term(i uint64) (uint64, error) {
	switch {
	case i < d.base:
		return 0, fmt.Errorf("rafttest: term of %d (compacted to %d): %w", i, d.base, raft.ErrCompacted)
	case i == d.base:
		return d.bterm, nil
	case i > d.last():
		return 0, fmt.Errorf("rafttest: term of %d (last %d): %w", i, d.last(), raft.ErrUnavailable)
	}
	return d.ents[i-d.base-1].Term, nil
}

func (d *disk) Entries(lo, hi, maxBytes uint64) ([]raft.Entry, error) {
	if lo <= d.base {
		return nil, fmt.Errorf("rafttest: entries [%d,%d) (compacted to %d): %w", lo, hi, d.base, raft.ErrCompacted)
	}
	if hi > d.last()+1 || lo > hi {
		return nil, fmt.Errorf("rafttest: entries [%d,%d) (last %d): %w", lo, hi, d.last(), raft.ErrUnavailable)
	}
	var out []raft.Entry
	var size uint64
	for i := lo; i < hi; i++ {
		e := d.ents[i-d.base-1]
		size += e.Size()
		if maxBytes > 0 && len(out) > 0 && size > maxBytes {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

func (d *disk) last() uint64 { return d.base + uint64(len(d.ents)) }

// entry returns the stored entry at i, if it is stored (not compacted).
func (d *disk) entry(i uint64) (raft.Entry, bool) {
	if i <= d.base || i > d.last() {
		return raft.Entry{}, false
	}
	return d.ents[i-d.base-1], true
}

// prefixHash returns the hash of the log prefix [1, i] for i in
// [base, last] (0 for i == 0, and 0 outside that range).
func (d *disk) prefixHash(i uint64) uint64 {
	switch {
	case i == d.base:
		return d.bhash
	case i < d.base || i > d.last():
		return 0
	}
	return d.phash[i-d.base-1]
}

// save persists hs and ents atomically, truncating the stored log at
// ents[0].Index first. It returns an error if ents do not attach to the log.
func (d *disk) save(hs raft.HardState, ents []raft.Entry) error {
	d.gen++
	if len(ents) > 0 {
		at := ents[0].Index
		if at <= d.base || at > d.last()+1 {
			return fmt.Errorf("save entries from %d: the log holds (%d, %d]", at, d.base, d.last())
		}
		for k := range ents {
			if ents[k].Index != at+uint64(k) {
				return fmt.Errorf("save: entry %d of the batch has index %d, want %d", k, ents[k].Index, at+uint64(k))
			}
		}
		keep := at - d.base - 1
		d.ents = d.ents[:keep]
		d.phash = d.phash[:keep]
		prev := d.prefixHash(at - 1)
		for _, e := range ents {
			prev = chainHash(prev, e)
			d.ents = append(d.ents, e)
			d.phash = append(d.phash, prev)
		}
	}
	d.hs = hs
	return nil
}

// compact discards entries up to index (raft.LogStore.Compact). If the log
// holds (index, term) the entries after it stay; otherwise the whole log is
// discarded and restarts after index, whose prefix hash is then phash.
func (d *disk) compact(index, term, phash uint64) {
	d.gen++
	if index <= d.base {
		return
	}
	if t, err := d.Term(index); err == nil && t == term {
		k := index - d.base
		d.bhash = d.phash[k-1]
		d.ents = append([]raft.Entry(nil), d.ents[k:]...)
		d.phash = append([]uint64(nil), d.phash[k:]...)
	} else {
		d.ents, d.phash, d.bhash = nil, nil, phash
	}
	d.base, d.bterm = index, term
}

// storeSnapshot makes s the newest snapshot unless a newer one is stored;
// it reports whether it did.
func (d *disk) storeSnapshot(s *snapshot) bool {
	if d.snap != nil && d.snap.meta.Index >= s.meta.Index {
		return false
	}
	d.snap = s
	return true
}

// reconcile finishes an install interrupted by a crash, as a driver does on
// start: if the newest snapshot is ahead of the log or disagrees with it,
// the log restarts after the snapshot.
func (d *disk) reconcile() {
	if d.snap == nil {
		return
	}
	m := d.snap.meta
	if t, err := d.Term(m.Index); err != nil || t != m.Term {
		d.compact(m.Index, m.Term, d.snap.phash)
	}
}

// chainHash extends the prefix hash prev with e.
func chainHash(prev uint64, e raft.Entry) uint64 {
	h := fnv.New64a()
	var b [40]byte
	x := binary.LittleEndian.AppendUint64(b[:0], prev)
	x = binary.LittleEndian.AppendUint64(x, e.Index)
	x = binary.LittleEndian.AppendUint64(x, e.Term)
	x = append(x, byte(e.Type))
	h.Write(x)
	h.Write(e.Data)
	return h.Sum64()
}

// entryHash identifies one entry's content (index, term, type, data).
func entryHash(e raft.Entry) uint64 { return chainHash(0, e) }
