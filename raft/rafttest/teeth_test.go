package rafttest_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/typedraft/typedraft/raft/rafttest"
	"github.com/typedraft/typedraft/raft/rafttest/kvmodel"
)

// The fault mixes of the teeth (teeth_bugs_test.go, built with -tags
// raftbugs) and their control, which runs in every build.

// churnOptions is a fault mix for finding the consequences of injected
// bugs: small appends (so an old-term entry can be acknowledged on its own),
// no pre-vote or check-quorum (more elections), frequent leader crashes with
// quick restarts, lossy links and slow disks.
func churnOptions(seed uint64) rafttest.Options {
	o := rafttest.Options{Seed: seed, Nodes: 3 + 2*int(seed%2), Clients: 3, Ops: 200, TraceTail: 40}
	o.Core.DisablePreVote = true
	o.Core.DisableCheckQuorum = true
	o.Core.MaxMsgEntries = 1
	o.Core.HeartbeatTicks = 1
	o.Faults = &rafttest.Faults{
		Drop: 0.1, Duplicate: 0.1, MaxDelay: 2, Reorder: 0.1, ReorderTicks: 20,
		Crash: 0.003, CrashTicks: 6, CrashLeader: 0.05,
		Partition: 0.05, PartitionTicks: 20, OneWay: 0.3,
		SlowDisk: 0.3, SlowDiskTicks: 3,
	}
	return o
}

// figure8Options is churnOptions tuned for the Raft paper's Figure 8: three
// nodes, leaders crashing often and frequent partitions, so that entries of
// a crashed leader's term survive on a minority while another term's
// entries compete for the same index.
func figure8Options(seed uint64) rafttest.Options {
	o := churnOptions(seed)
	o.Nodes = 3
	o.Faults.CrashLeader, o.Faults.Partition, o.Faults.Drop = 0.1, 0.1, 0.15
	return o
}

// membershipChurnOptions is churnOptions with frequent membership changes
// (so that decisions are often taken in a joint configuration), leadership
// transfers and more partitions (which split the old and new majorities).
func membershipChurnOptions(seed uint64) rafttest.Options {
	o := churnOptions(seed)
	o.Nodes = 3
	o.Faults.Membership, o.Faults.Transfer, o.Faults.Partition = 0.1, 0.005, 0.1
	return o
}

// defaultOptions is the package's default soak mix, shortened.
func defaultOptions(seed uint64) rafttest.Options {
	o := simOptions(seed)
	o.Ops, o.TraceTail = 300, 40
	return o
}

// tooth is one injected bug and the invariants that must catch it.
type tooth struct {
	name string
	// inject switches the bug on (a core or driver bug in raftbugs
	// builds, or a fault of the harness's simulated driver).
	inject func(rafttest.Options) rafttest.Options
	// skip switches off more direct checks to show that a deeper one (the
	// bug's actual damage) is caught too.
	skip     []string
	want     []string
	maxSeeds int
	options  func(seed uint64) rafttest.Options
}

// runTeeth runs each tooth's seeds until the bug is caught by one of the
// wanted invariants; a catch by another invariant, or none, fails.
func runTeeth(t *testing.T, teeth []tooth) {
	for _, tc := range teeth {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for seed := uint64(1); seed <= uint64(tc.maxSeeds); seed++ {
				o := tc.inject(tc.options(seed))
				o = rafttest.SkipInvariants(o, tc.skip...)
				_, err := rafttest.Run(o, kvmodel.Workload(4))
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
				if !slices.Contains(tc.want, f.Invariant) {
					t.Fatalf("seed %d: caught by %s, want one of %v:\n%v", seed, f.Invariant, tc.want, err)
				}
				t.Logf("caught at seed %d by %s: %s", seed, f.Invariant, f.Detail)
				return
			}
			t.Fatalf("not caught within %d seeds", tc.maxSeeds)
		})
	}
}

// readTeethOptions is a mix for stale reads: three nodes with pre-vote and
// check-quorum (so leases are used), many clients and frequent partitions
// that cut the leader off while the others elect a new one.
func readTeethOptions(seed uint64) rafttest.Options {
	o := rafttest.Options{Seed: seed, Nodes: 3, Clients: 12, Ops: 600, TraceTail: 40, ReportLoss: true}
	o.Core.HeartbeatTicks = 1
	o.Faults = &rafttest.Faults{
		Drop: 0.01, MaxDelay: 1, Partition: 0.05, PartitionTicks: 40, OneWay: 0.2,
		Crash: 0.0002, CrashTicks: 10, SlowDisk: 0.05, SlowDiskTicks: 2, ClockDrift: 0.04,
	}
	return o
}

// pauseOptions pauses nodes often, so that leaders serving lease reads are
// frozen past their lease while another leader takes over.
func pauseOptions(seed uint64) rafttest.Options {
	o := readTeethOptions(seed)
	o.Faults.Partition = 0.005
	o.Faults.Pause, o.Faults.PauseTicks = 0.05, 20
	return o
}

// leaseOptions adds leadership transfers (so that slow and fast clocks
// both lead) and more partitions to readTeethOptions, with clocks drifting
// within the bound the lease assumes: (1+d)/(1-d) <= 1.1 for d = 0.045.
func leaseOptions(seed uint64) rafttest.Options {
	o := readTeethOptions(seed)
	o.Ops = 1500
	o.Faults.Partition, o.Faults.Transfer, o.Faults.ClockDrift = 0.1, 0.03, 0.045
	o.Faults.PartialPartition = 0.5
	return o
}

// driftOptions is leaseOptions with clocks far beyond the bound: a lease
// measured on a slow leader's clock outlives the vote refusal of fast
// followers.
func driftOptions(seed uint64) rafttest.Options {
	o := leaseOptions(seed)
	o.Faults.ClockDrift = 0.8
	return o
}

// TestHarnessTeeth shows the simulator catches bugs of the driver it plays
// (no build tag needed): serving a confirmed read before its index is
// applied, trusting a lease across a pause the driver did not measure, and
// running clocks whose drift exceeds the bound the lease assumes.
func TestHarnessTeeth(t *testing.T) {
	id := func(o rafttest.Options) rafttest.Options { return o }
	runTeeth(t, []tooth{
		{name: "ReadSkipsApply", inject: rafttest.WithReadSkipsApply, options: defaultOptions, maxSeeds: 10,
			want: []string{rafttest.InvariantStaleRead}},
		{name: "LeaseAcrossUnmeasuredPause", inject: rafttest.WithoutClockSync, options: pauseOptions, maxSeeds: 40,
			want: []string{rafttest.InvariantStaleRead}},
		{name: "ClockDriftBeyondBound", inject: id, options: driftOptions, maxSeeds: 60,
			want: []string{rafttest.InvariantStaleRead}},
	})
}

// TestTeethControl runs the teeth's fault mixes with no bug injected: they
// must pass, or a tooth's catch would prove nothing about its bug. (This
// control found a real livelock: without pre-vote, stale candidates kept
// restarting the election timers of the nodes that could win.)
func TestTeethControl(t *testing.T) {
	seeds := uint64(20)
	if testing.Short() {
		seeds = 3
	}
	mixes := map[string]func(uint64) rafttest.Options{
		"churn": churnOptions, "figure8": figure8Options, "membership-churn": membershipChurnOptions, "default": defaultOptions,
		"reads": readTeethOptions, "pause": pauseOptions, "lease": leaseOptions,
	}
	for name, options := range mixes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for seed := uint64(1); seed <= seeds; seed++ {
				if _, err := rafttest.Run(options(seed), kvmodel.Workload(4)); err != nil {
					t.Fatalf("seed %d without any injected bug: %v", seed, err)
				}
			}
		})
	}
}
