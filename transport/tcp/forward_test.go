package tcp

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
)

// limitErr is a typed application error that must survive the wire.
type limitErr struct {
	Have, Want int
}

func (e *limitErr) Error() string { return "over the limit" }

// counter adds amounts up to a limit of 100.
type counter struct{ n int }

func (c *counter) Apply(_ uint64, add int) (int, *limitErr) {
	if c.n+add > 100 {
		return c.n, &limitErr{Have: c.n, Want: add}
	}
	c.n += add
	return c.n, nil
}

// Proposals forwarded by followers over TCP come back with the leader's
// typed result and typed error, and a session's retry through another
// node returns the original result.
func TestForwardingOverTCP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ids := []raft.NodeID{"n1", "n2", "n3"}
	trs := map[raft.NodeID]*Transport{}
	var servers []raft.Server
	for _, id := range ids {
		trs[id] = listen(t, testOptions(id))
		servers = append(servers, raft.Server{ID: id, Addr: trs[id].Addr()})
	}
	nodes := map[raft.NodeID]*raft.Raft[int, int, *limitErr]{}
	for _, id := range ids {
		n, err := raft.New(raft.Config{ID: id, TickInterval: 10 * time.Millisecond}, &counter{}, memory.New(), trs[id])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
		if err := n.Bootstrap(ctx, servers); err != nil {
			t.Fatal(err)
		}
		nodes[id] = n
	}
	lead, _, err := nodes["n1"].WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var f raft.NodeID
	for _, id := range ids {
		if id != lead {
			f = id
		}
	}
	waitFor(t, "every node to know the leader", func() bool {
		for _, n := range nodes {
			if n.Status().Leader != lead {
				return false
			}
		}
		return true
	})
	res, err := nodes[f].Propose(ctx, 60).Wait(ctx)
	if err != nil || res.Value != 60 || res.Err != nil || res.Index == 0 {
		t.Fatalf("forwarded proposal: %+v %v", res, err)
	}
	res, err = nodes[f].Propose(ctx, 50).Wait(ctx)
	if err != nil || res.Err == nil || *res.Err != (limitErr{Have: 60, Want: 50}) {
		t.Fatalf("forwarded rejection: %+v (err %+v) %v", res, res.Err, err)
	}
	sess, err := nodes[f].OpenSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seq := sess.Next()
	first, err := nodes[f].Propose(ctx, 10, seq).Wait(ctx)
	if err != nil || first.Value != 70 {
		t.Fatalf("session proposal: %+v %v", first, err)
	}
	for _, via := range ids {
		// Under load a node may lose the leader (an election on 10 ms
		// ticks) and answer NotLeaderError (leader unknown), or the
		// hop may fail after sending (indeterminate): a client retries
		// both with the same sequence number and must still get the
		// original result.
		var again raft.Result[int, *limitErr]
		var err error
		waitFor(t, "retry via "+string(via), func() bool {
			again, err = nodes[via].Propose(ctx, 10, seq).Wait(ctx)
			var nl *raft.NotLeaderError
			return !errors.As(err, &nl) && !errors.Is(err, raft.ErrIndeterminate)
		})
		if err != nil || again.Value != 70 || again.Index != first.Index {
			t.Fatalf("retry via %s: %+v %v, want the original %+v", via, again, err, first)
		}
	}
	if _, err := nodes[f].Propose(ctx, 1, raft.Seq{Session: sess.ID(), N: 1 << 40}).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[f].Propose(ctx, 1, seq).Wait(ctx); !errors.Is(err, raft.ErrSessionSeqOld) {
		t.Fatalf("older sequence number over TCP: %v", err)
	}
}
