package raft_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/transport/inmem"
)

// kvCmd is the test state machine's command.
type kvCmd struct {
	Op  string `msgpack:"o"`
	Key string `msgpack:"k"`
	Val string `msgpack:"v"`
	Old string `msgpack:"x"`
}

// kvError is the test application's own error type.
type kvError struct {
	Code string
	Key  string
}

func (e *kvError) Error() string { return e.Code + ": " + e.Key }

// kvSM is a key-value state machine that records what it applied.
type kvSM struct {
	mu       sync.Mutex
	data     map[string]string
	applied  []string // "index:op:key=val"
	restores int
	// applyDelay makes Apply slow (a state machine doing real work).
	applyDelay time.Duration
	// guardKey/guardVal: Validate rejects writes to "guarded" unless
	// guardKey holds guardVal (set with rejectUnless).
	guardKey, guardVal string
	// snapMetas and restoreMetas are the metas Snapshot and Restore got.
	snapMetas, restoreMetas []raft.SnapshotMeta
}

// rejectUnless makes Validate reject writes to the key "guarded" unless key
// holds val.
func (s *kvSM) rejectUnless(key, val string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.guardKey, s.guardVal = key, val
}

func newKV() *kvSM { return &kvSM{data: map[string]string{}} }

func (s *kvSM) Validate(c kvCmd) *kvError {
	if c.Op == "invalid" {
		return &kvError{Code: "invalid", Key: c.Key}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.Key == "guarded" && s.guardKey != "" && s.data[s.guardKey] != s.guardVal {
		return &kvError{Code: "guard", Key: s.guardKey}
	}
	return nil
}

func (s *kvSM) Apply(index uint64, c kvCmd) (string, *kvError) {
	if s.applyDelay > 0 {
		time.Sleep(s.applyDelay)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied = append(s.applied, fmt.Sprintf("%d:%s:%s=%s", index, c.Op, c.Key, c.Val))
	switch c.Op {
	case "put":
		s.data[c.Key] = c.Val
		return c.Val, nil
	case "get":
		return s.data[c.Key], nil
	case "cas":
		if s.data[c.Key] != c.Old {
			return s.data[c.Key], &kvError{Code: "conflict", Key: c.Key}
		}
		s.data[c.Key] = c.Val
		return c.Val, nil
	case "panic":
		panic("boom at " + c.Key)
	}
	return "", &kvError{Code: "unknown-op", Key: c.Op}
}

// Snapshot copies the map: the copy is the point-in-time view.
func (s *kvSM) Snapshot(meta raft.SnapshotMeta) (raft.StateSnapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snapMetas = append(s.snapMetas, meta)
	return kvView{data: maps.Clone(s.data), applied: slices.Clone(s.applied)}, nil
}

func (s *kvSM) Restore(meta raft.SnapshotMeta, r io.Reader) error {
	var v kvView
	if err := json.NewDecoder(r).Decode(&v); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data, s.applied = v.Data, v.Applied
	s.restores++
	s.restoreMetas = append(s.restoreMetas, meta)
	return nil
}

type kvView struct {
	data    map[string]string
	applied []string
	Data    map[string]string `json:"d"`
	Applied []string          `json:"a"`
}

func (v kvView) Write(w io.Writer) error {
	return json.NewEncoder(w).Encode(kvView{Data: v.data, Applied: v.applied})
}

func (v kvView) Release() {}

func (s *kvSM) get(k string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[k]
	return v, ok
}

func (s *kvSM) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.applied)
}

type node = raft.Raft[kvCmd, string, *kvError]

// cluster is an in-process cluster over transport/inmem and store/memory.
type cluster struct {
	t      testing.TB
	net    *inmem.Network
	ids    []raft.NodeID
	nodes  map[raft.NodeID]*node
	sms    map[raft.NodeID]*kvSM
	stores map[raft.NodeID]*memory.Store
	trs    map[raft.NodeID]*inmem.Transport
	// tune adjusts every node's config before it starts.
	tune func(*raft.Config)
	// wrap, if set, wraps each node's store (to observe or delay writes).
	wrap func(raft.NodeID, *memory.Store) raft.Storage
}

func testConfig(id raft.NodeID) raft.Config {
	return raft.Config{ID: id, TickInterval: 5 * time.Millisecond, ElectionTicks: 10, HeartbeatTicks: 2}
}

func newCluster(t *testing.T, n int, tune ...func(*raft.Config)) *cluster {
	return newClusterTB(t, n, tune...)
}

func newClusterTB(t testing.TB, n int, tune ...func(*raft.Config)) *cluster {
	t.Helper()
	return newClusterWrapped(t, n, nil, tune...)
}

// newClusterWrapped is newCluster with each node's store wrapped by wrap.
func newClusterWrapped(t testing.TB, n int, wrap func(raft.NodeID, *memory.Store) raft.Storage, tune ...func(*raft.Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, net: inmem.NewNetwork(int64(n)), nodes: map[raft.NodeID]*node{},
		sms: map[raft.NodeID]*kvSM{}, stores: map[raft.NodeID]*memory.Store{}, trs: map[raft.NodeID]*inmem.Transport{},
		wrap: wrap}
	if len(tune) > 0 {
		c.tune = tune[0]
	}
	var servers []raft.Server
	for i := 1; i <= n; i++ {
		id := raft.NodeID(fmt.Sprintf("n%d", i))
		c.ids = append(c.ids, id)
		servers = append(servers, raft.Server{ID: id, Addr: string(id)})
	}
	for _, id := range c.ids {
		c.stores[id] = newStore(len(c.stores))
		c.trs[id] = c.net.Join(id)
		c.start(id)
		if err := c.nodes[id].Bootstrap(context.Background(), servers); err != nil {
			t.Fatalf("bootstrap %s: %v", id, err)
		}
	}
	t.Cleanup(c.shutdown)
	return c
}

func (c *cluster) start(id raft.NodeID) {
	c.sms[id] = newKV()
	cfg := testConfig(id)
	if c.tune != nil {
		c.tune(&cfg)
	}
	var store raft.Storage = c.stores[id]
	if c.wrap != nil {
		store = c.wrap(id, c.stores[id])
	}
	nd, err := raft.New(cfg, c.sms[id], store, c.trs[id])
	if err != nil {
		c.t.Fatalf("new %s: %v", id, err)
	}
	c.nodes[id] = nd
}

// addNode starts a fresh node (empty storage, not bootstrapped) that a
// leader can add to the cluster.
func (c *cluster) addNode(id raft.NodeID) {
	c.t.Helper()
	c.ids = append(c.ids, id)
	c.stores[id] = newStore(len(c.stores))
	c.trs[id] = c.net.Join(id)
	c.start(id)
}

// newStore returns the i-th node's store: every other node saves on its
// writer goroutine, as a node on a store that fsyncs does, and the others
// inline (raft.InlineSaver), so the cluster tests run both write paths.
func newStore(i int) *memory.Store {
	s := memory.New()
	s.SetSavesInline(i%2 == 0)
	return s
}

// restart stops id and starts it again on the same storage with a fresh,
// empty state machine and a new transport endpoint.
func (c *cluster) restart(id raft.NodeID) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.nodes[id].Shutdown(ctx); err != nil {
		c.t.Fatalf("shutdown %s: %v", id, err)
	}
	_ = c.trs[id].Close()
	c.trs[id] = c.net.Join(id)
	c.start(id)
}

func (c *cluster) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range c.ids {
		if nd := c.nodes[id]; nd != nil {
			if err := nd.Shutdown(ctx); err != nil {
				c.t.Errorf("shutdown %s: %v", id, err)
			}
		}
	}
	for _, tr := range c.trs {
		_ = tr.Close()
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// leader waits for exactly one node among candidates to lead (and be
// recognised by a majority) and returns it.
func (c *cluster) leader(candidates ...raft.NodeID) raft.NodeID {
	c.t.Helper()
	if len(candidates) == 0 {
		candidates = c.ids
	}
	var lead raft.NodeID
	waitFor(c.t, "a leader", 5*time.Second, func() bool {
		lead = ""
		var term uint64
		for _, id := range candidates {
			s := c.nodes[id].Status()
			if s.State == raft.Leader && s.Term >= term {
				lead, term = id, s.Term
			}
		}
		return lead != ""
	})
	return lead
}

func (c *cluster) put(id raft.NodeID, key, val string) (raft.Result[string, *kvError], error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return c.nodes[id].Propose(ctx, kvCmd{Op: "put", Key: key, Val: val}).Wait(ctx)
}

// mustPut writes through the current leader, retrying across elections.
func (c *cluster) mustPut(key, val string) uint64 {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		lead := c.leader()
		res, err := c.put(lead, key, val)
		if err == nil && !res.Rejected() {
			return res.Index
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("put %s=%s: %v %v", key, val, err, res.Err)
		}
	}
}

// waitApplied waits until every listed node applied index.
func (c *cluster) waitApplied(index uint64, ids ...raft.NodeID) {
	c.t.Helper()
	if len(ids) == 0 {
		ids = c.ids
	}
	waitFor(c.t, fmt.Sprintf("index %d applied on %v", index, ids), 10*time.Second, func() bool {
		for _, id := range ids {
			if c.nodes[id].Status().Applied < index {
				return false
			}
		}
		return true
	})
}

func isNotLeader(err error) bool {
	var nl *raft.NotLeaderError
	return errors.As(err, &nl)
}
