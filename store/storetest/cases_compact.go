package storetest

import (
	"github.com/typedraft/typedraft/raft"
)

// testCompact: compaction discards the prefix up to the index, moves
// FirstIndex, keeps the term at the compaction index readable, makes reads
// below it fail with ErrCompacted, and leaves the hard state alone.
func testCompact(h *harness) {
	hs := raft.HardState{Term: 2, Vote: "n1", Commit: 8}
	want := concat(entries(1, 5, 1), entries(5, 11, 2))
	h.save(hs, want)

	h.compact(5, 2)
	h.checkLog(5, 2, want[5:])
	h.checkTermErr(4, raft.ErrCompacted)
	h.checkTermErr(0, raft.ErrCompacted)
	h.checkEntriesErr(5, 6, raft.ErrCompacted)
	h.checkEntriesErr(1, 11, raft.ErrCompacted)
	h.checkHardState(hs)

	// Compacting the last entry empties the log but keeps its term.
	h.compact(10, 2)
	h.checkLog(10, 2, nil)
	h.checkEntries(11, 11, 0, nil)
	h.checkHardState(hs)
}

// testCompactNoop: compacting at or below the compaction index does nothing,
// whatever term is given.
func testCompactNoop(h *harness) {
	want := concat(entries(1, 4, 1), entries(4, 11, 2))
	h.save(raft.HardState{}, want)
	h.compact(0, 0)
	h.checkLog(0, 0, want)
	h.compact(5, 2)
	h.checkLog(5, 2, want[5:])
	h.compact(5, 2)
	h.checkLog(5, 2, want[5:])
	h.compact(5, 7) // same index, other term: still a no-op
	h.checkLog(5, 2, want[5:])
	h.compact(3, 1)
	h.checkLog(5, 2, want[5:])
	h.compact(0, 0)
	h.checkLog(5, 2, want[5:])
}

// testCompactMismatchingTerm: when the log holds index with another term,
// Compact discards the whole log, including the entries after index, and
// the log restarts after index with the given term.
func testCompactMismatchingTerm(h *harness) {
	hs := raft.HardState{Term: 3, Commit: 2}
	h.save(hs, entries(1, 11, 1))
	h.compact(7, 3)
	h.checkLog(7, 3, nil)
	h.checkHardState(hs)

	// The log continues after the compaction index.
	want := entries(8, 10, 3)
	h.save(hs, want)
	h.checkLog(7, 3, want)
}

// testCompactBeyondLast: compacting beyond LastIndex discards the whole log
// and moves both FirstIndex and LastIndex, on a filled and on an empty store.
func testCompactBeyondLast(h *harness) {
	h.compact(5, 2) // empty store
	h.checkLog(5, 2, nil)
	want := entries(6, 11, 2)
	h.save(raft.HardState{}, want)
	h.checkLog(5, 2, want)

	h.compact(20, 3)
	h.checkLog(20, 3, nil)
	h.checkTermErr(10, raft.ErrCompacted)
	if err := h.s.Save(raft.HardState{}, entries(11, 12, 3)); err == nil {
		h.t.Fatalf("Save at index 11 after compacting to 20 succeeded, want an error")
	}
	want = entries(21, 23, 3)
	h.save(raft.HardState{}, want)
	h.checkLog(20, 3, want)
}

// testSaveAfterCompact: after compaction, Save may replace the log from
// FirstIndex (keeping the compacted term), append, and truncate again.
func testSaveAfterCompact(h *harness) {
	h.save(raft.HardState{}, entries(1, 11, 1))
	h.compact(4, 1)
	want := entries(5, 7, 2)
	h.save(raft.HardState{Term: 2}, want) // conflict at FirstIndex
	h.checkLog(4, 1, want)
	want = concat(want, entries(7, 9, 2))
	h.save(raft.HardState{Term: 2}, want[2:])
	h.checkLog(4, 1, want)
	h.save(raft.HardState{Term: 3}, entries(6, 7, 3))
	want = concat(want[:1], entries(6, 7, 3))
	h.checkLog(4, 1, want)
	// Compacting again, with an entry that was rewritten after the first
	// compaction.
	h.compact(6, 3)
	h.checkLog(6, 3, nil)
}
