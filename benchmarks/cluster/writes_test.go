package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/typedraft/typedraft/benchmarks/workload"
	"github.com/typedraft/typedraft/raft"
)

// Follower writes reach the leader's state machine through forwarding,
// and the leader's metrics window counts them as forwarded and served;
// session writes open one session per client (up front with Prepare, or
// on a client's first request) and apply each request once.
func TestFollowerAndSessionWrites(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, Options{Nodes: 3, Store: "memory", Transport: "inmem",
		Configure: func(cfg *raft.Config) { cfg.TickInterval = 10 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	count := func() uint64 {
		v, err := c.ReadLeader(ctx, raft.ReadLinearizable)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	fn, err := c.OpFor(workload.OpWriteFollower)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	var rm workload.RaftMetrics
	before := count()
	m, err := workload.Run(ctx, workload.Spec{Clients: 4, Payload: 64, Duration: 200 * time.Millisecond, Window: c.MetricsWindow(&rm)}, fn)
	if err != nil {
		t.Fatal(err)
	}
	if m.Ops == 0 || m.Errors != 0 {
		t.Fatalf("follower writes: ops %d errors %d (%v)", m.Ops, m.Errors, m.FirstError)
	}
	if got := count() - before; got < m.Ops {
		t.Fatalf("the leader applied %d commands for %d follower writes", got, m.Ops)
	}
	// The counters are read before the clients' window opens and after it
	// closes: they miss at most the requests in flight when it opened, and
	// count at most those in flight when it closed, one per client each.
	if rm.Forwarded+4 < m.Ops || rm.ForwardedServed+4 < m.Ops || rm.Forwarded > m.Ops+8 {
		t.Fatalf("%d forwarded, %d served for %d requests", rm.Forwarded, rm.ForwardedServed, m.Ops)
	}

	if err := c.Prepare(ctx, workload.OpWriteSession, 3); err != nil {
		t.Fatal(err)
	}
	if len(c.sess.list) != 3 || c.sess.list[0].ID() == c.sess.list[2].ID() {
		t.Fatalf("sessions %v", c.sess.list)
	}
	fn, err = c.OpFor(workload.OpWriteSession)
	if err != nil {
		t.Fatal(err)
	}
	before = count()
	// Client 4 has no session yet: its first request opens it.
	m, err = workload.Run(ctx, workload.Spec{Clients: 5, Payload: 64, Duration: 200 * time.Millisecond}, fn)
	if err != nil {
		t.Fatal(err)
	}
	if m.Ops == 0 || m.Errors != 0 || len(c.sess.list) != 5 {
		t.Fatalf("session writes: ops %d errors %d (%v), %d sessions", m.Ops, m.Errors, m.FirstError, len(c.sess.list))
	}
	if got := count() - before; got < m.Ops || got > m.Ops+5 {
		t.Fatalf("the leader applied %d commands for %d session writes", got, m.Ops)
	}
	for _, mt := range c.Leader().Metrics() {
		if mt.Name == "sessions" && mt.Value != 5 {
			t.Fatalf("the leader holds %v sessions, want 5", mt.Value)
		}
	}
	if err := c.Prepare(ctx, workload.OpWrite, 3); err != nil {
		t.Fatal(err)
	}
	one, err := Start(ctx, Options{Nodes: 1, Store: "memory", Transport: "inmem"})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	if _, err := one.OpFor(workload.OpWriteFollower); err == nil {
		t.Fatal("follower writes on a single node: no error")
	}
}
