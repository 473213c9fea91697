package pebble

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/typedraft/typedraft/codec"
	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/inmem"
)

// This file is the harness shared by the cluster crash tests
// (cluster_crash_test.go) and the process crash test (process_crash_test.go):
// a key-value state machine, a cluster of raft nodes on Stores, and a
// checker that watches what the nodes persist, send and apply.
//
// A simulated crash of a node (ccCluster.crash) happens at one instant, the
// crash point: the node is isolated and marked dead, then its file system is
// crash-cloned. The old incarnation keeps running until it is shut down, so
// everything it does after the crash point is ignored: its messages are
// dropped, its Saves are not recorded as durable, what it applies is not
// recorded, and the outcome of every proposal that returns after the crash
// point is treated as unknown.

// ccCmd is a command of the test state machine.
type ccCmd struct {
	Op  string `msgpack:"o"` // "put" or "dump"
	Key string `msgpack:"k"`
	Val string `msgpack:"v"`
}

// ccSM is a key-value state machine. Apply of "dump" returns a copy of the
// whole map, which is how the tests read through the log.
type ccSM struct {
	st   *ccStore
	data map[string]string
}

func (s *ccSM) Apply(index uint64, c ccCmd) (map[string]string, error) {
	s.st.chk.applied(s.st, index, c)
	switch c.Op {
	case "put":
		s.data[c.Key] = c.Val
		return nil, nil
	case "dump":
		return maps.Clone(s.data), nil
	}
	return nil, fmt.Errorf("unknown op %q", c.Op)
}

func (s *ccSM) Snapshot(raft.SnapshotMeta) (raft.StateSnapshot, error) {
	return ccView(maps.Clone(s.data)), nil
}

func (s *ccSM) Restore(_ raft.SnapshotMeta, r io.Reader) error {
	m := map[string]string{}
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	s.data = m
	s.st.chk.mu.Lock()
	s.st.chk.restores++
	s.st.chk.mu.Unlock()
	return nil
}

// ccView is a point-in-time copy of a ccSM's map, written as JSON.
type ccView map[string]string

func (v ccView) Write(w io.Writer) error { return json.NewEncoder(w).Encode(map[string]string(v)) }
func (v ccView) Release()                {}

// ccRaft is a node running ccSM.
type ccRaft = raft.Raft[ccCmd, map[string]string, error]

// ccStore is one incarnation of a node's Store, reporting its durable
// hard states to the checker.
type ccStore struct {
	*Store
	id   raft.NodeID
	chk  *ccChecker
	dead bool // guarded by chk.mu; set at the crash point
}

func (s *ccStore) Save(hs raft.HardState, es []raft.Entry) error {
	if err := s.Store.Save(hs, es); err != nil {
		return err
	}
	s.chk.saved(s, hs)
	return nil
}

// ccTransport is one incarnation's transport: it lets the checker see every
// message and drops those sent after the crash point.
type ccTransport struct {
	*inmem.Transport
	st *ccStore
}

func (t *ccTransport) Send(to raft.Peer, msgs []raft.Message) {
	if t.st.chk.sending(t.st, msgs) {
		t.Transport.Send(to, msgs)
	}
}

// ccChecker collects safety violations as the cluster runs.
type ccChecker struct {
	mu sync.Mutex
	// appliedAt is the command applied at each index by any live node.
	appliedAt map[uint64]ccCmd
	// appliedVals holds every value a live node applied.
	appliedVals map[string]bool
	// votes is, per node and term, the vote it durably stored in the term.
	votes map[raft.NodeID]map[uint64]raft.NodeID
	// maxTerm is each node's highest durably stored term.
	maxTerm map[raft.NodeID]uint64
	// grants is, per node and term, the candidate it granted its vote to.
	grants     map[raft.NodeID]map[uint64]raft.NodeID
	grantCount int
	restores   int // state machine restores from snapshots
	violations []string
}

func newChecker() *ccChecker {
	return &ccChecker{
		appliedAt: map[uint64]ccCmd{}, appliedVals: map[string]bool{},
		votes: map[raft.NodeID]map[uint64]raft.NodeID{}, maxTerm: map[raft.NodeID]uint64{},
		grants: map[raft.NodeID]map[uint64]raft.NodeID{},
	}
}

func (c *ccChecker) violate(format string, args ...any) {
	c.violations = append(c.violations, fmt.Sprintf(format, args...))
}

func (c *ccChecker) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.violations) == 0 {
		return nil
	}
	v := c.violations
	if len(v) > 10 {
		v = append(v[:10:10], fmt.Sprintf("... and %d more", len(c.violations)-10))
	}
	return fmt.Errorf("%d safety violations:\n  %s", len(c.violations), strings.Join(v, "\n  "))
}

// durable records hs as durably stored by node id (the caller holds c.mu)
// and checks it against what the node stored before: terms never go back,
// and within a term a vote, once stored, never changes or disappears.
func (c *ccChecker) durable(id raft.NodeID, hs raft.HardState, what string) {
	if hs.Term < c.maxTerm[id] {
		c.violate("%s: %s holds term %d, below its durably stored term %d", id, what, hs.Term, c.maxTerm[id])
		return
	}
	c.maxTerm[id] = hs.Term
	if c.votes[id] == nil {
		c.votes[id] = map[uint64]raft.NodeID{}
	}
	prev := c.votes[id][hs.Term]
	switch {
	case prev == "":
		if hs.Vote != "" {
			c.votes[id][hs.Term] = hs.Vote
		}
	case hs.Vote != prev:
		c.violate("%s: %s holds vote %q in term %d, but %q was durably stored in that term", id, what, hs.Vote, hs.Term, prev)
	}
}

func (c *ccChecker) saved(s *ccStore, hs raft.HardState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !s.dead {
		c.durable(s.id, hs, "Save")
	}
}

// restarted checks the hard state a node restarts with.
func (c *ccChecker) restarted(id raft.NodeID, hs raft.HardState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.durable(id, hs, "the hard state after restart")
}

// sending reports whether msgs may go out (the sender is not dead) and
// checks every vote granted: it must be the only candidate the node granted
// its vote in that term, and the vote must be durable before it is sent.
func (c *ccChecker) sending(s *ccStore, msgs []raft.Message) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.dead {
		return false
	}
	for _, m := range msgs {
		if m.Type != raft.MsgVoteResp || m.Reject {
			continue
		}
		c.grantCount++
		if c.grants[s.id] == nil {
			c.grants[s.id] = map[uint64]raft.NodeID{}
		}
		if prev := c.grants[s.id][m.Term]; prev != "" && prev != m.To {
			c.violate("%s voted twice in term %d: for %s and for %s", s.id, m.Term, prev, m.To)
		}
		c.grants[s.id][m.Term] = m.To
		if v := c.votes[s.id][m.Term]; v != m.To {
			c.violate("%s granted its vote in term %d to %s before storing it (stored vote %q)", s.id, m.Term, m.To, v)
		}
	}
	return true
}

// applied records that a live node applied c at index; two different
// commands at one index break state machine safety.
func (c *ccChecker) applied(s *ccStore, index uint64, cmd ccCmd) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.dead {
		return
	}
	if prev, ok := c.appliedAt[index]; ok && prev != cmd {
		c.violate("%s applied %+v at index %d, another node applied %+v there", s.id, cmd, index, prev)
	}
	c.appliedAt[index] = cmd
	if cmd.Op == "put" {
		c.appliedVals[cmd.Val] = true
	}
}

// kill marks s dead: from now on nothing it does counts.
func (c *ccChecker) kill(s *ccStore) {
	c.mu.Lock()
	s.dead = true
	c.mu.Unlock()
}

func (c *ccChecker) isDead(s *ccStore) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return s.dead
}

// ccNode is the current incarnation of one node.
type ccNode struct {
	id    raft.NodeID
	fs    vfs.FS
	dir   string
	store *ccStore
	tr    *ccTransport
	raft  *ccRaft
}

// ccOptions configure a ccCluster.
type ccOptions struct {
	tick          time.Duration
	seed          uint64
	noSync        bool // UNSAFE store option, for tests that must see losses
	snapThreshold uint64
	trailing      uint64
}

// ccCluster is a cluster of raft nodes on Stores over an inmem network.
type ccCluster struct {
	opts    ccOptions
	net     *inmem.Network
	chk     *ccChecker
	servers []raft.Server
	incarn  uint64

	mu    sync.Mutex // guards nodes
	nodes map[raft.NodeID]*ccNode
}

func newCCCluster(ids []raft.NodeID, opts ccOptions) *ccCluster {
	c := &ccCluster{opts: opts, net: inmem.NewNetwork(int64(opts.seed)), chk: newChecker(), nodes: map[raft.NodeID]*ccNode{}}
	for _, id := range ids {
		c.servers = append(c.servers, raft.Server{ID: id, Addr: string(id)})
	}
	return c
}

// start starts node id on the store in dir of fs; with bootstrap it also
// bootstraps the cluster's configuration.
func (c *ccCluster) start(id raft.NodeID, fs vfs.FS, dir string, bootstrap bool) error {
	s, err := Open(dir, &Options{FS: fs, NoSync: c.opts.noSync})
	if err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	st := &ccStore{Store: s, id: id, chk: c.chk}
	hs, err := s.InitialState()
	if err != nil {
		_ = s.Close()
		return fmt.Errorf("start %s: %w", id, err)
	}
	c.chk.restarted(id, hs)
	tr := &ccTransport{Transport: c.net.Join(id), st: st}
	c.incarn++
	cfg := raft.Config{
		ID: id, TickInterval: c.opts.tick, ElectionTicks: 10, HeartbeatTicks: 2,
		Seed:              c.opts.seed*1000 + c.incarn,
		SnapshotThreshold: c.opts.snapThreshold, TrailingLogs: c.opts.trailing,
		DisableAutoSnapshot: c.opts.snapThreshold == 0,
	}
	r, err := raft.New(cfg, &ccSM{st: st, data: map[string]string{}}, st, tr)
	if err == nil && bootstrap {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = r.Bootstrap(ctx, c.servers)
		cancel()
		if err != nil {
			_ = r.Shutdown(context.Background())
		}
	}
	if err != nil {
		_ = tr.Close()
		_ = s.Close()
		return fmt.Errorf("start %s: %w", id, err)
	}
	c.mu.Lock()
	c.nodes[id] = &ccNode{id: id, fs: fs, dir: dir, store: st, tr: tr, raft: r}
	c.mu.Unlock()
	return nil
}

func (c *ccCluster) node(id raft.NodeID) *ccNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// stop shuts a node down and closes its transport and store. With crashed
// set, errors are ignored: the incarnation is dead and its store may be in
// any state.
func (c *ccCluster) stop(n *ccNode, crashed bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := n.raft.Shutdown(ctx)
	if err == nil && !crashed {
		if e := n.raft.Err(); e != nil && !errors.Is(e, raft.ErrShutdown) {
			err = fmt.Errorf("%s had stopped with %w", n.id, e)
		}
	}
	_ = n.tr.Close()
	if cerr := n.store.Close(); cerr != nil && !crashed {
		err = errors.Join(err, cerr)
	}
	if crashed {
		return nil
	}
	return err
}

// crash simulates a simultaneous power loss of the nodes ids: each loses a
// random share of its unsynced data (none kept with pct 0) and restarts on
// what is left.
func (c *ccCluster) crash(ids []raft.NodeID, pct int, r *rand.Rand) error {
	old := make([]*ccNode, len(ids))
	for i, id := range ids {
		old[i] = c.node(id)
		c.net.Isolate(id)
		c.chk.kill(old[i].store)
	}
	clones := make([]*vfs.MemFS, len(ids))
	for i, n := range old {
		clones[i] = n.fs.(*vfs.MemFS).CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: r})
	}
	for _, n := range old {
		_ = c.stop(n, true)
	}
	for i, n := range old {
		if err := c.start(n.id, clones[i], n.dir, false); err != nil {
			return fmt.Errorf("restart after crash: %w", err)
		}
	}
	c.net.Heal()
	return nil
}

// shutdown stops every node.
func (c *ccCluster) shutdown() error {
	c.mu.Lock()
	nodes := slices.Collect(maps.Values(c.nodes))
	c.nodes = map[raft.NodeID]*ccNode{}
	c.mu.Unlock()
	var errs []error
	for _, n := range nodes {
		errs = append(errs, c.stop(n, false))
	}
	return errors.Join(errs...)
}

// leader returns the live node that leads in the highest term, or nil.
func (c *ccCluster) leader() *ccNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lead *ccNode
	var term uint64
	for _, n := range c.nodes {
		if s := n.raft.Status(); s.State == raft.Leader && s.Term >= term {
			lead, term = n, s.Term
		}
	}
	return lead
}

// dump reads the whole state through the log on the leader, retrying
// across elections until timeout.
func (c *ccCluster) dump(timeout time.Duration) (map[string]string, uint64, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		n := c.leader()
		if n == nil {
			time.Sleep(time.Millisecond)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Until(deadline))
		res, err := n.raft.Propose(ctx, ccCmd{Op: "dump"}).Wait(ctx)
		cancel()
		if err == nil && res.Err == nil {
			return res.Value, res.Index, nil
		}
		last = errors.Join(err, res.Err)
	}
	return nil, 0, fmt.Errorf("read through the log: no answer within %v (last error: %v)", timeout, last)
}

// verify heals the network and checks the cluster against the writes a
// workload saw acknowledged (key -> value) and those that definitely failed
// (by value): every acknowledged write is readable through the log on the
// leader, no definitely failed one was ever applied, the nodes converge and
// their committed logs agree, and the checker saw no violation. It also
// returns the number of acknowledged writes lost.
func (c *ccCluster) verify(acked map[string]string, failed map[string]bool, timeout time.Duration) (lost int, err error) {
	c.net.Heal()
	state, index, err := c.dump(timeout)
	if err != nil {
		return 0, errors.Join(err, c.chk.err())
	}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(acked)) {
		if got, ok := state[k]; !ok || got != acked[k] {
			if lost++; lost <= 5 {
				errs = append(errs, fmt.Errorf("acknowledged write %s=%s lost: read %q (present %v)", k, acked[k], got, ok))
			}
		}
	}
	if lost > 0 {
		errs = append(errs, fmt.Errorf("%d of %d acknowledged writes lost", lost, len(acked)))
	}
	c.chk.mu.Lock()
	for v := range failed {
		if c.chk.appliedVals[v] {
			errs = append(errs, fmt.Errorf("write of value %s failed without ErrIndeterminate but was applied", v))
		}
	}
	c.chk.mu.Unlock()
	errs = append(errs, c.checkLogs(index, timeout), c.chk.err())
	return lost, errors.Join(errs...)
}

// checkLogs waits until every node applied index and then compares the
// committed logs of all nodes entry by entry over the range they all hold,
// and each command with what the checker saw applied there.
func (c *ccCluster) checkLogs(index uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		c.mu.Lock()
		for _, n := range c.nodes {
			if n.raft.Status().Applied < index {
				ok = false
			}
		}
		c.mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nodes did not all apply index %d within %v", index, timeout)
		}
		time.Sleep(time.Millisecond)
	}
	for {
		// A node may compact its log while we read it: read again.
		err := c.compareLogs()
		if !errors.Is(err, raft.ErrCompacted) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Millisecond)
	}
}

func (c *ccCluster) compareLogs() error {
	c.mu.Lock()
	nodes := slices.Collect(maps.Values(c.nodes))
	c.mu.Unlock()
	lo, hi := uint64(1), uint64(1<<63)
	for _, n := range nodes {
		first, err := n.store.FirstIndex()
		if err != nil {
			return err
		}
		lo = max(lo, first)
		hi = min(hi, n.raft.Status().Commit)
	}
	if lo > hi {
		return nil // compacted everywhere: the snapshots are checked by the dump
	}
	var ref []raft.Entry
	for i, n := range nodes {
		es, err := n.store.Entries(lo, hi+1, 0)
		if err != nil {
			return fmt.Errorf("%s: read committed entries [%d, %d]: %w", n.id, lo, hi, err)
		}
		if i == 0 {
			ref = es
			continue
		}
		for j := range es {
			a, b := es[j], ref[j]
			if a.Index != b.Index || a.Term != b.Term || a.Type != b.Type || string(a.Data) != string(b.Data) {
				return fmt.Errorf("committed entry %d differs: %s has (term %d, %v, %d bytes), %s has (term %d, %v, %d bytes)",
					b.Index, n.id, a.Term, a.Type, len(a.Data), nodes[0].id, b.Term, b.Type, len(b.Data))
			}
		}
	}
	cd := codec.Msgpack()
	c.chk.mu.Lock()
	defer c.chk.mu.Unlock()
	for _, e := range ref {
		want, ok := c.chk.appliedAt[e.Index]
		if !ok {
			continue
		}
		var got ccCmd
		if e.Type != raft.EntryCommand || cd.Unmarshal(e.Data, &got) != nil || got != want {
			return fmt.Errorf("committed entry %d (%v) is not the command %+v applied at that index", e.Index, e.Type, want)
		}
	}
	return nil
}
