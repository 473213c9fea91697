package raft_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

func smallSnapshots(threshold, trailing uint64) func(*raft.Config) {
	return func(c *raft.Config) {
		c.SnapshotThreshold = threshold
		c.TrailingLogs = trailing
	}
}

// A follower partitioned while the leader commits and compacts far past its
// log catches up through a snapshot and then from the log.
func TestSnapshotCatchUpAfterPartition(t *testing.T) {
	c := newCluster(t, 3, smallSnapshots(20, 5))
	lead := c.leader()
	var lag raft.NodeID
	for _, id := range c.ids {
		if id != lead {
			lag = id
			break
		}
	}
	c.net.Isolate(lag)
	var last uint64
	for i := 0; i < 200; i++ {
		last = c.mustPut(fmt.Sprintf("k%d", i%50), fmt.Sprint(i))
	}
	lead = c.leader()
	waitFor(t, "leader to compact", 5*time.Second, func() bool {
		first, _ := c.stores[lead].FirstIndex()
		return first > 100
	})
	c.net.Heal()
	c.waitApplied(last, lag)
	if c.sms[lag].restores == 0 {
		t.Fatal("lagging follower caught up without installing a snapshot")
	}
	for i := 150; i < 200; i++ {
		k := fmt.Sprintf("k%d", i%50)
		want, _ := c.sms[lead].get(k)
		if got, _ := c.sms[lag].get(k); got != want {
			t.Fatalf("%s on %s = %q, leader has %q", k, lag, got, want)
		}
	}
	// It keeps replicating from the log afterwards.
	idx := c.mustPut("after", "snapshot")
	c.waitApplied(idx, lag)
}

// A restarted node rebuilds its state from its newest snapshot plus the log
// after it.
func TestSnapshotRestart(t *testing.T) {
	c := newCluster(t, 3, smallSnapshots(20, 5))
	var last uint64
	for i := 0; i < 100; i++ {
		last = c.mustPut(fmt.Sprintf("k%d", i), fmt.Sprint(i))
	}
	c.waitApplied(last)
	id := c.ids[2]
	waitFor(t, "a snapshot on "+string(id), 5*time.Second, func() bool {
		_, err := c.stores[id].LatestSnapshot()
		return err == nil
	})
	c.restart(id)
	<-c.nodes[id].Restored() // the startup restore runs after New returns
	if c.sms[id].restores != 1 {
		t.Fatalf("restarted node restored %d snapshots at start, want 1", c.sms[id].restores)
	}
	c.waitApplied(last, id)
	for i := 0; i < 100; i++ {
		if v, _ := c.sms[id].get(fmt.Sprintf("k%d", i)); v != fmt.Sprint(i) {
			t.Fatalf("k%d = %q after restart, want %d", i, v, i)
		}
	}
}

func TestManualSnapshot(t *testing.T) {
	c := newCluster(t, 1, func(cfg *raft.Config) { cfg.DisableAutoSnapshot = true })
	idx := c.mustPut("a", "1")
	c.waitApplied(idx)
	ctx := context.Background()
	meta, err := c.nodes["n1"].Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Index != idx || meta.Term == 0 || len(meta.Configuration.Servers) != 1 || meta.Size == 0 {
		t.Fatalf("snapshot meta %+v, want index %d with term, configuration and size", meta, idx)
	}
	stored, err := c.stores["n1"].LatestSnapshot()
	if err != nil || stored.Index != idx {
		t.Fatalf("store holds %+v %v", stored, err)
	}
	if _, err := c.nodes["n1"].Snapshot(ctx); !errors.Is(err, raft.ErrNothingToSnapshot) {
		t.Fatalf("second snapshot without new entries: %v, want ErrNothingToSnapshot", err)
	}
}

// The log stays bounded by the trailing length plus one snapshot interval.
func TestSnapshotBoundsLog(t *testing.T) {
	const threshold, trailing = 50, 10
	c := newCluster(t, 3, smallSnapshots(threshold, trailing))
	var last uint64
	for i := 0; i < 600; i++ {
		last = c.mustPut("k", fmt.Sprint(i))
	}
	c.waitApplied(last)
	for _, id := range c.ids {
		waitFor(t, "log of "+string(id)+" to be compacted", 5*time.Second, func() bool {
			first, _ := c.stores[id].FirstIndex()
			lastIdx, _ := c.stores[id].LastIndex()
			return lastIdx-first+1 <= threshold+trailing+2
		})
	}
}

// TrailingLogs: raft.Zero keeps no entry behind a snapshot (a plain 0 means
// the default, 1024).
func TestTrailingLogsZero(t *testing.T) {
	c := newCluster(t, 1, func(cfg *raft.Config) { cfg.TrailingLogs = raft.Zero; cfg.DisableAutoSnapshot = true })
	lead := c.leader()
	var last uint64
	for i := 0; i < 20; i++ {
		last = c.mustPut(fmt.Sprintf("k%d", i), "v")
	}
	c.waitApplied(last)
	meta, err := c.nodes[lead].Snapshot(readCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the log compacted to the snapshot", 5*time.Second, func() bool {
		first, err := c.stores[lead].FirstIndex()
		return err == nil && first == meta.Index+1
	})
	bad := testConfig("n9")
	bad.MaxBatch = -1
	if err := bad.Validate(); !errors.Is(err, raft.ErrInvalidConfig) {
		t.Fatalf("negative MaxBatch: %v", err)
	}
}

// Snapshot and Restore know where they are: the index, term and
// configuration of the last entry the snapshot covers, the same on the
// node that took it and on the one that installed it.
func TestSnapshotterGetsMeta(t *testing.T) {
	c := newCluster(t, 3, smallSnapshots(10, 2))
	lead := c.leader()
	lag := c.followerOf(lead)
	c.net.Isolate(lag)
	for i := 0; i < 40; i++ {
		c.mustPut("k", fmt.Sprint(i))
	}
	c.net.Heal()
	c.waitApplied(c.nodes[lead].Status().Commit)
	snap, err := c.stores[lead].LatestSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	c.sms[lead].mu.Lock()
	taken := slices.Clone(c.sms[lead].snapMetas)
	c.sms[lead].mu.Unlock()
	if len(taken) == 0 {
		t.Fatal("the leader's state machine was never asked for a snapshot")
	}
	for _, m := range taken {
		if m.Index == 0 || m.Term == 0 || len(m.Configuration.Servers) != 3 || m.ConfigIndex == 0 {
			t.Fatalf("Snapshot got %+v", m)
		}
	}
	if last := taken[len(taken)-1]; last.Index != snap.Index || last.Term != snap.Term {
		t.Fatalf("last Snapshot meta %+v, stored snapshot %+v", last, snap)
	}
	c.sms[lag].mu.Lock()
	restored := slices.Clone(c.sms[lag].restoreMetas)
	c.sms[lag].mu.Unlock()
	if len(restored) == 0 {
		t.Fatalf("%s caught up without a snapshot", lag)
	}
	for _, m := range restored {
		term, err := c.stores[lead].Term(m.Index)
		if err != nil && !errors.Is(err, raft.ErrCompacted) {
			t.Fatal(err)
		}
		if (err == nil && term != m.Term) || m.Index == 0 || len(m.Configuration.Servers) != 3 {
			t.Fatalf("Restore got %+v (leader's term at %d: %d)", m, m.Index, term)
		}
	}
}
