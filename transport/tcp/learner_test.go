package tcp

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
)

// raftNode is an in-process raft.Raft over a TCP transport.
type raftNode struct {
	*raft.Raft[kvCmd, int, error]
	tr  *Transport
	fsm *kvFSM
}

func startRaftNode(t *testing.T, id raft.NodeID) *raftNode {
	t.Helper()
	tr := listen(t, testOptions(id))
	fsm := newKVFSM()
	store := memory.New()
	r, err := raft.New(raft.Config{ID: id, TickInterval: 10 * time.Millisecond}, fsm, store, tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.Shutdown(ctx)
		_ = tr.Close()
		_ = store.Close()
	})
	return &raftNode{Raft: r, tr: tr, fsm: fsm}
}

// TestLearnerAnswersLeaderBeforeKnowingItsAddress: a node started with
// empty storage knows no addresses; the leader adds it as a learner (with
// the learner's address) and promotes it. Until the configuration reaches
// the new node, it can answer the leader only through the address learned
// from the leader's handshake; without that the leader's probe is never
// answered, the learner never counts as caught up and the promotion (which
// also needs the new node's acks in the joint configuration) never happens.
func TestLearnerAnswersLeaderBeforeKnowingItsAddress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n1 := startRaftNode(t, "n1")
	if err := n1.Bootstrap(ctx, []raft.Server{{ID: "n1", Addr: n1.tr.Addr()}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n1 to lead", func() bool { return n1.Status().State == raft.Leader })
	for i := range 5 {
		if _, _, err := n1.Apply(ctx, kvCmd{Key: fmt.Sprintf("k%d", i), Val: "v"}); err != nil {
			t.Fatal(err)
		}
	}

	n2 := startRaftNode(t, "n2")
	// Waiting for the catch-up needs n2's acknowledgements: they reach n1
	// only through the address n2 learned from n1's handshake.
	if err := n1.AddLearner(ctx, "n2", n2.tr.Addr(), true); err != nil {
		t.Fatalf("add learner and wait for its catch-up: %v", err)
	}
	if err := n1.PromoteLearner(ctx, "n2"); err != nil {
		t.Fatalf("promote learner: %v", err)
	}
	res, err := n1.Propose(ctx, kvCmd{Key: "after", Val: "promotion"}).Wait(ctx)
	if err != nil {
		t.Fatalf("write needing n2's ack: %v", err)
	}
	waitFor(t, "n2 to apply the last write", func() bool {
		_, _, at := n2.fsm.digest()
		return at >= res.Index
	})
	k1, d1, _ := n1.fsm.digest()
	k2, d2, _ := n2.fsm.digest()
	if k1 != 6 || k1 != k2 || d1 != d2 {
		t.Fatalf("n1 has %d keys (digest %x), n2 %d (digest %x); want the same 6", k1, d1, k2, d2)
	}
	if role, ok := n1.Status().Role("n2"); !ok || role != raft.Voter {
		t.Fatalf("n2 is %v (member %v), want a voter", role, ok)
	}
}
