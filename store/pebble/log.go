package pebble

import (
	"errors"
	"fmt"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"

	"github.com/typedraft/typedraft/raft"
)

// InitialState returns the persisted hard state (zero for a new store). It
// is served from memory. After Close it returns raft.ErrStorageClosed; after
// a failure that refuses every call (corruption, see Failed), the failure.
func (s *Store) InitialState() (raft.HardState, error) {
	if err := s.enter(); err != nil {
		return raft.HardState{}, err
	}
	defer s.exit()
	return s.state.Load().hs, nil
}

// FirstIndex returns the compaction index + 1, from memory. Errors are as
// for InitialState.
func (s *Store) FirstIndex() (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.exit()
	return s.state.Load().compactIndex + 1, nil
}

// LastIndex returns the index of the last stored entry, or the compaction
// index if none is stored after it, from memory. Errors are as for
// InitialState.
func (s *Store) LastIndex() (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.exit()
	return s.state.Load().lastIndex, nil
}

// Term returns the term of the entry at index, for index in
// [FirstIndex-1, LastIndex]. The terms at the compaction index and at the
// last index are served from memory; others are read from the database.
// Errors wrap raft.ErrCompacted (index below FirstIndex-1),
// raft.ErrUnavailable (index above LastIndex), raft.ErrCorrupt (naming the
// entry) or raft.ErrStorageClosed.
func (s *Store) Term(index uint64) (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.exit()
	st := s.state.Load()
	switch {
	case index == st.compactIndex:
		return st.compactTerm, nil
	case index < st.compactIndex:
		return 0, fmt.Errorf("pebble: term %d (first index %d): %w", index, st.compactIndex+1, raft.ErrCompacted)
	case index == st.lastIndex:
		return st.lastTerm, nil
	case index > st.lastIndex:
		return 0, fmt.Errorf("pebble: term %d (last index %d): %w", index, st.lastIndex, raft.ErrUnavailable)
	}
	// The entry is inside the cached bounds. Read it from one consistent
	// view; if a concurrent write removed it, classify the index against
	// that same view.
	v, err := s.newView()
	if err != nil {
		return 0, err
	}
	defer v.close()
	e, found, err := v.entry(index)
	if err != nil || found {
		return e.Term, err
	}
	ci, ct, err := v.compaction()
	if err != nil {
		return 0, err
	}
	switch {
	case index == ci:
		return ct, nil
	case index < ci:
		return 0, fmt.Errorf("pebble: term %d (first index %d): %w", index, ci+1, raft.ErrCompacted)
	}
	last, err := v.last(ci, st.lastIndex)
	if err != nil {
		return 0, err
	}
	if index > last {
		return 0, fmt.Errorf("pebble: term %d (last index %d): %w", index, last, raft.ErrUnavailable)
	}
	return 0, corruptf(entryWhat(index), "missing from the log [%d, %d]", ci+1, last)
}

// Entries returns the entries in [lo, hi), read from one consistent view of
// the database. If maxBytes > 0 it stops before the total Entry.Size would
// exceed maxBytes, returning at least one entry when lo < hi. The entries'
// Data are fresh copies owned by the caller (entries of one call may share a
// backing array). Errors wrap raft.ErrCompacted (lo < FirstIndex),
// raft.ErrUnavailable (hi > LastIndex+1), raft.ErrCorrupt (naming the
// entry, or a block of Pebble's that failed its checksum: the store then
// fails, see Failed), raft.ErrStorageClosed or the store's failure; lo > hi
// is an error.
func (s *Store) Entries(lo, hi, maxBytes uint64) (_ []raft.Entry, err error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	defer s.readDone("entries", &err)
	if lo > hi {
		return nil, fmt.Errorf("pebble: entries [%d, %d): lo > hi", lo, hi)
	}
	st := s.state.Load()
	v, err := s.newView()
	if err != nil {
		return nil, err
	}
	defer v.close()
	var (
		out     []raft.Entry
		arena   []byte
		size    uint64
		limited bool
		next    = lo
	)
	if lo < hi {
		valid := v.it.SeekGE(putEntryKey(v.key[:], lo))
		for ; valid && next < hi; valid = v.it.Next() {
			idx, ok := parseEntryKey(v.it.Key())
			if !ok || idx != next {
				break
			}
			val, err := v.it.ValueAndErr()
			if err != nil {
				return nil, fmt.Errorf("pebble: read entry %d: %w", idx, err)
			}
			e, err := decodeEntry(idx, v.it.Key(), val)
			if err != nil {
				return nil, err
			}
			size += e.Size()
			if maxBytes > 0 && size > maxBytes && len(out) > 0 {
				limited = true
				break
			}
			if n := len(e.Data); n > 0 {
				if len(arena) < n {
					// Size the arena for the rest of the range if its
					// entries are like this one, within [n, 1 MiB].
					want := uint64(n) * (hi - next)
					if maxBytes > 0 {
						want = min(want, maxBytes)
					}
					arena = make([]byte, max(n, int(min(want, 1<<20))))
				}
				d := arena[:n:n]
				arena = arena[n:]
				copy(d, e.Data)
				e.Data = d
			}
			if out == nil {
				out = make([]raft.Entry, 0, min(hi-lo, 1024))
			}
			out = append(out, e)
			next++
		}
		if err := v.it.Error(); err != nil {
			return nil, fmt.Errorf("pebble: read entries [%d, %d): %w", lo, hi, err)
		}
	}
	switch {
	case next == hi && lo < hi:
		return out, nil
	case limited && v.has(hi-1):
		// Stopped at maxBytes: entry hi-1 exists, so hi <= last+1.
		return out, nil
	case lo == hi && lo > 0 && v.has(lo-1):
		// Empty range within [FirstIndex, LastIndex+1].
		return nil, nil
	}
	// Entry next is missing, or the cheap checks above failed: check the
	// bounds in the same view.
	ci, _, err := v.compaction()
	if err != nil {
		return nil, err
	}
	if lo <= ci {
		return nil, fmt.Errorf("pebble: entries [%d, %d) (first index %d): %w", lo, hi, ci+1, raft.ErrCompacted)
	}
	last, err := v.last(ci, st.lastIndex)
	if err != nil {
		return nil, err
	}
	if hi > last+1 {
		return nil, fmt.Errorf("pebble: entries [%d, %d) (last index %d): %w", lo, hi, last, raft.ErrUnavailable)
	}
	if !limited && lo < hi {
		return nil, corruptf(entryWhat(next), "missing from the log [%d, %d]", ci+1, last)
	}
	return out, nil
}

// Save persists hs and entries in one synced Pebble batch: the hard state,
// every entry, and the deletion of any stored entries after the last new one
// (conflict truncation; point deletions for up to 64 entries, one range
// deletion beyond). entries must be contiguous and increasing with
// entries[0].Index in [FirstIndex, LastIndex+1], and their encoding must fit
// in 3 GiB; otherwise Save returns an error and writes nothing. A Save that
// changes nothing (same hard state, no entries) writes nothing. Save takes
// ownership of entries but does not keep them.
//
// A Save that changes the term or the vote also writes the high-water mark
// (two more fsyncs, before it returns); one that removes entries the mark
// covers lowers the mark first. See the package documentation.
//
// Save returns within Options.WriteTimeout (10 s by default) even if Pebble
// stalls, and at once when the store learns that the disk cannot take
// writes. A Save of entries while the disk has less than
// Options.MinFreeSpace available fails with an error matching syscall.ENOSPC
// that says the disk is full, and changes nothing; Saves succeed again once
// space is freed. A write that failed inside Pebble returns an error naming
// the directory that says why (a full disk matches syscall.ENOSPC), and then
// every later write returns it too (see Failed).
// When Save returns an error the write may or may not be durable; when it
// returns nil it is. After Close it returns raft.ErrStorageClosed.
func (s *Store) Save(hs raft.HardState, entries []raft.Entry) error {
	if err := s.enterWrite(); err != nil {
		return err
	}
	defer s.exit()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	deadline := time.Now().Add(s.writeTimeout)
	st := s.state.Load()
	if len(entries) == 0 && hs == st.hs {
		return nil
	}
	if len(hs.Vote) > maxVoteLen {
		return fmt.Errorf("pebble: save: vote %q... is %d bytes, max %d", hs.Vote[:16], len(hs.Vote), maxVoteLen)
	}
	next := *st
	next.hs = hs
	var first, lastNew uint64
	if len(entries) > 0 {
		first = entries[0].Index
		if first <= st.compactIndex || first > st.lastIndex+1 {
			return fmt.Errorf("pebble: save: first entry index %d outside [%d, %d]",
				first, st.compactIndex+1, st.lastIndex+1)
		}
		total := uint64(0)
		for i := range entries {
			e := &entries[i]
			if e.Index != first+uint64(i) {
				return fmt.Errorf("pebble: save: entry %d has index %d, want %d (entries must be contiguous)",
					i, e.Index, first+uint64(i))
			}
			if len(e.Data) > maxEntryData {
				return fmt.Errorf("pebble: save: entry %d data is %d bytes, max %d", e.Index, len(e.Data), maxEntryData)
			}
			total += uint64(entryKeyLen+entryValueLen(e)) + batchOpOverhead
		}
		if total > maxSaveBytes {
			return fmt.Errorf("pebble: save: %d entries take %d bytes, more than the %d one batch can hold",
				len(entries), total, uint64(maxSaveBytes))
		}
		lastNew = entries[len(entries)-1].Index
		next.lastIndex, next.lastTerm = lastNew, entries[len(entries)-1].Term
		if err := s.space.check(int64(total)); err != nil {
			return fmt.Errorf("pebble: save %d entries: %w", len(entries), err)
		}
	}
	b, err := s.saveBatch(st, hs, entries)
	if err != nil {
		return err
	}
	// Entries from first on are replaced or removed if first <= lastIndex:
	// the mark must then not claim one of them, unless it is rewritten
	// unchanged. (first-1) is held before and after.
	removes := len(entries) > 0 && first <= st.lastIndex
	keeps := func(m mark) bool {
		return m.index < first || m.index <= lastNew && entries[m.index-first].Term == m.indexTerm
	}
	var safeTerm uint64
	if removes {
		if safeTerm, err = s.termBefore(st, first); err != nil {
			_ = b.Close()
			return fmt.Errorf("pebble: save: %w", err)
		}
	}
	locked, err := s.lowerMark(st, hs, removes, keeps, first-1, safeTerm, deadline)
	if locked {
		defer s.unlockMark()
	}
	if err != nil {
		_ = b.Close()
		return fmt.Errorf("pebble: save hard state and %d entries: %w", len(entries), err)
	}
	if err := s.commitBatch(b, s.wopts, deadline); err != nil {
		return fmt.Errorf("pebble: save hard state and %d entries: %w", len(entries), err)
	}
	s.state.Store(&next)
	s.raiseMark(&next, locked, deadline)
	return nil
}

// saveBatch builds the batch of a validated Save.
func (s *Store) saveBatch(st *logState, hs raft.HardState, entries []raft.Entry) (*pebbledb.Batch, error) {
	b := s.db.NewBatch()
	op := b.SetDeferred(len(keyHardState), hardStateLen(hs))
	copy(op.Key, keyHardState)
	putHardState(op.Value, hs)
	if err := op.Finish(); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("pebble: save hard state: %w", err)
	}
	for i := range entries {
		e := &entries[i]
		op := b.SetDeferred(entryKeyLen, entryValueLen(e))
		putEntryKey(op.Key, e.Index)
		putEntry(op.Key, op.Value, e)
		if err := op.Finish(); err != nil {
			_ = b.Close()
			return nil, fmt.Errorf("pebble: save entry %d: %w", e.Index, err)
		}
	}
	if len(entries) > 0 {
		if lastNew := entries[len(entries)-1].Index; lastNew < st.lastIndex {
			if err := s.deleteEntries(b, lastNew+1, st.lastIndex+1); err != nil {
				_ = b.Close()
				return nil, fmt.Errorf("pebble: save: truncate (%d, %d]: %w", lastNew, st.lastIndex, err)
			}
		}
	}
	return b, nil
}

// termBefore returns the term of the entry before index (index is in
// (compactIndex, lastIndex]). The caller holds wmu.
func (s *Store) termBefore(st *logState, index uint64) (t uint64, err error) {
	defer s.readDone("term", &err)
	if index-1 == st.compactIndex {
		return st.compactTerm, nil
	}
	return s.storedTerm(index - 1)
}

// Compact discards the entries up to and including index and records term
// as the term at index, in one synced batch (durable when it returns) that
// deletes the entries (one range deletion for more than 64 entries). If
// the log does not hold (index, term), the whole log is discarded and the
// store restarts after index (lowering the high-water mark first if it
// claims a discarded entry). Compacting at or below the compaction index is
// a no-op. It returns within the write timeout, like Save. Errors wrap
// raft.ErrCorrupt if the entry at index fails verification, the store's
// failure after it failed (see Failed), or raft.ErrStorageClosed after
// Close.
func (s *Store) Compact(index, term uint64) (err error) {
	if err := s.enterWrite(); err != nil {
		return err
	}
	defer s.exit()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	deadline := time.Now().Add(s.writeTimeout)
	st := s.state.Load()
	if index <= st.compactIndex {
		return nil
	}
	holds := false
	switch {
	case index == st.lastIndex:
		holds = st.lastTerm == term
	case index < st.lastIndex:
		t, err := s.termBefore(st, index+1)
		if err != nil {
			return fmt.Errorf("pebble: compact to %d: %w", index, err)
		}
		holds = t == term
	}
	next := *st
	next.compactIndex, next.compactTerm = index, term
	end := index + 1
	if !holds {
		end = st.lastIndex + 1
		next.lastIndex, next.lastTerm = index, term
	}
	b := s.db.NewBatch()
	if err := s.deleteEntries(b, st.compactIndex+1, end); err != nil {
		_ = b.Close()
		return fmt.Errorf("pebble: compact to %d: %w", index, err)
	}
	if err := b.Set(keyCompaction, encodeCompaction(index, term), nil); err != nil {
		_ = b.Close()
		return fmt.Errorf("pebble: compact to %d: %w", index, err)
	}
	// Discarding the log keeps a mark at or below index (compacted) and
	// nothing above; the old compaction point is held before and after.
	locked, err := s.lowerMark(st, st.hs, !holds, func(m mark) bool { return m.index <= index },
		st.compactIndex, st.compactTerm, deadline)
	if locked {
		defer s.unlockMark()
	}
	if err != nil {
		_ = b.Close()
		return fmt.Errorf("pebble: compact to %d: %w", index, err)
	}
	if err := s.commitBatch(b, s.wopts, deadline); err != nil {
		return fmt.Errorf("pebble: compact to %d: %w", index, err)
	}
	s.state.Store(&next)
	return nil
}

const (
	// batchOpOverhead bounds the bytes a Pebble batch adds per operation
	// (kind byte and two varint lengths).
	batchOpOverhead = 1 + 2*5
	// maxSaveBytes keeps one Save's batch well under Pebble's 4 GiB batch
	// limit (which Pebble enforces by panicking).
	maxSaveBytes = 3 << 30
)

// pointDeleteMax is the largest number of entries deleteEntries removes
// with point deletions; larger ranges use one range deletion. Every range
// tombstone in Pebble's memtable adds work to each later read until the
// memtable is flushed, while a few point tombstones cost almost nothing, so
// the short truncations of ordinary conflict resolution use points and log
// compactions (typically thousands of entries) use ranges.
const pointDeleteMax = 64

// deleteEntries adds the deletion of the entries [lo, hi) to b.
func (s *Store) deleteEntries(b *pebbledb.Batch, lo, hi uint64) error {
	if hi <= lo {
		return nil
	}
	if hi-lo > uint64(s.pointDeleteMax) {
		return b.DeleteRange(entryKey(lo), entryKey(hi), nil)
	}
	var key [entryKeyLen]byte
	for i := lo; i < hi; i++ {
		if err := b.Delete(putEntryKey(key[:], i), nil); err != nil {
			return err
		}
	}
	return nil
}

// storedTerm reads the term of a stored entry; the caller holds wmu and
// knows index is within the log.
func (s *Store) storedTerm(index uint64) (uint64, error) {
	key := entryKey(index)
	val, closer, err := s.db.Get(key)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return 0, corruptf(entryWhat(index), "missing from the log")
	}
	if err != nil {
		return 0, fmt.Errorf("read entry %d: %w", index, err)
	}
	defer closer.Close()
	e, err := decodeEntry(index, key, val)
	return e.Term, err
}

// view is a consistent point-in-time read of the compaction point and the
// entries.
type view struct {
	it  *pebbledb.Iterator
	key [entryKeyLen]byte
}

func (s *Store) newView() (*view, error) {
	it, err := s.db.NewIter(&pebbledb.IterOptions{LowerBound: keyCompaction, UpperBound: entriesUpper})
	if err != nil {
		return nil, fmt.Errorf("pebble: open iterator: %w", err)
	}
	return &view{it: it}, nil
}

func (v *view) close() { _ = v.it.Close() }

// entry returns the entry at index if the view holds it.
func (v *view) entry(index uint64) (raft.Entry, bool, error) {
	key := putEntryKey(v.key[:], index)
	if !v.it.SeekGE(key) {
		return raft.Entry{}, false, v.it.Error()
	}
	if idx, ok := parseEntryKey(v.it.Key()); !ok || idx != index {
		return raft.Entry{}, false, nil
	}
	val, err := v.it.ValueAndErr()
	if err != nil {
		return raft.Entry{}, false, fmt.Errorf("pebble: read entry %d: %w", index, err)
	}
	e, err := decodeEntry(index, v.it.Key(), val)
	return e, err == nil, err
}

// has reports whether the view holds the entry at index.
func (v *view) has(index uint64) bool {
	if !v.it.SeekGE(putEntryKey(v.key[:], index)) {
		return false
	}
	idx, ok := parseEntryKey(v.it.Key())
	return ok && idx == index
}

// compaction returns the compaction point in the view ((0, 0) if none).
func (v *view) compaction() (index, term uint64, err error) {
	if !v.it.SeekGE(keyCompaction) {
		return 0, 0, v.it.Error()
	}
	if string(v.it.Key()) != string(keyCompaction) {
		return 0, 0, nil
	}
	val, err := v.it.ValueAndErr()
	if err != nil {
		return 0, 0, fmt.Errorf("pebble: read compaction point: %w", err)
	}
	return decodeCompaction(val)
}

// last returns the index of the last entry in the view, or ci (the view's
// compaction index) if none. hint is the cached last index, usually right:
// checking it takes two forward seeks, cheaper than seeking backwards over
// the tombstones and old versions at the end of the log.
func (v *view) last(ci, hint uint64) (uint64, error) {
	if hint >= ci && (hint == ci || v.has(hint)) && !v.has(hint+1) {
		return hint, nil
	}
	if err := v.it.Error(); err != nil {
		return 0, err
	}
	if !v.it.SeekLT(entriesUpper) {
		return ci, v.it.Error()
	}
	if idx, ok := parseEntryKey(v.it.Key()); ok {
		return idx, nil
	}
	return ci, nil
}
