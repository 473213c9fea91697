package raft

import (
	"errors"
	"testing"
)

// Paper-style tests of the read path (thesis §6.4, §6.4.1).

// readsOf returns and clears the read outcomes id produced.
func (tc *testCluster) readsOf(id NodeID) []ReadState {
	r := tc.reads[id]
	tc.reads[id] = nil
	return r
}

// oneRead expects exactly one outcome at id, for read rid.
func (tc *testCluster) oneRead(id NodeID, rid uint64) ReadState {
	tc.t.Helper()
	rs := tc.readsOf(id)
	if len(rs) != 1 || rs[0].ID != rid {
		tc.t.Fatalf("%s: read outcomes %+v, want one for read %d", id, rs, rid)
	}
	return rs[0]
}

// §6.4 step 2-3: the leader records its commit index and answers only
// after a quorum acknowledged a heartbeat sent after the read arrived.
func TestPaper64_ReadIndexNeedsQuorumRound(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	if _, err := tc.propose("n1", "x"); err != nil {
		t.Fatal(err)
	}
	commit := tc.cores["n1"].log.committed
	tc.cores["n1"].readIndex(7, false)
	tc.process() // messages queued, not delivered
	if rs := tc.readsOf("n1"); len(rs) != 0 {
		t.Fatalf("read answered before any acknowledgement: %+v", rs)
	}
	tc.deliver()
	if rs := tc.oneRead("n1", 7); rs.Err != nil || rs.Index != commit {
		t.Fatalf("read state %+v, want index %d", rs, commit)
	}
}

// §6.4 step 1: a new leader answers reads only once an entry of its own
// term is committed; until then its commit index may be behind.
func TestPaper64_ReadWaitsForOwnTermCommit(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	// n2 becomes leader but cannot commit its no-op: n3 is cut off and
	// n1's messages to n2 are dropped.
	tc.cut[[2]NodeID{"n2", "n3"}], tc.cut[[2]NodeID{"n3", "n2"}] = true, true
	tc.cut[[2]NodeID{"n1", "n2"}] = true
	tc.cores["n2"].campaign(true)
	tc.cores["n2"].step(Message{Type: MsgVoteResp, From: "n1", To: "n2", Term: tc.cores["n2"].term})
	if tc.cores["n2"].state != Leader {
		t.Fatalf("n2 is %s", tc.cores["n2"].state)
	}
	tc.cores["n2"].readIndex(1, false)
	tc.deliver()
	if rs := tc.readsOf("n2"); len(rs) != 0 {
		t.Fatalf("read answered before the leader committed its own term's entry: %+v", rs)
	}
	tc.heal()
	tc.tickAll(3)
	rs := tc.oneRead("n2", 1)
	if rs.Err != nil || rs.Index < 3 {
		t.Fatalf("read state %+v, want the own-term commit (>= 3)", rs)
	}
}

// Batching and pipelining: the reads that arrive before one Ready share a
// round; later reads start rounds of their own while earlier ones are in
// flight, up to maxReadRounds; beyond that they wait for the next one. A
// quorum's acknowledgement of a later broadcast confirms every earlier
// round.
func TestReadIndexBatchesAndPipelinesRounds(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	c := tc.cores["n1"]
	c.readIndex(1, false)
	c.readIndex(2, false)
	tc.process() // one round for both
	if len(c.ro.rounds) != 1 || len(c.ro.rounds[0].reads) != 2 {
		t.Fatalf("rounds %+v, want one round with reads 1 and 2", c.ro.rounds)
	}
	for id := uint64(3); id < 3+maxReadRounds; id++ {
		c.readIndex(id, false)
		tc.process()
	}
	if len(c.ro.rounds) != maxReadRounds || len(c.ro.next) != 1 {
		t.Fatalf("%d rounds in flight, %d reads waiting: want %d and 1", len(c.ro.rounds), len(c.ro.next), maxReadRounds)
	}
	tc.queue = tc.queue[:0] // every round's heartbeats are lost
	tc.tickAll(c.cfg.HeartbeatTicks)
	rs := tc.readsOf("n1")
	if len(rs) != 2+maxReadRounds {
		t.Fatalf("outcomes %+v, want all %d reads answered by the next acknowledged heartbeat", rs, 2+maxReadRounds)
	}
	for _, r := range rs {
		if r.Err != nil {
			t.Fatalf("read %d: %v", r.ID, r.Err)
		}
	}
}

// A follower sends one MsgReadIndex for all the reads that arrive before a
// Ready, and answers them all from the one response.
func TestFollowerReadsBatched(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	n3 := tc.cores["n3"]
	for id := uint64(1); id <= 5; id++ {
		n3.readIndex(id, false)
	}
	rd := n3.ready()
	sent := 0
	for _, m := range rd.Messages {
		if m.Type == MsgReadIndex {
			sent++
		}
	}
	n3.advance(rd, false)
	if sent != 1 {
		t.Fatalf("%d MsgReadIndex for 5 reads, want 1", sent)
	}
	tc.queue = append(tc.queue, rd.Messages...)
	tc.deliver()
	if rs := tc.readsOf("n3"); len(rs) != 5 {
		t.Fatalf("outcomes %+v, want 5", rs)
	}
}

// A leader cut off from the majority never confirms a read; when it learns
// of the newer term the read fails with ErrNotConfirmed, never with a stale
// index.
func TestPaper64_PartitionedLeaderFailsReads(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	tc.isolate("n1")
	// n3 still hears n1's lease; a transfer-style campaign is not refused.
	tc.cores["n2"].campaign(true)
	tc.deliver()
	if tc.cores["n2"].state != Leader {
		t.Fatalf("n2 is %s", tc.cores["n2"].state)
	}
	if _, err := tc.propose("n2", "new"); err != nil {
		t.Fatal(err)
	}
	tc.cores["n1"].readIndex(9, false)
	tc.tickAll(1)
	if rs := tc.readsOf("n1"); len(rs) != 0 {
		t.Fatalf("isolated leader answered a read: %+v", rs)
	}
	tc.heal()
	tc.tickAll(3)
	rs := tc.oneRead("n1", 9)
	if !errors.Is(rs.Err, ErrNotConfirmed) {
		t.Fatalf("read state %+v, want ErrNotConfirmed", rs)
	}
}

// A single-voter cluster is its own quorum: reads answer at once.
func TestReadIndexSingleVoter(t *testing.T) {
	tc := newTestCluster(t, 1)
	tc.elect("n1")
	tc.cores["n1"].readIndex(4, false)
	tc.process()
	if rs := tc.oneRead("n1", 4); rs.Err != nil || rs.Index != tc.cores["n1"].log.committed {
		t.Fatalf("read state %+v", rs)
	}
}

// §6.4: a follower asks the leader for the read index and serves the read
// once it has applied it.
func TestReadIndexFromFollower(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	if _, err := tc.propose("n1", "x"); err != nil {
		t.Fatal(err)
	}
	tc.cores["n3"].readIndex(5, false)
	tc.deliver()
	rs := tc.oneRead("n3", 5)
	if rs.Err != nil || rs.Index != tc.cores["n1"].log.committed {
		t.Fatalf("follower read state %+v, want the leader's commit %d", rs, tc.cores["n1"].log.committed)
	}
	// With no leader known, the read fails at once with ErrNotLeader.
	tc.cores["n3"].becomeFollower(tc.cores["n3"].term+1, "")
	tc.cores["n3"].readIndex(6, false)
	tc.process()
	if rs := tc.oneRead("n3", 6); !errors.Is(rs.Err, ErrNotLeader) {
		t.Fatalf("read with no leader: %+v, want ErrNotLeader", rs)
	}
}

// A forwarded read whose answer never comes fails after an election
// timeout; one whose leader changes fails at once.
func TestForwardedReadTimesOutAndFailsOnLeaderChange(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	tc.cut[[2]NodeID{"n3", "n1"}] = true
	tc.cores["n3"].readIndex(1, false)
	tc.deliver()
	for i := 0; i < tc.cores["n3"].cfg.ElectionTicks; i++ {
		tc.cores["n3"].tick()
		tc.process()
	}
	if rs := tc.oneRead("n3", 1); !errors.Is(rs.Err, ErrNotConfirmed) {
		t.Fatalf("unanswered read: %+v, want ErrNotConfirmed", rs)
	}
	tc.cores["n3"].readIndex(2, false)
	tc.cores["n3"].step(Message{Type: MsgHeartbeat, From: "n2", To: "n3", Term: tc.cores["n3"].term + 1})
	tc.process()
	if rs := tc.oneRead("n3", 2); !errors.Is(rs.Err, ErrNotConfirmed) {
		t.Fatalf("read across a leader change: %+v, want ErrNotConfirmed", rs)
	}
}

// §6 joint consensus: a read in C(old,new) needs both majorities.
func TestReadIndexJointNeedsBothMajorities(t *testing.T) {
	tc := newTestCluster(t, 5)
	tc.elect("n1")
	c := tc.cores["n1"]
	// Force the joint configuration old {n1,n2,n3} new {n1,n4,n5}.
	joint := Configuration{
		Servers: []Server{{ID: "n1"}, {ID: "n4"}, {ID: "n5"}},
		Old:     []Server{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}},
	}
	c.conf.set(joint, c.log.lastIndex())
	// The new majority answers; the old one (n2, n3) does not.
	tc.cut[[2]NodeID{"n2", "n1"}], tc.cut[[2]NodeID{"n3", "n1"}] = true, true
	c.readIndex(1, false)
	tc.deliver()
	if rs := tc.readsOf("n1"); len(rs) != 0 {
		t.Fatalf("read confirmed by the new majority alone: %+v", rs)
	}
	delete(tc.cut, [2]NodeID{"n2", "n1"})
	tc.tickAll(2)
	if rs := tc.oneRead("n1", 1); rs.Err != nil {
		t.Fatalf("read state %+v", rs)
	}
}

// §6.4.1: with check-quorum on, a leader whose quorum acknowledged a recent
// heartbeat answers a lease read without a round; the lease runs out
// leaseTicks after that heartbeat was sent.
func TestPaper641_LeaseRead(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	c := tc.cores["n1"]
	tc.tickAll(c.cfg.HeartbeatTicks) // a heartbeat round acknowledged
	seq := c.ro.seq
	c.readIndex(1, true)
	if c.ro.seq != seq {
		t.Fatal("a lease read sent a heartbeat round")
	}
	tc.process()
	if rs := tc.oneRead("n1", 1); rs.Err != nil {
		t.Fatalf("lease read: %+v", rs)
	}
	// Cut the followers off: the lease ages and the read falls back to a
	// round that cannot complete.
	tc.isolate("n1")
	for c.leaseValid() {
		c.tick()
		tc.deliver()
	}
	c.readIndex(2, true)
	tc.deliver()
	if rs := tc.readsOf("n1"); len(rs) != 0 {
		t.Fatalf("read answered after the lease ran out: %+v", rs)
	}
	if got, limit := c.now-c.prs["n2"].ackAt, c.leaseTicks(); got != limit {
		t.Fatalf("lease ran out %d ticks after the acknowledged heartbeat, want %d", got, limit)
	}
}

// The lease is only used with check-quorum on, and never after the leader
// sent TimeoutNow in its term.
func TestLeaseNeedsCheckQuorumAndNoTransfer(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *CoreConfig) { c.DisableCheckQuorum = true })
	tc.elect("n1")
	tc.tickAll(2)
	if tc.cores["n1"].leaseValid() {
		t.Fatal("lease valid with check-quorum off")
	}
	tc = newTestCluster(t, 3)
	tc.elect("n1")
	tc.tickAll(2)
	c := tc.cores["n1"]
	if !c.leaseValid() {
		t.Fatal("no lease after an acknowledged heartbeat")
	}
	tc.cut[[2]NodeID{"n1", "n2"}] = true // the TimeoutNow is lost
	c.sendTimeoutNow("n2")
	tc.deliver()
	if c.leaseValid() {
		t.Fatal("lease still used after TimeoutNow was sent")
	}
}

// A node that restarts refuses votes for an election timeout: it may have
// acknowledged the leader's heartbeat just before, and the leader's lease
// counts on it.
func TestRestartedVoterRefusesVotesForAnElectionTimeout(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	tc.keepStartLease = true
	tc.start("n3", 99)
	n3 := tc.cores["n3"]
	vote := Message{Type: MsgVote, From: "n2", To: "n3", Term: n3.term + 1, Index: n3.log.lastIndex(), LogTerm: n3.log.lastTerm()}
	n3.step(vote)
	if n3.vote == "n2" || n3.term != vote.Term-1 {
		t.Fatalf("restarted n3 voted for %q at term %d", n3.vote, n3.term)
	}
	for i := 0; i < n3.cfg.ElectionTicks; i++ {
		n3.tick()
	}
	n3.step(vote)
	if n3.vote != "n2" {
		t.Fatalf("n3 still refuses after an election timeout (vote %q)", n3.vote)
	}
}
