package rafttest

import (
	"context"
	"fmt"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// settle heals everything, restarts the stopped nodes that were not retired
// and waits until one leader, in a committed configuration that is not
// joint, has every member of that configuration applied up to its commit
// index.
func (c *cluster[C, R, E]) settle(ctx context.Context) {
	c.net.Heal()
	for _, n := range c.nodes {
		n.life.Lock()
		c.mu.Lock()
		down := n.node == nil && !n.retired
		c.mu.Unlock()
		var err error
		if down {
			err = c.startNode(n)
		}
		n.life.Unlock()
		if err != nil {
			c.failf(InvariantLiveness, "restart %s: %v", n.id, err)
			return
		}
	}
	deadline := time.Now().Add(c.o.SettleTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil && !c.failed() {
		c.sample()
		if c.settled() {
			return
		}
		time.Sleep(c.o.TickInterval)
	}
	if c.failed() {
		return
	}
	var desc string
	c.mu.Lock()
	for _, n := range c.nodes {
		if n.node == nil {
			desc += fmt.Sprintf("[%s retired=%v down] ", n.id, n.retired)
			continue
		}
		s := n.node.Status()
		desc += fmt.Sprintf("[%s %s term=%d leader=%q commit=%d applied=%d last=%d config=%d %v] ",
			n.id, s.State, s.Term, s.Leader, s.Commit, s.Applied, s.LastIndex, s.ConfigIndex, s.Configuration)
	}
	c.mu.Unlock()
	c.failf(InvariantLiveness, "the cluster did not settle within %v of healing: %s", c.o.SettleTimeout, desc)
}

// leaderStatus returns the running node that leads the highest term, its
// raft.Raft and its status; ok is false if no running node leads.
func (c *cluster[C, R, E]) leaderStatus() (n *liveNode[C, R, E], node *raft.Raft[C, R, E], st raft.Status, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.nodes {
		if x.node == nil {
			continue
		}
		if s := x.node.Status(); s.State == raft.Leader && (!ok || s.Term > st.Term) {
			n, node, st, ok = x, x.node, s, true
		}
	}
	return n, node, st, ok
}

// settled reports whether one leader has a committed, non-joint
// configuration and every member of it holds the leader's log, commit
// index, configuration and applied index. It records the members and the
// final commit index for verify.
func (c *cluster[C, R, E]) settled() bool {
	_, _, lead, ok := c.leaderStatus()
	if !ok || lead.Commit != lead.LastIndex || lead.Joint() || lead.ConfigIndex > lead.Commit {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var members []*liveNode[C, R, E]
	learners := 0
	for _, sv := range lead.Configuration.Servers {
		i := c.index(sv.ID)
		if c.ids[i] != sv.ID {
			c.setFail(InvariantMembership, "the settled configuration %v names %s, which the harness never started", lead.Configuration, sv.ID)
			return false
		}
		n := c.nodes[i]
		if n.retired {
			c.setFail(InvariantMembership, "%s was removed by a committed configuration and shut down, yet the settled configuration %v (index %d) names it",
				n.id, lead.Configuration, lead.ConfigIndex)
			return false
		}
		if n.node == nil {
			return false
		}
		s := n.node.Status()
		if s.Term != lead.Term || s.Leader != lead.ID || s.Commit != lead.Commit || s.Applied != lead.Commit ||
			s.LastIndex != lead.LastIndex || s.ConfigIndex != lead.ConfigIndex {
			return false
		}
		members = append(members, n)
		if sv.Suffrage != raft.Voter {
			learners++
		}
	}
	c.final, c.members = lead.Commit, members
	if c.o.Faults.MembershipInterval > 0 {
		c.rep.Membership.FinalVoters = len(members) - learners
		c.rep.Membership.FinalLearners = learners
	}
	return true
}
