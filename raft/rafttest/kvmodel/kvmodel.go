// Package kvmodel is a small key-value state machine with its sequential
// specification and a random client workload, ready to run under the
// simulator of raft/rafttest. It is the workload typedraft's own
// simulation tests use, and a worked example of writing one.
//
// Commands are Put, Get, Append and compare-and-swap (CAS) on a small key
// space. Appends and most Puts write unique tokens, so a lost or reordered
// write shows in later reads. A failed CAS is the application's own error,
// a *Error, which exercises the typed E path of raft.StateMachine.
package kvmodel

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"math/rand/v2"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/raft/rafttest"
)

// Op is a command's operation.
type Op uint8

const (
	// Get reads a key.
	Get Op = iota + 1
	// Put writes a key and returns its previous value.
	Put
	// Append appends to a key's value and returns the new value.
	Append
	// CAS writes Value if the key currently holds Expect (an empty Expect
	// means the key must be absent).
	CAS
)

// String returns the operation's name.
func (o Op) String() string {
	switch o {
	case Get:
		return "get"
	case Put:
		return "put"
	case Append:
		return "append"
	case CAS:
		return "cas"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Command is one client request.
type Command struct {
	Op     Op     `msgpack:"o" json:"o"`
	Key    string `msgpack:"k" json:"k"`
	Value  string `msgpack:"v" json:"v"`
	Expect string `msgpack:"e" json:"e"`
}

// String renders the command, e.g. `cas(k1, "A"->"B")`.
func (c Command) String() string {
	switch c.Op {
	case Get:
		return fmt.Sprintf("get(%s)", c.Key)
	case CAS:
		return fmt.Sprintf("cas(%s, %q->%q)", c.Key, c.Expect, c.Value)
	}
	return fmt.Sprintf("%s(%s, %q)", c.Op, c.Key, c.Value)
}

// Response is a successful command's answer: for Get the value read, for
// Put the previous value, for Append and CAS the new value. Found says
// whether the key existed (before a Put, at a Get; always true after Append
// and CAS).
type Response struct {
	Value string
	Found bool
}

// Error is the state machine's own error: a CAS whose expectation failed
// (Code "mismatch", with the key's current value), or a malformed command
// (Code "bad-op").
type Error struct {
	Code    string
	Current string
	Found   bool
}

// Error describes the rejection.
func (e *Error) Error() string {
	if e.Code == "mismatch" {
		return fmt.Sprintf("kvmodel: cas mismatch (current %q, found %v)", e.Current, e.Found)
	}
	return "kvmodel: " + e.Code
}

// Store is the replicated state machine: a map from key to value.
//
// Concurrency: not safe for concurrent use; raft calls Apply from one
// goroutine.
type Store struct {
	m map[string]string
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{m: map[string]string{}} }

// Apply applies cmd (raft.StateMachine). It is deterministic.
func (s *Store) Apply(_ uint64, cmd Command) (Response, *Error) {
	st := KeyState{}
	st.Value, st.Found = s.m[cmd.Key]
	next, r, e := step(st, cmd)
	if e == nil && next.Found {
		s.m[cmd.Key] = next.Value
	}
	return r, e
}

// Validate rejects a CAS whose expectation fails on the leader, before it
// enters the log, with the same error Apply would return
// (raft.Validator); every other command is accepted. raft answers such a
// rejection only once it is linearizable. (The pure simulator does not
// call Validate; RunCluster's real nodes do.)
func (s *Store) Validate(cmd Command) *Error {
	if cmd.Op != CAS {
		return nil
	}
	_, e := s.Read(cmd)
	return e
}

// Read answers a Get from the current state without changing it; other
// commands are answered as Apply would, without applying them. It is the
// read function of Workload (and of raft.Query in the kv examples).
func (s *Store) Read(cmd Command) (Response, *Error) {
	st := KeyState{}
	st.Value, st.Found = s.m[cmd.Key]
	_, r, e := step(st, cmd)
	return r, e
}

// reader is a state machine that answers reads (Store, and wrappers that
// embed it).
type reader interface {
	Read(cmd Command) (Response, *Error)
}

// Get returns a key's value, for inspection after a run.
func (s *Store) Get(key string) (string, bool) {
	v, ok := s.m[key]
	return v, ok
}

// Snapshot returns a copy of the map (raft.Snapshotter).
func (s *Store) Snapshot(raft.SnapshotMeta) (raft.StateSnapshot, error) {
	return storeSnapshot(maps.Clone(s.m)), nil
}

// Restore replaces the map with one written by a snapshot
// (raft.Snapshotter). It returns an error for malformed data.
func (s *Store) Restore(_ raft.SnapshotMeta, r io.Reader) error {
	m := map[string]string{}
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return fmt.Errorf("kvmodel: restore snapshot: %w", err)
	}
	s.m = m
	return nil
}

// storeSnapshot is a point-in-time copy of a Store's map.
type storeSnapshot map[string]string

// Write writes the map as JSON (keys sorted, so equal states write equal
// bytes).
func (v storeSnapshot) Write(w io.Writer) error {
	return json.NewEncoder(w).Encode(map[string]string(v))
}

// Release does nothing: the copy needs no cleanup.
func (v storeSnapshot) Release() {}

var (
	_ raft.StateMachine[Command, Response, *Error] = (*Store)(nil)
	_ raft.Snapshotter                             = (*Store)(nil)
	_ raft.Validator[Command, *Error]              = (*Store)(nil)
)

// KeyState is the specification's state of one key.
type KeyState struct {
	Value string
	Found bool
}

// step is the sequential specification of one command on one key; Store
// uses it too, so the two cannot drift apart.
func step(s KeyState, c Command) (KeyState, Response, *Error) {
	switch c.Op {
	case Get:
		return s, Response(s), nil
	case Put:
		return KeyState{Value: c.Value, Found: true}, Response(s), nil
	case Append:
		n := KeyState{Value: s.Value + c.Value, Found: true}
		return n, Response{Value: n.Value, Found: true}, nil
	case CAS:
		ok := (c.Expect == "" && !s.Found) || (c.Expect != "" && s.Found && s.Value == c.Expect)
		if !ok {
			return s, Response{}, &Error{Code: "mismatch", Current: s.Value, Found: s.Found}
		}
		return KeyState{Value: c.Value, Found: true}, Response{Value: c.Value, Found: true}, nil
	}
	return s, Response{}, &Error{Code: "bad-op"}
}

// Spec returns the sequential specification, partitioned by key.
func Spec() rafttest.Spec[KeyState, Command, Response, *Error] {
	return rafttest.Spec[KeyState, Command, Response, *Error]{
		Init:      func() KeyState { return KeyState{} },
		Step:      step,
		Partition: func(c Command) string { return c.Key },
		Equal:     func(a, b KeyState) bool { return a == b },
		Hash: func(s KeyState) uint64 {
			h := fnv.New64a()
			h.Write([]byte(s.Value))
			if s.Found {
				h.Write([]byte{1})
			}
			return h.Sum64()
		},
		EqualResult: func(wr Response, we *Error, gr Response, ge *Error) bool {
			if (we == nil) != (ge == nil) {
				return false
			}
			if we != nil {
				return *we == *ge
			}
			return wr == gr
		},
		Describe: func(s KeyState) string {
			if !s.Found {
				return "absent"
			}
			return fmt.Sprintf("%q", s.Value)
		},
	}
}

// Workload returns the simulator workload over keys keys (at least 1):
// 30% gets (most of them sent as reads without the log: ReadIndex, lease
// and follower reads), 20% puts, 30% appends and 20% CAS. Half the puts and most CAS
// write one of two shared values ("A", "B") so that CAS sometimes succeeds;
// the other writes are unique tokens.
func Workload(keys int) rafttest.Workload[Command, Response, *Error] {
	keys = max(keys, 1)
	return rafttest.Workload[Command, Response, *Error]{
		NewStateMachine: func() raft.StateMachine[Command, Response, *Error] { return NewStore() },
		NextCommand: func(rng *rand.Rand, client int) Command {
			return NextCommand(rng, client, keys)
		},
		Model:  Spec().Model(),
		IsRead: func(c Command) bool { return c.Op == Get },
		Read: func(sm raft.StateMachine[Command, Response, *Error], c Command) (Response, *Error) {
			return sm.(reader).Read(c)
		},
	}
}

// NextCommand draws a random command over keys keys, using only rng.
func NextCommand(rng *rand.Rand, client, keys int) Command {
	key := fmt.Sprintf("k%d", rng.IntN(max(keys, 1)))
	token := func() string { return fmt.Sprintf("%d.%x,", client, rng.Uint32()) }
	shared := func() string { return []string{"A", "B"}[rng.IntN(2)] }
	switch x := rng.IntN(10); {
	case x < 3:
		return Command{Op: Get, Key: key}
	case x < 5:
		if rng.IntN(2) == 0 {
			return Command{Op: Put, Key: key, Value: shared()}
		}
		return Command{Op: Put, Key: key, Value: token()}
	case x < 8:
		return Command{Op: Append, Key: key, Value: token()}
	default:
		expect := []string{"", "A", "B"}[rng.IntN(3)]
		val := shared()
		if rng.IntN(4) == 0 {
			val = token()
		}
		return Command{Op: CAS, Key: key, Expect: expect, Value: val}
	}
}
