package pebble

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/typedraft/typedraft/codec"
	"github.com/typedraft/typedraft/raft"
)

var (
	flagClusterSeeds = flag.Int("pebble.clusterseeds", 100, "seeds in TestClusterCrashSafety (-short: 20, race: 50)")
	flagClusterSeed0 = flag.Uint64("pebble.clusterseed0", 1, "first seed of TestClusterCrashSafety")
	flagClusterPar   = flag.Int("pebble.clusterpar", 4, "seeds of TestClusterCrashSafety run at once")
	flagAckWrites    = flag.Int("pebble.ackwrites", 300, "writes in TestSingleNodeAcksAfterFsync (-short: 40)")
)

// ccWorkload is a set of clients writing unique keys through whichever node
// leads, retrying until each write is acknowledged.
type ccWorkload struct {
	c       *ccCluster
	prefix  string
	writes  int
	clients int
	// onAck, if set, is called after each acknowledgement is recorded.
	onAck func(key, val string)

	mu      sync.Mutex
	acked   map[string]string // key -> value of acknowledged writes
	failed  map[string]bool   // values of writes that definitely failed
	nAcked  atomic.Int64
	unknown int // outcomes not known (ErrIndeterminate, or after a crash point)
}

func newWorkload(c *ccCluster, prefix string, writes, clients int) *ccWorkload {
	return &ccWorkload{c: c, prefix: prefix, writes: writes, clients: clients,
		acked: map[string]string{}, failed: map[string]bool{}}
}

// run performs the writes and returns once all are acknowledged, or with an
// error when ctx ends first or a write is rejected by the state machine.
func (w *ccWorkload) run(ctx context.Context) error {
	errs := make([]error, w.clients)
	var wg sync.WaitGroup
	for cl := range w.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := cl; i < w.writes; i += w.clients {
				if errs[cl] = w.write(ctx, fmt.Sprintf("%s-k%d", w.prefix, i)); errs[cl] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (w *ccWorkload) write(ctx context.Context, key string) error {
	for attempt := 0; ; {
		if ctx.Err() != nil {
			return fmt.Errorf("write %s: not acknowledged after %d attempts (%d of %d writes acknowledged): %w",
				key, attempt, w.nAcked.Load(), w.writes, ctx.Err())
		}
		n := w.c.leader()
		if n == nil {
			time.Sleep(time.Millisecond)
			continue
		}
		attempt++
		val := fmt.Sprintf("%s-a%d", key, attempt)
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		res, err := n.raft.Propose(wctx, ccCmd{Op: "put", Key: key, Val: val}).Wait(wctx)
		cancel()
		dead := w.c.chk.isDead(n.store)
		w.mu.Lock()
		switch {
		case dead || errors.Is(err, raft.ErrIndeterminate):
			w.unknown++
		case err == nil && res.Err != nil:
			w.mu.Unlock()
			return fmt.Errorf("write %s: rejected by the state machine: %w", key, res.Err)
		case err == nil:
			w.acked[key] = val
			w.nAcked.Add(1)
			w.mu.Unlock()
			if w.onAck != nil {
				w.onAck(key, val)
			}
			return nil
		default:
			w.failed[val] = true
		}
		w.mu.Unlock()
		if err != nil && !dead {
			time.Sleep(time.Millisecond)
		}
	}
}

// ccSeedStats summarizes one seed's run.
type ccSeedStats struct {
	crashes, crashAll, acked, unknown, grants, restores int
	// lost counts acknowledged writes not found; violations the checker's
	// findings (both 0 unless the run failed).
	lost, violations int
}

// runClusterSeed runs one seed of the cluster crash test: a 3-node cluster
// on crashable in-memory file systems, clients writing 20-50 unique keys,
// and 1-3 crashes (of one node, often the leader, or of all nodes at once)
// at random acknowledgement counts, each keeping a random share of the
// unsynced data. Then it heals and verifies (ccCluster.verify).
//
// The workload may take 2*timeout, verification timeout.
func runClusterSeed(seed uint64, noSync bool, timeout time.Duration) (ccSeedStats, error) {
	var st ccSeedStats
	r := rand.New(rand.NewPCG(seed, 0xc1a5))
	opts := ccOptions{tick: time.Duration(2+r.IntN(4)) * time.Millisecond, seed: seed, noSync: noSync}
	if r.IntN(2) == 0 {
		// Snapshots and compaction while crashing: restarts then restore
		// from the snapshot store, and lagging nodes get snapshots.
		opts.snapThreshold, opts.trailing = uint64(4+r.IntN(8)), uint64(1+r.IntN(4))
	}
	ids := []raft.NodeID{"n1", "n2", "n3"}
	c := newCCCluster(ids, opts)
	for _, id := range ids {
		if err := c.start(id, vfs.NewCrashableMem(), "/"+string(id), true); err != nil {
			return st, errors.Join(err, c.shutdown())
		}
	}
	w := newWorkload(c, fmt.Sprintf("s%d", seed), 20+r.IntN(31), 1+r.IntN(3))
	type plan struct {
		after int64
		all   bool
		pct   int
	}
	plans := make([]plan, 1+r.IntN(3))
	for i := range plans {
		plans[i] = plan{after: int64(1 + r.IntN(w.writes-1)), all: r.IntN(4) == 0, pct: r.IntN(101)}
		if r.IntN(3) == 0 {
			plans[i].pct = 0
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	wdone := make(chan error, 1)
	go func() { wdone <- w.run(ctx) }()

	var errs []error
	slices.SortFunc(plans, func(a, b plan) int { return cmp.Compare(a.after, b.after) })
	for _, p := range plans {
		for w.nAcked.Load() < p.after && ctx.Err() == nil {
			time.Sleep(200 * time.Microsecond)
		}
		if ctx.Err() != nil {
			break
		}
		if r.IntN(2) == 0 {
			// Move the crash point off the acknowledgement.
			time.Sleep(time.Duration(r.IntN(3000)) * time.Microsecond)
		}
		victims := ids
		if !p.all {
			victims = []raft.NodeID{ids[r.IntN(len(ids))]}
			if lead := c.leader(); lead != nil && r.IntN(2) == 0 {
				victims = []raft.NodeID{lead.id}
			}
		} else {
			st.crashAll++
		}
		st.crashes++
		if err := c.crash(victims, p.pct, r); err != nil {
			errs = append(errs, err)
			cancel()
			break
		}
	}
	if err := <-wdone; err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 || noSync {
		lost, err := c.verify(w.acked, w.failed, timeout)
		st.lost = lost
		errs = append(errs, err)
	}
	errs = append(errs, c.shutdown())
	st.acked, st.unknown = len(w.acked), w.unknown
	c.chk.mu.Lock()
	st.grants, st.restores, st.violations = c.chk.grantCount, c.chk.restores, len(c.chk.violations)
	c.chk.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return st, fmt.Errorf("seed %d (tick %v, %d writes, %d clients, crash plans %+v, snapshots every %d): %w",
			seed, opts.tick, w.writes, w.clients, plans, opts.snapThreshold, err)
	}
	return st, nil
}

// TestClusterCrashSafety crashes nodes of running 3-node clusters on
// Pebble's crashable in-memory file system (dropping a random share of
// unsynced data, often all of it), restarts them on what survived, and
// checks across many seeds that no acknowledged write is lost, no write
// that failed without ErrIndeterminate is applied, no node votes twice in a
// term or grants a vote before storing it, no node's durable term or vote
// goes back after a restart, no two nodes apply different commands at one
// index, and the nodes' committed logs agree.
func TestClusterCrashSafety(t *testing.T) {
	seeds := *flagClusterSeeds
	if testing.Short() {
		seeds = min(seeds, 20)
	}
	if raceEnabled {
		seeds = min(seeds, 50)
	}
	start := time.Now()
	var (
		mu    sync.Mutex
		total ccSeedStats
		next  atomic.Uint64
		wg    sync.WaitGroup
	)
	next.Store(*flagClusterSeed0)
	end := *flagClusterSeed0 + uint64(seeds)
	for range max(*flagClusterPar, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := next.Add(1) - 1; seed < end && !t.Failed(); seed = next.Add(1) - 1 {
				st, err := runClusterSeed(seed, false, 10*time.Second)
				mu.Lock()
				if err != nil {
					t.Errorf("%v\n(rerun with -run TestClusterCrashSafety -pebble.clusterseed0=%d -pebble.clusterseeds=1)", err, seed)
				}
				total.crashes += st.crashes
				total.crashAll += st.crashAll
				total.acked += st.acked
				total.unknown += st.unknown
				total.grants += st.grants
				total.restores += st.restores
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d seeds in %v: %d crashes (%d of all nodes at once), %d acknowledged writes checked, %d outcomes unknown, %d vote grants checked, %d snapshot restores",
		seeds, time.Since(start).Round(time.Millisecond), total.crashes, total.crashAll, total.acked, total.unknown, total.grants, total.restores)
	if total.crashes == 0 || total.acked == 0 || total.grants == 0 || total.restores == 0 {
		t.Errorf("the test exercised nothing: %+v", total)
	}
}

// TestClusterCrashSafetyDetectsNoSync shows that TestClusterCrashSafety's
// checks fail when the stores do not fsync (Options.NoSync): crashes then
// lose acknowledged writes, and durable terms and votes go back.
func TestClusterCrashSafetyDetectsNoSync(t *testing.T) {
	var lostSeed, violationSeed uint64
	for seed := uint64(1); seed <= 40 && (lostSeed == 0 || violationSeed == 0); seed++ {
		st, err := runClusterSeed(seed, true, 500*time.Millisecond)
		if st.lost > 0 && lostSeed == 0 {
			lostSeed = seed
			t.Logf("seed %d: %d acknowledged writes lost, as expected: %.200v", seed, st.lost, err)
		}
		if st.violations > 0 && violationSeed == 0 {
			violationSeed = seed
			t.Logf("seed %d: %d checker violations, as expected: %.200v", seed, st.violations, err)
		}
		if st.lost+st.violations > 0 && err == nil {
			t.Errorf("seed %d: findings %+v but error %v", seed, st, err)
		}
	}
	if lostSeed == 0 || violationSeed == 0 {
		t.Fatalf("40 seeds with NoSync stores: lost writes found in seed %d, violations in seed %d (0 = none): the checks have no teeth",
			lostSeed, violationSeed)
	}
}

// TestCheckerDetectsVoteViolations feeds the checker histories that break
// the vote rules and requires it to report each.
func TestCheckerDetectsVoteViolations(t *testing.T) {
	grant := func(to raft.NodeID, term uint64) []raft.Message {
		return []raft.Message{{Type: raft.MsgVoteResp, From: "n1", To: to, Term: term}}
	}
	cases := []struct {
		name string
		run  func(c *ccChecker, s *ccStore)
	}{
		{"double vote", func(c *ccChecker, s *ccStore) {
			c.saved(s, raft.HardState{Term: 3, Vote: "n2"})
			c.sending(s, grant("n2", 3))
			c.sending(s, grant("n3", 3))
		}},
		{"vote sent before stored", func(c *ccChecker, s *ccStore) {
			c.saved(s, raft.HardState{Term: 3})
			c.sending(s, grant("n2", 3))
		}},
		{"vote lost in restart", func(c *ccChecker, s *ccStore) {
			c.saved(s, raft.HardState{Term: 3, Vote: "n2"})
			c.restarted("n1", raft.HardState{Term: 3})
		}},
		{"term lost in restart", func(c *ccChecker, s *ccStore) {
			c.saved(s, raft.HardState{Term: 4})
			c.restarted("n1", raft.HardState{Term: 3, Vote: "n2"})
		}},
		{"vote changed", func(c *ccChecker, s *ccStore) {
			c.saved(s, raft.HardState{Term: 3, Vote: "n2"})
			c.saved(s, raft.HardState{Term: 3, Vote: "n3"})
		}},
		{"different commands at one index", func(c *ccChecker, s *ccStore) {
			c.applied(s, 7, ccCmd{Op: "put", Key: "a", Val: "1"})
			c.applied(&ccStore{id: "n2", chk: c}, 7, ccCmd{Op: "put", Key: "a", Val: "2"})
		}},
	}
	for _, tc := range cases {
		c := newChecker()
		tc.run(c, &ccStore{id: "n1", chk: c})
		if c.err() == nil {
			t.Errorf("%s: not detected", tc.name)
		}
	}
	// A dead incarnation's actions are ignored, and a legal history passes.
	c := newChecker()
	s := &ccStore{id: "n1", chk: c}
	c.saved(s, raft.HardState{Term: 3, Vote: "n2"})
	c.sending(s, grant("n2", 3))
	c.saved(s, raft.HardState{Term: 4})
	c.saved(s, raft.HardState{Term: 4, Vote: "n3"})
	c.sending(s, grant("n3", 4))
	c.kill(s)
	c.saved(s, raft.HardState{Term: 5, Vote: "n2"})
	if c.sending(s, grant("n3", 5)) {
		t.Error("a dead incarnation's messages were let through")
	}
	c.restarted("n1", raft.HardState{Term: 4, Vote: "n3"})
	if err := c.err(); err != nil {
		t.Errorf("legal history reported: %v", err)
	}
}

// TestSingleNodeAcksAfterFsync shows that a single-node cluster acknowledges
// a write only once it is durable: right after each acknowledgement it takes
// a crash clone holding exactly the synced data, and every write
// acknowledged so far must be in the clone's log. Every 25th clone (and the
// last) is also restarted as a node, and the writes must be readable
// through its log.
func TestSingleNodeAcksAfterFsync(t *testing.T) {
	writes := *flagAckWrites
	if testing.Short() || raceEnabled {
		writes = min(writes, 40)
	}
	clones, restarts, err := runSingleNodeAcks(writes, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d acknowledged writes, each found in a crash clone taken right after its acknowledgement; %d clones restarted", clones, restarts)
}

// TestSingleNodeAcksDetectsNoSync shows that TestSingleNodeAcksAfterFsync
// fails for a store that acknowledges before its data is synced.
func TestSingleNodeAcksDetectsNoSync(t *testing.T) {
	_, _, err := runSingleNodeAcks(20, true)
	if err == nil {
		t.Fatal("NoSync store passed: the check has no teeth")
	}
	t.Logf("caught as expected: %.300v", err)
}

func runSingleNodeAcks(writes int, noSync bool) (clones, restarts int, err error) {
	opts := ccOptions{tick: 2 * time.Millisecond, seed: 1, noSync: noSync}
	c := newCCCluster([]raft.NodeID{"n1"}, opts)
	fs := vfs.NewCrashableMem()
	if err := c.start("n1", fs, "/n1", true); err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := newWorkload(c, "single", writes, 3)
	var (
		mu    sync.Mutex
		errs  []error
		acked = map[string]string{}
	)
	w.onAck = func(key, val string) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) > 0 {
			return
		}
		acked[key] = val
		clone := fs.CrashClone(vfs.CrashCloneCfg{}) // exactly the synced data
		clones++
		err := cloneLogHolds(clone, "/n1", acked)
		if err == nil && (clones%25 == 0 || clones == writes) {
			restarts++
			err = restartHolds(clone, "/n1", acked, opts)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("crash clone taken right after acknowledging %s=%s: %w", key, val, err))
			cancel()
		}
	}
	if err := w.run(ctx); err != nil && len(errs) == 0 {
		errs = append(errs, err)
	}
	errs = append(errs, c.shutdown())
	return clones, restarts, errors.Join(errs...)
}

// cloneLogHolds opens the store in dir of fs and requires its log to hold
// every write of want.
func cloneLogHolds(fs vfs.FS, dir string, want map[string]string) error {
	s, err := Open(dir, &Options{FS: fs})
	if err != nil {
		return err
	}
	defer s.Close()
	first, err := s.FirstIndex()
	if err != nil {
		return err
	}
	last, err := s.LastIndex()
	if err != nil {
		return err
	}
	es, err := s.Entries(first, last+1, 0)
	if err != nil {
		return err
	}
	have := map[string]string{}
	cd := codec.Msgpack()
	for _, e := range es {
		var cmd ccCmd
		if e.Type == raft.EntryCommand && cd.Unmarshal(e.Data, &cmd) == nil && cmd.Op == "put" {
			have[cmd.Key] = cmd.Val
		}
	}
	for k, v := range want {
		if have[k] != v {
			return fmt.Errorf("log [%d, %d] lacks acknowledged write %s=%s", first, last, k, v)
		}
	}
	return nil
}

// restartHolds starts a single node on the store in dir of fs and requires
// every write of want to be readable through its log.
func restartHolds(fs vfs.FS, dir string, want map[string]string, opts ccOptions) error {
	c := newCCCluster([]raft.NodeID{"n1"}, opts)
	if err := c.start("n1", fs, dir, false); err != nil {
		return err
	}
	_, err := c.verify(want, nil, 10*time.Second)
	return errors.Join(err, c.shutdown())
}
