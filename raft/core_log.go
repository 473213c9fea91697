package raft

import (
	"errors"
	"fmt"
)

// LogReader is the read side of a LogStore: the part of the log that is
// durable. The core reads it but never writes it; its driver writes the
// LogStore between Ready and Advance. Every LogStore is a LogReader.
type LogReader interface {
	FirstIndex() (uint64, error)
	LastIndex() (uint64, error)
	Term(index uint64) (uint64, error)
	Entries(lo, hi, maxBytes uint64) ([]Entry, error)
}

// raftLog is the core's view of the log: the durable part in storage plus an
// unstable tail not yet persisted, and a snapshot waiting to be installed.
//
// Invariant: unstable entries start at offset; entries at or after offset in
// storage are stale (they are replaced when the unstable tail is saved).
type raftLog struct {
	storage  LogReader
	unstable []Entry
	offset   uint64
	// snap is a snapshot received but not yet installed by the driver; while
	// set, the log starts right after it.
	snap *SnapshotMeta
	// committed is the highest index known to be committed.
	committed uint64
	// applied is the highest index handed to the state machine.
	applied uint64
	// err records the first storage read error; the driver stops the node.
	err error
	// submitted is the last unstable index handed to an asynchronous write
	// that has not completed (see writing). Entries up to it are unchanged
	// since they were handed over: a truncation lowers it.
	submitted uint64
	// recent holds entries that became durable recently (ending at offset-1),
	// so that applying them and sending them to followers does not read them
	// back from storage. Bounded by maxRecent entries.
	recent []Entry
}

// maxRecent bounds raftLog.recent.
const maxRecent = 8192

func newRaftLog(s LogReader) (*raftLog, error) {
	last, err := s.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("raft: read last index: %w", err)
	}
	first, err := s.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("raft: read first index: %w", err)
	}
	return &raftLog{storage: s, offset: last + 1, committed: first - 1, applied: first - 1}, nil
}

// fail records a storage read error. Reads of the durable log failing is a
// fatal condition; the core keeps going with conservative answers and the
// driver stops the node when it sees err.
func (l *raftLog) fail(err error) {
	if l.err == nil {
		l.err = err
	}
}

func (l *raftLog) firstIndex() uint64 {
	if l.snap != nil {
		return l.snap.Index + 1
	}
	i, err := l.storage.FirstIndex()
	if err != nil {
		l.fail(fmt.Errorf("raft: read first index: %w", err))
		return l.offset
	}
	return i
}

func (l *raftLog) lastIndex() uint64 {
	if n := len(l.unstable); n > 0 {
		return l.offset + uint64(n) - 1
	}
	if l.snap != nil {
		return l.snap.Index
	}
	return l.offset - 1
}

func (l *raftLog) lastTerm() uint64 {
	t, _ := l.term(l.lastIndex())
	return t
}

// term returns the term of the entry at i, or an error matching ErrCompacted
// or ErrUnavailable.
func (l *raftLog) term(i uint64) (uint64, error) {
	if i >= l.offset {
		if j := i - l.offset; j < uint64(len(l.unstable)) {
			return l.unstable[j].Term, nil
		}
		return 0, ErrUnavailable
	}
	if l.snap != nil {
		if i == l.snap.Index {
			return l.snap.Term, nil
		}
		if i < l.snap.Index {
			return 0, ErrCompacted
		}
	}
	t, err := l.storage.Term(i)
	if err != nil {
		if !errors.Is(err, ErrCompacted) && !errors.Is(err, ErrUnavailable) {
			l.fail(fmt.Errorf("raft: read term %d: %w", i, err))
		}
		return 0, err
	}
	return t, nil
}

// matchTerm reports whether the entry at i has term t.
func (l *raftLog) matchTerm(i, t uint64) bool {
	got, err := l.term(i)
	return err == nil && got == t
}

// isUpToDate reports whether a log ending at (index, term) is at least as
// up to date as ours (§5.4.1).
func (l *raftLog) isUpToDate(index, term uint64) bool {
	lt := l.lastTerm()
	return term > lt || (term == lt && index >= l.lastIndex())
}

// append adds entries to the tail, truncating any conflicting suffix from
// entries[0].Index on. The caller guarantees entries[0].Index <= last+1 and
// > committed.
func (l *raftLog) append(ents []Entry) {
	if len(ents) == 0 {
		return
	}
	at := ents[0].Index
	switch {
	case at == l.offset+uint64(len(l.unstable)):
		l.unstable = append(l.unstable, ents...)
	case at <= l.offset:
		// Replace everything from at on, including stale stable entries.
		l.dropRecentFrom(at)
		l.offset = at
		l.unstable = append([]Entry(nil), ents...)
	default:
		keep := l.unstable[:at-l.offset]
		l.unstable = append(append([]Entry(nil), keep...), ents...)
	}
	if l.submitted >= at {
		l.submitted = at - 1
	}
}

// writing reports whether an asynchronous write of unstable entries is in
// flight; the next batch is then held until it completes (group commit).
func (l *raftLog) writing() bool { return l.submitted != 0 && l.submitted >= l.offset }

// toPersist returns the unstable entries the driver should write next.
func (l *raftLog) toPersist() []Entry {
	if l.writing() {
		return nil
	}
	return l.unstable
}

// writeDone records that an asynchronous write of entries up to i
// completed: whatever of it is still in the log (not truncated since) is
// now durable.
func (l *raftLog) writeDone(i uint64) {
	j := min(i, l.submitted)
	l.submitted = 0
	if j >= l.offset && j < l.offset+uint64(len(l.unstable)) {
		l.stableTo(j, l.unstable[j-l.offset].Term)
	}
}

// dropRecentFrom forgets cached durable entries from index at on.
func (l *raftLog) dropRecentFrom(at uint64) {
	if n := len(l.recent); n > 0 && at <= l.recent[n-1].Index {
		if at <= l.recent[0].Index {
			l.recent = nil
		} else {
			// Cap the slice: the dropped entries may still be referenced
			// (in messages, or being applied) and must not be overwritten.
			k := at - l.recent[0].Index
			l.recent = l.recent[:k:k]
		}
	}
}

// fromRecent returns the entries [lo, hi) from the cache of recently durable
// entries, bounded by maxBytes (at least one), or ok=false if the cache does
// not hold all of them.
func (l *raftLog) fromRecent(lo, hi, maxBytes uint64) (out []Entry, ok bool) {
	n := uint64(len(l.recent))
	if n == 0 || lo < l.recent[0].Index || hi > l.recent[0].Index+n {
		return nil, false
	}
	return prefixWithin(l.recent[lo-l.recent[0].Index:hi-l.recent[0].Index], maxBytes), true
}

// prefixWithin returns the longest prefix of ents (at least one entry)
// whose size is within maxBytes (0: no bound), with its capacity cut to its
// length: ents share the log's arrays, and a receiver that appends to the
// result must not overwrite entries the log hands out later.
func prefixWithin(ents []Entry, maxBytes uint64) []Entry {
	n := len(ents)
	if maxBytes > 0 {
		size := uint64(0)
		for k := range ents {
			size += ents[k].Size()
			if k > 0 && size > maxBytes {
				n = k
				break
			}
		}
	}
	return ents[:n:n]
}

// slice returns entries in [lo, hi) bounded by maxBytes (0 = no bound; at
// least one entry is returned when lo < hi).
func (l *raftLog) slice(lo, hi, maxBytes uint64) ([]Entry, error) {
	if lo >= hi {
		return nil, nil
	}
	if lo < l.firstIndex() {
		return nil, ErrCompacted
	}
	if hi > l.lastIndex()+1 {
		return nil, ErrUnavailable
	}
	var out []Entry
	if lo < l.offset {
		stableHi := min(hi, l.offset)
		ents, ok := l.fromRecent(lo, stableHi, maxBytes)
		var err error
		if !ok {
			ents, err = l.storage.Entries(lo, stableHi, maxBytes)
		}
		if err != nil {
			if !errors.Is(err, ErrCompacted) {
				l.fail(fmt.Errorf("raft: read entries [%d,%d): %w", lo, stableHi, err))
			}
			return nil, err
		}
		if uint64(len(ents)) < stableHi-lo || hi <= l.offset {
			return ents, nil
		}
		out = ents
	}
	ulo := max(lo, l.offset)
	if out == nil {
		// All unstable: share the tail.
		return prefixWithin(l.unstable[ulo-l.offset:hi-l.offset], maxBytes), nil
	}
	size := uint64(0)
	for i := range out {
		size += out[i].Size()
	}
	for i := ulo; i < hi; i++ {
		e := &l.unstable[i-l.offset]
		size += e.Size()
		if maxBytes > 0 && len(out) > 0 && size > maxBytes {
			break
		}
		out = append(out, *e)
	}
	return out, nil
}

// findConflict returns the index of the first entry in ents whose term
// differs from ours, or 0 if all present entries match. An index beyond our
// last index counts as a conflict (a new entry).
func (l *raftLog) findConflict(ents []Entry) uint64 {
	for i := range ents {
		if !l.matchTerm(ents[i].Index, ents[i].Term) {
			return ents[i].Index
		}
	}
	return 0
}

// commitTo raises committed to i (never lowers it).
func (l *raftLog) commitTo(i uint64) bool {
	if i > l.committed {
		if i > l.lastIndex() {
			i = l.lastIndex()
		}
		if i > l.committed {
			l.committed = i
			return true
		}
	}
	return false
}

// stableTo marks the unstable tail up to index i (term t) persisted.
func (l *raftLog) stableTo(i, t uint64) {
	if i < l.offset || i >= l.offset+uint64(len(l.unstable)) {
		return
	}
	if l.unstable[i-l.offset].Term != t {
		return
	}
	n := i - l.offset + 1
	l.remember(l.unstable[:n])
	rest := l.unstable[n:]
	if len(rest) == 0 {
		l.unstable = nil
	} else {
		l.unstable = append([]Entry(nil), rest...)
	}
	l.offset = i + 1
}

// remember adds entries that just became durable to the recent cache.
func (l *raftLog) remember(ents []Entry) {
	if len(ents) == 0 {
		return
	}
	if n := len(l.recent); n > 0 && l.recent[n-1].Index+1 != ents[0].Index {
		l.recent = nil
	}
	l.recent = append(l.recent, ents...)
	if over := len(l.recent) - maxRecent; over > 0 {
		l.recent = append([]Entry(nil), l.recent[over:]...)
	}
}

// restore resets the log to start after snapshot s (§7): every entry is
// discarded; the driver installs s and compacts storage.
func (l *raftLog) restore(s SnapshotMeta) {
	l.snap = &s
	l.unstable = nil
	l.recent = nil
	l.submitted = 0
	l.offset = s.Index + 1
	l.committed = s.Index
}

// snapshotInstalled is called once the driver has installed the pending
// snapshot and compacted storage up to it.
func (l *raftLog) snapshotInstalled(index uint64) {
	if l.snap != nil && l.snap.Index == index {
		l.snap = nil
	}
	if l.applied < index {
		l.applied = index
	}
}

// toApply returns committed entries not yet handed to the state machine,
// bounded by maxBytes, only from the durable part of the log.
func (l *raftLog) toApply(maxBytes uint64) []Entry {
	hi := min(l.committed, l.offset-1)
	if l.snap != nil || l.applied >= hi {
		return nil
	}
	ents, err := l.slice(l.applied+1, hi+1, maxBytes)
	if err != nil {
		// Committed entries that were never applied are gone: the log was
		// compacted past the state machine. Stop rather than skip them.
		l.fail(fmt.Errorf("raft: read committed entries [%d,%d]: %w", l.applied+1, hi, err))
		return nil
	}
	return ents
}

// appliedTo records that entries up to i were handed to the state machine.
func (l *raftLog) appliedTo(i uint64) {
	if i > l.applied {
		l.applied = i
	}
	// Applied entries are read again only to catch up slow followers; let
	// storage serve those.
	if n := len(l.recent); n > 0 && l.recent[0].Index <= i {
		if i >= l.recent[n-1].Index {
			l.recent = nil // not [:0]: handed-out entries must stay intact
		} else {
			l.recent = l.recent[i+1-l.recent[0].Index:]
		}
	}
}
