package cluster

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/typedraft/typedraft/benchmarks/workload"
	"github.com/typedraft/typedraft/raft"
)

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{Nodes: 0, Store: "memory", Transport: "inmem"},
		{Nodes: MaxNodes + 1, Store: "memory", Transport: "inmem"},
		{Nodes: 3, Store: "disk", Transport: "inmem"},
		{Nodes: 3, Store: "memory", Transport: "udp"},
		{Nodes: 3, Store: "pebble", Transport: "tcp"}, // no Dir
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: no error", o)
		}
		if _, err := Start(context.Background(), o); err == nil {
			t.Errorf("Start(%+v): no error", o)
		}
	}
}

// Every store × transport combination elects a leader, commits a short
// closed-loop workload, and replicates it to every node.
func TestEveryCombinationReplicates(t *testing.T) {
	for _, store := range Stores {
		for _, transport := range Transports {
			t.Run(store+"/"+transport, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				c, err := Start(ctx, Options{Nodes: 3, Store: store, Transport: transport, Dir: t.TempDir(),
					Configure: func(cfg *raft.Config) { cfg.TickInterval = 10 * time.Millisecond }})
				if err != nil {
					t.Fatal(err)
				}
				defer func() {
					if err := c.Close(); err != nil {
						t.Error(err)
					}
				}()
				m, err := workload.Run(ctx, workload.Spec{Clients: 4, Payload: 64, Duration: 150 * time.Millisecond}, c.Op())
				if err != nil {
					t.Fatal(err)
				}
				if m.Ops == 0 || m.Errors != 0 {
					t.Fatalf("ops %d errors %d (%v)", m.Ops, m.Errors, m.FirstError)
				}
				commit := c.Leader().Status().Commit
				for _, n := range c.Nodes {
					for n.Status().Applied < commit {
						select {
						case <-ctx.Done():
							t.Fatalf("%s applied %d < %d", n.ID(), n.Status().Applied, commit)
						case <-time.After(2 * time.Millisecond):
						}
					}
				}
			})
		}
	}
}

// Apply finds the new leader after the old one stops leading.
func TestApplyFollowsLeaderChange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, Options{Nodes: 3, Store: "memory", Transport: "inmem",
		Configure: func(cfg *raft.Config) { cfg.TickInterval = 5 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	old := c.Leader()
	var target raft.NodeID
	for _, n := range c.Nodes {
		if n != old {
			target = n.ID()
			break
		}
	}
	if err := old.TransferLeadership(ctx, target); err != nil {
		t.Fatal(err)
	}
	// The first Apply may fail against the old leader; the next ones go to
	// the new one.
	var lastErr error
	for range 100 {
		if lastErr = c.Apply(ctx, []byte("12345678")); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("Apply never succeeded after the transfer: %v", lastErr)
	}
	if c.Leader().ID() != target {
		t.Fatalf("Apply went to %s, want %s", c.Leader().ID(), target)
	}
}

func TestFSMSnapshotRoundTrip(t *testing.T) {
	var f FSM
	f.Apply(1, []byte("abc"))
	f.Apply(2, []byte("de"))
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	f.Apply(3, []byte("later"))
	var buf bytes.Buffer
	if err := s.Write(&buf); err != nil {
		t.Fatal(err)
	}
	s.Release()
	var g FSM
	if err := g.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if g.count != 2 || g.bytes != 5 {
		t.Fatalf("restored %d/%d, want 2/5", g.count, g.bytes)
	}
	if err := g.Restore(strings.NewReader("short")); err == nil {
		t.Fatal("restore of a short snapshot: no error")
	}
	if (&Error{Reason: "x"}).Error() == "" {
		t.Fatal("empty error text")
	}
}
