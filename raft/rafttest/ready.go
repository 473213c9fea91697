package rafttest

import (
	"github.com/typedraft/typedraft/raft"
)

// takeReady takes the node's Ready and sends its early Messages (phase 1).
func (s *sim) takeReady(n *node) {
	n.dirty = false
	if s.fail != nil {
		return
	}
	if n.lostTo != 0 {
		s.record(event{kind: evUnreachable, node: n.idx, a: n.lostTo})
		for j, id := range s.ids {
			if n.lostTo&(1<<j) != 0 {
				n.core.ReportUnreachable(id)
			}
		}
		n.lostTo = 0
	}
	for _, r := range n.snapReports {
		s.record(event{kind: evSnapReport, node: n.idx, a: uint64(r.peer), b: boolBit(r.ok)})
		n.core.ReportSnapshot(s.ids[r.peer], r.ok)
	}
	n.snapReports = n.snapReports[:0]
	if !n.core.HasReady() {
		return
	}
	rd := n.core.Ready()
	s.readStates(n, rd.ReadStates)
	if s.fail != nil {
		return
	}
	// Group each destination's messages, keeping their order, as the
	// driver's one Send per destination does (the core already iterates
	// peers in sorted order, so runs are reproducible either way).
	sortByDestination(rd.Messages)
	sortByDestination(rd.MessagesAfter)
	n.rd = rd
	n.async = false
	n.phase = phaseAfter // the Ready is out (settled below)
	if (rd.MustSave || rd.Snapshot != nil) && !asyncEligible(n, rd) {
		// Every in-line save and install waits for the write in flight.
		s.settleWrite(n)
		if s.fail != nil {
			return
		}
	}
	if asyncEligible(n, rd) {
		n.async = true
		n.phase = phaseAfter
	} else if rd.MustSave || rd.Snapshot != nil {
		n.phase = phaseSave
		n.saveAt = s.tick
		if s.f.SlowDisk > 0 && s.rng.Float64() < s.f.SlowDisk {
			n.saveAt += 1 + s.rng.IntN(max(1, s.f.SlowDiskTicks))
		}
	} else {
		n.phase = phaseAfter
	}
	s.record(event{kind: evReady, node: n.idx, state: rd.State, term: rd.Term,
		a: uint64(len(rd.Entries)), b: uint64(len(rd.Messages) + len(rd.MessagesAfter)),
		msg: raft.Message{Commit: rd.HardState.Commit}})
	if err := n.hashReady(); err != nil {
		s.failf(InvariantCoreError, "%s: %v", n.id, err)
		return
	}
	if n.async {
		s.startWrite(n, rd)
	}
	s.checkReady(n)
	for _, m := range rd.Messages {
		s.send(n, m)
	}
	if rd.Snapshot != nil && s.snapshotCrash() {
		// The core accepted the snapshot; the node dies before installing it.
		s.crashFor(n, s.tick+1+s.rng.IntN(s.f.CrashTicks+1), crashInstall)
	}
}

// snapshotCrash draws whether a node crashes in the snapshot window it is in
// (Faults.CrashSnapshot).
func (s *sim) snapshotCrash() bool {
	return s.f.CrashSnapshot > 0 && s.rng.Float64() < s.f.CrashSnapshot
}

// save installs the Ready's Snapshot and persists its HardState and
// Entries (phase 2). Installing is a step of its own, so that a node can
// crash with the snapshot installed but the batch not saved.
func (s *sim) save(n *node) {
	if n.rd.Snapshot != nil && !n.installed {
		s.install(n, *n.rd.Snapshot)
		n.installed = true
		if s.fail != nil {
			return
		}
		if s.snapshotCrash() {
			s.crashFor(n, s.tick+1+s.rng.IntN(s.f.CrashTicks+1), crashInstall)
			return
		}
		if n.rd.MustSave {
			return
		}
	}
	n.phase, n.installed = phaseAfter, false
	if !n.rd.MustSave {
		return
	}
	hs, ents := n.rd.HardState, n.rd.Entries
	s.checkSave(n, hs)
	if err := n.disk.save(hs, ents); err != nil {
		s.failf(InvariantCoreError, "%s: %v", n.id, err)
		return
	}
	s.record(event{kind: evSave, node: n.idx, term: hs.Term, a: uint64(len(ents)), b: n.disk.last()})
	s.checkSaved(n, ents)
}

// after sends MessagesAfter, applies Committed and advances (phase 3).
func (s *sim) after(n *node) {
	rd := n.rd
	if !n.async {
		for _, m := range rd.MessagesAfter {
			s.send(n, m)
		}
	}
	for _, e := range rd.Committed {
		s.apply(n, e)
		if s.fail != nil {
			return
		}
	}
	s.serveReads(n)
	for _, id := range rd.SnapshotsToSend {
		s.sendSnapshot(n, id, rd.Term)
	}
	if n.async {
		n.core.AdvanceAsync(rd)
	} else {
		n.core.Advance(rd)
	}
	n.rd, n.phase, n.dirty, n.async = raft.Ready{}, phaseIdle, true, false
	s.reportWriteDone(n)
	var to uint64
	if k := len(rd.Committed); k > 0 {
		to = rd.Committed[k-1].Index
	}
	s.record(event{kind: evAfter, node: n.idx, a: uint64(len(rd.MessagesAfter)), b: to})
	// Advance may have moved a leader's commit index: check it before the
	// node can crash taking a snapshot.
	s.checkNode(n)
	s.maybeSnapshot(n)
}

func (s *sim) apply(n *node, e raft.Entry) {
	s.checkApply(n, e)
	if s.fail != nil {
		return
	}
	n.appliedIdx = e.Index
	op := n.pending[e.Index]
	delete(n.pending, e.Index)
	if e.Type == raft.EntryConfig {
		cfg, err := raft.DecodeConfiguration(e.Data)
		if err != nil {
			s.failf(InvariantCoreError, "%s applies configuration entry %d: %v", n.id, e.Index, err)
			return
		}
		n.appliedConf, n.appliedConfIdx = cfg, e.Index
	}
	if e.Type != raft.EntryCommand {
		if op != nil {
			s.dropOp(op, n)
		}
		return
	}
	out, err := n.sm.apply(e)
	if err != nil {
		s.failf(InvariantApplication, "%s: %v", n.id, err)
		return
	}
	if op == nil {
		return
	}
	if op.term != e.Term {
		s.dropOp(op, n)
		return
	}
	s.resolveOp(op, out, entryHash(e))
}

// send puts m on the network, subject to partitions and message faults.
func (s *sim) send(n *node, m raft.Message) { s.sendEnvelope(n, m, nil) }

// sendEnvelope sends m, with the snapshot it streams if it is a MsgSnap.
func (s *sim) sendEnvelope(n *node, m raft.Message, snap *snapshot) {
	s.rep.Messages++
	to, ok := s.index[m.To]
	if !ok && m.To == rogueID {
		return // an answer to the rogue leaves the simulated cluster
	}
	if !ok {
		s.failf(InvariantCoreError, "%s sent %s to an unknown node", n.id, m)
		return
	}
	s.checkReply(n, to, m)
	if s.fail != nil {
		return
	}
	e := envelope{m: m, from: n.idx, to: to, snap: snap, inc: n.inc}
	if !s.nodes[to].up || s.net.isCut(n.idx, to) || (s.f.Drop > 0 && s.rng.Float64() < s.f.Drop) {
		s.lost(e)
		s.record(event{kind: evDrop, node: to, msg: m, hasM: true, a: uint64(len(m.Entries))})
		return
	}
	if s.f.Reorder > 0 && s.rng.Float64() < s.f.Reorder {
		e.at = s.tick + 1 + s.rng.IntN(max(1, s.f.ReorderTicks))
		s.net.strays = append(s.net.strays, e)
	} else {
		e.at = s.tick + s.rng.IntN(s.f.MaxDelay+1)
		s.net.enqueue(e)
	}
	if s.f.Duplicate > 0 && s.rng.Float64() < s.f.Duplicate {
		d := e
		d.at = s.tick + s.rng.IntN(s.f.MaxDelay+s.f.ReorderTicks+1)
		s.net.strays = append(s.net.strays, d)
	}
}

func (s *sim) deliver(e envelope) {
	if s.net.isCut(e.from, e.to) {
		s.lost(e)
		s.record(event{kind: evDrop, node: e.to, msg: e.m, hasM: true, a: uint64(len(e.m.Entries))})
		return
	}
	n := s.nodes[e.to]
	s.record(event{kind: evDeliver, node: e.to, msg: e.m, hasM: true, a: uint64(len(e.m.Entries))})
	m := e.m
	if e.snap != nil {
		var stored bool
		m, stored = s.receiveSnapshot(n, e)
		if stored && s.snapshotCrash() {
			// The snapshot is in the store; the node dies before its core
			// hears of it. It restarts from the snapshot (reconcile).
			s.crashFor(n, s.tick+1+s.rng.IntN(s.f.CrashTicks+1), crashInstall)
			return
		}
	}
	s.syncClock(n)
	n.core.Step(m)
	n.dirty = true
	s.maybeReadyNow(n)
}

// lost counts a message lost on its link and, with Options.ReportLoss,
// queues the report for the sender. A lost snapshot is always reported: the
// sender streams it over a connection and sees the stream fail.
func (s *sim) lost(e envelope) {
	s.rep.Lost++
	n := s.nodes[e.from]
	if !n.up || n.inc != e.inc {
		return
	}
	if e.snap != nil {
		n.snapReports = append(n.snapReports, snapReport{peer: e.to, ok: false})
		n.dirty = true
	}
	if s.o.ReportLoss {
		n.lostTo |= 1 << e.to
		n.dirty = true
	}
}

func boolBit(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
