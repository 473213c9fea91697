package storetest

import (
	"errors"
	"strings"

	"github.com/typedraft/typedraft/raft"
)

// testBindNode (stores that implement raft.NodeBinder; skipped for others):
// the first BindNode binds the store; the same ID binds again; another ID is
// refused with an error matching raft.ErrWrongNode that names both IDs, and
// changes nothing; a durable store remembers the binding across Close and
// Open.
func testBindNode(h *harness) {
	b, ok := h.s.(raft.NodeBinder)
	if !ok {
		h.t.Skipf("storetest: %T does not implement raft.NodeBinder", h.s)
	}
	if err := b.BindNode("node-a"); err != nil {
		h.t.Fatalf("BindNode(node-a) on a new store: %v", err)
	}
	if err := b.BindNode("node-a"); err != nil {
		h.t.Fatalf("BindNode(node-a) again: %v", err)
	}
	h.checkWrongNode(b, "node-b", "node-a")
	hs := raft.HardState{Term: 2, Vote: "node-a"}
	want := entries(1, 6, 2)
	h.save(hs, want)
	h.checkWrongNode(b, "node-b", "node-a")
	h.checkHardState(hs)
	h.checkLog(0, 0, want)
	if !h.f.Durable {
		return
	}
	h.reopen()
	b, ok = h.s.(raft.NodeBinder)
	if !ok {
		h.t.Fatalf("storetest: the reopened %T does not implement raft.NodeBinder", h.s)
	}
	h.checkWrongNode(b, "node-b", "node-a")
	if err := b.BindNode("node-a"); err != nil {
		h.t.Fatalf("BindNode(node-a) after reopening: %v", err)
	}
	h.checkHardState(hs)
	h.checkLog(0, 0, want)
}

// checkWrongNode fails the test unless BindNode(id) is refused with an error
// matching raft.ErrWrongNode that names id and bound.
func (h *harness) checkWrongNode(b raft.NodeBinder, id, bound raft.NodeID) {
	h.t.Helper()
	err := b.BindNode(id)
	if !errors.Is(err, raft.ErrWrongNode) {
		h.t.Fatalf("BindNode(%s) on a store bound to %s: %v; want an error matching raft.ErrWrongNode", id, bound, err)
	}
	for _, name := range []raft.NodeID{id, bound} {
		if !strings.Contains(err.Error(), string(name)) {
			h.t.Fatalf("BindNode(%s): error %q does not name %s", id, err, name)
		}
	}
}

// testFailureNotifier (stores that implement raft.FailureNotifier; skipped
// for others): a healthy store reports no failure: Failed returns a channel
// (the same one every time) that stays open through ordinary work, and
// FailureErr is nil. A store that reported one would stop its node at once.
func testFailureNotifier(h *harness) {
	fn, ok := h.s.(raft.FailureNotifier)
	if !ok {
		h.t.Skipf("storetest: %T does not implement raft.FailureNotifier", h.s)
	}
	ch := fn.Failed()
	if ch == nil {
		h.t.Fatalf("Failed returned a nil channel: the node could never learn of a failure")
	}
	check := func(when string) {
		h.t.Helper()
		if fn.Failed() != ch {
			h.t.Fatalf("Failed returned another channel %s: it must return the same one every time", when)
		}
		select {
		case <-ch:
			h.t.Fatalf("Failed's channel is closed %s, though the store is healthy (FailureErr: %v)", when, fn.FailureErr())
		default:
		}
		if err := fn.FailureErr(); err != nil {
			h.t.Fatalf("FailureErr = %v %s, though the store is healthy; want nil", err, when)
		}
	}
	check("on a new store")
	h.save(raft.HardState{Term: 1}, entries(1, 21, 1))
	h.save(raft.HardState{Term: 2}, entries(10, 15, 2))
	h.commitSnapshot(snapMeta(8, 1), snapData(8, 1000), 100)
	h.compact(8, 1)
	if _, err := h.s.Entries(9, 15, 0); err != nil {
		h.t.Fatalf("Entries(9, 15, 0): %v", err)
	}
	check("after saves, a snapshot and a compaction")
}
