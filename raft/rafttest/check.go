package rafttest

import (
	"fmt"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/typedraft/typedraft/raft"
)

// settle heals every fault, restarts crashed nodes and resumes paused ones,
// then runs the cluster until one leader has every member up to date with a
// committed entry of its own term, or fails with InvariantLiveness. Within
// RecoverTicks of the start, exactly one node must lead with a non-joint
// configuration (InvariantRecover).
func (s *sim) settle() {
	s.settling = true
	s.f = Faults{}
	s.settleStart = s.tick
	s.record(event{kind: evSettle, node: -1})
	if s.net.partitioned() {
		s.net.heal()
		s.record(event{kind: evHeal, node: -1})
	}
	for _, n := range s.nodes {
		if !n.up && !n.off {
			n.downUntil = s.tick
		} else if n.paused(s.tick) {
			n.pausedUntil = s.tick + 1
		}
	}
	deadline := s.tick + s.o.SettleTicks
	for s.fail == nil && s.tick < deadline {
		s.beginTick()
		s.drain()
		if s.fail != nil {
			break
		}
		s.checkRecovered()
		if s.settled() {
			// Operations still outstanding are unknown to their clients.
			for _, c := range s.wl.clients {
				if c.op != nil {
					s.unknownOp(c.op)
				}
			}
			return
		}
	}
	if s.fail == nil {
		s.failf(InvariantLiveness, "the cluster did not settle within %d ticks of healing: %s", s.o.SettleTicks, s.describeNodes())
	}
}

// checkRecovered notes when exactly one node leads with a non-joint
// configuration for the first time after faults stopped, and fails the run
// if that has not happened within RecoverTicks. It also restarts nodes
// that were shut down but are members of the leader's configuration.
func (s *sim) checkRecovered() {
	leaders := 0
	var cfg raft.Configuration
	for _, n := range s.nodes {
		if n.up {
			if st, _, _, _, _, _ := n.core.Basic(); st == raft.Leader {
				leaders++
				cfg, _ = n.core.Configuration()
			}
		}
	}
	if leaders == 1 {
		s.reviveMembers(cfg)
	}
	if s.recovered {
		return
	}
	if leaders == 1 && !cfg.Joint() {
		s.recovered = true
		s.rep.RecoverTicks = s.tick - s.settleStart
		s.record(event{kind: evRecovered, node: s.leader(), a: uint64(s.rep.RecoverTicks)})
		return
	}
	if s.tick-s.settleStart >= s.o.RecoverTicks {
		s.failf(InvariantRecover, "%d ticks after faults stopped there are %d leaders (want exactly one, with a non-joint configuration; leader's configuration %v): %s",
			s.tick-s.settleStart, leaders, cfg, s.describeNodes())
	}
}

// settled reports whether one leader has committed an entry of its own
// term and a non-joint configuration, every member of that configuration
// holds, has committed and has applied exactly its log, and no other node
// leads. Nodes that are not members (removed or never added) may lag.
func (s *sim) settled() bool {
	li := s.leader()
	if li < 0 {
		return false
	}
	l := s.nodes[li]
	_, lterm, _, lcommit, _, llast := l.core.Basic()
	if t, err := l.disk.Term(llast); lcommit != llast || l.disk.last() != llast || err != nil || t != lterm {
		return false
	}
	cfg, ci := l.core.Configuration()
	if cfg.Joint() || ci > lcommit {
		return false
	}
	ph := l.disk.prefixHash(llast)
	var members []raft.NodeID
	for _, n := range s.nodes {
		if !member(cfg, n.id) {
			if n.up && n != l {
				if st, _, _, _, _, _ := n.core.Basic(); st == raft.Leader {
					return false
				}
			}
			continue
		}
		members = append(members, n.id)
		if !n.up || n.paused(s.tick) || n.phase != phaseIdle || n.core.HasReady() || n.snapPending != nil {
			return false
		}
		_, term, lead, commit, applied, last := n.core.Basic()
		if term != lterm || lead != l.id || commit != lcommit || applied != lcommit || last != llast ||
			n.disk.last() != llast || n.disk.prefixHash(llast) != ph {
			return false
		}
	}
	s.members = members
	return true
}

func (s *sim) describeNodes() string {
	var b strings.Builder
	for _, n := range s.nodes {
		if !n.up {
			state := "down"
			if n.off {
				state = "shut down"
			}
			fmt.Fprintf(&b, "[%s %s] ", n.id, state)
			continue
		}
		st, term, lead, commit, applied, last := n.core.Basic()
		cfg, ci := n.core.Configuration()
		fmt.Fprintf(&b, "[%s %s term=%d leader=%q commit=%d applied=%d last=%d durable=%d phase=%d conf=%v@%d] ",
			n.id, st, term, lead, commit, applied, last, n.disk.last(), n.phase, cfg, ci)
	}
	fmt.Fprintf(&b, "in flight=%d", s.net.inFlight())
	return b.String()
}

// verifyAcked checks that every operation a client saw succeed is, after
// settling, applied at its index on every member: in its log, or covered by
// its compacted prefix, which must match the committed log.
func (s *sim) verifyAcked() {
	for _, a := range s.wl.acked {
		for _, id := range s.members {
			n := s.nodes[s.index[id]]
			e, ok := n.disk.entry(a.index)
			if (ok && entryHash(e) != a.hash) || (!ok && !s.durableMatches(n, a.index)) ||
				a.index > uint64(len(s.g.committed)) || s.g.committed[a.index-1].ehash != a.hash {
				s.failf(InvariantAckedWritesDurable, "acknowledged entry %d term %d is missing from %s after healing", a.index, a.term, n.id)
				return
			}
			if n.appliedIdx < a.index {
				s.failf(InvariantAckedWritesDurable, "acknowledged entry %d term %d is not applied on %s (applied %d)", a.index, a.term, n.id, n.appliedIdx)
				return
			}
		}
	}
}

// pruneUnknown removes from the history the operations with an unknown
// outcome whose entry is not in the settled, committed log: they were definitely never
// applied (had any node applied one, StateMachineSafety would have failed),
// so they can have no effect. The others stay, as possibly applied.
func (s *sim) pruneUnknown() {
	c := s.g.committed
	gone := map[int]bool{}
	for _, u := range s.wl.unknown {
		if u.index > uint64(len(c)) || c[u.index-1].term != u.term {
			gone[u.hist] = true
		}
	}
	if len(gone) == 0 {
		return
	}
	kept := s.wl.history[:0]
	for i, op := range s.wl.history {
		if !gone[i] {
			kept = append(kept, op)
		}
	}
	s.wl.history = kept
	s.rep.Unknown -= len(gone)
	s.rep.Dropped += len(gone)
	s.wl.unknown = nil
}

// checkHistory checks the client history for linearizability. A checker
// timeout is a failure: an unchecked history proves nothing.
func (s *sim) checkHistory() {
	h := s.wl.history
	s.rep.Ops = len(h)
	res := porcupine.CheckOperationsTimeout(s.app.model, h, s.o.CheckTimeout)
	switch res {
	case porcupine.Ok:
		return
	case porcupine.Unknown:
		s.failf(InvariantLinearizability, "the checker did not finish within %v on %d operations (%d unknown); a timeout counts as a failure",
			s.o.CheckTimeout, len(h), s.rep.Unknown)
	default:
		s.failf(InvariantLinearizability, "the history of %d operations (%d acknowledged, %d unknown) is not linearizable%s",
			len(h), s.rep.Acked, s.rep.Unknown, s.describeHistory())
	}
}

// describeHistory renders the history compactly (at most 60 operations of
// the first non-linearizable partition of the model) for a linearizability
// failure.
func (s *sim) describeHistory() string {
	return describeHistory(s.app.model, s.wl.history, s.o.CheckTimeout)
}

func describeHistory(model porcupine.Model, history []porcupine.Operation, timeout time.Duration) string {
	parts := [][]porcupine.Operation{history}
	if model.Partition != nil {
		parts = model.Partition(history)
	}
	var b strings.Builder
	for _, p := range parts {
		if len(parts) > 1 && porcupine.CheckOperationsTimeout(model, p, timeout) != porcupine.Illegal {
			continue
		}
		b.WriteString("\nnon-linearizable partition:")
		for i, op := range p {
			if i == 60 {
				fmt.Fprintf(&b, "\n  ... %d more", len(p)-60)
				break
			}
			ret := "∞"
			if op.Return != maxReturn {
				ret = fmt.Sprint(op.Return)
			}
			desc := fmt.Sprintf("%+v -> %v", op.Input, op.Output)
			if model.DescribeOperation != nil {
				desc = model.DescribeOperation(op.Input, op.Output)
			}
			fmt.Fprintf(&b, "\n  client %d [%d, %s] %s", op.ClientId, op.Call, ret, desc)
		}
		break
	}
	return b.String()
}
