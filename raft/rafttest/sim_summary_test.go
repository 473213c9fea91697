package rafttest_test

import (
	"fmt"
	"slices"

	"github.com/typedraft/typedraft/raft/rafttest"
)

// faultCount is how often one fault or event happened over a soak, and in
// how many seeds.
type faultCount struct {
	name         string
	total, seeds int
	// membership: a count of the membership or transfer fault.
	membership bool
}

// summary aggregates the reports of a soak.
type summary struct {
	seeds                           int
	submitted, ops, acked, unknown  int
	steps                           int64
	leaders                         int
	counts                          []faultCount
	byInterval                      map[int]int
	maxRecover, recoverSum          int
	minVoters, maxVoters            int
	snapshotCrashes, installCrashes int
}

// summarize adds up reports; interval gives the snapshot threshold a seed
// ran with.
func summarize(reports []rafttest.Report, interval func(seed uint64) int) summary {
	s := summary{seeds: len(reports), byInterval: map[int]int{}}
	type field struct {
		name string
		get  func(r rafttest.Report) int
	}
	// Counts from here on are of the membership and transfer faults.
	const firstMembership = "membership changes accepted"
	inMembership := false
	fields := []field{
		{"crashes", func(r rafttest.Report) int { return r.Crashes }},
		{"restart-alls", func(r rafttest.Report) int { return r.RestartAlls }},
		{"partitions", func(r rafttest.Report) int { return r.Partitions }},
		{"partial partitions (one link cut)", func(r rafttest.Report) int { return r.PartialPartitions }},
		{"forged messages from a rogue non-member", func(r rafttest.Report) int { return r.RogueMessages }},
		{"leader log writes in flight (asynchronous)", func(r rafttest.Report) int { return r.AsyncWrites }},
		{"pauses", func(r rafttest.Report) int { return r.Pauses }},
		{"snapshots taken", func(r rafttest.Report) int { return r.Snapshots }},
		{"snapshots installed", func(r rafttest.Report) int { return r.Installs }},
		{"crashes while taking a snapshot", func(r rafttest.Report) int { return r.SnapshotCrashes }},
		{"crashes while installing a snapshot", func(r rafttest.Report) int { return r.InstallCrashes }},
		{"membership changes accepted", func(r rafttest.Report) int { return r.Membership.Accepted }},
		{"membership changes refused", func(r rafttest.Report) int { return r.Membership.Refused }},
		{"learners added", func(r rafttest.Report) int { return r.Membership.AddLearner }},
		{"removed nodes re-added", func(r rafttest.Report) int { return r.Membership.Rejoined }},
		{"promotions", func(r rafttest.Report) int { return r.Membership.Promote }},
		{"voters removed", func(r rafttest.Report) int { return r.Membership.RemoveVoter }},
		{"leaders removed", func(r rafttest.Report) int { return r.Membership.RemoveLeader }},
		{"voters demoted", func(r rafttest.Report) int { return r.Membership.Demote }},
		{"voters replaced", func(r rafttest.Report) int { return r.Membership.Replace }},
		{"learners removed", func(r rafttest.Report) int { return r.Membership.RemoveLearner }},
		{"configurations committed", func(r rafttest.Report) int { return r.Membership.Committed }},
		{"joint configurations committed", func(r rafttest.Report) int { return r.Membership.Joint }},
		{"removed nodes shut down", func(r rafttest.Report) int { return r.Membership.Shutdowns }},
		{"leadership transfers", func(r rafttest.Report) int { return r.Membership.Transfers }},
		{"ReadIndex reads on the leader", func(r rafttest.Report) int { return r.IndexReads }},
		{"lease reads", func(r rafttest.Report) int { return r.LeaseReads }},
		{"follower reads", func(r rafttest.Report) int { return r.FollowerReads }},
		{"reads failed or timed out", func(r rafttest.Report) int { return r.ReadsFailed }},
	}
	for _, f := range fields {
		inMembership = inMembership || f.name == firstMembership
		c := faultCount{name: f.name, membership: inMembership}
		for _, r := range reports {
			if v := f.get(r); v > 0 {
				c.total += v
				c.seeds++
			}
		}
		s.counts = append(s.counts, c)
	}
	for _, r := range reports {
		s.submitted += r.Submitted
		s.ops += r.Ops
		s.acked += r.Acked
		s.unknown += r.Unknown
		s.steps += r.Steps
		s.leaders += r.Leaders
		s.byInterval[interval(r.Seed)]++
		s.maxRecover = max(s.maxRecover, r.RecoverTicks)
		s.recoverSum += r.RecoverTicks
		s.snapshotCrashes += r.SnapshotCrashes
		s.installCrashes += r.InstallCrashes
		if m := r.Membership; m.Committed > 0 {
			if s.minVoters == 0 || m.MinVoters < s.minVoters {
				s.minVoters = m.MinVoters
			}
			s.maxVoters = max(s.maxVoters, m.MaxVoters)
		}
	}
	return s
}

// lines renders the summary for the test log.
func (s summary) lines() []string {
	out := []string{fmt.Sprintf("%d client operations submitted, %d checked (%d acknowledged, %d unknown); %d steps, %d leaders",
		s.submitted, s.ops, s.acked, s.unknown, s.steps, s.leaders)}
	var ivs []int
	for iv := range s.byInterval {
		ivs = append(ivs, iv)
	}
	slices.Sort(ivs)
	for _, iv := range ivs {
		out = append(out, fmt.Sprintf("snapshot threshold %d: %d seeds passed", iv, s.byInterval[iv]))
	}
	out = append(out, fmt.Sprintf("crashes in the middle of a snapshot: %d while taking one, %d while installing one",
		s.snapshotCrashes, s.installCrashes))
	if s.seeds > 0 {
		out = append(out, fmt.Sprintf("after faults stopped: one leader with a non-joint configuration after %d ticks at most (mean %.1f)",
			s.maxRecover, float64(s.recoverSum)/float64(s.seeds)))
	}
	out = append(out, fmt.Sprintf("voters of committed configurations ranged over %d..%d", s.minVoters, s.maxVoters))
	for _, c := range s.counts {
		out = append(out, fmt.Sprintf("%-36s %7d in %4d of %d seeds", c.name+":", c.total, c.seeds, s.seeds))
	}
	return out
}
