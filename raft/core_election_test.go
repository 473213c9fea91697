package raft

import (
	"fmt"
	"testing"
)

// §5.1: a node that sees a higher term adopts it and, if it was leader or
// candidate, steps down to follower.
func TestPaper51_HigherTermStepsDown(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	old := tc.cores["n1"].term
	tc.cores["n1"].step(Message{Type: MsgApp, From: "n2", To: "n1", Term: old + 5})
	if c := tc.cores["n1"]; c.state != Follower || c.term != old+5 || c.lead != "n2" {
		t.Fatalf("after higher-term append: state %s term %d lead %s, want follower %d n2", c.state, c.term, c.lead, old+5)
	}
}

// §5.1: a request with a stale term is rejected; the stale leader learns the
// newer term and steps down.
func TestPaper51_StaleTermRejected(t *testing.T) {
	// Without check-quorum the cut-off leader keeps believing it leads.
	tc := newTestCluster(t, 3, func(c *CoreConfig) { c.DisableCheckQuorum = true })
	tc.elect("n1")
	tc.isolate("n1")
	tc.tickAll(40) // n2 or n3 takes over
	newLead := tc.leader()
	if newLead == "" || newLead == "n1" {
		t.Fatalf("no new leader among n2,n3 (got %q)", newLead)
	}
	if _, err := tc.propose("n1", "stale"); err != nil {
		t.Fatalf("stale leader should still accept locally: %v", err)
	}
	tc.heal()
	tc.cores["n1"].bcastHeartbeat()
	tc.deliver()
	if s := tc.cores["n1"].state; s != Follower {
		t.Fatalf("stale leader state %s after hearing newer term, want follower", s)
	}
}

// §5.2: a follower that hears nothing for an election timeout starts an
// election and, with a majority, becomes leader.
func TestPaper52_ElectionAfterTimeout(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.tickAll(30)
	if tc.leader() == "" {
		t.Fatal("no leader after 30 ticks (3 election timeouts)")
	}
}

// §5.2: each node grants at most one vote per term, first come first served.
func TestPaper52_OneVotePerTerm(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *CoreConfig) { c.DisablePreVote = true })
	c := tc.cores["n3"]
	c.step(Message{Type: MsgVote, From: "n1", To: "n3", Term: 2, Index: 1, LogTerm: 1})
	c.step(Message{Type: MsgVote, From: "n2", To: "n3", Term: 2, Index: 1, LogTerm: 1})
	rd := c.ready()
	var grants, rejects int
	for _, m := range append(rd.Messages, rd.MessagesAfter...) {
		if m.Type == MsgVoteResp {
			if m.Reject {
				rejects++
				if m.To != "n2" {
					t.Fatalf("rejected the first candidate %s", m.To)
				}
			} else {
				grants++
			}
		}
	}
	if grants != 1 || rejects != 1 {
		t.Fatalf("grants=%d rejects=%d, want 1 and 1", grants, rejects)
	}
	if rd.HardState.Vote != "n1" || !rd.MustSave {
		t.Fatalf("vote %q not persisted before the grant", rd.HardState.Vote)
	}
	for _, m := range rd.Messages {
		if m.Type == MsgVoteResp && !m.Reject {
			t.Fatal("vote grant sent before the vote is durable")
		}
	}
}

// §5.2: split votes resolve because election timeouts are randomized: with
// every node campaigning at once, a leader still emerges.
func TestPaper52_SplitVoteResolves(t *testing.T) {
	tc := newTestCluster(t, 5, func(c *CoreConfig) { c.DisablePreVote = true })
	for _, id := range tc.ids {
		tc.cores[id].campaign(false)
	}
	tc.deliver()
	tc.tickAll(60)
	if tc.leader() == "" {
		t.Fatal("split vote never resolved into a leader")
	}
}

// §5.2: election timeouts are drawn from [T, 2T).
func TestPaper52_RandomizedTimeouts(t *testing.T) {
	tc := newTestCluster(t, 1)
	c := tc.cores["n1"]
	seen := map[int]bool{}
	for i := 0; i < 1000; i++ {
		c.resetRandomizedElectionTimeout()
		to := c.randomizedElectionTimeout
		if to < c.cfg.ElectionTicks || to >= 2*c.cfg.ElectionTicks {
			t.Fatalf("timeout %d outside [%d,%d)", to, c.cfg.ElectionTicks, 2*c.cfg.ElectionTicks)
		}
		seen[to] = true
	}
	if len(seen) < c.cfg.ElectionTicks/2 {
		t.Fatalf("only %d distinct timeouts in 1000 draws", len(seen))
	}
}

// §5.4.1: a voter denies its vote to a candidate whose log is less up to date.
func TestPaper541_ElectionRestriction(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	tc.isolate("n3")
	if _, err := tc.propose("n1", "x"); err != nil {
		t.Fatal(err)
	}
	tc.heal()
	// n3 lacks "x"; it must not win n2's vote (n2 has it) even at a higher term.
	c2 := tc.cores["n2"]
	c2.lead = "" // forget the leader so the lease does not hide the check
	c2.step(Message{Type: MsgVote, From: "n3", To: "n2", Term: 10, Index: 2, LogTerm: 2})
	rd := c2.ready()
	granted := false
	for _, m := range append(rd.Messages, rd.MessagesAfter...) {
		if m.Type == MsgVoteResp && !m.Reject {
			granted = true
		}
	}
	if granted {
		t.Fatal("vote granted to a candidate with a less up-to-date log")
	}
	c2.advance(rd, false)
}

// Pre-vote (thesis §9.6): a node partitioned alone neither raises its term
// nor deposes the healthy leader when it rejoins.
func TestPreVote_PartitionedNodeDoesNotDisrupt(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	term := tc.cores["n1"].term
	tc.isolate("n3")
	tc.tickAll(100)
	if got := tc.cores["n3"].term; got != term {
		t.Fatalf("isolated node raised its term to %d (was %d)", got, term)
	}
	tc.heal()
	tc.tickAll(30)
	if tc.leader() != "n1" || tc.cores["n1"].term != term {
		t.Fatalf("leader %s term %d after rejoin, want n1 term %d", tc.leader(), tc.cores["n1"].term, term)
	}
}

// Without pre-vote the same partition raises the isolated node's term: this
// shows the pre-vote test above is sensitive to the mechanism.
func TestPreVote_DisabledRaisesTerm(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *CoreConfig) { c.DisablePreVote = true })
	tc.elect("n1")
	term := tc.cores["n1"].term
	tc.isolate("n3")
	tc.tickAll(100)
	if got := tc.cores["n3"].term; got <= term {
		t.Fatalf("without pre-vote the isolated node kept term %d", got)
	}
}

// Check-quorum (thesis §6.2): a leader cut off from a majority steps down
// within an election timeout.
func TestCheckQuorum_LeaderStepsDown(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	tc.isolate("n1")
	for i := 0; i < 2*tc.cores["n1"].cfg.ElectionTicks; i++ {
		tc.cores["n1"].tick()
		tc.deliver()
	}
	if s := tc.cores["n1"].state; s == Leader {
		t.Fatal("isolated leader did not step down")
	}
}

// The election lease (thesis §4.2.3): a voter that hears from its leader
// ignores a vote request at a higher term.
func TestCheckQuorum_LeaseIgnoresVote(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	term := tc.cores["n2"].term
	tc.cores["n2"].step(Message{Type: MsgVote, From: "n3", To: "n2", Term: term + 3, Index: 100, LogTerm: 100})
	if got := tc.cores["n2"].term; got != term {
		t.Fatalf("voter in lease adopted the disruptive term %d", got)
	}
	// A transfer-initiated request is honoured.
	tc.cores["n2"].step(Message{Type: MsgVote, From: "n3", To: "n2", Term: term + 3, Index: 100, LogTerm: 100, Transfer: true})
	if got := tc.cores["n2"].term; got != term+3 {
		t.Fatalf("transfer vote request ignored (term %d)", got)
	}
}

// Leadership transfer (thesis §3.10): to a caught-up follower it completes
// within 3 election timeouts of logical time, even when the target first
// needs entries; proposals are refused meanwhile.
func TestTransferCompletesWithinThreeElectionTimeouts(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	tc.isolate("n3")
	for i := 0; i < 5; i++ {
		if _, err := tc.propose("n1", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	tc.heal()
	c1 := tc.cores["n1"]
	if _, err := c1.transferLeadership("n3"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c1.propose([]Entry{{Data: []byte("x")}}); err == nil {
		t.Fatal("leader accepted a proposal during transfer")
	}
	limit := 3 * c1.cfg.ElectionTicks
	for tick := 0; tick <= limit; tick++ {
		tc.deliver()
		if tc.cores["n3"].state == Leader {
			return
		}
		tc.tickAll(1)
	}
	t.Fatalf("transfer to n3 not complete after %d ticks", limit)
}

// Figure 2 (followers): the election timer restarts on hearing from the
// current leader or granting a vote — not when a vote request that is
// rejected merely carries a higher term. Otherwise, without pre-vote, nodes
// whose logs are behind keep pushing back the timeouts of the nodes that
// could win, and no leader is ever elected (found by the simulator: two
// stale nodes alternately campaigned for 100 ticks after the faults
// stopped).
func TestPaper52_RejectedVoteKeepsElectionTimer(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *CoreConfig) { c.DisablePreVote = true })
	tc.elect("n1")
	tc.isolate("n3")
	if _, err := tc.propose("n1", "x"); err != nil {
		t.Fatal(err)
	}
	tc.heal()
	c2 := tc.cores["n2"]
	c2.lead = "" // the leader is gone
	c2.electionElapsed = 7
	term := c2.term
	c2.step(Message{Type: MsgVote, From: "n3", To: "n2", Term: term + 5, Index: 2, LogTerm: 2})
	rd := c2.ready()
	for _, m := range append(rd.Messages, rd.MessagesAfter...) {
		if m.Type == MsgVoteResp && !m.Reject {
			t.Fatal("vote granted to a candidate with a less up-to-date log")
		}
	}
	c2.advance(rd, false)
	if c2.term != term+5 || c2.state != Follower {
		t.Fatalf("term %d state %v after a higher-term vote request, want term %d follower", c2.term, c2.state, term+5)
	}
	if c2.electionElapsed != 7 {
		t.Fatalf("election timer restarted (elapsed %d, want 7) by a rejected vote request", c2.electionElapsed)
	}
	// Granting a vote does restart it.
	last := c2.log.lastIndex()
	c2.step(Message{Type: MsgVote, From: "n1", To: "n2", Term: term + 6, Index: last, LogTerm: c2.log.lastTerm()})
	if c2.vote != "n1" || c2.electionElapsed != 0 {
		t.Fatalf("vote %q elapsed %d after a grantable request, want n1 and 0", c2.vote, c2.electionElapsed)
	}
}
