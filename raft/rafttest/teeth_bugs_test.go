//go:build raftbugs

package rafttest_test

import (
	"testing"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/raft/internal/bugs"
	"github.com/typedraft/typedraft/raft/rafttest"
)

// injectBug returns an inject function that switches bug on in the core.
func injectBug(bug bugs.Set) func(rafttest.Options) rafttest.Options {
	return func(o rafttest.Options) rafttest.Options {
		o.Core = bugs.Inject(o.Core, bug).(raft.CoreConfig)
		return o
	}
}

// deepDamage lists the invariants that show a bug's actual damage.
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
		{name: "CommitOldTermByCount", inject: injectBug(bugs.Set{CommitOldTermByCount: true}), options: churnOptions, maxSeeds: 5,
			want: []string{rafttest.InvariantCurrentTermCommit}},
		{name: "VoteNotPersisted", inject: injectBug(bugs.Set{VoteNotPersisted: true}), options: defaultOptions, maxSeeds: 5,
			want: []string{rafttest.InvariantDurableBeforeSend}},
		{name: "AckBeforeDurable", inject: injectBug(bugs.Set{AckBeforeDurable: true}), options: defaultOptions, maxSeeds: 5,
			want: []string{rafttest.InvariantDurableBeforeSend}},
		{name: "NoTruncate", inject: injectBug(bugs.Set{NoTruncate: true}), options: defaultOptions, maxSeeds: 10,
			want: append([]string{rafttest.InvariantCommitDurable}, deepDamage...)},

		{name: "AckBeforeDurable/commit-not-durable", inject: injectBug(bugs.Set{AckBeforeDurable: true}), options: defaultOptions, maxSeeds: 10,
			skip: []string{rafttest.InvariantDurableBeforeSend},
			want: []string{rafttest.InvariantCommitDurable}},
		{name: "AckBeforeDurable/committed-entry-lost", inject: injectBug(bugs.Set{AckBeforeDurable: true}), options: churnOptions, maxSeeds: 30,
			// Liveness is skipped too: a follower that acknowledged entries
			// it then lost can leave the leader waiting on it forever, which
			// would be reported before the lost entries are looked for.
			skip: []string{rafttest.InvariantDurableBeforeSend, rafttest.InvariantCommitDurable, rafttest.InvariantLiveness},
			want: deepDamage},
		{name: "CommitOldTermByCount/committed-entry-overwritten", inject: injectBug(bugs.Set{CommitOldTermByCount: true}), options: figure8Options, maxSeeds: 150,
			skip: []string{rafttest.InvariantCurrentTermCommit, rafttest.InvariantCommitDurable},
			want: deepDamage},
		{name: "JointNewMajorityOnly", inject: injectBug(bugs.Set{JointNewMajorityOnly: true}), options: membershipChurnOptions, maxSeeds: 40,
			want: []string{rafttest.InvariantCommitDurable}},
		{name: "JointNewMajorityOnly/damage", inject: injectBug(bugs.Set{JointNewMajorityOnly: true}), options: membershipChurnOptions, maxSeeds: 150,
			skip: []string{rafttest.InvariantCommitDurable},
			want: append([]string{rafttest.InvariantElectionSafety}, deepDamage...)},
		{name: "VoteNotPersisted/double-vote", inject: injectBug(bugs.Set{VoteNotPersisted: true}), options: churnOptions, maxSeeds: 30,
			skip: []string{rafttest.InvariantDurableBeforeSend},
			want: []string{rafttest.InvariantVoteOncePerTerm, rafttest.InvariantElectionSafety}},

		// The leader's own write in flight (thesis §10.2.1).
		{name: "SelfAckBeforeDurable", inject: injectBug(bugs.Set{SelfAckBeforeDurable: true}), options: defaultOptions, maxSeeds: 10,
			want: []string{rafttest.InvariantCommitDurable}},
		{name: "SelfAckBeforeDurable/damage", inject: injectBug(bugs.Set{SelfAckBeforeDurable: true}), options: churnOptions, maxSeeds: 60,
			skip: []string{rafttest.InvariantCommitDurable, rafttest.InvariantLiveness},
			want: deepDamage},
		// Follower writes in flight: acknowledgements leave only once durable.
		{name: "AckDuringWrite", inject: injectBug(bugs.Set{AckDuringWrite: true}), options: defaultOptions, maxSeeds: 10,
			want: []string{rafttest.InvariantDurableBeforeSend}},
		{name: "AckDuringWrite/damage", inject: injectBug(bugs.Set{AckDuringWrite: true}), options: churnOptions, maxSeeds: 60,
			skip: []string{rafttest.InvariantDurableBeforeSend, rafttest.InvariantCommitDurable, rafttest.InvariantLiveness},
			want: deepDamage},
		// Membership-checked messages.
		{name: "AcceptStrangers", inject: injectBug(bugs.Set{AcceptStrangers: true}), options: defaultOptions, maxSeeds: 5,
			want: []string{rafttest.InvariantRogue}},
		// The read path (thesis §6.4).
		{name: "ReadWithoutQuorum", inject: injectBug(bugs.Set{ReadWithoutQuorum: true}), options: leaseOptions, maxSeeds: 20,
			want: []string{rafttest.InvariantStaleRead}},
	}
	runTeeth(t, teeth)
}
