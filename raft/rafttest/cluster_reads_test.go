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

// slowStore is a kvmodel.Store whose Apply takes a little time.
type slowStore struct{ *kvmodel.Store }

func (s slowStore) Apply(index uint64, cmd kvmodel.Command) (kvmodel.Response, *kvmodel.Error) {
	time.Sleep(500 * time.Microsecond) // a state machine doing real work, not a wait for state
	return s.Store.Apply(index, cmd)
}

// slowWorkload is kvmodel's workload on eight keys (histories per key stay
// small enough to check quickly) with a slowStore: a
// follower's applied index trails the read index it obtains.
func slowWorkload() rafttest.Workload[kvmodel.Command, kvmodel.Response, *kvmodel.Error] {
	w := kvmodel.Workload(8)
	w.NewStateMachine = func() raft.StateMachine[kvmodel.Command, kvmodel.Response, *kvmodel.Error] {
		return slowStore{kvmodel.NewStore()}
	}
	return w
}

// clusterReadOptions is a RunCluster mix for the read path: long
// partitions and isolations without check-quorum (a cut-off leader keeps
// leading for the whole partition) and short client timeouts, so clients
// move between the old and the new leader while both believe they lead.
func clusterReadOptions(seed uint64) rafttest.ClusterOptions {
	o := rafttest.ClusterOptions{Seed: seed, Nodes: 3, Clients: 8, Ops: 500, OpTimeout: 60 * time.Millisecond,
		Faults: &rafttest.ClusterFaults{FaultInterval: 150 * time.Millisecond, Partition: 1, Isolate: 2}}
	o.Configure = func(c *raft.Config) { c.DisableCheckQuorum = true }
	// Plain proposals only: session commands skip Validate, and this mix
	// is about Validate rejections on stale leaders (sessions have their
	// own, sessionSnapshotOptions).
	o.NoSessions = true
	// And clients that follow NotLeaderError rather than forward, so they
	// stay with the leader they found, stale or not.
	o.NoForward = true
	return o
}

// TestClusterReadsControl runs the teeth's mix (cluster_teeth_bugs_test.go)
// without bugs: typed reads and Validate rejections on stale leaders must
// stay linearizable, or the teeth's catches would prove nothing.
func TestClusterReadsControl(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, seed := range seedsToRun(4, 1) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		rep, err := rafttest.RunCluster(ctx, clusterReadOptions(seed), slowWorkload())
		cancel()
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if rep.Reads == 0 || rep.Rejected == 0 {
			t.Fatalf("seed %d exercised no typed read or rejection: %v", seed, rep)
		}
		t.Log(rep)
	}
}
