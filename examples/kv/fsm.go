package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"sync"

	"github.com/typedraft/typedraft/raft"
)

// Op names a Command's operation.
type Op string

// The operations of the key-value store.
const (
	OpGet    Op = "get"
	OpPut    Op = "put"
	OpDelete Op = "delete"
	OpCAS    Op = "cas"
	// OpMember records a member's HTTP address (Key is its node ID, Value
	// its host:port; an empty Value forgets it), so that every node can
	// redirect clients to whichever node leads, including nodes that
	// joined after the cluster started. The HTTP API never proposes it on
	// a client's behalf.
	OpMember Op = "member"
)

// Limits checked by Validate (on the leader) and again by Apply.
const (
	MaxKeyLen   = 1024
	MaxValueLen = 64 << 10
)

// Command is the application's command type C: what enters the log.
// Reads are commands too ("get"), so a read is ordered after every write
// acknowledged before it: linearizable.
type Command struct {
	Op    Op     `msgpack:"o"`
	Key   string `msgpack:"k"`
	Value string `msgpack:"v,omitempty"`
	// Old is the value a "cas" expects; if OldExists is false the key
	// must be absent instead.
	Old       string `msgpack:"p,omitempty"`
	OldExists bool   `msgpack:"e,omitempty"`
}

// Response is the application's response type R.
type Response struct {
	// Value is the key's value after the command (for "delete", the value
	// it had).
	Value string `json:"value"`
	// Found reports whether the key existed before the command.
	Found bool `json:"found"`
	// Revision is the log index of the key's latest write (0 if absent).
	Revision uint64 `json:"revision"`
}

// Error codes of Error.
const (
	CodeConflict = "conflict" // a "cas" found another value (HTTP 409)
	CodeInvalid  = "invalid"  // a malformed command (HTTP 400)
)

// Error is the application's own error type E: it reaches the caller
// statically typed, from Validate (before the log) or from Apply.
type Error struct {
	Code    string `json:"error"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
	// Current is the key's value when a "cas" conflicted (nil if the key
	// was absent).
	Current *string `json:"current,omitempty"`
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// item is one stored value.
type item struct {
	Value    string `json:"v"`
	Revision uint64 `json:"r"`
}

// KV is the replicated state machine: a map from keys to values.
//
// Concurrency: the node calls Validate, Apply, Snapshot and Restore from
// one goroutine; Local may be called from any goroutine (a lock guards the
// map for it).
type KV struct {
	mu      sync.RWMutex
	data    map[string]item
	members map[raft.NodeID]string // node ID -> HTTP host:port
}

// NewKV returns an empty store.
func NewKV() *KV { return &KV{data: map[string]item{}, members: map[raft.NodeID]string{}} }

// check is the deterministic validation shared by Validate and Apply.
func (kv *KV) check(c Command) *Error {
	switch c.Op {
	case OpGet, OpPut, OpDelete, OpCAS:
	case OpMember:
		if c.Key == "" || len(c.Key) > MaxKeyLen {
			return &Error{Code: CodeInvalid, Key: c.Key, Message: "member: bad node ID"}
		}
		if c.Value != "" {
			if _, _, err := net.SplitHostPort(c.Value); err != nil {
				return &Error{Code: CodeInvalid, Key: c.Key, Message: fmt.Sprintf("member: bad HTTP address %q", c.Value)}
			}
		}
		return nil
	default:
		return &Error{Code: CodeInvalid, Key: c.Key, Message: fmt.Sprintf("unknown operation %q", c.Op)}
	}
	if c.Key == "" {
		return &Error{Code: CodeInvalid, Message: "empty key"}
	}
	if len(c.Key) > MaxKeyLen {
		return &Error{Code: CodeInvalid, Message: fmt.Sprintf("key is %d bytes, limit %d", len(c.Key), MaxKeyLen)}
	}
	if len(c.Value) > MaxValueLen || len(c.Old) > MaxValueLen {
		return &Error{Code: CodeInvalid, Key: c.Key, Message: fmt.Sprintf("value is over %d bytes", MaxValueLen)}
	}
	if c.Op == OpCAS {
		kv.mu.RLock()
		cur, ok := kv.data[c.Key]
		kv.mu.RUnlock()
		if ok != c.OldExists || (ok && cur.Value != c.Old) {
			e := &Error{Code: CodeConflict, Key: c.Key}
			if ok {
				v := cur.Value
				e.Current = &v
				e.Message = fmt.Sprintf("conflict on %q: current value is %q", c.Key, cur.Value)
			} else {
				e.Message = fmt.Sprintf("conflict on %q: key is absent", c.Key)
			}
			return e
		}
	}
	return nil
}

// Validate runs on the leader before the command enters the log: invalid
// commands and (advisory) CAS conflicts never cost a log entry.
func (kv *KV) Validate(c Command) *Error { return kv.check(c) }

// Apply applies a committed command, re-checking deterministically what
// Validate checked, since the state may have changed in between.
func (kv *KV) Apply(index uint64, c Command) (Response, *Error) {
	if e := kv.check(c); e != nil {
		return Response{}, e
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if c.Op == OpMember {
		old, found := kv.members[raft.NodeID(c.Key)]
		if c.Value == "" {
			delete(kv.members, raft.NodeID(c.Key))
		} else {
			kv.members[raft.NodeID(c.Key)] = c.Value
		}
		return Response{Value: old, Found: found, Revision: index}, nil
	}
	cur, found := kv.data[c.Key]
	switch c.Op {
	case OpGet:
		return Response{Value: cur.Value, Found: found, Revision: cur.Revision}, nil
	case OpDelete:
		delete(kv.data, c.Key)
		return Response{Value: cur.Value, Found: found}, nil
	default: // put, cas
		kv.data[c.Key] = item{Value: c.Value, Revision: index}
		return Response{Value: c.Value, Found: found, Revision: index}, nil
	}
}

// Local reads key from this node's copy, without going through the log:
// fast, available on any node, but possibly stale.
func (kv *KV) Local(key string) (Response, bool) {
	kv.mu.RLock()
	defer kv.mu.RUnlock()
	it, ok := kv.data[key]
	return Response{Value: it.Value, Found: ok, Revision: it.Revision}, ok
}

// MemberHTTP returns the HTTP address recorded for node id in this
// node's copy ("" if none).
func (kv *KV) MemberHTTP(id raft.NodeID) string {
	kv.mu.RLock()
	defer kv.mu.RUnlock()
	return kv.members[id]
}

// Len returns the number of keys in this node's copy.
func (kv *KV) Len() int {
	kv.mu.RLock()
	defer kv.mu.RUnlock()
	return len(kv.data)
}

// Snapshot copies the maps; the copy is written out while Apply goes on.
func (kv *KV) Snapshot() (raft.StateSnapshot, error) {
	kv.mu.RLock()
	defer kv.mu.RUnlock()
	return &kvSnapshot{Data: maps.Clone(kv.data), Members: maps.Clone(kv.members)}, nil
}

// Restore replaces the state with the one in a snapshot.
func (kv *KV) Restore(r io.Reader) error {
	var s kvSnapshot
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return fmt.Errorf("kv: restore snapshot: %w", err)
	}
	if s.Data == nil {
		s.Data = map[string]item{}
	}
	if s.Members == nil {
		s.Members = map[raft.NodeID]string{}
	}
	kv.mu.Lock()
	kv.data, kv.members = s.Data, s.Members
	kv.mu.Unlock()
	return nil
}

// kvSnapshot is the snapshot format: JSON of both maps.
type kvSnapshot struct {
	Data    map[string]item        `json:"data"`
	Members map[raft.NodeID]string `json:"members"`
}

func (s *kvSnapshot) Write(w io.Writer) error { return json.NewEncoder(w).Encode(s) }
func (s *kvSnapshot) Release()                {}
