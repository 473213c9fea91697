package rafttest

import (
	"math/rand/v2"
	"slices"

	"github.com/typedraft/typedraft/raft"
)

// injectTickFaults starts the faults drawn once per tick: partitions,
// pauses and whole-cluster restarts.
func (s *sim) injectTickFaults() {
	f := &s.f
	if f.Partition > 0 && !s.net.partitioned() && len(s.nodes) > 1 && s.rng.Float64() < f.Partition {
		s.partition()
	}
	if f.Pause > 0 && s.rng.Float64() < f.Pause {
		s.pauseSome()
	}
	if f.RestartAll > 0 && s.rng.Float64() < f.RestartAll {
		s.restartAll()
	}
	if f.CrashLeader > 0 && s.rng.Float64() < f.CrashLeader {
		if l := s.leader(); l >= 0 {
			s.crash(s.nodes[l], s.tick+1+s.rng.IntN(s.f.CrashTicks+1))
		}
	}
	if f.Membership > 0 && s.rng.Float64() < f.Membership {
		s.changeMembership()
	}
	if f.Transfer > 0 && s.rng.Float64() < f.Transfer {
		s.transferLeadership()
	}
	if f.Rogue > 0 && s.rng.Float64() < f.Rogue {
		s.rogueMessage()
	}
}

// targets returns the nodes that faults aimed at the cluster pick from: the
// members of the newest committed configuration (with its joint half), or
// every node that is not shut down if none is committed yet. Spares not yet
// added and removed nodes still running are left out, so that they do not
// dilute the faults.
func (s *sim) targets() []int {
	var out []int
	cfg := s.g.committedConf(s.bootConf)
	for _, n := range s.nodes {
		if n.off {
			continue
		}
		if _, ok := cfg.Server(n.id); ok || len(cfg.Servers) == 0 {
			out = append(out, n.idx)
		}
	}
	return out
}

// leader returns the running node that leads in the highest term, or -1.
func (s *sim) leader() int {
	best, bestTerm := -1, uint64(0)
	for _, n := range s.nodes {
		if !n.up {
			continue
		}
		st, term, _, _, _, _ := n.core.Basic()
		if st == raft.Leader && term >= bestTerm {
			best, bestTerm = n.idx, term
		}
	}
	return best
}

// partition isolates a random minority from the majority, with the leader
// on either side, cutting one or both directions.
func (s *sim) partition() {
	nn := len(s.nodes)
	group := s.targets()
	if len(group) < 2 {
		return
	}
	k := 1 + s.rng.IntN(max(1, (len(group)-1)/2))
	lead := s.leader()
	if lead >= 0 && !slices.Contains(group, lead) {
		lead = -1
	}
	if lead >= 0 && s.f.PartialPartition > 0 && s.rng.Float64() < s.f.PartialPartition {
		s.cutLink(lead, group)
		return
	}
	leaderInMinority := lead >= 0 && s.rng.IntN(2) == 0
	perm := make([]int, len(group))
	for i, j := range s.rng.Perm(len(group)) {
		perm[i] = group[j]
	}
	minority := make([]bool, nn)
	count := 0
	if leaderInMinority {
		minority[lead] = true
		count++
	}
	for _, i := range perm {
		if count == k {
			break
		}
		if minority[i] || (i == lead && !leaderInMinority) {
			continue
		}
		minority[i] = true
		count++
	}
	oneWay := s.rng.Float64() < s.f.OneWay
	outbound := s.rng.IntN(2) == 0 // for one-way: cut minority->majority
	var mask uint64
	for i := 0; i < nn; i++ {
		if !minority[i] {
			continue
		}
		mask |= 1 << i
		for j := 0; j < nn; j++ {
			if minority[j] {
				continue
			}
			if !oneWay || outbound {
				s.net.cut[i*nn+j] = true
			}
			if !oneWay || !outbound {
				s.net.cut[j*nn+i] = true
			}
		}
	}
	s.net.healAt = s.tick + 1 + s.rng.IntN(max(1, s.f.PartitionTicks))
	s.rep.Partitions++
	var ow uint64
	if oneWay {
		ow = 1
	}
	s.record(event{kind: evPartition, node: lead, a: mask, b: ow})
}

// cutLink cuts only the link between the leader and one other member, both
// ways: that node stops hearing the leader but still reaches everyone else
// (a partial partition).
func (s *sim) cutLink(lead int, group []int) {
	var others []int
	for _, i := range group {
		if i != lead {
			others = append(others, i)
		}
	}
	o := others[s.rng.IntN(len(others))]
	nn := len(s.nodes)
	s.net.cut[lead*nn+o], s.net.cut[o*nn+lead] = true, true
	s.net.healAt = s.tick + 1 + s.rng.IntN(max(1, s.f.PartitionTicks))
	s.rep.Partitions++
	s.rep.PartialPartitions++
	s.record(event{kind: evPartition, node: lead, a: 1<<lead | 1<<o, b: 2})
}

// pauseSome freezes a random running node for longer than an election
// timeout: no ticks, no deliveries, no disk.
func (s *sim) pauseSome() {
	var up []int
	for _, i := range s.targets() {
		if n := s.nodes[i]; n.up && !n.paused(s.tick) {
			up = append(up, n.idx)
		}
	}
	if len(up) == 0 {
		return
	}
	n := s.nodes[up[s.rng.IntN(len(up))]]
	et := s.cfg.ElectionTicks
	n.pausedUntil = s.tick + et + 1 + s.rng.IntN(et+1) + s.rng.IntN(s.f.PauseTicks+1)
	s.rep.Pauses++
	s.record(event{kind: evPause, node: n.idx, a: uint64(n.pausedUntil)})
}

// crashSome crashes a running member, preferring one in a vulnerable
// window: it has sent a batch's early messages but not saved the batch, or
// is taking or installing a snapshot.
func (s *sim) crashSome() {
	var up, unsaved []int
	for _, i := range s.targets() {
		n := s.nodes[i]
		if !n.up {
			continue
		}
		up = append(up, n.idx)
		if n.phase == phaseSave || n.snapPending != nil {
			unsaved = append(unsaved, n.idx)
		}
	}
	if len(up) == 0 {
		return
	}
	pick := up
	if len(unsaved) > 0 && s.rng.IntN(2) == 0 {
		pick = unsaved
	}
	n := s.nodes[pick[s.rng.IntN(len(pick))]]
	s.crash(n, s.tick+1+s.rng.IntN(s.f.CrashTicks+1))
}

// restartAll crashes every running node; all restart at the same tick.
func (s *sim) restartAll() {
	at := s.tick + 1 + s.rng.IntN(s.f.CrashTicks/4+1)
	for _, n := range s.nodes {
		if n.up {
			s.crash(n, at)
		} else if !n.off {
			n.downUntil = at
		}
	}
	s.rep.RestartAlls++
}

// Why a node crashed, as recorded in its crash event.
const (
	crashPlain uint64 = iota
	crashUnsaved
	crashSnapshot
	crashInstall
)

// crash stops n, losing everything it had not saved; it restarts at tick
// until.
func (s *sim) crash(n *node, until int) { s.crashFor(n, until, crashPlain) }

// crashFor crashes n; why is crashSnapshot or crashInstall when the crash
// is injected in a snapshot window the node's state does not show (a
// snapshot being written or just received), crashPlain otherwise.
func (s *sim) crashFor(n *node, until int, why uint64) {
	switch {
	case why != crashPlain:
	case n.phase == phaseSave && n.rd.Snapshot != nil:
		why = crashInstall
	case n.snapPending != nil:
		why = crashSnapshot
	case n.phase == phaseSave:
		why = crashUnsaved
	}
	switch why {
	case crashSnapshot:
		s.rep.SnapshotCrashes++
	case crashInstall:
		s.rep.InstallCrashes++
	}
	s.record(event{kind: evCrash, node: n.idx, a: why})
	s.dropNodeReads(n)
	n.up, n.core, n.sm = false, nil, nil
	n.phase, n.rd, n.dirty = phaseIdle, raft.Ready{}, false
	n.snapPending, n.installed = nil, false
	n.write, n.async, n.writeDone = nil, false, 0 // a write in flight is lost
	n.inc++
	n.pausedUntil, n.downUntil = 0, until
	for _, e := range s.net.purgeTo(n.idx) {
		s.lost(e)
	}
	s.rep.Crashes++
	n.lostTo, n.snapReports = 0, nil
	if s.o.ReportLoss {
		// The peers' connections to n break.
		for _, m := range s.nodes {
			if m.up {
				m.lostTo |= 1 << n.idx
				m.dirty = true
			}
		}
	}
	idx := make([]uint64, 0, len(n.pending))
	for i := range n.pending {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		s.unknownOp(n.pending[i])
	}
	n.pending = nil
}

// restart rebuilds n's Core and state machine from its durable state, as a
// process starting after a crash (or for the first time) would.
func (s *sim) restart(n *node) {
	cfg := s.cfg
	cfg.ID = n.id
	rng := rand.New(rand.NewPCG(s.rng.Uint64(), s.rng.Uint64()))
	n.disk.reconcile()
	var meta raft.SnapshotMeta
	sm := s.app.newMachine()
	n.appliedConf, n.appliedConfIdx = raft.Configuration{}, 0
	if n.disk.snap != nil {
		meta = n.disk.snap.meta
		n.appliedConf, n.appliedConfIdx = meta.Configuration.Clone(), meta.ConfigIndex
		if err := sm.restore(meta, n.disk.snap.data); err != nil {
			s.failf(InvariantApplication, "restart %s: %v", n.id, err)
			return
		}
	}
	core, err := raft.NewCore(cfg, n.disk, n.disk.hs, meta, rng)
	if err != nil {
		s.failf(InvariantCoreError, "restart %s: %v", n.id, err)
		return
	}
	n.core, n.sm, n.up = core, sm, true
	n.snapAt, n.snapReports = meta.Index, nil
	n.phase, n.dirty, n.pausedUntil, n.leading = phaseIdle, true, 0, false
	n.off, n.snapPending, n.installed, n.campaignKey = false, nil, false, [3]uint64{}
	n.pending = map[uint64]*pendingOp{}
	n.reads, n.readWait, n.clockBase = map[uint64]*pendingRead{}, nil, int64(n.clock)
	_, n.term, _, n.commit, n.applied, _ = core.Basic()
	n.appliedIdx = n.applied
	s.record(event{kind: evRestart, node: n.idx, term: n.disk.hs.Term, a: n.disk.last()})
}
