package rafttest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/raft/rafttest"
	"github.com/typedraft/typedraft/raft/rafttest/kvmodel"
)

// TestCluster runs the key-value workload on real raft.Raft nodes over
// transport/inmem with faults injected in real time, and checks the typed
// futures' outcomes for linearizability.
func TestCluster(t *testing.T) {
	defer goleak.VerifyNone(t)
	seeds := seedsToRun(4, 1)
	ops := 1000
	if testing.Short() {
		ops = 200
	}
	for _, seed := range seeds {
		o := rafttest.ClusterOptions{Seed: seed, Nodes: 3 + 2*int(seed%2), Ops: ops}
		// Snapshot often, keeping few entries, so that lagging and restarted
		// nodes catch up through snapshots.
		threshold, trailing := []uint64{20, 50, 200}[seed%3], []uint64{2, 10, 50}[seed%3]
		o.Configure = func(c *raft.Config) { c.SnapshotThreshold, c.TrailingLogs = threshold, trailing }
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		rep, err := rafttest.RunCluster(ctx, o, kvmodel.Workload(4))
		cancel()
		var f *rafttest.Failure
		switch {
		case errors.As(err, &f):
			t.Errorf("%v\nreplay (same fault mix, not bit-for-bit): %s", err, replay(t.Name(), seed))
		case err != nil:
			t.Fatalf("seed %d: %v", seed, err)
		default:
			t.Logf("%v", rep)
			if rep.Acked == 0 || rep.Faults == 0 {
				t.Errorf("seed %d: a run without acknowledged operations or faults proves nothing: %v", seed, rep)
			}
		}
	}
}

// TestClusterCatchesWrongStateMachine shows the driver mode's history check
// has teeth: a state machine that acknowledges some writes without storing
// them is caught.
func TestClusterCatchesWrongStateMachine(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := kvmodel.Workload(2)
	w.NewStateMachine = func() raft.StateMachine[kvmodel.Command, kvmodel.Response, *kvmodel.Error] {
		return forgetfulStore{kvmodel.NewStore()}
	}
	o := rafttest.ClusterOptions{Seed: 1, Ops: 200, Faults: &rafttest.ClusterFaults{}}
	_, err := rafttest.RunCluster(context.Background(), o, w)
	var f *rafttest.Failure
	if !errors.As(err, &f) || f.Invariant != rafttest.InvariantLinearizability {
		t.Fatalf("want a Linearizability failure, got %v", err)
	}
}
