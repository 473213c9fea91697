package raft_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/typedraft/typedraft/raft"
)

func TestMain(m *testing.M) {
	if os.Getenv(pauseChildEnv) != "" {
		// A child process of TestPausedLeaderAnswersNothingStale.
		pauseChild()
		return
	}
	goleak.VerifyTestMain(m)
}

func TestClusterElectsLeader(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) {
			c := newCluster(t, n)
			lead := c.leader()
			// Every node agrees on the leader within a bound.
			waitFor(t, "all nodes to know the leader", 5*time.Second, func() bool {
				for _, id := range c.ids {
					if c.nodes[id].Status().Leader != lead {
						return false
					}
				}
				return true
			})
		})
	}
}

func TestClusterReelectsAfterLeaderCutOff(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) {
			c := newCluster(t, n)
			old := c.leader()
			idx := c.mustPut("a", "1")
			c.net.Isolate(old)
			var rest []raft.NodeID
			for _, id := range c.ids {
				if id != old {
					rest = append(rest, id)
				}
			}
			lead := c.leader(rest...)
			if lead == old {
				t.Fatal("isolated leader still leads the majority")
			}
			if s := c.nodes[lead].Status(); s.Commit < idx {
				t.Fatalf("new leader commit %d lost acknowledged write at %d", s.Commit, idx)
			}
			c.mustPut("b", "2")
			c.net.Heal()
		})
	}
}

func TestClusterNoCommitWithoutQuorum(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	for _, id := range c.ids {
		if id != lead {
			c.net.Isolate(id)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	f := c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: "k", Val: "lost"})
	_, err := f.Wait(ctx)
	if err == nil {
		t.Fatal("write acknowledged without a quorum")
	}
	if !strings.Contains(err.Error(), "indeterminate") {
		t.Fatalf("error %v not marked indeterminate", err)
	}
	for _, id := range c.ids {
		for _, line := range c.sms[id].log() {
			if strings.Contains(line, "k=lost") {
				t.Fatalf("%s applied an uncommitted write: %s", id, line)
			}
		}
	}
	c.net.Heal()
}

// An old leader partitioned away accepts writes it cannot commit; when it
// rejoins, the new leader's log replaces its uncommitted entries.
func TestClusterOldLeaderEntriesReplaced(t *testing.T) {
	c := newCluster(t, 3)
	old := c.leader()
	c.net.Isolate(old)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	stale := c.nodes[old].Propose(ctx, kvCmd{Op: "put", Key: "x", Val: "stale"})
	var rest []raft.NodeID
	for _, id := range c.ids {
		if id != old {
			rest = append(rest, id)
		}
	}
	lead := c.leader(rest...)
	idx := c.mustPut("x", "fresh")
	c.net.Heal()
	c.waitApplied(idx)
	if _, err := stale.Wait(ctx); err == nil {
		t.Fatal("the stale leader's write was acknowledged")
	}
	want := c.sms[lead].log()
	waitFor(t, "logs to converge", 5*time.Second, func() bool {
		for _, id := range c.ids {
			got := c.sms[id].log()
			n := min(len(got), len(want))
			if !slices.Equal(got[:n], want[:n]) {
				t.Fatalf("%s applied %v, leader %v", id, got, want)
			}
			if len(got) < len(want) {
				return false
			}
		}
		return true
	})
	for _, line := range c.sms[old].log() {
		if strings.Contains(line, "x=stale") {
			t.Fatalf("old leader applied its uncommitted entry: %s", line)
		}
	}
}

// Pre-vote: a node partitioned alone rejoins without deposing the healthy
// leader or raising the cluster's term.
func TestClusterPartitionedNodeRejoinsWithoutDisruption(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	term := c.nodes[lead].Status().Term
	var loner raft.NodeID
	for _, id := range c.ids {
		if id != lead {
			loner = id
			break
		}
	}
	// The loner must know the current term before it is cut off; otherwise
	// it legitimately catches up to it only after the heal.
	waitFor(t, "the loner to follow the leader", 5*time.Second, func() bool {
		s := c.nodes[loner].Status()
		return s.Leader == lead && s.Term == term
	})
	c.net.Isolate(loner)
	// Let the loner time out many times (it cannot win a pre-vote).
	waitFor(t, "the loner to lose its leader", 5*time.Second, func() bool {
		return c.nodes[loner].Status().Leader == ""
	})
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if s := c.nodes[loner].Status(); s.Term != term {
			t.Fatalf("isolated node raised its term to %d (cluster term %d)", s.Term, term)
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.net.Heal()
	idx := c.mustPut("after", "heal")
	c.waitApplied(idx)
	if s := c.nodes[lead].Status(); s.State != raft.Leader || s.Term != term {
		t.Fatalf("leader %s now %s in term %d, want leader in term %d", lead, s.State, s.Term, term)
	}
}

func TestClusterConcurrentProposals(t *testing.T) {
	const clients, perClient = 64, 157 // 10,048 proposals
	// 10,048 proposals at once keep each node busy for a long time under
	// the race detector; a 50 ms election timeout then lets a follower time
	// out, and the test would measure scheduling rather than what it checks
	// (every proposal lands, in the same order everywhere). One second is
	// still short next to the test's deadlines.
	c := newCluster(t, 3, func(cfg *raft.Config) { cfg.ElectionTicks = 200 })
	lead := c.leader()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	var maxIdx uint64
	var mu sync.Mutex
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			futs := make([]*raft.Future[string, *kvError], 0, perClient)
			for i := 0; i < perClient; i++ {
				mode := raft.Applied
				if i%2 == 1 {
					mode = raft.Committed
				}
				futs = append(futs, c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: fmt.Sprint(g), Val: fmt.Sprint(i)}, mode))
			}
			for i, f := range futs {
				res, err := f.Wait(ctx)
				if err != nil || res.Rejected() || res.Index == 0 {
					errs <- fmt.Errorf("client %d op %d: %v %v index %d", g, i, err, res.Err, res.Index)
					return
				}
				if f.Mode() == raft.Applied && res.Value != fmt.Sprint(i) {
					errs <- fmt.Errorf("client %d op %d: value %q", g, i, res.Value)
					return
				}
				mu.Lock()
				maxIdx = max(maxIdx, res.Index)
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.waitApplied(maxIdx)
	want := c.sms[c.ids[0]].log()
	if n := len(want); n < clients*perClient {
		t.Fatalf("applied %d entries, want at least %d", n, clients*perClient)
	}
	for _, id := range c.ids[1:] {
		got := c.sms[id].log()
		n := min(len(got), len(want))
		if n < clients*perClient || !slices.Equal(got[:n], want[:n]) {
			t.Fatalf("%s applied a different sequence", id)
		}
	}
}
