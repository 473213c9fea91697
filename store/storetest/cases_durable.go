package storetest

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/typedraft/typedraft/raft"
)

// testReopen: the hard state, the log (with empty and large data), the
// compaction point and the latest snapshot survive Close and Open, and the
// reopened store keeps working.
func testReopen(h *harness) {
	hs := raft.HardState{Term: 4, Vote: "n2", Commit: 17}
	big := raft.Entry{Index: 20, Term: 4, Type: raft.EntryCommand, Data: bytes.Repeat([]byte{0xa5}, 100_000)}
	empty := raft.Entry{Index: 21, Term: 4, Type: raft.EntryCommand, Data: []byte{}}
	want := concat(entries(1, 8, 1), entries(8, 15, 2), entries(15, 20, 4), []raft.Entry{big, empty})
	h.save(hs, want[:10])
	h.save(hs, want[10:])
	h.compact(6, 1)
	meta, data := snapMeta(6, 1), snapData(6, 70_000)
	h.commitSnapshot(meta, data, 4096)

	h.reopen()
	h.checkHardState(hs)
	h.checkLog(6, 1, want[6:])
	h.checkSnapshot(meta, data)

	hs2 := raft.HardState{Term: 5, Vote: "n1", Commit: 21}
	more := entries(22, 30, 5)
	h.save(hs2, more)
	want = concat(want, more)
	h.reopen()
	h.checkHardState(hs2)
	h.checkLog(6, 1, want[6:])
	h.checkSnapshot(meta, data)
}

// testReopenAfterTruncation: entries removed by conflict truncation stay
// removed after Close and Open, even when the new suffix is shorter.
func testReopenAfterTruncation(h *harness) {
	h.save(raft.HardState{Term: 1}, entries(1, 11, 1))
	hs := raft.HardState{Term: 2, Vote: "n3"}
	h.save(hs, entries(5, 7, 2))
	want := concat(entries(1, 5, 1), entries(5, 7, 2))
	h.reopen()
	h.checkHardState(hs)
	h.checkLog(0, 0, want)
	h.save(hs, entries(7, 9, 2))
	want = concat(want, entries(7, 9, 2))
	h.reopen()
	h.checkLog(0, 0, want)
}

// testReopenAfterDiscard: a compaction that discarded the whole log (term
// mismatch, then beyond LastIndex) is durable.
func testReopenAfterDiscard(h *harness) {
	hs := raft.HardState{Term: 5}
	h.save(hs, entries(1, 11, 1))
	h.compact(7, 5)
	h.reopen()
	h.checkLog(7, 5, nil)
	h.checkHardState(hs)
	want := entries(8, 10, 5)
	h.save(hs, want)
	h.compact(30, 6)
	h.reopen()
	h.checkLog(30, 6, nil)
	want = entries(31, 33, 6)
	h.save(hs, want)
	h.reopen()
	h.checkLog(30, 6, want)
}

// testReopenSnapshots: after Close and Open the latest committed snapshot is
// still the latest; aborted snapshots and a snapshot left unfinished when
// the store closed never replace it.
func testReopenSnapshots(h *harness) {
	h.commitSnapshot(snapMeta(5, 1), snapData(5, 1000), 100)
	meta, data := snapMeta(9, 2), snapData(9, 3000)
	h.commitSnapshot(meta, data, 100)
	aborted := h.writeSnapshot(snapMeta(12, 2), snapData(12, 500), 100)
	if err := aborted.Abort(); err != nil {
		h.t.Fatalf("Abort: %v", err)
	}
	unfinished := h.writeSnapshot(snapMeta(15, 3), snapData(15, 500), 100)
	h.reopen()
	h.checkSnapshot(meta, data)
	_ = unfinished.Abort() // its store is closed: the result does not matter
	h.checkSnapshot(meta, data)
	h.reopen()
	h.checkSnapshot(meta, data)
}

// testClose: after Close every method returns an error matching
// raft.ErrStorageClosed.
func testClose(h *harness) {
	t := h.t
	h.save(raft.HardState{Term: 1}, entries(1, 6, 1))
	h.commitSnapshot(snapMeta(3, 1), snapData(3, 100), 100)
	h.closeStore()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, raft.ErrStorageClosed) {
			t.Errorf("%s after Close: %v, want an error matching %q", what, err, raft.ErrStorageClosed)
		}
	}
	_, err := h.s.InitialState()
	check("InitialState", err)
	_, err = h.s.FirstIndex()
	check("FirstIndex", err)
	_, err = h.s.LastIndex()
	check("LastIndex", err)
	for _, i := range []uint64{0, 1, 5, 6} {
		_, err = h.s.Term(i)
		check(fmt.Sprintf("Term(%d)", i), err)
	}
	_, err = h.s.Entries(1, 6, 0)
	check("Entries(1, 6, 0)", err)
	check("Save with entries", h.s.Save(raft.HardState{Term: 2}, entries(6, 7, 2)))
	check("Save without entries", h.s.Save(raft.HardState{Term: 2}, nil))
	check("Compact", h.s.Compact(3, 1))
	sink, err := h.s.CreateSnapshot(snapMeta(4, 1))
	check("CreateSnapshot", err)
	if sink != nil {
		sink.Abort()
	}
	_, err = h.s.LatestSnapshot()
	check("LatestSnapshot", err)
	_, r, err := h.s.OpenSnapshot()
	check("OpenSnapshot", err)
	if r != nil {
		r.Close()
	}
}
