package raft_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// appliedCount counts the entries of id's state machine log that applied
// op:key=val.
func (c *cluster) appliedCount(id raft.NodeID, op, key, val string) int {
	n := 0
	for _, l := range c.sms[id].log() {
		if strings.HasSuffix(l, ":"+op+":"+key+"="+val) {
			n++
		}
	}
	return n
}

func (c *cluster) openSession(t *testing.T, id raft.NodeID) *raft.Session {
	t.Helper()
	s, err := c.nodes[id].OpenSession(opCtx(t))
	if err != nil {
		t.Fatalf("open session on %s: %v", id, err)
	}
	if s.ID() == 0 {
		t.Fatal("session ID 0")
	}
	return s
}

// A retry with the same Seq returns the original Result (value, typed
// error, index and term) without applying again; an older Seq is refused.
func TestSessionRetryReturnsOriginal(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	c.mustPut("k", "x")
	s := c.openSession(t, lead)
	ctx := opCtx(t)
	seq := s.Next()
	// A CAS that conflicts: the typed error must come back on the retry.
	cas := kvCmd{Op: "cas", Key: "k", Old: "wrong", Val: "y"}
	first, err := c.nodes[lead].Propose(ctx, cas, seq).Wait(ctx)
	if err != nil || first.Err == nil || first.Err.Code != "conflict" || first.Index == 0 {
		t.Fatalf("first attempt: %+v %v", first, err)
	}
	again, err := c.nodes[lead].Propose(ctx, cas, seq).Wait(ctx)
	if err != nil || again.Index != first.Index || again.Term != first.Term || again.Value != first.Value ||
		again.Err == nil || *again.Err != *first.Err {
		t.Fatalf("retry: %+v (err %+v) %v, want the original %+v (err %+v)", again, again.Err, err, first, first.Err)
	}
	put := kvCmd{Op: "put", Key: "n", Val: "1"}
	seq2 := s.Next()
	r2, err := c.nodes[lead].Propose(ctx, put, seq2).Wait(ctx)
	if err != nil || r2.Value != "1" {
		t.Fatalf("next seq: %+v %v", r2, err)
	}
	if _, err := c.nodes[lead].Propose(ctx, cas, seq).Wait(ctx); !errors.Is(err, raft.ErrSessionSeqOld) {
		t.Fatalf("older seq: %v, want ErrSessionSeqOld", err)
	}
	c.waitApplied(c.nodes[lead].Status().Commit)
	for _, id := range c.ids {
		if n := c.appliedCount(id, "cas", "k", "y"); n != 1 {
			t.Fatalf("%s applied the CAS %d times", id, n)
		}
	}
	if m, _ := metric(c.nodes[lead].Metrics(), "session_duplicates_total", ""); m.Value != 1 {
		t.Fatalf("session_duplicates_total %v, want 1", m.Value)
	}
	if _, err := c.nodes[lead].Propose(ctx, put, raft.Seq{Session: s.ID(), N: 9}, raft.Committed).Wait(ctx); !errors.Is(err, raft.ErrInvalidArgument) {
		t.Fatalf("Committed with a Seq: %v", err)
	}
	if _, err := c.nodes[lead].Propose(ctx, put, raft.Seq{Session: s.ID()}).Wait(ctx); !errors.Is(err, raft.ErrInvalidArgument) {
		t.Fatalf("Seq 0: %v", err)
	}
}

// After a leader change, a retry (through a follower, forwarded) returns
// the original typed result from the new leader's table.
func TestSessionRetryAfterLeaderChange(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	f := c.followerOf(lead)
	s := c.openSession(t, f) // opened through a follower: forwarded
	ctx := opCtx(t)
	seq := s.Next()
	cmd := kvCmd{Op: "put", Key: "once", Val: "v1"}
	first, err := c.nodes[f].Propose(ctx, cmd, seq).Wait(ctx)
	if err != nil || first.Value != "v1" {
		t.Fatalf("first: %+v %v", first, err)
	}
	var other raft.NodeID
	for _, id := range c.ids {
		if id != lead && id != f {
			other = id
		}
	}
	if err := c.nodes[lead].TransferLeadership(ctx, other); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	c.leader(other)
	// Meanwhile another client overwrote the key: a re-application would
	// show.
	c.mustPut("once", "other")
	for _, via := range []raft.NodeID{other, f, lead} {
		// A node that has not heard from the new leader yet answers
		// NotLeaderError (leader unknown) and a hop that fails is
		// indeterminate: a client retries both, with the same seq.
		var got raft.Result[string, *kvError]
		var err error
		waitFor(t, "retry via "+string(via), 5*time.Second, func() bool {
			got, err = c.nodes[via].Propose(ctx, cmd, seq).Wait(ctx)
			return !isNotLeader(err) && !errors.Is(err, raft.ErrIndeterminate)
		})
		if err != nil || got.Index != first.Index || got.Value != first.Value {
			t.Fatalf("retry via %s: %+v %v, want the original %+v", via, got, err, first)
		}
	}
	c.waitApplied(c.nodes[other].Status().Commit)
	for _, id := range c.ids {
		if v, _ := c.sms[id].get("once"); v != "other" {
			t.Fatalf("%s: once=%q: a retry was applied again", id, v)
		}
	}
}

// Sessions expire by log index, and the table is bounded (least recently
// used first); a command in an expired session is refused, not applied.
func TestSessionExpiryAndBound(t *testing.T) {
	c := newCluster(t, 3, func(cfg *raft.Config) { cfg.SessionTTL, cfg.MaxSessions = 8, 2 })
	lead := c.leader()
	ctx := opCtx(t)
	s := c.openSession(t, lead)
	if _, err := c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: "a", Val: "1"}, s.Next()).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		c.mustPut("filler", fmt.Sprint(i))
	}
	_, err := c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: "a", Val: "2"}, s.Next()).Wait(ctx)
	if !errors.Is(err, raft.ErrSessionExpired) {
		t.Fatalf("after 10 idle entries with TTL 8: %v, want ErrSessionExpired", err)
	}
	if v, _ := c.sms[lead].get("a"); v != "1" {
		t.Fatalf("a=%q: the expired session's command was applied", v)
	}
	s1, s2 := c.openSession(t, lead), c.openSession(t, lead)
	if _, err := c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: "b", Val: "1"}, s1.Next()).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	c.openSession(t, lead) // the third: s2 (least recently used) goes
	if _, err := c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: "b", Val: "2"}, s2.Next()).Wait(ctx); !errors.Is(err, raft.ErrSessionExpired) {
		t.Fatalf("evicted session: %v", err)
	}
	if _, err := c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: "b", Val: "3"}, s1.Next()).Wait(ctx); err != nil {
		t.Fatalf("recently used session: %v", err)
	}
	if err := c.nodes[lead].CloseSession(ctx, s1.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: "b", Val: "4"}, s1.Next()).Wait(ctx); !errors.Is(err, raft.ErrSessionExpired) {
		t.Fatalf("closed session: %v", err)
	}
}

// The table travels in snapshots: a node restarted from a snapshot that
// covers the session (its log compacted behind it) still answers a retry
// with the original result instead of applying it again.
func TestSessionTableInSnapshot(t *testing.T) {
	c := newCluster(t, 3, smallSnapshots(5, raft.Zero))
	lead := c.leader()
	ctx := opCtx(t)
	s := c.openSession(t, lead)
	seq := s.Next()
	cmd := kvCmd{Op: "put", Key: "snap", Val: "v1"}
	first, err := c.nodes[lead].Propose(ctx, cmd, seq).Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.mustPut("snap", "later")
	for i := 0; i < 12; i++ {
		c.mustPut("filler", fmt.Sprint(i))
	}
	idx := c.nodes[lead].Status().Commit
	c.waitApplied(idx)
	f := c.followerOf(lead)
	if _, err := c.nodes[f].Snapshot(ctx); err != nil && !errors.Is(err, raft.ErrNothingToSnapshot) {
		t.Fatal(err)
	}
	if snap, err := c.stores[f].LatestSnapshot(); err != nil || snap.Index <= first.Index {
		t.Fatalf("%s's snapshot %+v %v does not cover the session command at %d", f, snap, err, first.Index)
	}
	c.restart(f)
	c.waitApplied(idx, f)
	if err := c.nodes[c.leader()].TransferLeadership(ctx, f); err != nil {
		t.Fatalf("transfer to %s: %v", f, err)
	}
	c.leader(f)
	got, err := c.nodes[f].Propose(ctx, cmd, seq).Wait(ctx)
	if err != nil || got.Index != first.Index || got.Value != "v1" {
		t.Fatalf("retry on the restored node: %+v %v, want the original %+v", got, err, first)
	}
	c.waitApplied(c.nodes[f].Status().Commit)
	for _, id := range c.ids {
		if v, _ := c.sms[id].get("snap"); v != "later" {
			t.Fatalf("%s: snap=%q: the retry was applied again", id, v)
		}
	}
}

// Concurrent sessions, each retrying every command at random (through
// random nodes), apply each command exactly once.
func TestConcurrentSessions(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	for _, id := range c.ids {
		waitFor(t, string(id)+" to know the leader", 5*time.Second, func() bool { return c.nodes[id].Status().Leader == lead })
	}
	const clients, ops = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for cl := 0; cl < clients; cl++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			via := c.ids[cl%len(c.ids)]
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// A spurious election on a loaded machine answers
			// NotLeaderError or ErrIndeterminate: a client retries both
			// (with the same seq), and must still get its own result.
			// retryable backs off a tick before saying so, as a client
			// would, so that a node with no leader is not spun on.
			retryable := func(err error) bool {
				if !isNotLeader(err) && !errors.Is(err, raft.ErrIndeterminate) {
					return false
				}
				select {
				case <-time.After(5 * time.Millisecond):
					return true
				case <-ctx.Done():
					return false
				}
			}
			var s *raft.Session
			var err error
			for s, err = c.nodes[via].OpenSession(ctx); retryable(err); s, err = c.nodes[via].OpenSession(ctx) {
			}
			if err != nil {
				errs <- err
				return
			}
			for i := 0; i < ops; i++ {
				seq := s.Next()
				cmd := kvCmd{Op: "put", Key: fmt.Sprintf("c%d", cl), Val: fmt.Sprint(i)}
				for try := 0; try < 1+i%3; try++ {
					node := c.nodes[c.ids[(cl+i+try)%len(c.ids)]]
					res, err := node.Propose(ctx, cmd, seq).Wait(ctx)
					for retryable(err) {
						res, err = node.Propose(ctx, cmd, seq).Wait(ctx)
					}
					if err != nil || res.Value != cmd.Val {
						errs <- fmt.Errorf("client %d op %d try %d: %+v %v", cl, i, try, res, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.waitApplied(c.nodes[c.leader()].Status().Commit)
	for _, id := range c.ids {
		for cl := 0; cl < clients; cl++ {
			for i := 0; i < ops; i++ {
				if n := c.appliedCount(id, "put", fmt.Sprintf("c%d", cl), fmt.Sprint(i)); n != 1 {
					t.Fatalf("%s applied client %d's op %d %d times", id, cl, i, n)
				}
			}
		}
	}
}
