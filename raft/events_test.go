package raft_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// collect reads events from o until cond returns true for one, or fails
// the test at the deadline.
func collect(t *testing.T, o *raft.Observer, what string, cond func(raft.Event) bool) raft.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-o.Events():
			if !ok {
				t.Fatalf("observer closed before %s", what)
			}
			if cond(e) {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event", what)
		}
	}
}

// Every event kind a cluster's life produces reaches an observer: leader
// and term changes, state changes, membership changes with both
// configurations, commits of configurations, removal, snapshots taken,
// installed and sent, peers unreachable and healthy again, and the stop.
func TestEvents(t *testing.T) {
	c := newCluster(t, 3, smallSnapshots(10, 2))
	obs := map[raft.NodeID]*raft.Observer{}
	for _, id := range c.ids {
		obs[id] = c.nodes[id].Observe(1024)
	}
	lead := c.leader()
	e := collect(t, obs[lead], "state-changed to leader", func(e raft.Event) bool {
		return e.Kind == raft.EventStateChanged && e.State == raft.Leader
	})
	if e.Term == 0 || e.Leader != lead {
		t.Fatalf("leader event %v", e)
	}
	var follower raft.NodeID
	for _, id := range c.ids {
		if id != lead {
			follower = id
		}
	}
	collect(t, obs[follower], "term-changed", func(e raft.Event) bool { return e.Kind == raft.EventTermChanged })
	collect(t, obs[follower], "leader-changed", func(e raft.Event) bool { return e.Kind == raft.EventLeaderChanged && e.Leader == lead })
	for i := 0; i < 30; i++ {
		c.mustPut("k", "v")
	}
	collect(t, obs[lead], "snapshot-taken", func(e raft.Event) bool { return e.Kind == raft.EventSnapshotTaken && e.Snapshot.Index > 0 })

	// A node that is cut off is unreachable for the leader, then healthy.
	c.net.Isolate(follower)
	collect(t, obs[lead], "peer-unreachable", func(e raft.Event) bool { return e.Kind == raft.EventPeerUnreachable && e.Peer == follower })
	for i := 0; i < 30; i++ {
		c.mustPut("k2", "v")
	}
	c.net.Heal()
	// Both happen, in either order.
	healthy, sent := false, false
	collect(t, obs[lead], "peer-healthy and snapshot-sent", func(e raft.Event) bool {
		healthy = healthy || (e.Kind == raft.EventPeerHealthy && e.Peer == follower)
		sent = sent || (e.Kind == raft.EventSnapshotSent && e.Peer == follower && e.Err == nil)
		return healthy && sent
	})
	collect(t, obs[follower], "snapshot-installed", func(e raft.Event) bool { return e.Kind == raft.EventSnapshotInstalled })

	// Membership: a new learner, then the follower removed.
	c.addNode("n4")
	obs["n4"] = c.nodes["n4"].Observe(1024)
	if err := c.nodes[lead].AddLearner(readCtx(t), "n4", "n4", true); err != nil {
		t.Fatal(err)
	}
	e = collect(t, obs[lead], "config-changed", func(e raft.Event) bool { return e.Kind == raft.EventConfigChanged })
	if _, ok := e.Config.Server("n4"); !ok || len(e.OldConfig.Servers) != 3 {
		t.Fatalf("config-changed %v: want n4 added to a 3-server configuration", e)
	}
	collect(t, obs[lead], "config-committed", func(e raft.Event) bool { return e.Kind == raft.EventConfigCommitted && e.ConfigIndex > 1 })
	if err := c.nodes[lead].RemoveServer(readCtx(t), follower); err != nil {
		t.Fatal(err)
	}
	collect(t, obs[follower], "removed", func(e raft.Event) bool { return e.Kind == raft.EventRemoved })
	waitFor(t, "the removed node to say so", 5*time.Second, func() bool { return c.nodes[follower].Status().Removed })

	// The stop is the last event, and the channel closes.
	ctx := readCtx(t)
	if err := c.nodes[follower].Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	e = collect(t, obs[follower], "stopped", func(e raft.Event) bool { return e.Kind == raft.EventStopped })
	if !errors.Is(e.Err, raft.ErrShutdown) {
		t.Fatalf("stopped event %v, want ErrShutdown", e)
	}
	if _, ok := <-obs[follower].Events(); ok {
		t.Fatal("observer channel still open after EventStopped")
	}
	// Observing a stopped node yields its stop at once.
	late := c.nodes[follower].Observe(1)
	if e := <-late.Events(); e.Kind != raft.EventStopped {
		t.Fatalf("late observer got %v", e)
	}
}

// An observer that never reads cannot block the node: its events are
// dropped and counted, and the next event it takes says how many it
// missed.
func TestSlowObserverCannotBlockDriver(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	slow := c.nodes[lead].Observe(1)
	fast := c.nodes[lead].Observe(4096)
	for i := 0; i < 10; i++ {
		if err := c.nodes[lead].TransferLeadership(readCtx(t), ""); err != nil && !errors.Is(err, raft.ErrTransferTimeout) {
			t.Fatal(err)
		}
		lead = c.leader()
		c.mustPut("k", "v")
	}
	if slow.Missed() == 0 {
		t.Fatal("the slow observer missed nothing, so nothing was tested")
	}
	<-slow.Events() // the one event that fitted
	// The next event it can take says how many it missed.
	if err := c.nodes[lead].TransferLeadership(readCtx(t), ""); err != nil && !errors.Is(err, raft.ErrTransferTimeout) {
		t.Fatal(err)
	}
	e := collect(t, slow, "an event after the missed ones", func(raft.Event) bool { return true })
	if e.Missed == 0 {
		t.Fatalf("event after dropped ones reports Missed=0: %v", e)
	}
	if fast.Missed() != 0 {
		t.Fatalf("an observer with room missed %d events", fast.Missed())
	}
	slow.Close()
	fast.Close()
	for range slow.Events() {
		// Close ends the channel after what was buffered.
	}
}

// WaitLeader and WaitFor replace the poll loop every caller wrote.
func TestWaitHelpers(t *testing.T) {
	c := newCluster(t, 3)
	id, addr, err := c.nodes["n2"].WaitLeader(readCtx(t))
	if err != nil || id == "" || addr == "" {
		t.Fatalf("WaitLeader: %q %q %v", id, addr, err)
	}
	idx := c.mustPut("k", "v")
	s, err := c.nodes["n3"].WaitFor(readCtx(t), func(s raft.Status) bool { return s.Applied >= idx })
	if err != nil || s.Applied < idx {
		t.Fatalf("WaitFor applied >= %d: %+v %v", idx, s, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.nodes["n3"].WaitFor(ctx, func(raft.Status) bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor that never holds: %v", err)
	}
}

// Status tells the truth: per-peer progress on the leader, copies that a
// caller may modify, and a removed node marked as such.
func TestStatusPeersAndCopies(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	idx := c.mustPut("k", "v")
	s := c.nodes[lead].WaitFor
	st, err := s(readCtx(t), func(s raft.Status) bool {
		if len(s.Peers) != 3 {
			return false
		}
		for _, p := range s.Peers {
			if p.Match < idx {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("leader's Status.Peers never showed every member at %d: %+v", idx, st.Peers)
	}
	st.Configuration.Servers[0].ID = "scribbled"
	st.Peers[0].ID = "scribbled"
	again := c.nodes[lead].Status()
	if again.Configuration.Servers[0].ID == "scribbled" || again.Peers[0].ID == "scribbled" {
		t.Fatal("Status shares its slices between callers")
	}
	for _, id := range c.ids {
		if id != lead && c.nodes[id].Status().Peers != nil {
			t.Fatalf("follower %s reports peer progress", id)
		}
	}
}

// With ShutdownOnRemove a removed node stops with ErrRemoved.
func TestShutdownOnRemove(t *testing.T) {
	c := newCluster(t, 3, func(cfg *raft.Config) { cfg.ShutdownOnRemove = true })
	lead := c.leader()
	var victim raft.NodeID
	for _, id := range c.ids {
		if id != lead {
			victim = id
		}
	}
	if err := c.nodes[lead].RemoveServer(readCtx(t), victim); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.nodes[victim].Done():
	case <-time.After(10 * time.Second):
		st := c.nodes[victim].Status()
		t.Fatalf("removed node kept running with ShutdownOnRemove: %s commit %d config %v at %d removed %v; leader %+v",
			victim, st.Commit, st.Configuration, st.ConfigIndex, st.Removed, c.nodes[lead].Status())
	}
	if err := c.nodes[victim].Err(); !errors.Is(err, raft.ErrRemoved) {
		t.Fatalf("removed node stopped with %v, want ErrRemoved", err)
	}
}
