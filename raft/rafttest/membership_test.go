package rafttest_test

import (
	"errors"
	"testing"

	"github.com/typedraft/typedraft/raft/rafttest"
	"github.com/typedraft/typedraft/raft/rafttest/kvmodel"
)

// membershipOptions is the default mix with frequent membership changes and
// leadership transfers.
func membershipOptions(seed uint64) rafttest.Options {
	o := simOptions(seed)
	o.Ops = 400
	f := rafttest.DefaultFaults()
	f.Membership, f.Transfer = 0.08, 0.01
	o.Faults = f
	return o
}

// TestMembership runs seeds with frequent membership changes and checks
// that the fault does what it promises: every kind of change is made and
// committed, joint configurations commit, the voters of committed
// configurations stay within [3, 5] and reach both ends, removed nodes are
// shut down and added back, and leadership is transferred. Every run must
// also pass every invariant and the recovery check.
func TestMembership(t *testing.T) {
	reports := forSeeds(t, seedsToRun(12, 6), func(seed uint64) (rafttest.Report, error) {
		return rafttest.Run(membershipOptions(seed), kvmodel.Workload(4))
	})
	if t.Failed() {
		return
	}
	sum := summarize(reports, snapshotInterval)
	for _, line := range sum.lines() {
		t.Log(line)
	}
	for _, r := range reports {
		if m := r.Membership; m.Committed > 0 && (m.MinVoters < 3 || m.MaxVoters > 5) {
			t.Errorf("seed %d committed configurations with %d..%d voters, want 3..5", r.Seed, m.MinVoters, m.MaxVoters)
		}
	}
	if *flagSeed >= 0 {
		return
	}
	if sum.minVoters != 3 || sum.maxVoters != 5 {
		t.Errorf("committed configurations had %d..%d voters over the seeds, want both 3 and 5", sum.minVoters, sum.maxVoters)
	}
	for _, c := range sum.counts {
		if c.membership && c.total == 0 {
			t.Errorf("no seed exercised %s", c.name)
		}
	}
}

// TestRecoverCheck shows that the recovery check can fail: with one tick
// allowed after faults stop, runs cut short while the whole cluster keeps
// restarting must fail it, and with the default allowance they pass.
func TestRecoverCheck(t *testing.T) {
	opts := func(seed uint64) rafttest.Options {
		o := rafttest.Options{Seed: seed, Ops: 10000, MaxTicks: 50 + 13*int(seed), TraceTail: 10}
		o.Faults = &rafttest.Faults{RestartAll: 0.1, CrashTicks: 8}
		return o
	}
	caught := 0
	for seed := uint64(1); seed <= 10; seed++ {
		o := opts(seed)
		o.RecoverTicks = 1
		_, err := rafttest.Run(o, kvmodel.Workload(2))
		var f *rafttest.Failure
		switch {
		case err == nil:
		case errors.As(err, &f) && f.Invariant == rafttest.InvariantRecover:
			caught++
		default:
			t.Fatalf("seed %d: %v", seed, err)
		}
		rep, err := rafttest.Run(opts(seed), kvmodel.Workload(2))
		if err != nil {
			t.Fatalf("seed %d with the default RecoverTicks: %v", seed, err)
		}
		if rep.RecoverTicks > 100 {
			t.Fatalf("seed %d recovered after %d ticks, beyond the default 10 election timeouts", seed, rep.RecoverTicks)
		}
	}
	if caught == 0 {
		t.Fatal("no run failed the recovery check with RecoverTicks = 1")
	}
	t.Logf("%d of 10 runs had no single leader one tick after faults stopped", caught)
}

// lossyMembershipOptions: three voters, short workloads, a membership
// change asked for almost every third tick and 30% of messages lost, so
// that the first messages to learners just added are often lost and the
// run often ends right after a change.
func lossyMembershipOptions(seed uint64) rafttest.Options {
	o := rafttest.Options{Seed: seed, Nodes: 3, Ops: 100, ReportLoss: true, TraceTail: 60}
	o.Faults = &rafttest.Faults{Drop: 0.3, Membership: 0.3}
	return o
}

// TestMembershipLossy checks that learners added over lossy links catch
// up: every run must settle with every member, learners included, holding
// the leader's whole log.
func TestMembershipLossy(t *testing.T) {
	reports := forSeeds(t, seedsToRun(200, 20), func(seed uint64) (rafttest.Report, error) {
		return rafttest.Run(lossyMembershipOptions(seed), kvmodel.Workload(4))
	})
	added := 0
	for _, r := range reports {
		added += r.Membership.AddLearner
	}
	if len(reports) > 0 && added == 0 {
		t.Fatal("no learner was added")
	}
	t.Logf("%d seeds passed; %d learners added", len(reports), added)
}
