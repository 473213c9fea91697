package rafttest_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/raft/internal/bugs"
	"github.com/typedraft/typedraft/raft/rafttest"
	"github.com/typedraft/typedraft/raft/rafttest/kvmodel"
)

// churnOptions is a fault mix for finding the consequences of injected
// bugs: small appends (so an old-term entry can be acknowledged on its own),
// no pre-vote or check-quorum (more elections), frequent leader crashes with
// quick restarts, lossy links and slow disks.
func churnOptions(seed uint64) rafttest.Options {
	o := rafttest.Options{Seed: seed, Nodes: 3 + 2*int(seed%2), Clients: 3, Ops: 200, TraceTail: 40}
	o.Core.DisablePreVote = true
	o.Core.DisableCheckQuorum = true
	o.Core.MaxMsgEntries = 1
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
	bug  bugs.Set
	// skip switches off more direct checks to show that a deeper one (the
	// bug's actual damage) is caught too.
	skip     []string
	want     []string
	maxSeeds int
	options  func(seed uint64) rafttest.Options
}

var deepDamage = []string{
	rafttest.InvariantLeaderCompleteness, rafttest.InvariantCommittedStable, rafttest.InvariantStateMachineSafety,
	rafttest.InvariantLogMatching, rafttest.InvariantAckedWritesDurable, rafttest.InvariantLinearizability,
}

// TestTeeth switches on each known Raft bug the core can inject and checks
// that the simulator catches it within a bounded number of seeds, naming an
// expected invariant: first with every check on, then with the direct check
// off, to show the bug's actual damage (lost or changed committed entries,
// two votes in a term) is caught as well.
func TestTeeth(t *testing.T) {
	teeth := []tooth{
		{name: "CommitOldTermByCount", bug: bugs.Set{CommitOldTermByCount: true}, options: churnOptions, maxSeeds: 5,
			want: []string{rafttest.InvariantCurrentTermCommit}},
		{name: "VoteNotPersisted", bug: bugs.Set{VoteNotPersisted: true}, options: defaultOptions, maxSeeds: 5,
			want: []string{rafttest.InvariantDurableBeforeSend}},
		{name: "AckBeforeDurable", bug: bugs.Set{AckBeforeDurable: true}, options: defaultOptions, maxSeeds: 5,
			want: []string{rafttest.InvariantDurableBeforeSend}},
		{name: "NoTruncate", bug: bugs.Set{NoTruncate: true}, options: defaultOptions, maxSeeds: 10,
			want: append([]string{rafttest.InvariantCommitDurable}, deepDamage...)},

		{name: "AckBeforeDurable/commit-not-durable", bug: bugs.Set{AckBeforeDurable: true}, options: defaultOptions, maxSeeds: 10,
			skip: []string{rafttest.InvariantDurableBeforeSend},
			want: []string{rafttest.InvariantCommitDurable}},
		{name: "AckBeforeDurable/committed-entry-lost", bug: bugs.Set{AckBeforeDurable: true}, options: churnOptions, maxSeeds: 30,
			skip: []string{rafttest.InvariantDurableBeforeSend, rafttest.InvariantCommitDurable},
			want: deepDamage},
		{name: "CommitOldTermByCount/committed-entry-overwritten", bug: bugs.Set{CommitOldTermByCount: true}, options: figure8Options, maxSeeds: 150,
			skip: []string{rafttest.InvariantCurrentTermCommit, rafttest.InvariantCommitDurable},
			want: deepDamage},
		{name: "JointNewMajorityOnly", bug: bugs.Set{JointNewMajorityOnly: true}, options: membershipChurnOptions, maxSeeds: 40,
			want: []string{rafttest.InvariantCommitDurable}},
		{name: "JointNewMajorityOnly/damage", bug: bugs.Set{JointNewMajorityOnly: true}, options: membershipChurnOptions, maxSeeds: 150,
			skip: []string{rafttest.InvariantCommitDurable},
			want: append([]string{rafttest.InvariantElectionSafety}, deepDamage...)},
		{name: "VoteNotPersisted/double-vote", bug: bugs.Set{VoteNotPersisted: true}, options: churnOptions, maxSeeds: 30,
			skip: []string{rafttest.InvariantDurableBeforeSend},
			want: []string{rafttest.InvariantVoteOncePerTerm, rafttest.InvariantElectionSafety}},
	}
	for _, tc := range teeth {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for seed := uint64(1); seed <= uint64(tc.maxSeeds); seed++ {
				o := tc.options(seed)
				o.Core = bugs.Inject(o.Core, tc.bug).(raft.CoreConfig)
				o = rafttest.SkipInvariants(o, tc.skip...)
				_, err := rafttest.Run(o, kvmodel.Workload(4))
				if err == nil {
					continue
				}
				var f *rafttest.Failure
				if !errors.As(err, &f) {
					t.Fatalf("seed %d: %v", seed, err)
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
