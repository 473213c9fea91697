package rafttest

import (
	"errors"
	"slices"

	"github.com/typedraft/typedraft/raft"
)

// The membership fault (Faults.Membership) asks the leader to change the
// configuration, as an operator would, and the transfer fault
// (Faults.Transfer) asks it to hand leadership over. Both go through the
// core's own API (Core.ProposeMembership, Core.TransferLeadership); the
// simulator only chooses what to ask for and starts or stops processes.

// The kinds of membership change, as recorded in conf-change events.
const (
	actAddLearner uint64 = iota + 1
	actPromote
	actRemoveVoter
	actRemoveLeader
	actDemote
	actReplace
	actRemoveLearner
)

var confActionNames = [...]string{
	0: "?", actAddLearner: "add-learner", actPromote: "promote", actRemoveVoter: "remove-voter",
	actRemoveLeader: "remove-leader", actDemote: "demote", actReplace: "replace", actRemoveLearner: "remove-learner",
}

// confChoice is one change the fault may ask for: act on target, giving
// the membership servers.
type confChoice struct {
	act     uint64
	target  int
	servers []raft.Server
}

// steppableLeader returns the leader if there is one that can take a
// request now (running, not paused), else nil.
func (s *sim) steppableLeader() *node {
	li := s.leader()
	if li < 0 || !s.nodes[li].canStep(s.tick) {
		return nil
	}
	return s.nodes[li]
}

// changeMembership asks the leader for one membership change chosen at
// random among those that keep the voters within [minVoters, maxVoters],
// or shuts down a node that is no longer a member.
func (s *sim) changeMembership() {
	l := s.steppableLeader()
	if l == nil {
		return
	}
	cfg, _ := l.core.Configuration()
	s.reviveMembers(cfg)
	if s.rng.IntN(4) == 0 && s.shutdownOne(cfg) {
		return
	}
	choices := s.confChoices(l, cfg)
	if len(choices) == 0 {
		return
	}
	c := pickChoice(s.rng.IntN(choiceWeights(choices)), choices)
	t := s.nodes[c.target]
	if c.act == actAddLearner && t.off {
		// The operator starts the removed node's process again (with its
		// durable state) before adding it back.
		t.off = false
		s.restart(t)
		if s.fail != nil {
			return
		}
	}
	lag := []uint64{1, 10, 100}[s.rng.IntN(3)]
	idx, err := l.core.ProposeMembership(c.servers, lag)
	m := &s.rep.Membership
	s.record(event{kind: evConfChange, node: l.idx, a: c.act<<8 | uint64(c.target), b: idx, term: l.term})
	switch {
	case err == nil:
		m.Accepted++
		m.count(c.act)
		if c.act == actAddLearner {
			if t.everMember {
				m.Rejoined++
			}
			t.everMember = true
		}
	case errors.Is(err, raft.ErrConfigChangePending), errors.Is(err, raft.ErrNotCaughtUp), errors.Is(err, raft.ErrTransferInProgress):
		m.Refused++
	default:
		s.failf(InvariantCoreError, "%s refused the valid membership change %s %s (%v): %v",
			l.id, confActionNames[c.act], t.id, c.servers, err)
		return
	}
	l.dirty = true
	s.maybeReadyNow(l)
	s.checkAll()
}

// actWeight weighs the kinds of change: learners are added and promoted
// more often than members leave, so that the voters grow as often as they
// shrink and learners rarely leave before they are caught up.
var actWeight = [...]int{actAddLearner: 3, actPromote: 4, actRemoveVoter: 1, actRemoveLeader: 1, actDemote: 1, actReplace: 2, actRemoveLearner: 1}

func choiceWeights(cs []confChoice) int {
	w := 0
	for _, c := range cs {
		w += actWeight[c.act]
	}
	return w
}

// pickChoice returns the choice that the weighted draw r falls on.
func pickChoice(r int, cs []confChoice) confChoice {
	for _, c := range cs {
		if r < actWeight[c.act] {
			return c
		}
		r -= actWeight[c.act]
	}
	return cs[len(cs)-1]
}

// confChoices lists the changes the fault may ask of leader l, whose
// configuration is cfg.
func (s *sim) confChoices(l *node, cfg raft.Configuration) []confChoice {
	var voters, learners, others []int
	for _, sv := range cfg.Servers {
		if sv.Suffrage == raft.Voter {
			voters = append(voters, s.index[sv.ID])
		} else {
			learners = append(learners, s.index[sv.ID])
		}
	}
	for _, n := range s.nodes {
		if _, ok := cfg.Server(n.id); !ok {
			others = append(others, n.idx)
		}
	}
	pick := func(from []int) int { return from[s.rng.IntN(len(from))] }
	base := func() []raft.Server { return slices.Clone(cfg.Servers) }
	without := func(ss []raft.Server, i int) []raft.Server {
		return slices.DeleteFunc(ss, func(sv raft.Server) bool { return sv.ID == s.ids[i] })
	}
	set := func(ss []raft.Server, i int, su raft.Suffrage) []raft.Server {
		for k := range ss {
			if ss[k].ID == s.ids[i] {
				ss[k].Suffrage = su
			}
		}
		return ss
	}
	var out []confChoice
	if len(others) > 0 {
		x := pick(others)
		out = append(out, confChoice{actAddLearner, x,
			append(base(), raft.Server{ID: s.ids[x], Addr: string(s.ids[x]), Suffrage: raft.Learner})})
	}
	if len(learners) > 0 && len(voters) < s.maxVoters {
		// One learner, or sometimes as many as fit, in one joint change.
		k := 1
		if s.rng.IntN(3) == 0 {
			k = min(len(learners), s.maxVoters-len(voters))
		}
		ss := base()
		perm := s.rng.Perm(len(learners))
		for _, j := range perm[:k] {
			ss = set(ss, learners[j], raft.Voter)
		}
		out = append(out, confChoice{actPromote, learners[perm[0]], ss})
	}
	leaderVotes := slices.Contains(voters, l.idx)
	if len(voters) > s.minVoters {
		if rest := slices.DeleteFunc(slices.Clone(voters), func(i int) bool { return i == l.idx }); len(rest) > 0 {
			x := pick(rest)
			out = append(out, confChoice{actRemoveVoter, x, without(base(), x)})
		}
		if leaderVotes {
			out = append(out, confChoice{actRemoveLeader, l.idx, without(base(), l.idx)})
		}
		x := pick(voters)
		out = append(out, confChoice{actDemote, x, set(base(), x, raft.Learner)})
	}
	if len(learners) > 0 && len(voters) > 0 {
		x, y := pick(voters), pick(learners)
		out = append(out, confChoice{actReplace, x, set(without(base(), x), y, raft.Voter)})
	}
	if len(learners) > 0 {
		x := pick(learners)
		out = append(out, confChoice{actRemoveLearner, x, without(base(), x)})
	}
	return out
}

// member reports whether id is in either half of cfg.
func member(cfg raft.Configuration, id raft.NodeID) bool {
	_, ok := cfg.Server(id)
	return ok
}

// reviveMembers restarts nodes that were shut down but are members of cfg
// again (a configuration that still held them won after all): the operator
// notices and starts them.
func (s *sim) reviveMembers(cfg raft.Configuration) {
	for _, n := range s.nodes {
		if n.off && member(cfg, n.id) {
			n.off = false
			n.downUntil = s.tick + 1
		}
	}
}

// shutdownOne shuts down for good one running node that was a member and
// is a member of no configuration any running node holds, nor of the
// committed one. It reports whether it did.
func (s *sim) shutdownOne(cfg raft.Configuration) bool {
	var cands []int
	committed := s.g.committedConf(s.bootConf)
	for _, n := range s.nodes {
		if !n.up || !n.everMember || member(cfg, n.id) || member(committed, n.id) {
			continue
		}
		held := false
		for _, m := range s.nodes {
			if m.up {
				if c, _ := m.core.Configuration(); member(c, n.id) {
					held = true
					break
				}
			}
		}
		if !held {
			cands = append(cands, n.idx)
		}
	}
	if len(cands) == 0 {
		return false
	}
	n := s.nodes[cands[s.rng.IntN(len(cands))]]
	s.crash(n, s.tick)
	n.off = true
	s.rep.Membership.Shutdowns++
	s.record(event{kind: evShutdown, node: n.idx})
	return true
}

// transferLeadership asks the leader to hand leadership to a random voter
// of its configuration, or (sometimes) to the one it thinks best.
func (s *sim) transferLeadership() {
	l := s.steppableLeader()
	if l == nil {
		return
	}
	cfg, _ := l.core.Configuration()
	var others []raft.NodeID
	for _, id := range append(cfg.Voters(), cfg.OldVoters()...) {
		if id != l.id && !slices.Contains(others, id) {
			others = append(others, id)
		}
	}
	var to raft.NodeID
	if len(others) > 0 && s.rng.IntN(4) != 0 {
		to = others[s.rng.IntN(len(others))]
	}
	got, err := l.core.TransferLeadership(to)
	m := &s.rep.Membership
	target := -1
	if k, ok := s.index[got]; ok {
		target = k
	}
	s.record(event{kind: evTransfer, node: l.idx, a: uint64(target), b: boolBit(err == nil)})
	switch {
	case err == nil:
		m.Transfers++
	case errors.Is(err, raft.ErrInvalidConfig) && len(others) == 0:
		m.TransfersRefused++
	default:
		s.failf(InvariantCoreError, "%s refused to transfer leadership to %q (voters %v): %v", l.id, to, others, err)
		return
	}
	l.dirty = true
	s.maybeReadyNow(l)
	s.checkAll()
}
