package raft

import (
	"fmt"
	"testing"
)

// Regression (known bug class): a follower with a divergent uncommitted tail
// receives a snapshot. It must discard the tail and must not loop
// re-downloading the snapshot.
func TestSnapshotDivergentTailTruncatedNoLoop(t *testing.T) {
	leader := []uint64{}
	for i := 0; i < 30; i++ {
		leader = append(leader, 3)
	}
	divergent := []uint64{2, 2, 2, 2, 2, 2, 2, 2}
	tc := clusterWithLogs(t, 3, [3][]uint64{leader, divergent, leader})
	tc.isolate("n2")
	tc.elect("n1")
	tc.tickAll(2)
	tc.takeSnapshot("n1", 25)
	tc.heal()
	tc.tickAll(5)
	tc.requireSameLogs()
	if tc.snapSends != 1 {
		t.Fatalf("%d snapshots sent, want exactly 1", tc.snapSends)
	}
	c2 := tc.cores["n2"]
	if first := c2.log.firstIndex(); first != 26 {
		t.Fatalf("follower log starts at %d after install, want 26", first)
	}
	for _, e := range tc.apply["n2"] {
		if e.Term == 2 {
			t.Fatalf("follower applied divergent entry %d/%d", e.Index, e.Term)
		}
	}
}

// Regression: a lagging follower whose next entry was compacted gets one
// snapshot and then continues from the log, without looping.
func TestSnapshotLaggingFollowerNoLoop(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	tc.isolate("n3")
	for i := 0; i < 40; i++ {
		if _, err := tc.propose("n1", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	tc.takeSnapshot("n1", tc.cores["n1"].log.committed-5)
	tc.heal()
	tc.tickAll(10)
	for i := 0; i < 5; i++ {
		if _, err := tc.propose("n1", fmt.Sprint("after", i)); err != nil {
			t.Fatal(err)
		}
	}
	tc.tickAll(3)
	tc.requireSameLogs()
	if tc.snapSends != 1 {
		t.Fatalf("%d snapshots sent, want 1", tc.snapSends)
	}
	if a, b := tc.cores["n1"].log.committed, tc.cores["n3"].log.committed; a != b {
		t.Fatalf("commit leader %d, follower %d", a, b)
	}
}

// Regression: a snapshot older than the follower's commit index is ignored
// (the follower's log and state must not move backwards).
func TestSnapshotOlderThanCommitIgnored(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	for i := 0; i < 10; i++ {
		if _, err := tc.propose("n1", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	tc.tickAll(2)
	c2 := tc.cores["n2"]
	commit, last := c2.log.committed, c2.log.lastIndex()
	old := SnapshotMeta{Index: 4, Term: 2, Configuration: c2.conf.cfg.Clone(), ConfigIndex: 1}
	c2.step(Message{Type: MsgSnap, From: "n1", To: "n2", Term: c2.term, Snapshot: &old})
	rd := c2.ready()
	if rd.Snapshot != nil {
		t.Fatal("follower installs a snapshot older than its commit index")
	}
	found := false
	for _, m := range rd.MessagesAfter {
		found = found || (m.Type == MsgAppResp && m.Index == commit && !m.Reject)
	}
	if !found {
		t.Fatalf("follower did not answer with its commit index %d: %v", commit, rd.MessagesAfter)
	}
	c2.advance(rd, false)
	if c2.log.committed != commit || c2.log.lastIndex() != last {
		t.Fatalf("commit/last moved to %d/%d from %d/%d", c2.log.committed, c2.log.lastIndex(), commit, last)
	}
}

// Regression: two snapshots in quick succession: the newer one wins, and an
// older one arriving after it changes nothing.
func TestSnapshotTwoInQuickSuccession(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	tc.isolate("n3")
	for i := 0; i < 30; i++ {
		if _, err := tc.propose("n1", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	c1 := tc.cores["n1"]
	mk := func(i uint64) SnapshotMeta {
		term, _ := c1.log.term(i)
		return SnapshotMeta{Index: i, Term: term, Configuration: c1.conf.cfg.Clone(), ConfigIndex: 1}
	}
	s1, s2 := mk(10), mk(20)
	c3 := tc.cores["n3"]
	c3.step(Message{Type: MsgSnap, From: "n1", To: "n3", Term: c1.term, Snapshot: &s1})
	c3.step(Message{Type: MsgSnap, From: "n1", To: "n3", Term: c1.term, Snapshot: &s2})
	rd := c3.ready()
	if rd.Snapshot == nil || rd.Snapshot.Index != 20 {
		t.Fatalf("snapshot to install %+v, want the newer (20)", rd.Snapshot)
	}
	tc.logs["n3"].compact(20, s2.Term)
	c3.advance(rd, false)
	c3.step(Message{Type: MsgSnap, From: "n1", To: "n3", Term: c1.term, Snapshot: &s1})
	if rd := c3.ready(); rd.Snapshot != nil {
		t.Fatalf("older snapshot installed after a newer one: %+v", rd.Snapshot)
	}
	if c3.log.firstIndex() != 21 || c3.log.committed != 20 {
		t.Fatalf("first %d commit %d, want 21 and 20", c3.log.firstIndex(), c3.log.committed)
	}
}

// The outcome of an earlier snapshot send is not taken for the current
// one's (it would restart a stream while another is running), and a failed
// send is retried only after half an election timeout, not on every append.
func TestSnapshotSendOutcomesAndBackoff(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	c := tc.cores["n1"]
	c.snapIndex, c.snapTerm = 1, 1
	pr := c.prs["n2"]
	pr.becomeProbe()
	c.sendSnapshot("n2", pr)
	first := pr.snapSeq
	if pr.state != progressSnapshot || len(c.snapshotsToSend) != 1 {
		t.Fatalf("no snapshot send started (state %v)", pr.state)
	}
	c.snapshotsToSend = nil
	c.snapshotDone("n2", first, false)
	if pr.state != progressProbe || pr.snapBackoff == 0 {
		t.Fatalf("after a failed send: state %v backoff %d, want probe with a backoff", pr.state, pr.snapBackoff)
	}
	c.sendSnapshot("n2", pr)
	if len(c.snapshotsToSend) != 0 {
		t.Fatal("a failed snapshot send was retried at once")
	}
	for i := 0; i < c.cfg.ElectionTicks && pr.snapBackoff > 0; i++ {
		c.tick()
	}
	if pr.snapBackoff != 0 || c.state != Leader {
		t.Fatalf("backoff %d (state %v) after an election timeout of ticks", pr.snapBackoff, c.state)
	}
	pr.becomeProbe()
	c.sendSnapshot("n2", pr)
	if len(c.snapshotsToSend) != 1 || pr.snapSeq == first {
		t.Fatalf("no new send after the backoff (queued %d, seq %d)", len(c.snapshotsToSend), pr.snapSeq)
	}
	c.snapshotDone("n2", first, true) // the earlier send's outcome, late
	if pr.state != progressSnapshot {
		t.Fatalf("a stale send outcome moved the follower to %v while a send is running", pr.state)
	}
	c.snapshotDone("n2", pr.snapSeq, true)
	if pr.state != progressProbe {
		t.Fatalf("the current send's outcome left the follower in %v", pr.state)
	}
}
