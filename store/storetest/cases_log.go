package storetest

import (
	"bytes"
	"errors"

	"github.com/typedraft/typedraft/raft"
)

// testEmptyState: a new store has a zero hard state, FirstIndex 1, LastIndex
// 0, Term(0) == 0, no entries and no snapshot.
func testEmptyState(h *harness) {
	t := h.t
	h.checkHardState(raft.HardState{})
	h.checkLog(0, 0, nil)
	h.checkEntries(1, 1, 0, nil)
	h.checkEntries(1, 1, 100, nil)
	if _, err := h.s.LatestSnapshot(); !errors.Is(err, raft.ErrNoSnapshot) {
		t.Fatalf("LatestSnapshot on an empty store: %v, want an error matching %q", err, raft.ErrNoSnapshot)
	}
	_, r, err := h.s.OpenSnapshot()
	if !errors.Is(err, raft.ErrNoSnapshot) {
		t.Fatalf("OpenSnapshot on an empty store: %v, want an error matching %q", err, raft.ErrNoSnapshot)
	}
	if r != nil {
		t.Fatalf("OpenSnapshot on an empty store returned a reader with its error")
	}
}

// testAppendAndRead: entries appended by several Saves read back exactly
// (index, term, type, data, including empty and large data), over the whole
// range and every sub-range.
func testAppendAndRead(h *harness) {
	hs := raft.HardState{Term: 3, Vote: "n1", Commit: 2}
	want := concat(entries(1, 11, 1), entries(11, 13, 2))
	h.save(hs, want[:10])
	h.save(hs, want[10:])
	// A single entry, one with empty (non-nil) data and one of 64 KiB.
	big := entry(13, 3)
	big.Type = raft.EntryCommand
	big.Data = bytes.Repeat([]byte("0123456789abcdef"), 4096)
	empty := raft.Entry{Index: 14, Term: 3, Type: raft.EntryCommand, Data: []byte{}}
	h.save(hs, []raft.Entry{big})
	h.save(hs, []raft.Entry{empty})
	want = append(want, big, empty)
	// A Save without entries changes only the hard state.
	h.save(hs, nil)
	h.checkLog(0, 0, want)
	for lo := uint64(1); lo <= 15; lo++ {
		for hi := lo; hi <= 15; hi++ {
			h.checkEntries(lo, hi, 0, want[lo-1:hi-1])
		}
	}
}

// testReadBounds: reads outside [FirstIndex, LastIndex] fail with
// ErrCompacted below and ErrUnavailable above; an empty range within bounds
// returns nothing; lo > hi is an error.
func testReadBounds(h *harness) {
	t := h.t
	h.save(raft.HardState{Term: 1}, entries(1, 11, 1))
	h.checkTermErr(11, raft.ErrUnavailable)
	h.checkTermErr(1<<62, raft.ErrUnavailable)
	h.checkEntriesErr(0, 5, raft.ErrCompacted)
	h.checkEntriesErr(0, 0, raft.ErrCompacted)
	h.checkEntriesErr(1, 12, raft.ErrUnavailable)
	h.checkEntriesErr(5, 12, raft.ErrUnavailable)
	h.checkEntriesErr(11, 12, raft.ErrUnavailable)
	h.checkEntriesErr(12, 20, raft.ErrUnavailable)
	h.checkEntriesErr(5, 1<<62, raft.ErrUnavailable)
	for _, i := range []uint64{1, 5, 11} {
		h.checkEntries(i, i, 0, nil)
	}
	if got, err := h.s.Entries(6, 5, 0); err == nil {
		t.Fatalf("Entries(6, 5, 0) = %d entries, nil error; want an error for lo > hi", len(got))
	}
}

// testEntriesMaxBytes: maxBytes stops before the total Entry.Size would
// exceed it, but at least one entry is returned; 0 means no limit.
func testEntriesMaxBytes(h *harness) {
	want := entries(1, 21, 1)
	h.save(raft.HardState{}, want)
	// expect computes the answer from the contract.
	expect := func(lo, hi, maxBytes uint64) []raft.Entry {
		es := want[lo-1 : hi-1]
		if maxBytes == 0 || len(es) == 0 {
			return es
		}
		n, total := 1, es[0].Size()
		for n < len(es) && total+es[n].Size() <= maxBytes {
			total += es[n].Size()
			n++
		}
		return es[:n]
	}
	total := func(es []raft.Entry) (n uint64) {
		for i := range es {
			n += es[i].Size()
		}
		return n
	}
	limits := []uint64{0, 1, want[0].Size() - 1, want[0].Size(), total(want[:2]) - 1, total(want[:2]),
		total(want[:2]) + 1, total(want[:7]), total(want), 1 << 40}
	for lo := uint64(1); lo <= 20; lo += 3 {
		for _, hi := range []uint64{lo, lo + 1, lo + 2, 21} {
			for _, m := range limits {
				h.checkEntries(lo, hi, m, expect(lo, hi, m))
			}
			// Limits that end exactly at an entry boundary inside the range.
			for k := lo; k < hi; k++ {
				m := total(want[lo-1 : k])
				h.checkEntries(lo, hi, m, expect(lo, hi, m))
			}
		}
	}
	// An entry larger than the limit is still returned on its own.
	bigs := []raft.Entry{{Index: 21, Term: 1, Data: make([]byte, 1000)}, {Index: 22, Term: 1, Data: make([]byte, 10)}}
	h.save(raft.HardState{}, bigs)
	h.checkEntries(21, 23, 100, bigs[:1])
	h.checkEntries(21, 23, bigs[0].Size()+bigs[1].Size(), bigs)
}

// testReturnedSliceOwnership: the slice Entries returns belongs to the
// caller: changing its elements or appending to it does not change the
// store; and entries already returned stay as they were, whatever the store
// does later (reads, appends, conflict truncation, compaction).
func testReturnedSliceOwnership(h *harness) {
	want := entries(1, 11, 1)
	h.save(raft.HardState{}, want)
	got, err := h.s.Entries(1, 6, 0)
	if err != nil {
		h.t.Fatalf("Entries(1, 6, 0): %v", err)
	}
	got[0].Index, got[0].Term, got[0].Data = 99, 99, nil
	got[1] = raft.Entry{Index: 98, Term: 98}
	// Appending to a prefix writes into the returned array's spare capacity,
	// which must not be the store's memory.
	_ = append(got[:2], raft.Entry{Index: 97, Term: 97}, raft.Entry{Index: 96, Term: 96})
	_ = append(got, raft.Entry{Index: 95, Term: 95})
	h.checkEntries(1, 6, 0, want[:5])
	h.checkLog(0, 0, want)

	// Entries returned earlier are not overwritten by what the store does
	// next (a store decoding into a reused buffer must copy).
	kept, err := h.s.Entries(3, 11, 0)
	if err != nil {
		h.t.Fatalf("Entries(3, 11, 0): %v", err)
	}
	for lo := uint64(1); lo <= 10; lo++ {
		if _, err := h.s.Entries(lo, 11, 0); err != nil {
			h.t.Fatalf("Entries(%d, 11, 0): %v", lo, err)
		}
	}
	h.save(raft.HardState{Term: 2}, entries(6, 14, 2)) // truncates 6..10
	h.compact(7, 2)
	if _, err := h.s.Entries(8, 14, 0); err != nil {
		h.t.Fatalf("Entries(8, 14, 0): %v", err)
	}
	if d := diffEntries(kept, want[2:]); d != "" {
		h.t.Fatalf("entries returned by Entries(3, 11, 0) changed after later reads, a truncating Save and a Compact: %s", d)
	}
}

// testConflictTruncation: a Save starting inside the log replaces the whole
// suffix from its first entry, however long the old suffix was.
func testConflictTruncation(h *harness) {
	hs := raft.HardState{Term: 1}
	h.save(hs, entries(1, 11, 1))

	hs.Term = 2
	h.save(hs, entries(5, 8, 2)) // replaces 5..10 with 5..7
	want := concat(entries(1, 5, 1), entries(5, 8, 2))
	h.checkLog(0, 0, want)

	h.save(hs, entries(8, 13, 2)) // appends at LastIndex+1
	want = concat(want, entries(8, 13, 2))
	h.checkLog(0, 0, want)

	hs.Term = 3
	h.save(hs, entries(12, 13, 3)) // replaces the last entry only
	want = concat(want[:11], entries(12, 13, 3))
	h.checkLog(0, 0, want)

	h.save(hs, entries(12, 20, 3)) // replaces the last entry with a longer run
	want = concat(want[:11], entries(12, 20, 3))
	h.checkLog(0, 0, want)

	hs.Term = 4
	h.save(hs, entries(1, 3, 4)) // replaces everything from FirstIndex
	want = entries(1, 3, 4)
	h.checkLog(0, 0, want)
	h.checkHardState(hs)
}

// testHardState: the hard state round-trips, is replaced by each Save, and a
// Save without entries leaves the log alone.
func testHardState(h *harness) {
	hs1 := raft.HardState{Term: 1, Vote: "n1"}
	h.save(hs1, nil)
	h.checkHardState(hs1)
	h.checkLog(0, 0, nil)

	hs2 := raft.HardState{Term: 2, Vote: "node-with-a-much-longer-id.example.com:7000", Commit: 3}
	want := entries(1, 6, 2)
	h.save(hs2, want)
	h.checkHardState(hs2)
	h.checkLog(0, 0, want)

	hs3 := raft.HardState{Term: 3, Commit: 5} // vote cleared by a new term
	h.save(hs3, nil)
	h.checkHardState(hs3)
	h.checkLog(0, 0, want)

	hs4 := raft.HardState{Term: 1<<64 - 1, Vote: "n3", Commit: 1<<64 - 2}
	h.save(hs4, nil)
	h.checkHardState(hs4)
}

// testSaveRejectsGaps: Save refuses entries that would leave a gap, start
// below FirstIndex or are not contiguous, and a refused Save changes neither
// the hard state nor the log (it is atomic).
func testSaveRejectsGaps(h *harness) {
	t := h.t
	hs1 := raft.HardState{Term: 1, Vote: "n1", Commit: 1}
	want := entries(1, 6, 1)
	h.save(hs1, want)
	hs2 := raft.HardState{Term: 2, Vote: "n2", Commit: 4}
	e := func(idx ...uint64) []raft.Entry {
		out := make([]raft.Entry, len(idx))
		for i, x := range idx {
			out[i] = entry(x, 2)
		}
		return out
	}
	bad := []struct {
		name string
		es   []raft.Entry
	}{
		{"gap after LastIndex", e(7, 8)},
		{"far beyond LastIndex", e(100)},
		{"index 0", e(0, 1)},
		{"non-contiguous", e(3, 4, 6)},
		{"repeated index", e(3, 3)},
		{"decreasing", e(4, 3)},
		{"gap at the end of an append", e(6, 7, 9)},
	}
	check := func(compactIndex, compactTerm uint64, want []raft.Entry) {
		t.Helper()
		for _, b := range bad {
			if err := h.s.Save(hs2, copyEntries(b.es)); err == nil {
				t.Fatalf("Save with %s (%s) succeeded, want an error", b.name, fmtRange(b.es))
			}
			h.checkHardState(hs1)
			h.checkLog(compactIndex, compactTerm, want)
		}
	}
	check(0, 0, want)

	h.compact(3, 1)
	bad = append(bad, struct {
		name string
		es   []raft.Entry
	}{"below FirstIndex", e(3, 4)}, struct {
		name string
		es   []raft.Entry
	}{"below FirstIndex, ending inside", e(2, 3, 4, 5)})
	check(3, 1, want[3:])

	// A valid Save still works afterwards.
	h.save(hs2, e(4, 5, 6))
	h.checkHardState(hs2)
	h.checkLog(3, 1, e(4, 5, 6))
}
