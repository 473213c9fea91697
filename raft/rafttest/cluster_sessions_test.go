package rafttest_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/raft/rafttest"
	"github.com/typedraft/typedraft/raft/rafttest/kvmodel"
)

// sessionSnapshotOptions is a RunCluster mix for sessions: snapshots every
// few entries with almost no log kept behind them, and crashes, so nodes
// restart from snapshots and catch up through installed ones while
// clients retry in their sessions.
func sessionSnapshotOptions(seed uint64) rafttest.ClusterOptions {
	o := rafttest.ClusterOptions{Seed: seed, Nodes: 3, Clients: 6, Ops: 400, OpTimeout: 80 * time.Millisecond}
	// A fault every 10 ms, crashes weighing three times the default: a
	// run lasts 0.2–1.5 s, and every seed must crash a node while a
	// client is retrying in its session.
	o.Faults = rafttest.DefaultClusterFaults()
	o.Faults.Crash = 3
	o.Faults.FaultInterval = 10 * time.Millisecond
	o.Configure = func(c *raft.Config) { c.SnapshotThreshold, c.TrailingLogs = 8, 1 }
	return o
}

// TestClusterSessionsControl runs the session tooth's mix without the bug:
// sessioned retries (through forwarding followers too) across crashes,
// restarts from snapshots and installed snapshots must stay linearizable,
// each sessioned operation entering the history once.
func TestClusterSessionsControl(t *testing.T) {
	defer goleak.VerifyNone(t)
	retries, crashes := 0, 0
	for _, seed := range seedsToRun(3, 1) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		rep, err := rafttest.RunCluster(ctx, sessionSnapshotOptions(seed), kvmodel.Workload(4))
		cancel()
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if rep.SessionOps == 0 {
			t.Fatalf("seed %d ran no sessioned operation: %v", seed, rep)
		}
		retries += rep.SessionRetries
		crashes += rep.Crashes
		t.Log(rep)
	}
	// Real goroutines and time: a short run may happen to need no retry,
	// but the seeds together must exercise them.
	if retries == 0 || crashes == 0 {
		t.Fatalf("the seeds exercised %d sessioned retries and %d crashes, want both", retries, crashes)
	}
}
