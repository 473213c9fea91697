package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/typedraft/typedraft/raft"
)

func TestKVApply(t *testing.T) {
	kv := NewKV()
	if r, ok := kv.Get("a"); ok || r.Found {
		t.Fatalf("get absent: %+v", r)
	}
	if r, e := kv.Apply(2, Command{Op: OpPut, Key: "a", Value: "1"}); e != nil || r.Found || r.Revision != 2 || r.Value != "1" {
		t.Fatalf("put: %+v %v", r, e)
	}
	if r, ok := kv.Get("a"); !ok || !r.Found || r.Value != "1" || r.Revision != 2 {
		t.Fatalf("get: %+v", r)
	}
	if r, e := kv.Apply(4, Command{Op: OpCAS, Key: "a", Old: "1", OldExists: true, Value: "2"}); e != nil || !r.Found || r.Revision != 4 {
		t.Fatalf("cas: %+v %v", r, e)
	}
	if r, e := kv.Apply(5, Command{Op: OpCAS, Key: "b", Value: "new"}); e != nil || r.Found {
		t.Fatalf("cas create: %+v %v", r, e)
	}
	if r, e := kv.Apply(6, Command{Op: OpDelete, Key: "a"}); e != nil || !r.Found || r.Value != "2" {
		t.Fatalf("delete: %+v %v", r, e)
	}
	if _, ok := kv.Get("a"); ok {
		t.Fatal("a still present after delete")
	}
	if r, ok := kv.Get("b"); !ok || r.Value != "new" || r.Revision != 5 {
		t.Fatalf("local b: %+v %v", r, ok)
	}
	if kv.Len() != 1 {
		t.Fatalf("len %d", kv.Len())
	}
}

// Validation is advisory: Apply must re-check, with the same error type,
// because the state can change between Validate and Apply.
func TestKVApplyRechecksWhatValidatePassed(t *testing.T) {
	kv := NewKV()
	kv.Apply(1, Command{Op: OpPut, Key: "k", Value: "x"})
	cas := Command{Op: OpCAS, Key: "k", Old: "x", OldExists: true, Value: "y"}
	if e := kv.Validate(cas); e != nil {
		t.Fatalf("validate: %v", e)
	}
	kv.Apply(2, Command{Op: OpPut, Key: "k", Value: "z"}) // a write that committed first
	_, e := kv.Apply(3, cas)
	if e == nil || e.Code != CodeConflict || e.Current == nil || *e.Current != "z" {
		t.Fatalf("apply after concurrent write: %+v", e)
	}
	if r, _ := kv.Get("k"); r.Value != "z" {
		t.Fatalf("rejected cas changed the value to %q", r.Value)
	}
	// cas expecting absence on a present key, and presence on an absent one.
	if _, e := kv.Apply(4, Command{Op: OpCAS, Key: "k", Value: "w"}); e == nil || e.Code != CodeConflict {
		t.Fatalf("cas absent on present key: %v", e)
	}
	if _, e := kv.Apply(5, Command{Op: OpCAS, Key: "nope", Old: "", OldExists: true, Value: "w"}); e == nil || e.Code != CodeConflict || e.Current != nil {
		t.Fatalf("cas present on absent key: %+v", e)
	}
}

func TestKVInvalidCommands(t *testing.T) {
	kv := NewKV()
	for name, c := range map[string]Command{
		"unknown op":   {Op: "frob", Key: "k"},
		"empty key":    {Op: OpPut},
		"long key":     {Op: OpPut, Key: strings.Repeat("k", MaxKeyLen+1)},
		"long value":   {Op: OpPut, Key: "k", Value: strings.Repeat("v", MaxValueLen+1)},
		"long cas old": {Op: OpCAS, Key: "k", Old: strings.Repeat("v", MaxValueLen+1), OldExists: true},
		"old get":      {Op: "get", Key: "k"}, // written for reads by older versions
	} {
		if e := kv.Validate(c); e == nil || e.Code != CodeInvalid {
			t.Errorf("%s: Validate = %v", name, e)
		}
		if _, e := kv.Apply(1, c); e == nil || e.Code != CodeInvalid {
			t.Errorf("%s: Apply = %v", name, e)
		}
	}
	if kv.Len() != 0 {
		t.Fatalf("invalid commands changed the state: %d keys", kv.Len())
	}
}

func TestKVSnapshotRestore(t *testing.T) {
	kv := NewKV()
	kv.Apply(1, Command{Op: OpPut, Key: "a", Value: "1"})
	kv.Apply(2, Command{Op: OpPut, Key: "b", Value: "2"})
	snap, err := kv.Snapshot(raft.SnapshotMeta{Index: 1, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Later applies must not change the snapshot (it is written while
	// Apply goes on).
	kv.Apply(3, Command{Op: OpPut, Key: "a", Value: "changed"})
	kv.Apply(4, Command{Op: OpDelete, Key: "b"})
	var buf bytes.Buffer
	if err := snap.Write(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	other := NewKV()
	other.Apply(1, Command{Op: OpPut, Key: "stale", Value: "x"})
	if err := other.Restore(raft.SnapshotMeta{Index: 1, Term: 1}, &buf); err != nil {
		t.Fatal(err)
	}
	if other.Len() != 2 {
		t.Fatalf("restored %d keys, want 2", other.Len())
	}
	if r, ok := other.Get("a"); !ok || r.Value != "1" || r.Revision != 1 {
		t.Fatalf("restored a: %+v", r)
	}
	if err := other.Restore(raft.SnapshotMeta{Index: 1, Term: 1}, strings.NewReader("not json")); err == nil {
		t.Fatal("restore of garbage: no error")
	}
}

// The members map is copy-on-write: a snapshot (or a reader on another
// goroutine) keeps the map it was given while Apply records new members.
func TestKVMembersCopyOnWrite(t *testing.T) {
	kv := NewKV()
	kv.Apply(1, Command{Op: OpMember, Key: "n1", Value: "127.0.0.1:8001"})
	kv.Apply(2, Command{Op: OpPut, Key: "a", Value: "1"})
	snap, err := kv.Snapshot(raft.SnapshotMeta{Index: 1, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	kv.Apply(3, Command{Op: OpMember, Key: "n2", Value: "127.0.0.1:8002"})
	kv.Apply(4, Command{Op: OpMember, Key: "n1"}) // forget n1
	if kv.MemberHTTP("n1") != "" || kv.MemberHTTP("n2") != "127.0.0.1:8002" || kv.Len() != 1 {
		t.Fatalf("after apply: n1 %q, n2 %q, %d keys", kv.MemberHTTP("n1"), kv.MemberHTTP("n2"), kv.Len())
	}
	var buf bytes.Buffer
	if err := snap.Write(&buf); err != nil {
		t.Fatal(err)
	}
	other := NewKV()
	if err := other.Restore(raft.SnapshotMeta{Index: 1, Term: 1}, &buf); err != nil {
		t.Fatal(err)
	}
	if other.MemberHTTP("n1") != "127.0.0.1:8001" || other.MemberHTTP("n2") != "" || other.Len() != 1 {
		t.Fatalf("snapshot changed by later applies: n1 %q, n2 %q, %d keys", other.MemberHTTP("n1"), other.MemberHTTP("n2"), other.Len())
	}
}
