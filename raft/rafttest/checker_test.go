package rafttest_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/raft/rafttest"
	"github.com/typedraft/typedraft/raft/rafttest/kvmodel"
)

// forgetfulStore is a key-value store with a deterministic bug: a Put of
// "B" is acknowledged but not stored. Every node agrees on it, so no Raft
// invariant can notice; only the linearizability check can.
type forgetfulStore struct{ *kvmodel.Store }

func (s forgetfulStore) Apply(index uint64, cmd kvmodel.Command) (kvmodel.Response, *kvmodel.Error) {
	if cmd.Op == kvmodel.Put && cmd.Value == "B" {
		v, ok := s.Get(cmd.Key)
		return kvmodel.Response{Value: v, Found: ok}, nil
	}
	return s.Store.Apply(index, cmd)
}

// TestLinearizabilityCatchesWrongStateMachine shows that the history check
// has teeth of its own: a state machine that loses some writes is caught
// even though the cluster replicates it perfectly.
func TestLinearizabilityCatchesWrongStateMachine(t *testing.T) {
	w := kvmodel.Workload(2)
	w.NewStateMachine = func() raft.StateMachine[kvmodel.Command, kvmodel.Response, *kvmodel.Error] {
		return forgetfulStore{kvmodel.NewStore()}
	}
	_, err := rafttest.Run(rafttest.Options{Seed: 1, Ops: 300, Faults: rafttest.NoFaults()}, w)
	var f *rafttest.Failure
	if !errors.As(err, &f) || f.Invariant != rafttest.InvariantLinearizability {
		t.Fatalf("want a Linearizability failure, got %v", err)
	}
	if !strings.Contains(f.Detail, "not linearizable") || !strings.Contains(f.Detail, "put(") {
		t.Fatalf("failure does not show the offending history:\n%s", f.Detail)
	}
}

// TestCheckerTimeoutIsAFailure checks that a history the checker could not
// finish is reported as a failure, never as a pass.
func TestCheckerTimeoutIsAFailure(t *testing.T) {
	w := kvmodel.Workload(2)
	m := w.Model
	// A model that never finishes a step before the checker gives up.
	m.StepContext = func(ctx context.Context, state, input, output any) (bool, any) {
		<-ctx.Done()
		return false, state
	}
	w.Model = m
	_, err := rafttest.Run(rafttest.Options{Seed: 1, Ops: 50, Faults: rafttest.NoFaults(), CheckTimeout: 50 * time.Millisecond}, w)
	var f *rafttest.Failure
	if !errors.As(err, &f) || f.Invariant != rafttest.InvariantLinearizability || !strings.Contains(f.Detail, "did not finish") {
		t.Fatalf("want a Linearizability timeout failure, got %v", err)
	}
}

// TestUnknownOutcomesStayPossible checks the model's treatment of unknown
// outcomes: an operation whose client never learned its outcome may take
// effect or not, anywhere after its call.
func TestUnknownOutcomesStayPossible(t *testing.T) {
	m := kvmodel.Spec().Model()
	type out = rafttest.Outcome[kvmodel.Response, *kvmodel.Error]
	put := kvmodel.Command{Op: kvmodel.Put, Key: "k", Value: "x"}
	get := kvmodel.Command{Op: kvmodel.Get, Key: "k"}
	unknown := out{Unknown: true}
	// The unknown put took effect: the later get sees it.
	applied := []porcupine.Operation{
		{ClientId: 0, Input: put, Call: 0, Output: unknown, Return: 1 << 62},
		{ClientId: 1, Input: get, Call: 5, Output: out{Value: kvmodel.Response{Value: "x", Found: true}}, Return: 6},
	}
	// The unknown put never took effect: the later get does not see it.
	notApplied := []porcupine.Operation{
		{ClientId: 0, Input: put, Call: 0, Output: unknown, Return: 1 << 62},
		{ClientId: 1, Input: get, Call: 5, Output: out{Value: kvmodel.Response{}}, Return: 6},
	}
	// A get cannot see a value nobody wrote.
	impossible := []porcupine.Operation{
		{ClientId: 0, Input: put, Call: 0, Output: unknown, Return: 1 << 62},
		{ClientId: 1, Input: get, Call: 5, Output: out{Value: kvmodel.Response{Value: "y", Found: true}}, Return: 6},
	}
	if !porcupine.CheckOperations(m, applied) || !porcupine.CheckOperations(m, notApplied) {
		t.Fatal("an unknown outcome must be allowed to have taken effect or not")
	}
	if porcupine.CheckOperations(m, impossible) {
		t.Fatal("the model accepted a read of a value never written")
	}
}

func TestOptionsValidation(t *testing.T) {
	w := kvmodel.Workload(2)
	bad := []struct {
		name string
		o    rafttest.Options
		want string
	}{
		{"nodes", rafttest.Options{Nodes: 10}, "Nodes"},
		{"negative nodes", rafttest.Options{Nodes: -1}, "Nodes"},
		{"clients", rafttest.Options{Clients: -2}, "Clients"},
		{"ops", rafttest.Options{Ops: -5}, "Ops"},
		{"heartbeat", rafttest.Options{Core: raft.CoreConfig{ElectionTicks: 5, HeartbeatTicks: 5}}, "HeartbeatTicks"},
		{"election", rafttest.Options{Core: raft.CoreConfig{ElectionTicks: 1}}, "ElectionTicks"},
		{"drop", rafttest.Options{Faults: &rafttest.Faults{Drop: 0.7}}, "Drop"},
		{"probability", rafttest.Options{Faults: &rafttest.Faults{Crash: 1.5}}, "Crash"},
		{"duration", rafttest.Options{Faults: &rafttest.Faults{CrashTicks: -1}}, "CrashTicks"},
		{"timeout", rafttest.Options{CheckTimeout: -time.Second}, "CheckTimeout"},
		{"pool below nodes", rafttest.Options{Nodes: 5, Pool: 4}, "Pool"},
		{"pool too large", rafttest.Options{Pool: 10}, "Pool"},
		{"recover", rafttest.Options{RecoverTicks: -1}, "RecoverTicks"},
		{"membership", rafttest.Options{Faults: &rafttest.Faults{Membership: 2}}, "Membership"},
		{"transfer", rafttest.Options{Faults: &rafttest.Faults{Transfer: -0.5}}, "Transfer"},
		{"snapshot crash", rafttest.Options{Faults: &rafttest.Faults{CrashSnapshot: 1.1}}, "CrashSnapshot"},
	}
	for _, tc := range bad {
		_, err := rafttest.Run(tc.o, w)
		if !errors.Is(err, rafttest.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want ErrInvalidOptions naming %s", tc.name, err, tc.want)
		}
	}
	incomplete := rafttest.Workload[kvmodel.Command, kvmodel.Response, *kvmodel.Error]{
		NextCommand: func(*rand.Rand, int) kvmodel.Command { return kvmodel.Command{} },
	}
	if _, err := rafttest.Run(rafttest.Options{}, incomplete); !errors.Is(err, rafttest.ErrInvalidOptions) {
		t.Errorf("incomplete workload: got %v, want ErrInvalidOptions", err)
	}
}

// TestNoFaultsRun checks a fault-free run: every operation is acknowledged
// (writes through the log, reads on each of the three read paths) and
// nothing is lost.
func TestNoFaultsRun(t *testing.T) {
	rep, err := rafttest.Run(rafttest.Options{Seed: 3, Ops: 200, Faults: rafttest.NoFaults()}, kvmodel.Workload(3))
	if err != nil {
		t.Fatal(err)
	}
	reads := rep.IndexReads + rep.LeaseReads + rep.FollowerReads
	if rep.Ops != 200 || rep.Acked+reads != 200 || rep.Unknown != 0 || rep.Lost != 0 || rep.Crashes != 0 {
		t.Fatalf("unexpected fault-free report: %v", rep)
	}
	if rep.IndexReads == 0 || rep.LeaseReads == 0 || rep.FollowerReads == 0 {
		t.Fatalf("a read path was not exercised: %v", rep)
	}
}
