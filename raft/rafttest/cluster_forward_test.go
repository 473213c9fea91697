package rafttest_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/typedraft/typedraft/raft/rafttest"
	"github.com/typedraft/typedraft/raft/rafttest/kvmodel"
)

// forwardBatchOptions is a RunCluster mix for forwarding: many clients and
// light faults, so that several proposals go through one follower at a
// time and the leader answers them in batches.
func forwardBatchOptions(seed uint64) rafttest.ClusterOptions {
	o := rafttest.ClusterOptions{Seed: seed, Nodes: 3, Clients: 12, Ops: 600}
	o.Faults = &rafttest.ClusterFaults{FaultInterval: 100 * time.Millisecond, Lossy: 1, Crash: 0.5, MaxDrop: 0.05, MaxDelay: time.Millisecond}
	return o
}

// TestClusterForwardControl runs the forwarding tooth's mix without the
// bug: forwarded proposals answered in batches stay linearizable.
func TestClusterForwardControl(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, seed := range seedsToRun(2, 1) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		rep, err := rafttest.RunCluster(ctx, forwardBatchOptions(seed), kvmodel.Workload(4))
		cancel()
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if rep.Acked == 0 {
			t.Fatalf("seed %d acknowledged nothing: %v", seed, rep)
		}
		t.Log(rep)
	}
}
