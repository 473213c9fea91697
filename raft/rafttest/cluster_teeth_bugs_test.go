//go:build raftbugs

package rafttest_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/raft/internal/bugs"
	"github.com/typedraft/typedraft/raft/rafttest"
	"github.com/typedraft/typedraft/raft/rafttest/kvmodel"
)

// TestClusterTeeth switches on bugs of the real driver and checks that the
// driver-mode simulation (RunCluster, typed API) catches them: a Validate
// rejection answered from the leader's state without confirming leadership
// (a stale leader's CAS conflict), a confirmed read run before the
// state machine applied its read index, and a session table left out of
// snapshots.
func TestClusterTeeth(t *testing.T) {
	defer goleak.VerifyNone(t)
	teeth := []struct {
		name     string
		bug      bugs.Set
		maxSeeds int
	}{
		{"RejectWithoutConfirm", bugs.Set{RejectWithoutConfirm: true}, 20},
		{"ReadSkipsApply", bugs.Set{ReadSkipsApply: true}, 20},
	}
	for _, tc := range teeth {
		t.Run(tc.name, func(t *testing.T) {
			catchWithin(t, tc.maxSeeds, tc.bug, clusterReadOptions, slowWorkload())
		})
	}
	// A session table left out of snapshots: a node restored from one
	// (after a crash, or installed from the leader) no longer knows the
	// sessions, so it refuses or repeats their commands unlike the others.
	t.Run("SessionsNotInSnapshot", func(t *testing.T) {
		catchWithin(t, 20, bugs.Set{SessionsNotInSnapshot: true}, sessionSnapshotOptions, kvmodel.Workload(4))
	})
	// Batched answers to forwarded proposals handed to the wrong callers:
	// two clients proposing through one follower get each other's results.
	t.Run("ForwardAnswersSwapped", func(t *testing.T) {
		catchWithin(t, 20, bugs.Set{ForwardAnswersSwapped: true}, forwardBatchOptions, kvmodel.Workload(4))
	})
}

// catchWithin runs RunCluster with bug injected on seeds 1..maxSeeds
// until the linearizability check catches it, and fails if none does.
func catchWithin(t *testing.T, maxSeeds int, bug bugs.Set, opts func(uint64) rafttest.ClusterOptions, w rafttest.Workload[kvmodel.Command, kvmodel.Response, *kvmodel.Error]) {
	t.Helper()
	for seed := uint64(1); seed <= uint64(maxSeeds); seed++ {
		o := opts(seed)
		configure := o.Configure
		o.Configure = func(c *raft.Config) {
			if configure != nil {
				configure(c)
			}
			*c = bugs.Inject(*c, bug).(raft.Config)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		_, err := rafttest.RunCluster(ctx, o, w)
		cancel()
		if err == nil {
			continue
		}
		var f *rafttest.Failure
		if !errors.As(err, &f) {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if f.Invariant == rafttest.InvariantLinearizability && strings.Contains(f.Detail, "did not finish") {
			// A checker timeout proves nothing either way.
			t.Logf("seed %d: checker timed out; not a catch", seed)
			continue
		}
		if !slices.Contains([]string{rafttest.InvariantLinearizability}, f.Invariant) {
			t.Fatalf("seed %d: caught by %s, want Linearizability:\n%v", seed, f.Invariant, err)
		}
		t.Logf("caught at seed %d by %s: %.300s", seed, f.Invariant, f.Detail)
		return
	}
	t.Fatalf("not caught within %d seeds", maxSeeds)
}
