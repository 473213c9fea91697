package rafttest_test

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/raft/rafttest"
)

// Counter is an application state machine: a replicated counter whose Add
// command fails with the application's own error when it would go negative.
type Counter struct{ n int }

// Add is Counter's command.
type Add struct{ Delta int }

// CounterError is Counter's application error.
type CounterError struct{ Reason string }

func (e *CounterError) Error() string { return e.Reason }

func (c *Counter) Apply(_ uint64, cmd Add) (int, *CounterError) {
	next, r, e := counterStep(c.n, cmd)
	c.n = next
	return r, e
}

// counterStep is the sequential specification: the same rules as Apply,
// written as a pure function for the checker.
func counterStep(n int, cmd Add) (int, int, *CounterError) {
	if n+cmd.Delta < 0 {
		return n, n, &CounterError{Reason: "would go negative"}
	}
	return n + cmd.Delta, n + cmd.Delta, nil
}

// Example runs an application's own state machine under the simulator:
// three nodes, every fault enabled, every invariant checked after every
// step, and the client history checked for linearizability.
func Example() {
	w := rafttest.Workload[Add, int, *CounterError]{
		NewStateMachine: func() raft.StateMachine[Add, int, *CounterError] { return &Counter{} },
		NextCommand: func(rng *rand.Rand, client int) Add {
			return Add{Delta: rng.IntN(7) - 3}
		},
		Model: rafttest.Spec[int, Add, int, *CounterError]{
			Init: func() int { return 0 },
			Step: counterStep,
		}.Model(),
	}
	for seed := uint64(1); seed <= 3; seed++ {
		_, err := rafttest.Run(rafttest.Options{Seed: seed, Nodes: 3, Ops: 200}, w)
		var f *rafttest.Failure
		if errors.As(err, &f) {
			fmt.Printf("seed %d: %s broken\n", seed, f.Invariant)
			continue
		}
		fmt.Printf("seed %d: ok=%v\n", seed, err == nil)
	}
	// Output:
	// seed 1: ok=true
	// seed 2: ok=true
	// seed 3: ok=true
}
