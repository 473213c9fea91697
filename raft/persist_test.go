package raft_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
)

// gatedStore delays Save while its gate is closed and records whether two
// writes (Save or Compact) ever overlapped: the storage contract promises
// one writer at a time.
type gatedStore struct {
	*memory.Store
	mu      sync.Mutex
	gate    chan struct{} // nil: open
	busy    atomic.Int32
	overlap atomic.Bool
	blocked atomic.Bool // a Save is waiting at the gate
}

func (s *gatedStore) enter() func() {
	if s.busy.Add(1) > 1 {
		s.overlap.Store(true)
	}
	return func() { s.busy.Add(-1) }
}

func (s *gatedStore) Save(hs raft.HardState, ents []raft.Entry) error {
	defer s.enter()()
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	if g != nil && len(ents) > 0 {
		s.blocked.Store(true)
		<-g
		s.blocked.Store(false)
	}
	return s.Store.Save(hs, ents)
}

func (s *gatedStore) Compact(index, term uint64) error {
	defer s.enter()()
	return s.Store.Compact(index, term)
}

func (s *gatedStore) close() { s.mu.Lock(); s.gate = make(chan struct{}); s.mu.Unlock() }

func (s *gatedStore) open() {
	s.mu.Lock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
	s.mu.Unlock()
}

func gatedCluster(t *testing.T, tune ...func(*raft.Config)) (*cluster, map[raft.NodeID]*gatedStore) {
	gs := map[raft.NodeID]*gatedStore{}
	var mu sync.Mutex
	c := newClusterWrapped(t, 3, func(id raft.NodeID, m *memory.Store) raft.Storage {
		mu.Lock()
		defer mu.Unlock()
		g := &gatedStore{Store: m}
		gs[id] = g
		return g
	}, tune...)
	t.Cleanup(func() {
		for _, g := range gs {
			g.open()
		}
	})
	return c, gs
}

// The leader writes its own log in parallel with its followers (thesis
// §10.2.1): while its write is stalled, entries still commit on a quorum of
// followers, but the leader applies only what is durable in its own log.
func TestLeaderCommitsWhileItsWriteIsInFlight(t *testing.T) {
	c, gs := gatedCluster(t)
	lead := c.leader()
	c.mustPut("warm", "up")
	gs[lead].close()
	ctx := ctxT(t)
	var last uint64
	for i := range 5 {
		res, err := c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: fmt.Sprint("k", i), Val: "v"}, raft.Committed).Wait(ctx)
		if err != nil {
			t.Fatalf("commit-mode proposal %d with the leader's write stalled: %v", i, err)
		}
		last = res.Index
	}
	if !gs[lead].blocked.Load() {
		t.Fatal("the leader's write was not stalled: the test proves nothing")
	}
	if s := c.nodes[lead].Status(); s.Applied >= last || s.Commit < last {
		t.Fatalf("leader applied %d, commit %d, with its write of up to %d stalled", s.Applied, s.Commit, last)
	}
	if _, ok := c.sms[lead].get("k0"); ok {
		t.Fatal("the leader applied an entry that is not durable in its own log")
	}
	for _, id := range c.ids {
		if id != lead {
			c.waitApplied(last, id)
		}
	}
	gs[lead].open()
	c.waitApplied(last, lead)
	for i := range 5 {
		if v, _ := c.sms[lead].get(fmt.Sprint("k", i)); v != "v" {
			t.Fatalf("leader lost k%d after its write completed", i)
		}
	}
	if li, err := c.stores[lead].LastIndex(); err != nil || li < last {
		t.Fatalf("leader's store ends at %d (%v), want >= %d", li, err, last)
	}
}

// Store writes never overlap, though the leader writes on a separate
// goroutine and compacts after each snapshot.
func TestStoreWritesNeverOverlap(t *testing.T) {
	c, gs := gatedCluster(t, smallSnapshots(16, 4))
	lead := c.leader()
	ctx := ctxT(t)
	futs := make([]*raft.Future[string, *kvError], 0, 400)
	for i := range 400 {
		futs = append(futs, c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: fmt.Sprint(i % 50), Val: fmt.Sprint(i)}))
	}
	var last uint64
	for i, f := range futs {
		res, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("proposal %d: %v", i, err)
		}
		last = max(last, res.Index)
	}
	c.waitApplied(last)
	// Snapshots are written in the background; compaction follows them.
	waitFor(t, "every node to compact its log", 5*time.Second, func() bool {
		for _, id := range c.ids {
			if first, err := c.stores[id].FirstIndex(); err != nil || first <= 1 {
				return false
			}
		}
		return true
	})
	for id, g := range gs {
		if g.overlap.Load() {
			t.Errorf("%s: two store writes overlapped", id)
		}
	}
}

// A follower writes its log on a writer goroutine too: while its write is
// stalled it keeps answering heartbeats (no election starts) and it does
// not acknowledge what is not durable, so with both followers stalled
// nothing commits; once the writes complete everything does.
func TestFollowerWritesInFlight(t *testing.T) {
	c, gs := gatedCluster(t)
	lead := c.leader()
	c.mustPut("warm", "up")
	term := c.nodes[lead].Status().Term
	before := c.nodes[lead].Status().Commit
	// A follower adopts the leader's term only once it has saved it, so
	// both must have done so before their writes stall.
	for _, id := range c.ids {
		waitFor(t, string(id)+" to follow "+string(lead)+" in its term", 5*time.Second, func() bool {
			s := c.nodes[id].Status()
			return s.Term == term && s.Leader == lead
		})
	}
	for _, id := range c.ids {
		if id != lead {
			gs[id].close()
		}
	}
	ctx := ctxT(t)
	futs := make([]*raft.Future[string, *kvError], 0, 5)
	for i := range 5 {
		futs = append(futs, c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: fmt.Sprint("f", i), Val: "v"}, raft.Committed))
	}
	// Many heartbeat intervals pass with the followers' writes stalled.
	deadline := time.Now().Add(20 * testConfig("n1").TickInterval * time.Duration(testConfig("n1").ElectionTicks))
	for time.Now().Before(deadline) {
		if s := c.nodes[lead].Status(); s.Commit > before {
			t.Fatalf("the leader committed %d with both followers' writes stalled (was %d): an acknowledgement left before it was durable", s.Commit, before)
		}
		for _, id := range c.ids {
			if s := c.nodes[id].Status(); s.Term != term {
				t.Fatalf("%s moved to term %d while its write was stalled: it stopped answering the leader", id, s.Term)
			}
		}
		time.Sleep(5 * time.Millisecond) // polling, bounded by the deadline: the state must not change
	}
	stalled := 0
	for _, id := range c.ids {
		if id != lead && gs[id].blocked.Load() {
			stalled++
		}
	}
	if stalled == 0 {
		t.Fatal("no follower write was stalled: the test proves nothing")
	}
	for _, id := range c.ids {
		gs[id].open()
	}
	for i, f := range futs {
		if _, err := f.Wait(ctx); err != nil {
			t.Fatalf("proposal %d after the writes completed: %v", i, err)
		}
	}
}

// SavesInline is false: a gated Save must run on the writer goroutine,
// never hold up the driver.
func (s *gatedStore) SavesInline() bool { return false }
