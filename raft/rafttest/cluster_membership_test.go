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

// clusterMembershipOptions: the default faults plus the membership fault,
// with two spare nodes; odd seeds start with 5 voters, even ones with 3,
// and the seed chooses how often the operator acts.
func clusterMembershipOptions(seed uint64, ops int) rafttest.ClusterOptions {
	f := rafttest.DefaultClusterFaults()
	f.MembershipInterval = []time.Duration{40, 15, 80}[seed%3] * time.Millisecond
	o := rafttest.ClusterOptions{Seed: seed, Nodes: 3 + 2*int(seed%2), Ops: ops, Faults: f}
	// Snapshot often, so that learners often catch up through snapshots,
	// and let some seeds refuse promotions more readily.
	threshold, trailing := []uint64{20, 50, 200}[seed%3], []uint64{2, 10, 50}[seed%3]
	lag := []uint64{0, 10, 50}[seed/3%3]
	o.Configure = func(c *raft.Config) {
		c.SnapshotThreshold, c.TrailingLogs = threshold, trailing
		if lag > 0 {
			c.MaxCatchUpLag = lag
		}
	}
	return o
}

// TestClusterMembership runs the driver mode with the membership fault:
// the leader is asked, through the typed API, to add spare nodes as
// learners, promote them, remove and replace voters (the leader among
// them) and transfer leadership, while the other faults run. Every run
// must pass every check (acknowledged writes on every member of the final
// configuration, one leader in a non-joint configuration at the end,
// linearizability), and over the seeds every kind of change must succeed
// and the voters reach both 3 and 5.
func TestClusterMembership(t *testing.T) {
	defer goleak.VerifyNone(t)
	seeds := seedsToRun(4, 1)
	ops := 1500
	if testing.Short() {
		ops = 300
	}
	if *flagOps != 1000 {
		ops = *flagOps
	}
	var sum rafttest.ClusterMembership
	for _, seed := range seeds {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		rep, err := rafttest.RunCluster(ctx, clusterMembershipOptions(seed, ops), kvmodel.Workload(4))
		cancel()
		var f *rafttest.Failure
		switch {
		case errors.As(err, &f):
			t.Errorf("%v\nreplay (same fault mix, not bit-for-bit): %s", err, replay(t.Name(), seed))
			continue
		case err != nil:
			t.Fatalf("seed %d: %v", seed, err)
		}
		t.Logf("%v", rep)
		m := rep.Membership
		changes := m.AddLearner + m.Promote + m.RemoveVoter + m.RemoveLeader + m.Demote + m.Replace + m.RemoveLearner
		if rep.Acked == 0 || changes == 0 {
			t.Errorf("seed %d: a run without acknowledged operations or membership changes proves nothing: %v", seed, rep)
		}
		if m.FinalVoters < 3 || m.FinalVoters > 5 {
			t.Errorf("seed %d settled with %d voters, want 3..5", seed, m.FinalVoters)
		}
		sum.AddLearner += m.AddLearner
		sum.Promote += m.Promote
		sum.RemoveVoter += m.RemoveVoter
		sum.RemoveLeader += m.RemoveLeader
		sum.Demote += m.Demote
		sum.Replace += m.Replace
		sum.RemoveLearner += m.RemoveLearner
		sum.Transfer += m.Transfer
		sum.Retired += m.Retired
		sum.Rejoined += m.Rejoined
		sum.Retried += m.Retried
		if sum.MinVoters == 0 || m.MinVoters < sum.MinVoters {
			sum.MinVoters = m.MinVoters
		}
		sum.MaxVoters = max(sum.MaxVoters, m.MaxVoters)
	}
	if t.Failed() || len(seeds) == 1 {
		return
	}
	t.Logf("over %d seeds: %+v", len(seeds), sum)
	for _, k := range []struct {
		name string
		n    int
	}{{"add-learner", sum.AddLearner}, {"promote", sum.Promote}, {"remove-voter", sum.RemoveVoter},
		{"remove-leader", sum.RemoveLeader}, {"replace", sum.Replace}, {"transfer", sum.Transfer},
		{"retire", sum.Retired}, {"rejoin", sum.Rejoined}} {
		if k.n == 0 {
			t.Errorf("no seed made a successful %s", k.name)
		}
	}
	if sum.MinVoters != 3 || sum.MaxVoters != 5 {
		t.Errorf("committed configurations had %d..%d voters over the seeds, want both 3 and 5", sum.MinVoters, sum.MaxVoters)
	}
}
