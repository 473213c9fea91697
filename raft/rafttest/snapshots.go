package rafttest

import (
	"slices"

	"github.com/typedraft/typedraft/raft"
)

// maybeSnapshot takes a snapshot of n's state machine at its applied index
// once SnapshotInterval entries were applied since the last one and stores
// it, as a driver does; telling the core and compacting the log is a later
// step (snapshotCreated), so a crash can fall in between. With
// Faults.CrashSnapshot the node may crash before the snapshot is stored
// (it is lost) or right after.
func (s *sim) maybeSnapshot(n *node) {
	iv := s.snapInterval
	if iv <= 0 || n.snapPending != nil || n.appliedIdx < n.snapAt+uint64(iv) || n.appliedIdx <= n.disk.base {
		return
	}
	a := n.appliedIdx
	if n.disk.snap != nil && n.disk.snap.meta.Index >= a {
		n.snapAt = n.disk.snap.meta.Index
		return
	}
	term, err := n.disk.Term(a)
	if err != nil {
		s.failf(InvariantCoreError, "%s: term of applied entry %d: %v", n.id, a, err)
		return
	}
	meta := raft.SnapshotMeta{Index: a, Term: term, Configuration: n.appliedConf.Clone(), ConfigIndex: n.appliedConfIdx}
	data, ok, err := n.sm.snapshot(meta)
	if !ok {
		s.snapInterval = 0 // the state machine cannot snapshot
		return
	}
	if err != nil {
		s.failf(InvariantApplication, "%s: %v", n.id, err)
		return
	}
	meta.Size = int64(len(data))
	crash := s.snapshotCrash()
	if crash && s.rng.IntN(2) == 0 {
		// The node dies while writing the snapshot: it is never stored.
		s.crashFor(n, s.tick+1+s.rng.IntN(s.f.CrashTicks+1), crashSnapshot)
		return
	}
	snap := &snapshot{meta: meta, data: data, phash: n.disk.prefixHash(a)}
	s.checkSnapshot(n, snap, "takes")
	n.disk.storeSnapshot(snap)
	n.snapAt = a
	n.snapPending = snap
	s.rep.Snapshots++
	s.record(event{kind: evSnapshot, node: n.idx, a: a, term: term})
	if crash {
		s.crashFor(n, s.tick+1+s.rng.IntN(s.f.CrashTicks+1), crashSnapshot)
	}
}

// snapshotCreated tells n's core of the snapshot it stored and compacts the
// log behind it, keeping TrailingLogs entries, as a driver does once the
// snapshot is committed to its store.
func (s *sim) snapshotCreated(n *node) {
	// Compaction waits for the write in flight, as the driver's does.
	s.settleWrite(n)
	if s.fail != nil {
		return
	}
	snap := n.snapPending
	n.snapPending = nil
	a, term := snap.meta.Index, snap.meta.Term
	n.core.ReportSnapshotCreated(a, term)
	n.dirty = true
	s.record(event{kind: evSnapCreated, node: n.idx, a: a, term: term})
	if a > uint64(s.trailing) {
		to := a - uint64(s.trailing)
		if t, err := n.disk.Term(to); err == nil && to > n.disk.base {
			n.disk.compact(to, t, 0)
		}
	}
}

// sendSnapshot streams n's newest snapshot to peer id (Ready.SnapshotsToSend).
func (s *sim) sendSnapshot(n *node, id raft.NodeID, term uint64) {
	if n.disk.snap == nil {
		s.failf(InvariantCoreError, "%s: the core asks to send a snapshot to %s, but none was taken", n.id, id)
		return
	}
	meta := n.disk.snap.meta
	m := raft.Message{Type: raft.MsgSnap, From: n.id, To: id, Term: term, Snapshot: &meta}
	s.sendEnvelope(n, m, n.disk.snap)
}

// receiveSnapshot receives a streamed snapshot before the core is stepped
// with its announcement, as a driver's HandleSnapshot does, and reports the
// transfer's success to the sender. The snapshot is stored only if the core
// can install it: not one at or below the node's commit index, not one
// from a leader of an older term (which the core ignores), and not one
// older than the store's newest. It returns the announcement to step the
// core with: if the store holds a newer snapshot than the one announced,
// the core is told of that one, so that whatever it installs is the
// store's newest. Every snapshot covers a committed prefix, so either is
// safe. stored reports whether the streamed snapshot became the store's
// newest.
func (s *sim) receiveSnapshot(n *node, e envelope) (m raft.Message, stored bool) {
	m = e.m
	_, term, _, commit, _, _ := n.core.Basic()
	meta := e.snap.meta
	stale := meta.Index <= commit || m.Term < term || (n.disk.snap != nil && n.disk.snap.meta.Index >= meta.Index)
	if !stale {
		stored = n.disk.storeSnapshot(e.snap)
	}
	if n.disk.snap != nil && n.disk.snap.meta.Index > meta.Index {
		newest := n.disk.snap.meta
		m.Snapshot = &newest
	}
	if from := s.nodes[e.from]; from.up && from.inc == e.inc {
		from.snapReports = append(from.snapReports, snapReport{peer: e.to, ok: true})
		from.dirty = true
	}
	return m, stored
}

// install installs the snapshot the core accepted: the log restarts after
// it and the state machine is restored from it. Operations proposed
// through n at indexes the snapshot covers can no longer be answered.
func (s *sim) install(n *node, meta raft.SnapshotMeta) {
	snap := n.disk.snap
	if snap == nil || snap.meta.Index != meta.Index {
		s.failf(InvariantCoreError, "%s: install snapshot %d, which is not the newest stored", n.id, meta.Index)
		return
	}
	s.checkSnapshot(n, snap, "installs")
	n.disk.compact(meta.Index, meta.Term, snap.phash)
	if err := n.sm.restore(snap.meta, snap.data); err != nil {
		s.failf(InvariantApplication, "%s: %v", n.id, err)
		return
	}
	n.appliedIdx, n.snapAt = meta.Index, meta.Index
	n.appliedConf, n.appliedConfIdx = snap.meta.Configuration.Clone(), snap.meta.ConfigIndex
	s.rep.Installs++
	s.record(event{kind: evInstall, node: n.idx, a: meta.Index, term: meta.Term})
	var covered []uint64
	for i := range n.pending {
		if i <= meta.Index {
			covered = append(covered, i)
		}
	}
	slices.Sort(covered)
	for _, i := range covered {
		op := n.pending[i]
		delete(n.pending, i)
		s.unknownOp(op)
	}
	s.serveReads(n)
}
