package benchmarks

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// gate is a channel closed once, by open or by the test's cleanup.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.open) // never leave a transport goroutine blocked
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// waitChan waits for ch or fails the test after timeout.
func waitChan(t *testing.T, what string, ch <-chan struct{}, timeout time.Duration) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// TestSnapshotStaleSendResultNoResend: the leader streams snapshot S1 to a
// rejoining follower and, meanwhile, takes snapshot S2 and compacts past
// S1. The follower installs S1 and answers before the leader's
// SendSnapshot of S1 has returned, so the leader moves on and streams S2.
// When the (now stale) outcome of the S1 stream arrives, the leader must not
// forget that S2 is in flight: it must not start a third stream, of S2
// again, while the second one is still running.
//
// This is the interleaving seen in TestSnapshotCatchUpScale (3 streams, 2
// restores) made deterministic by holding the leader's streams at chosen
// points.
func TestSnapshotStaleSendResultNoResend(t *testing.T) {
	c := startScale(t, scaleOpts{nodes: 3, store: "memory", transport: "inmem", configure: func(cfg *raft.Config) {
		cfg.DisableAutoSnapshot = true
		cfg.TrailingLogs = 50
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lead := c.leader.Load()
	var lag raft.NodeID
	for _, id := range c.ids {
		if id != lead.ID() {
			lag = id
			break
		}
	}
	c.part.isolate(lag)
	key := func(i uint64) string { return fmt.Sprintf("key-%04d", i) }
	c.load(ctx, 500, 16, key)
	s1, err := lead.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Hold stream 1 before it starts and after it ends; hold every later
	// stream before it starts.
	holdStart1, holdEnd1, holdLater := newGate(t), newGate(t), newGate(t)
	started1, later := make(chan struct{}), make(chan struct{}, 8)
	hook := func(ev snapEvent) {
		if ev.to != lag {
			return
		}
		switch {
		case !ev.end && ev.seq == 1:
			close(started1)
			<-holdStart1.ch
		case ev.end && ev.seq == 1:
			<-holdEnd1.ch
		case !ev.end:
			select {
			case later <- struct{}{}:
			default:
			}
			<-holdLater.ch
		}
	}
	tr := c.trans[lead.ID()]
	tr.hook.Store(&hook)
	c.part.heal()
	waitChan(t, "the leader to start streaming S1", started1, 10*time.Second)

	// While S1 is on its way, the leader moves on and compacts past it.
	c.load(ctx, 500, 16, func(i uint64) string { return key(500 + i) })
	s2, err := lead.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Snapshot returns once S2 is stored; the driver compacts behind it
	// right after.
	waitUntil(t, "the leader to compact past S1", 10*time.Second, func() bool {
		first, err := c.stores[lead.ID()].FirstIndex()
		return err == nil && first > s1.Index+1
	})
	holdStart1.open()
	waitUntil(t, "the follower to install S1", 10*time.Second, func() bool {
		return c.fsms[lag].restores.Load() >= 1
	})
	// The follower's answer makes the leader stream S2 (stream 2), while
	// the S1 stream's outcome is still held.
	waitChan(t, "the leader to start streaming S2", later, 10*time.Second)
	holdEnd1.open()
	// Give the stale outcome time to be processed and several heartbeat
	// rounds to pass: a leader that forgot S2 is in flight sends it again
	// on the next heartbeat response.
	base := tr.heartbeatResponses(lag)
	waitUntil(t, "5 heartbeat rounds with the follower", 10*time.Second, func() bool {
		return tr.heartbeatResponses(lag) >= base+5
	})
	started, _, _ := tr.snapshotSends(lag)
	holdLater.open()
	waitUntil(t, "the follower to catch up", 10*time.Second, func() bool {
		return c.nodes[lag].Status().Applied >= lead.Status().Commit
	})
	if started != 2 {
		t.Errorf("leader started %d snapshot streams to %s (S1 = %d, S2 = %d), want 2: "+
			"a third one means the stale outcome of the S1 stream reset the follower's progress while S2 was in flight",
			started, lag, s1.Index, s2.Index)
	}
	if n := c.fsms[lag].restores.Load(); n != 2 {
		t.Errorf("follower restored %d snapshots, want 2 (S1, then S2)", n)
	}
	if d := c.fsms[lead.ID()].diff(c.fsms[lag]); d != "" {
		t.Errorf("follower's state differs from the leader's: %s", d)
	}
}
