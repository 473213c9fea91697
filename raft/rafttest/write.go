package rafttest

import (
	"github.com/typedraft/typedraft/raft"
)

// Log writes in flight, as the driver ships them (thesis §10.2.1 for the
// leader, asynchronous storage writes for followers): a Ready with new
// entries is not saved in line; its entries are handed to a write that
// completes later, as a step of its own, while the node keeps stepping
// messages, committing, applying and taking proposals (Core.AdvanceAsync).
// Until the write completes (Core.WriteDone) the core hands out no more
// entries and holds every message that waits for durability, the Ready's
// MessagesAfter go out only with the write, and a leader does not count
// itself toward a quorum. A crash before completion loses the write. Every
// other save of the node, and any compaction, waits for the write in
// flight, as the driver's do; inside a Ready the core is told of the
// completion only after the Ready is advanced.

// asyncWrite is a leader's log write in flight.
type asyncWrite struct {
	hs      raft.HardState
	entries []raft.Entry
	// hashes are the prefix hashes of entries (the view's overlay).
	hashes []uint64
	after  []raft.Message
	// doneAt is the tick from which the write may complete.
	doneAt int
}

// asyncEligible reports whether rd is saved by a write in flight.
func asyncEligible(n *node, rd raft.Ready) bool {
	return rd.MustSave && rd.Snapshot == nil && len(rd.Entries) > 0 && n.write == nil
}

// startWrite hands rd's entries to a write in flight.
func (s *sim) startWrite(n *node, rd raft.Ready) {
	w := &asyncWrite{hs: rd.HardState, entries: rd.Entries, after: rd.MessagesAfter,
		hashes: append([]uint64(nil), n.rdHash...), doneAt: s.tick}
	if s.f.SlowDisk > 0 && s.rng.Float64() < s.f.SlowDisk {
		w.doneAt += 1 + s.rng.IntN(max(1, s.f.SlowDiskTicks))
	}
	n.write = w
	s.rep.AsyncWrites++
	s.record(event{kind: evWriteStart, node: n.idx, term: rd.Term, a: uint64(len(rd.Entries))})
}

// finishWrite makes the write in flight durable, sends what waited for it
// and tells the core (at once, or, inside a Ready, once it is advanced).
func (s *sim) finishWrite(n *node) {
	w := n.write
	n.write = nil
	s.checkSave(n, w.hs)
	if err := n.disk.save(w.hs, w.entries); err != nil {
		s.failf(InvariantCoreError, "%s: %v", n.id, err)
		return
	}
	s.record(event{kind: evWriteDone, node: n.idx, term: w.hs.Term, a: uint64(len(w.entries)), b: n.disk.last()})
	s.checkSaved(n, w.entries)
	if s.fail != nil {
		return
	}
	for _, m := range w.after {
		s.send(n, m)
	}
	last := w.entries[len(w.entries)-1].Index
	n.dirty = true
	if n.phase != phaseIdle {
		n.writeDone = last
		return
	}
	n.core.WriteDone(last)
	s.checkNode(n)
}

// reportWriteDone tells the core of a write that completed while its
// Ready was out.
func (s *sim) reportWriteDone(n *node) {
	if n.writeDone != 0 {
		n.core.WriteDone(n.writeDone)
		n.writeDone = 0
	}
}

// settleWrite completes the write in flight before anything that must not
// overtake it (a synchronous save, a compaction).
func (s *sim) settleWrite(n *node) {
	if n.write != nil {
		s.finishWrite(n)
	}
}
