package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"net"
	"sync/atomic"

	"github.com/typedraft/typedraft/raft"
)

// Op names a Command's operation.
type Op string

// The operations of the key-value store.
const (
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

// Command is the application's command type C: what enters the log. Only
// writes do: reads need no log entry (see API and KV.Get).
type Command struct {
	Op    Op     `msgpack:"o"`
	Key   string `msgpack:"k"`
	Value string `msgpack:"v,omitempty"`
	// Old is the value a "cas" expects; if OldExists is false the key
	// must be absent instead.
	Old       string `msgpack:"p,omitempty"`
	OldExists bool   `msgpack:"e,omitempty"`
}

// Response is the application's response type R, and what a read
// (KV.Get) returns.
type Response struct {
	// Value is the key's value after the command (for "delete", the value
	// it had; for a read, its value).
	Value string `json:"value"`
	// Found reports whether the key existed before the command (for a
	// read, whether it exists).
	Found bool `json:"found"`
	// Revision is the log index of the key's latest write (0 if absent).
	Revision uint64 `json:"revision"`
	// Digest fingerprints the command that Apply answered (0 for a read
	// or a Validate rejection; not in the JSON answers). A retry with an
	// Idempotency-Key is answered with the response kept for the key, and
	// the HTTP API compares its Digest with the retry's command to notice
	// a key reused by a different request (see openSession).
	Digest uint64 `json:"-" msgpack:"d,omitempty"`
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

// KV is the replicated state machine: a map from keys to values, and the
// HTTP addresses of the members.
//
// Concurrency: the node calls Validate, Apply, Snapshot and Restore on its
// apply goroutine, and runs reads there too: Get is called only inside
// (*raft.Raft).Read or raft.Query (or, outside a node, from one goroutine),
// so the key map needs no lock. MemberHTTP and Len may be called from any
// goroutine: the members map is copy-on-write and the key count an atomic,
// both published by Apply and Restore, so that redirects and GET /status
// are answered without waiting for the apply goroutine (which may be busy
// restoring a large snapshot).
type KV struct {
	data map[string]item
	// members maps node IDs to HTTP host:port. The map it points to is
	// never modified: Apply and Restore store a new one.
	members atomic.Pointer[map[raft.NodeID]string]
	keys    atomic.Int64 // len(data)
}

// NewKV returns an empty store.
func NewKV() *KV {
	kv := &KV{data: map[string]item{}}
	kv.members.Store(&map[raft.NodeID]string{})
	return kv
}

// checkKey reports why key cannot name a value, or nil.
func checkKey(key string) *Error {
	if key == "" {
		return &Error{Code: CodeInvalid, Message: "empty key"}
	}
	if len(key) > MaxKeyLen {
		return &Error{Code: CodeInvalid, Message: fmt.Sprintf("key is %d bytes, limit %d", len(key), MaxKeyLen)}
	}
	return nil
}

// check is the deterministic validation shared by Validate and Apply.
func (kv *KV) check(c Command) *Error {
	switch c.Op {
	case OpPut, OpDelete, OpCAS:
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
	if e := checkKey(c.Key); e != nil {
		return e
	}
	if len(c.Value) > MaxValueLen || len(c.Old) > MaxValueLen {
		return &Error{Code: CodeInvalid, Key: c.Key, Message: fmt.Sprintf("value is over %d bytes", MaxValueLen)}
	}
	if c.Op == OpCAS {
		cur, ok := kv.data[c.Key]
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
// commands and CAS conflicts never cost a log entry. The node answers a
// rejection only after confirming it with a read index (it validates again
// once that index is applied), so a 409 reflects a linearizable point: no
// write acknowledged before the CAS was sent is missing from "current".
func (kv *KV) Validate(c Command) *Error { return kv.check(c) }

// Apply applies a committed command, re-checking deterministically what
// Validate checked, since the state may have changed in between; a CAS
// that lost that race is rejected here with the same *Error. A "get"
// entry, which older versions of kv wrote for reads, is rejected as an
// unknown operation and changes nothing, on every node alike. Every
// response, a rejection's included, carries the command's Digest.
func (kv *KV) Apply(index uint64, c Command) (Response, *Error) {
	res, e := kv.apply(index, c)
	res.Digest = c.digest()
	return res, e
}

// apply is Apply without the Digest.
func (kv *KV) apply(index uint64, c Command) (Response, *Error) {
	if e := kv.check(c); e != nil {
		return Response{}, e
	}
	if c.Op == OpMember {
		cur := *kv.members.Load()
		old, found := cur[raft.NodeID(c.Key)]
		next := maps.Clone(cur)
		if c.Value == "" {
			delete(next, raft.NodeID(c.Key))
		} else {
			next[raft.NodeID(c.Key)] = c.Value
		}
		kv.members.Store(&next)
		return Response{Value: old, Found: found, Revision: index}, nil
	}
	cur, found := kv.data[c.Key]
	switch c.Op {
	case OpDelete:
		delete(kv.data, c.Key)
		kv.keys.Store(int64(len(kv.data)))
		return Response{Value: cur.Value, Found: found}, nil
	default: // put, cas
		kv.data[c.Key] = item{Value: c.Value, Revision: index}
		kv.keys.Store(int64(len(kv.data)))
		return Response{Value: c.Value, Found: found, Revision: index}, nil
	}
}

// digest returns c's fingerprint for Response.Digest: FNV-1a (64 bits)
// of its fields, each length-prefixed; never 0. It is a function of c
// alone, the same on every node and in every version that keeps it.
func (c Command) digest() uint64 {
	h := fnv.New64a()
	var n [8]byte
	for _, s := range []string{string(c.Op), c.Key, c.Value, c.Old} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		io.WriteString(h, s)
	}
	if c.OldExists {
		h.Write([]byte{1})
	} else {
		h.Write([]byte{0})
	}
	if d := h.Sum64(); d != 0 {
		return d
	}
	return 1
}

// Get returns key's value in this node's copy and whether it is present.
// It must run on the apply goroutine: the HTTP API calls it inside
// raft.Query, whose mode decides how fresh the copy is.
func (kv *KV) Get(key string) (Response, bool) {
	it, ok := kv.data[key]
	return Response{Value: it.Value, Found: ok, Revision: it.Revision}, ok
}

// MemberHTTP returns the HTTP address recorded for node id in this
// node's copy ("" if none). It may be called from any goroutine.
func (kv *KV) MemberHTTP(id raft.NodeID) string {
	return (*kv.members.Load())[id]
}

// Len returns the number of keys in this node's copy as of the last
// Apply or Restore. It may be called from any goroutine.
func (kv *KV) Len() int { return int(kv.keys.Load()) }

// Snapshot copies the key map (the members map is never modified, so it
// is shared); the copy is written out while Apply goes on.
func (kv *KV) Snapshot(raft.SnapshotMeta) (raft.StateSnapshot, error) {
	return &kvSnapshot{Data: maps.Clone(kv.data), Members: *kv.members.Load()}, nil
}

// Restore replaces the state with the one in a snapshot.
func (kv *KV) Restore(_ raft.SnapshotMeta, r io.Reader) error {
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
	kv.data = s.Data
	kv.keys.Store(int64(len(s.Data)))
	kv.members.Store(&s.Members)
	return nil
}

// kvSnapshot is the snapshot format: JSON of both maps.
type kvSnapshot struct {
	Data    map[string]item        `json:"data"`
	Members map[raft.NodeID]string `json:"members"`
}

func (s *kvSnapshot) Write(w io.Writer) error { return json.NewEncoder(w).Encode(s) }
func (s *kvSnapshot) Release()                {}
