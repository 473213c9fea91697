package rafttest

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// The membership fault of RunCluster (ClusterFaults.MembershipInterval):
// an operator goroutine asks the leader for membership changes and
// leadership transfers through the typed API, one call at a time, and
// shuts down nodes some while after they leave the configuration.

// actTransfer extends the membership actions of membership.go.
const actTransfer = actRemoveLearner + 1

// clusterActWeight weighs the operator's actions: learners are added and
// promoted more often than members leave, so that the voters grow as
// often as they shrink.
var clusterActWeight = [...]int{actAddLearner: 3, actPromote: 4, actRemoveVoter: 1, actRemoveLeader: 1,
	actDemote: 1, actReplace: 2, actRemoveLearner: 1, actTransfer: 1}

// operator is the membership fault's state, owned by its goroutine.
type operator struct {
	rng *rand.Rand
	// ever: the node was seen a member of a leader's configuration.
	ever map[raft.NodeID]bool
	// gone: since when an ever-member has been out of the committed
	// configurations seen.
	gone map[raft.NodeID]time.Time
	// floating: a change call ended with an indeterminate outcome and no
	// change has succeeded since, so its entry may still commit. No node
	// is retired meanwhile.
	floating bool
}

// opChoice is one call the operator may make on the leader.
type opChoice[C any, R any, E raft.ErrorType] struct {
	act    uint64
	target raft.NodeID
	call   func(ctx context.Context, r *raft.Raft[C, R, E]) error
	// wait: an AddLearner that waits for the learner to catch up.
	wait bool
}

// operate runs the membership fault until ctx ends or a check fails.
func (c *cluster[C, R, E]) operate(ctx context.Context) {
	op := &operator{rng: rand.New(rand.NewPCG(c.o.Seed, 0x6d656d62)), ever: map[raft.NodeID]bool{}, gone: map[raft.NodeID]time.Time{}}
	for _, id := range c.ids[:c.o.Nodes] {
		op.ever[id] = true
	}
	for {
		pause := time.Duration(op.rng.Int64N(int64(c.o.Faults.MembershipInterval))) + 1
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		if c.failed() {
			return
		}
		c.operateOnce(ctx, op)
	}
}

// operateOnce makes at most one call on the leader, or retires a node.
func (c *cluster[C, R, E]) operateOnce(ctx context.Context, op *operator) {
	ln, node, st, ok := c.leaderStatus()
	if !ok || st.Joint() || st.ConfigIndex > st.Commit {
		// No leader, or a change still in progress: come back later.
		return
	}
	cfg := st.Configuration
	now := time.Now()
	for _, id := range c.ids {
		if _, in := cfg.Server(id); in {
			op.ever[id] = true
			delete(op.gone, id)
		} else if _, seen := op.gone[id]; op.ever[id] && !seen {
			op.gone[id] = now
		}
	}
	if !op.floating && op.rng.IntN(3) == 0 && c.retireOne(op, now) {
		return
	}
	choices := c.opChoices(op, ln.id, cfg)
	if len(choices) == 0 {
		return
	}
	total := 0
	for _, ch := range choices {
		total += clusterActWeight[ch.act]
	}
	r := op.rng.IntN(total)
	ch := choices[len(choices)-1]
	for _, x := range choices {
		if r < clusterActWeight[x.act] {
			ch = x
			break
		}
		r -= clusterActWeight[x.act]
	}
	rejoin := ch.act == actAddLearner && op.ever[ch.target]
	if ch.act == actAddLearner && !c.unretire(c.nodes[c.index(ch.target)]) {
		return
	}
	callCtx, cancel := context.WithTimeout(ctx, c.o.OpTimeout)
	err := ch.call(callCtx, node)
	cancel()
	if err == nil && ch.wait {
		c.checkHoldsConfig(ch.target)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := &c.rep.Membership
	if err == nil {
		if ch.act != actTransfer {
			op.floating = false
		}
		m.count(ch.act)
		if ch.act == actTransfer {
			m.Transfer++
		}
		if rejoin {
			m.Rejoined++
		}
		return
	}
	if ch.act != actTransfer && (errors.Is(err, raft.ErrIndeterminate) || errors.Is(err, raft.ErrShutdown)) {
		op.floating = true
	}
	if c.tryLater(ctx, ch.act, err, ln.node != node) {
		m.Retried++
		return
	}
	c.setFail(InvariantMembership, "%s refused %s %s (configuration %v at index %d, commit %d): %v",
		ln.id, confActionName(ch.act), ch.target, cfg, st.ConfigIndex, st.Commit, err)
}

// checkHoldsConfig checks, after AddLearner(..., waitCaughtUp=true)
// succeeded, that the learner id holds a configuration naming it (it must
// hold the entry that added it). Its status is published after it acks, so
// the check polls for up to OpTimeout; a node down for a crash is skipped.
func (c *cluster[C, R, E]) checkHoldsConfig(id raft.NodeID) {
	n := c.nodes[c.index(id)]
	deadline := time.Now().Add(c.o.OpTimeout)
	var st raft.Status
	for {
		c.mu.Lock()
		node := n.node
		c.mu.Unlock()
		if node == nil {
			return
		}
		st = node.Status()
		if _, ok := st.Role(id); ok {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(c.o.TickInterval / 2)
	}
	c.failf(InvariantMembership, "AddLearner(%s, waitCaughtUp) returned, but %s holds the configuration %v (index %d, last index %d)",
		id, id, st.Configuration, st.ConfigIndex, st.LastIndex)
}

// tryLater reports whether err, returned by a call of kind act, means
// "try later" rather than a refused valid request. stopped says the node
// called was shut down (by the crash fault) since the call began. c.mu is
// held.
func (c *cluster[C, R, E]) tryLater(ctx context.Context, act uint64, err error, stopped bool) bool {
	var nl *raft.NotLeaderError
	switch {
	case errors.Is(err, raft.ErrConfigChangePending), errors.Is(err, raft.ErrNotCaughtUp),
		errors.Is(err, raft.ErrTransferInProgress), errors.As(err, &nl),
		errors.Is(err, raft.ErrIndeterminate), errors.Is(err, context.DeadlineExceeded):
		return true
	case act == actTransfer && errors.Is(err, raft.ErrTransferTimeout):
		// The target did not win in time (it may be cut off or down).
		return true
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The run is ending.
		return true
	case errors.Is(err, raft.ErrShutdown) && stopped:
		return true
	}
	return false
}

func confActionName(act uint64) string {
	if act == actTransfer {
		return "transfer"
	}
	return confActionNames[act]
}

// opChoices lists the calls the operator may make on the leader lid, whose
// committed configuration is cfg, keeping the voters within
// [c.minVoters, c.maxVoters].
func (c *cluster[C, R, E]) opChoices(op *operator, lid raft.NodeID, cfg raft.Configuration) []opChoice[C, R, E] {
	var voters, learners, others []raft.NodeID
	for _, sv := range cfg.Servers {
		if sv.Suffrage == raft.Voter {
			voters = append(voters, sv.ID)
		} else {
			learners = append(learners, sv.ID)
		}
	}
	for _, id := range c.ids {
		if _, in := cfg.Server(id); !in {
			others = append(others, id)
		}
	}
	pick := func(from []raft.NodeID) raft.NodeID { return from[op.rng.IntN(len(from))] }
	base := func() []raft.Server { return slices.Clone(cfg.Servers) }
	without := func(ss []raft.Server, id raft.NodeID) []raft.Server {
		return slices.DeleteFunc(ss, func(sv raft.Server) bool { return sv.ID == id })
	}
	set := func(ss []raft.Server, id raft.NodeID, su raft.Suffrage) []raft.Server {
		for k := range ss {
			if ss[k].ID == id {
				ss[k].Suffrage = su
			}
		}
		return ss
	}
	change := func(ss []raft.Server) func(context.Context, *raft.Raft[C, R, E]) error {
		return func(ctx context.Context, r *raft.Raft[C, R, E]) error { return r.ChangeMembership(ctx, ss) }
	}
	remove := func(id raft.NodeID) func(context.Context, *raft.Raft[C, R, E]) error {
		return func(ctx context.Context, r *raft.Raft[C, R, E]) error { return r.RemoveServer(ctx, id) }
	}
	var out []opChoice[C, R, E]
	if len(others) > 0 {
		x, wait := pick(others), op.rng.IntN(2) == 0
		out = append(out, opChoice[C, R, E]{actAddLearner, x, func(ctx context.Context, r *raft.Raft[C, R, E]) error {
			return r.AddLearner(ctx, x, string(x), wait)
		}, wait})
	}
	if len(learners) > 0 && len(voters) < c.maxVoters {
		// One learner, or sometimes as many as fit, in one joint change.
		perm := op.rng.Perm(len(learners))
		x := learners[perm[0]]
		if k := min(len(learners), c.maxVoters-len(voters)); k > 1 && op.rng.IntN(3) == 0 {
			ss := base()
			for _, j := range perm[:k] {
				ss = set(ss, learners[j], raft.Voter)
			}
			out = append(out, opChoice[C, R, E]{actPromote, x, change(ss), false})
		} else {
			out = append(out, opChoice[C, R, E]{actPromote, x, func(ctx context.Context, r *raft.Raft[C, R, E]) error {
				return r.PromoteLearner(ctx, x)
			}, false})
		}
	}
	leaderVotes := slices.Contains(voters, lid)
	if len(voters) > c.minVoters {
		if rest := slices.DeleteFunc(slices.Clone(voters), func(id raft.NodeID) bool { return id == lid }); len(rest) > 0 {
			x := pick(rest)
			out = append(out, opChoice[C, R, E]{actRemoveVoter, x, remove(x), false})
		}
		if leaderVotes {
			out = append(out, opChoice[C, R, E]{actRemoveLeader, lid, remove(lid), false})
		}
		x := pick(voters)
		out = append(out, opChoice[C, R, E]{actDemote, x, change(set(base(), x, raft.Learner)), false})
	}
	if len(learners) > 0 && len(voters) > 0 {
		x, y := pick(voters), pick(learners)
		out = append(out, opChoice[C, R, E]{actReplace, x, change(set(without(base(), x), y, raft.Voter)), false})
	}
	if len(learners) > 0 {
		x := pick(learners)
		out = append(out, opChoice[C, R, E]{actRemoveLearner, x, remove(x), false})
	}
	if rest := slices.DeleteFunc(slices.Clone(voters), func(id raft.NodeID) bool { return id == lid }); len(rest) > 0 {
		// A named voter, or sometimes the one the leader thinks best.
		var to raft.NodeID
		if op.rng.IntN(4) != 0 {
			to = pick(rest)
		}
		out = append(out, opChoice[C, R, E]{actTransfer, to, func(ctx context.Context, r *raft.Raft[C, R, E]) error {
			return r.TransferLeadership(ctx, to)
		}, false})
	}
	return out
}

// retireOne shuts down for good one node that has been out of the
// committed configurations for a while (removed nodes keep running for
// some election timeouts first). It reports whether it did.
func (c *cluster[C, R, E]) retireOne(op *operator, now time.Time) bool {
	grace := 5 * c.o.TickInterval * time.Duration(c.o.ElectionTicks)
	var cands []*liveNode[C, R, E]
	c.mu.Lock()
	for _, n := range c.nodes {
		if since, ok := op.gone[n.id]; ok && !n.retired && now.Sub(since) >= grace {
			cands = append(cands, n)
		}
	}
	c.mu.Unlock()
	if len(cands) == 0 {
		return false
	}
	n := cands[op.rng.IntN(len(cands))]
	n.life.Lock()
	defer n.life.Unlock()
	c.mu.Lock()
	n.retired = true
	c.rep.Membership.Retired++
	c.mu.Unlock()
	c.stopNode(n)
	return true
}

// unretire makes sure n runs before it is added (back): a retired node is
// started again on its store, as an operator would before adding it. It
// reports false if n could not be started (the run then fails).
func (c *cluster[C, R, E]) unretire(n *liveNode[C, R, E]) bool {
	n.life.Lock()
	defer n.life.Unlock()
	c.mu.Lock()
	wasRetired := n.retired
	n.retired = false
	c.mu.Unlock()
	if !wasRetired {
		// Running, or down for a crash and coming back with the crash
		// fault.
		return true
	}
	if err := c.startNode(n); err != nil {
		c.failf(InvariantLiveness, "restart retired %s: %v", n.id, err)
		return false
	}
	return true
}

// sampleConfig records the voters of st's configuration if it is
// committed and not joint, and checks they are within the bounds the
// operator keeps. st is a leader's status; c.mu is held.
func (c *cluster[C, R, E]) sampleConfig(st raft.Status) {
	if st.Joint() || st.ConfigIndex > st.Commit {
		return
	}
	v := len(st.Configuration.Voters())
	m := &c.rep.Membership
	if m.MinVoters == 0 || v < m.MinVoters {
		m.MinVoters = v
	}
	m.MaxVoters = max(m.MaxVoters, v)
	if v < c.minVoters || v > c.maxVoters {
		c.setFail(InvariantMembership, "%s leads term %d with the committed configuration %v (index %d): %d voters, outside the operator's [%d, %d]",
			st.ID, st.Term, st.Configuration, st.ConfigIndex, v, c.minVoters, c.maxVoters)
	}
}
