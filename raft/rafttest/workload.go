package rafttest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"

	"github.com/anishathalye/porcupine"

	"github.com/typedraft/typedraft/codec"
	"github.com/typedraft/typedraft/raft"
)

// Workload is the application a simulation runs: the state machine every
// node replicates, the commands clients send, and the sequential
// specification their history is checked against.
//
// C, R and E are the same types as in raft.StateMachine[C, R, E].
type Workload[C any, R any, E raft.ErrorType] struct {
	// NewStateMachine returns a fresh, empty state machine. It is called
	// once per node at start and again every time a node restarts after a
	// crash (the node restores its newest snapshot, if any, and re-applies
	// its committed log). If it implements raft.Snapshotter, nodes take
	// snapshots and compact their logs (Options.SnapshotInterval), and
	// leaders send snapshots to followers that fell behind. Required.
	NewStateMachine func() raft.StateMachine[C, R, E]
	// Codec encodes commands into log entries (default codec.Msgpack()).
	Codec codec.Codec
	// NextCommand returns the next command client sends. It must draw every
	// random choice from rng, the simulator's seeded source, and nothing
	// else, or runs stop being reproducible. Required.
	NextCommand func(rng *rand.Rand, client int) C
	// IsRead and Read, if both set, let clients send read-only commands as
	// reads without the log: IsRead reports whether a command only reads,
	// and Read answers it from a node's state machine without changing it
	// (it is called between two Apply calls, as raft.Raft's Read runs
	// its function). Clients then send most such commands as ReadIndex,
	// lease or follower reads (Core.ReadIndex) and the rest through the
	// log, and every read's answer is checked with the writes.
	IsRead func(cmd C) bool
	Read   func(sm raft.StateMachine[C, R, E], cmd C) (R, E)
	// Model is the sequential specification porcupine checks the history
	// against. Each operation's Input is the command (a C) and its Output an
	// Outcome[R, E]; an Outcome with Unknown set must be accepted by every
	// state (the command may or may not have taken effect). Spec.Model
	// builds one from a pure step function. Required.
	Model porcupine.Model
}

// Outcome is the output of one operation in the history handed to the
// porcupine model.
type Outcome[R any, E raft.ErrorType] struct {
	// Value and Err are what the state machine returned when it applied the
	// command (zero when Unknown).
	Value R
	Err   E
	// Unknown marks an operation whose client never learned the outcome: its
	// proposal timed out or the node it talked to crashed. It may or may not
	// have been applied; the checker may place it anywhere after its call.
	Unknown bool
}

// String renders the outcome for failure reports.
func (o Outcome[R, E]) String() string {
	if o.Unknown {
		return "unknown"
	}
	var zero E
	if o.Err != zero {
		return fmt.Sprintf("err=%v", o.Err)
	}
	return fmt.Sprintf("%+v", o.Value)
}

// Spec is a sequential specification given as a pure function, the usual
// way to write a porcupine model for a deterministic state machine. S is the
// specification's state.
type Spec[S any, C any, R any, E raft.ErrorType] struct {
	// Init returns the initial state (of one partition, if Partition is
	// set). Required.
	Init func() S
	// Step applies cmd to s and returns the new state and what the real
	// state machine must answer. It must not modify s. Required.
	Step func(s S, cmd C) (S, R, E)
	// Partition, if set, returns the partition key of cmd (for a key-value
	// store, its key). Commands with different keys must be independent:
	// the history is then checked per key, which is much faster, and Init and
	// Step describe the state of one key.
	Partition func(cmd C) string
	// Equal compares states (default reflect.DeepEqual).
	Equal func(a, b S) bool
	// Hash, if set, hashes a state (equal states must hash equally); it
	// speeds up the checker.
	Hash func(s S) uint64
	// EqualResult compares a response with the expected one (default
	// reflect.DeepEqual on the value and on the error).
	EqualResult func(want R, wantErr E, got R, gotErr E) bool
	// Describe renders a state in failure reports (default %v).
	Describe func(s S) string
}

// Model returns the porcupine model of s: an operation is legal if it is
// Unknown, or if Step yields exactly its Value and Err.
func (s Spec[S, C, R, E]) Model() porcupine.Model {
	eqRes := s.EqualResult
	if eqRes == nil {
		eqRes = func(wr R, we E, gr R, ge E) bool {
			return reflect.DeepEqual(wr, gr) && reflect.DeepEqual(we, ge)
		}
	}
	m := porcupine.Model{
		Init: func() any { return s.Init() },
		Step: func(state, input, output any) (bool, any) {
			cmd, ok := input.(C)
			if !ok {
				return false, state
			}
			out, ok := output.(Outcome[R, E])
			if !ok {
				return false, state
			}
			next, r, e := s.Step(state.(S), cmd)
			if out.Unknown {
				return true, next
			}
			return eqRes(r, e, out.Value, out.Err), next
		},
		Equal: func(a, b any) bool {
			if s.Equal != nil {
				return s.Equal(a.(S), b.(S))
			}
			return reflect.DeepEqual(a, b)
		},
		DescribeOperation: func(input, output any) string {
			return fmt.Sprintf("%+v -> %v", input, output)
		},
		DescribeState: func(state any) string {
			if s.Describe != nil {
				return s.Describe(state.(S))
			}
			return fmt.Sprintf("%+v", state)
		},
	}
	if s.Hash != nil {
		m.Hash = func(state any) uint64 { return s.Hash(state.(S)) }
	}
	if s.Partition != nil {
		m.Partition = func(history []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string]int{}
			var out [][]porcupine.Operation
			for _, op := range history {
				cmd, _ := op.Input.(C)
				k := s.Partition(cmd)
				i, ok := byKey[k]
				if !ok {
					i = len(out)
					byKey[k] = i
					out = append(out, nil)
				}
				out[i] = append(out[i], op)
			}
			return out
		}
	}
	return m
}

// machine is the untyped view of one node's state machine.
type machine interface {
	// apply applies a committed command entry and returns its Outcome.
	apply(e raft.Entry) (any, error)
	// snapshot returns the state's bytes; ok is false if the state machine
	// does not implement raft.Snapshotter.
	snapshot(meta raft.SnapshotMeta) (data []byte, ok bool, err error)
	// restore replaces the state with a snapshot's bytes.
	restore(meta raft.SnapshotMeta, data []byte) error
	// read answers a read-only command without changing the state.
	read(data []byte) (any, error)
}

type typedMachine[C any, R any, E raft.ErrorType] struct {
	sm     raft.StateMachine[C, R, E]
	codec  codec.Codec
	readFn func(raft.StateMachine[C, R, E], C) (R, E)
}

func (m typedMachine[C, R, E]) read(data []byte) (out any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("read panicked: %v", p)
		}
	}()
	var cmd C
	if err := m.codec.Unmarshal(data, &cmd); err != nil {
		return nil, fmt.Errorf("decode read: %w", err)
	}
	v, e := m.readFn(m.sm, cmd)
	return Outcome[R, E]{Value: v, Err: e}, nil
}

func (m typedMachine[C, R, E]) apply(e raft.Entry) (any, error) {
	var cmd C
	if err := m.codec.Unmarshal(e.Data, &cmd); err != nil {
		return nil, fmt.Errorf("decode command at index %d: %w", e.Index, err)
	}
	v, err := m.sm.Apply(e.Index, cmd)
	return Outcome[R, E]{Value: v, Err: err}, nil
}

func (m typedMachine[C, R, E]) snapshot(meta raft.SnapshotMeta) ([]byte, bool, error) {
	sn, ok := m.sm.(raft.Snapshotter)
	if !ok {
		return nil, false, nil
	}
	view, err := sn.Snapshot(meta)
	if err != nil {
		return nil, true, fmt.Errorf("snapshot: %w", err)
	}
	defer view.Release()
	var b bytes.Buffer
	if err := view.Write(&b); err != nil {
		return nil, true, fmt.Errorf("write snapshot: %w", err)
	}
	return b.Bytes(), true, nil
}

func (m typedMachine[C, R, E]) restore(meta raft.SnapshotMeta, data []byte) error {
	sn, ok := m.sm.(raft.Snapshotter)
	if !ok {
		return errors.New("restore: the state machine does not implement raft.Snapshotter")
	}
	if err := sn.Restore(meta, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	return nil
}

// app is the untyped view of a Workload.
type app struct {
	newMachine func() machine
	// next returns a client's next command, encoded and as the history input.
	next  func(rng *rand.Rand, client int) ([]byte, any, error)
	model porcupine.Model
	// unknown is the Outcome[R, E]{Unknown: true} of the workload's types.
	unknown any
	// isRead reports whether a command (a history input) may be sent as a
	// read; nil when the workload has no reads.
	isRead func(input any) bool
}

func (w Workload[C, R, E]) app() (app, error) {
	if w.NewStateMachine == nil || w.NextCommand == nil || w.Model.Init == nil ||
		(w.Model.Step == nil && w.Model.StepContext == nil) {
		return app{}, fmt.Errorf("%w: Workload needs NewStateMachine, NextCommand and Model (Init and Step)", ErrInvalidOptions)
	}
	cd := w.Codec
	if cd == nil {
		cd = codec.Msgpack()
	}
	var isRead func(any) bool
	if w.IsRead != nil && w.Read != nil {
		isRead = func(input any) bool { c, ok := input.(C); return ok && w.IsRead(c) }
	}
	return app{
		newMachine: func() machine { return typedMachine[C, R, E]{sm: w.NewStateMachine(), codec: cd, readFn: w.Read} },
		next: func(rng *rand.Rand, client int) ([]byte, any, error) {
			cmd := w.NextCommand(rng, client)
			data, err := cd.Marshal(cmd)
			if err != nil {
				return nil, nil, fmt.Errorf("rafttest: encode command of client %d: %w", client, err)
			}
			return data, cmd, nil
		},
		model:   w.Model,
		unknown: Outcome[R, E]{Unknown: true},
		isRead:  isRead,
	}, nil
}
