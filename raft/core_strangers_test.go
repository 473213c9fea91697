package raft

import (
	"math/rand/v2"
	"testing"
)

// Membership-checked messages (core_strangers.go).

// A node that is no member cannot raise a member's term, make it follow,
// vote for it or campaign, whatever it sends.
func TestStrangerCannotRaiseTermOrLead(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	n2 := tc.cores["n2"]
	term := n2.term
	for _, m := range []Message{
		{Type: MsgHeartbeat, From: "x", To: "n2", Term: term + 5, Commit: 99},
		{Type: MsgApp, From: "x", To: "n2", Term: term + 5, Index: 1, LogTerm: 1, Entries: []Entry{{Index: 2, Term: term + 5}}},
		{Type: MsgVote, From: "x", To: "n2", Term: term + 5, Index: 100, LogTerm: 100},
		{Type: MsgSnap, From: "x", To: "n2", Term: term + 5, Snapshot: &SnapshotMeta{Index: 50, Term: term + 5}},
		{Type: MsgTimeoutNow, From: "x", To: "n2", Term: term},
		{Type: MsgApp, From: "x", To: "n2", Term: term, Index: 2, LogTerm: term, Entries: []Entry{{Index: 3, Term: term, Data: []byte("forged")}}},
	} {
		n2.step(m)
		if n2.term != term || n2.lead != "n1" || n2.state != Follower || n2.vote == "x" || n2.log.lastIndex() != 2 {
			t.Fatalf("after %s from a stranger: term %d (was %d), leader %q, state %s, vote %q, last %d", m, n2.term, term, n2.lead, n2.state, n2.vote, n2.log.lastIndex())
		}
	}
	if n2.strangers.dropped != 6 {
		t.Fatalf("%d messages counted as dropped, want 6", n2.strangers.dropped)
	}
}

// A forged TimeoutNow from a member that is not the leader does not make a
// follower campaign.
func TestTimeoutNowOnlyFromLeader(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	n3 := tc.cores["n3"]
	term := n3.term
	n3.step(Message{Type: MsgTimeoutNow, From: "n2", To: "n3", Term: term})
	if n3.state != Follower || n3.term != term {
		t.Fatalf("TimeoutNow from a follower made n3 %s at term %d", n3.state, n3.term)
	}
	n3.step(Message{Type: MsgTimeoutNow, From: "n1", To: "n3", Term: term})
	if n3.state != Candidate {
		t.Fatalf("TimeoutNow from the leader left n3 %s", n3.state)
	}
}

// A node removed from the configuration cannot raise a member's term with
// its campaigns.
func TestRemovedNodeCannotRaiseTerm(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	n2 := tc.cores["n2"]
	n2.conf.set(Configuration{Servers: []Server{{ID: "n1"}, {ID: "n2"}}}, n2.log.lastIndex())
	term := n2.term
	for i := 0; i < 3; i++ {
		n2.step(Message{Type: MsgVote, From: "n3", To: "n2", Term: term + 1 + uint64(i), Index: 100, LogTerm: 100})
		n2.step(Message{Type: MsgPreVote, From: "n3", To: "n2", Term: term + 1 + uint64(i), Index: 100, LogTerm: 100})
	}
	if n2.term != term || n2.vote == "n3" {
		t.Fatalf("removed n3 moved n2 to term %d (was %d), vote %q", n2.term, term, n2.vote)
	}
}

// A node with no configuration (waiting to be added) accepts its leader's
// appends, whoever it is.
func TestUnconfiguredNodeAcceptsItsLeader(t *testing.T) {
	l := &testLog{}
	c, err := newCore(CoreConfig{ID: "n9"}, l, HardState{}, SnapshotMeta{}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	c.step(Message{Type: MsgHeartbeat, From: "n1", To: "n9", Term: 4})
	if c.term != 4 || c.lead != "n1" {
		t.Fatalf("unconfigured node: term %d leader %q, want 4 n1", c.term, c.lead)
	}
}

// A voter whose configuration misses the current leader learns it from a
// member's vote rejection, and then follows it.
func TestLaggingVoterLearnsLeaderFromMember(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	n3 := tc.cores["n3"]
	term := n3.term
	hb := Message{Type: MsgHeartbeat, From: "n4", To: "n3", Term: term + 1}
	n3.step(hb)
	if n3.lead == "n4" || n3.term != term {
		t.Fatal("a leader outside n3's configuration was followed without a member's word")
	}
	n3.becomeFollower(term, "") // it lost its leader and campaigns
	n3.step(Message{Type: MsgPreVoteResp, From: "n2", To: "n3", Term: term + 1, Reject: true, Leader: "n4"})
	if n3.term != term+1 || n3.lead != "n4" {
		t.Fatalf("after n2's rejection naming n4: term %d leader %q", n3.term, n3.lead)
	}
	n3.step(hb)
	if n3.electionElapsed != 0 || n3.lead != "n4" {
		t.Fatalf("n3 does not follow n4's heartbeats (elapsed %d, leader %q)", n3.electionElapsed, n3.lead)
	}
}

// A learner that hears from no leader for two election timeouts asks the
// voters who leads; their rejections name the leader.
func TestLearnerProbesForLeader(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	n3 := tc.cores["n3"]
	for _, c := range tc.cores {
		c.conf.set(Configuration{Servers: []Server{{ID: "n1"}, {ID: "n2"}, {ID: "n3", Suffrage: Learner}}}, n3.log.lastIndex())
	}
	n3.becomeFollower(n3.term, "")
	for i := 0; i < 2*n3.cfg.ElectionTicks; i++ {
		n3.tick()
	}
	rd := n3.ready()
	probes := 0
	for _, m := range rd.Messages {
		if m.Type == MsgPreVote {
			probes++
		}
	}
	if probes != 2 {
		t.Fatalf("learner sent %d pre-vote probes, want one per voter (2): %v", probes, rd.Messages)
	}
	n3.advance(rd, false)
	tc.queue = append(tc.queue, rd.Messages...)
	tc.deliver()
	if n3.lead != "n1" {
		t.Fatalf("learner's leader after probing: %q, want n1", n3.lead)
	}
}
