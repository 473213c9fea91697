package kvmodel_test

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/raft/rafttest/kvmodel"
)

// TestStoreFollowsSpec applies random commands to a Store and to the
// specification and checks that they agree, command for command.
func TestStoreFollowsSpec(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	spec := kvmodel.Spec()
	st := kvmodel.NewStore()
	states := map[string]kvmodel.KeyState{}
	cas := 0
	for i := 0; i < 2000; i++ {
		cmd := kvmodel.NextCommand(rng, i%3, 3)
		s, ok := states[cmd.Key]
		if !ok {
			s = spec.Init()
		}
		next, wantR, wantE := spec.Step(s, cmd)
		gotR, gotE := st.Apply(uint64(i+1), cmd)
		if !spec.EqualResult(wantR, wantE, gotR, gotE) {
			t.Fatalf("command %d %v: store answered %+v/%v, spec %+v/%v", i, cmd, gotR, gotE, wantR, wantE)
		}
		if cmd.Op == kvmodel.CAS && gotE == nil {
			cas++
		}
		states[cmd.Key] = next
	}
	if cas == 0 {
		t.Fatal("no CAS succeeded: the workload does not exercise CAS")
	}
}

func TestStoreErrors(t *testing.T) {
	st := kvmodel.NewStore()
	if _, e := st.Apply(1, kvmodel.Command{Op: kvmodel.CAS, Key: "k", Expect: "A", Value: "B"}); e == nil || e.Code != "mismatch" || e.Found {
		t.Fatalf("CAS on an absent key with an expectation: %v", e)
	}
	if _, e := st.Apply(2, kvmodel.Command{Op: kvmodel.Op(99), Key: "k"}); e == nil || e.Code != "bad-op" {
		t.Fatalf("unknown op: %v", e)
	}
	if !strings.Contains((&kvmodel.Error{Code: "mismatch", Current: "x"}).Error(), "mismatch") {
		t.Fatal("error text does not name the mismatch")
	}
}

// TestSnapshotRoundTrip checks that a restored store equals the original
// and that equal states write equal bytes.
func TestSnapshotRoundTrip(t *testing.T) {
	a := kvmodel.NewStore()
	a.Apply(1, kvmodel.Command{Op: kvmodel.Put, Key: "k1", Value: "v1"})
	a.Apply(2, kvmodel.Command{Op: kvmodel.Append, Key: "k2", Value: "x,"})
	view, err := a.Snapshot(raft.SnapshotMeta{Index: 1, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	a.Apply(3, kvmodel.Command{Op: kvmodel.Put, Key: "k1", Value: "later"}) // must not change the view
	var buf bytes.Buffer
	if err := view.Write(&buf); err != nil {
		t.Fatal(err)
	}
	view.Release()
	b := kvmodel.NewStore()
	if err := b.Restore(raft.SnapshotMeta{Index: 1, Term: 1}, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if v, _ := b.Get("k1"); v != "v1" {
		t.Fatalf("restored k1 = %q, want the snapshot's v1", v)
	}
	if v, _ := b.Get("k2"); v != "x," {
		t.Fatalf("restored k2 = %q", v)
	}
	if err := b.Restore(raft.SnapshotMeta{Index: 1, Term: 1}, strings.NewReader("{not json")); err == nil {
		t.Fatal("malformed snapshot accepted")
	}
}

func TestNextCommandDeterministic(t *testing.T) {
	gen := func() []kvmodel.Command {
		rng := rand.New(rand.NewPCG(7, 7))
		var out []kvmodel.Command
		for i := 0; i < 100; i++ {
			out = append(out, kvmodel.NextCommand(rng, i%4, 4))
		}
		return out
	}
	if !reflect.DeepEqual(gen(), gen()) {
		t.Fatal("the same rng produced different commands")
	}
}
