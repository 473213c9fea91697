package raft

import (
	"fmt"
	"testing"
)

// eachDest groups a Ready's messages per destination in place, each
// destination's in the order the core produced them, and hands out runs
// that an owner's append cannot spill from into the next.
func TestEachDestKeepsOrderPerDestination(t *testing.T) {
	var msgs []Message
	for i := 0; i < 12; i++ {
		msgs = append(msgs, Message{To: NodeID(fmt.Sprint("n", i%3+1)), Index: uint64(i)})
	}
	msgs = append(msgs, Message{To: "n4", Index: 99}, Message{To: "n1", Index: 100})
	var order []NodeID
	seen := map[NodeID][]uint64{}
	eachDest(msgs, func(b []Message) {
		if cap(b) != len(b) {
			t.Fatalf("run to %s has spare capacity %d", b[0].To, cap(b)-len(b))
		}
		order = append(order, b[0].To)
		for _, m := range b {
			if m.To != b[0].To {
				t.Fatalf("run to %s holds a message to %s", b[0].To, m.To)
			}
			seen[m.To] = append(seen[m.To], m.Index)
		}
	})
	if fmt.Sprint(order) != "[n1 n2 n3 n4]" {
		t.Fatalf("destinations in order %v, want first appearance", order)
	}
	want := map[NodeID]string{"n1": "[0 3 6 9 100]", "n2": "[1 4 7 10]", "n3": "[2 5 8 11]", "n4": "[99]"}
	for id, w := range want {
		if got := fmt.Sprint(seen[id]); got != w {
			t.Fatalf("%s got %s, want %s", id, got, w)
		}
	}
}

// Appended is made on demand and closed whether it was asked for before
// or after the entry was appended; Index is known once appended.
func TestFutureAppendedOnDemand(t *testing.T) {
	f := newFuture[int, error](Applied)
	early := f.Appended()
	select {
	case <-early:
		t.Fatal("closed before append")
	default:
	}
	if i, tm := f.Index(); i != 0 || tm != 0 {
		t.Fatalf("index %d/%d before append", i, tm)
	}
	f.markAppended(7, 2)
	<-early
	if i, tm := f.Index(); i != 7 || tm != 2 {
		t.Fatalf("index %d/%d", i, tm)
	}
	g := newFuture[int, error](Applied)
	g.fail(ErrShutdown)
	<-g.Appended() // asked for only after it resolved without an entry
	if i, _ := g.Index(); i != 0 {
		t.Fatalf("a future resolved without an entry has index %d", i)
	}
}
