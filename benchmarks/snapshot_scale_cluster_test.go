package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/store/pebble"
	"github.com/typedraft/typedraft/transport/inmem"
	"github.com/typedraft/typedraft/transport/tcp"
)

// scaleOpts configure startScale.
type scaleOpts struct {
	nodes     int
	store     string // "memory" or "pebble"
	transport string // "inmem" or "tcp"
	// configure, if set, adjusts each node's raft.Config.
	configure func(*raft.Config)
}

// scaleCluster is an in-process cluster of scaleKV nodes whose stores are
// watched and whose transports can be partitioned.
type scaleCluster struct {
	t      testing.TB
	ids    []raft.NodeID
	nodes  map[raft.NodeID]*scaleNode
	fsms   map[raft.NodeID]*scaleKV
	stores map[raft.NodeID]*watchedStore
	trans  map[raft.NodeID]*filterTransport
	dirs   map[raft.NodeID]string
	part   *scalePartition

	closers []io.Closer
	leader  atomic.Pointer[scaleNode]
}

// startScale starts, bootstraps and waits for a leader; Cleanup closes it.
func startScale(t testing.TB, o scaleOpts) *scaleCluster {
	t.Helper()
	// TempDir before Cleanup(c.close): cleanups run last-registered first,
	// and the stores must be closed before their directories are removed.
	base := t.TempDir()
	c := &scaleCluster{
		t:      t,
		nodes:  map[raft.NodeID]*scaleNode{},
		fsms:   map[raft.NodeID]*scaleKV{},
		stores: map[raft.NodeID]*watchedStore{},
		trans:  map[raft.NodeID]*filterTransport{},
		dirs:   map[raft.NodeID]string{},
		part:   newScalePartition(),
	}
	t.Cleanup(c.close)
	var net *inmem.Network
	if o.transport == "inmem" {
		net = inmem.NewNetwork(1)
	}
	servers := make([]raft.Server, o.nodes)
	inner := make([]raft.Transport, o.nodes)
	for i := range o.nodes {
		id := raft.NodeID(fmt.Sprintf("n%d", i+1))
		c.ids = append(c.ids, id)
		switch o.transport {
		case "inmem":
			tr := net.Join(id)
			c.closers = append(c.closers, tr)
			inner[i], servers[i] = tr, raft.Server{ID: id, Addr: tr.Addr()}
		case "tcp":
			tr, err := tcp.Listen("127.0.0.1:0", &tcp.Options{LocalID: id, ClusterID: "scale"})
			if err != nil {
				t.Fatalf("listen %s: %v", id, err)
			}
			c.closers = append(c.closers, tr)
			inner[i], servers[i] = tr, raft.Server{ID: id, Addr: tr.Addr()}
		default:
			t.Fatalf("unknown transport %q", o.transport)
		}
	}
	for i, id := range c.ids {
		var st raft.Storage
		switch o.store {
		case "memory":
			m := memory.New()
			c.closers = append(c.closers, m)
			st = m
		case "pebble":
			dir := filepath.Join(base, string(id))
			p, err := pebble.Open(dir, nil)
			if err != nil {
				t.Fatalf("open pebble %s: %v", id, err)
			}
			c.closers = append(c.closers, p)
			c.dirs[id] = dir
			st = p
		default:
			t.Fatalf("unknown store %q", o.store)
		}
		cfg := raft.Config{ID: id}
		if o.configure != nil {
			o.configure(&cfg)
		}
		trailing := cfg.TrailingLogs
		if trailing == 0 {
			trailing = 1024 // raft.Config's documented default
		}
		ws := &watchedStore{Storage: st, trailing: trailing}
		ft := &filterTransport{inner: inner[i], self: id, part: c.part}
		fsm := newScaleKV()
		n, err := raft.New(cfg, fsm, ws, ft)
		if err != nil {
			t.Fatalf("new %s: %v", id, err)
		}
		applied := func() uint64 { return n.Status().Applied }
		ws.applied.Store(&applied)
		c.nodes[id], c.fsms[id], c.stores[id], c.trans[id] = n, fsm, ws, ft
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = n.Bootstrap(ctx, servers)
		cancel()
		if err != nil {
			t.Fatalf("bootstrap %s: %v", id, err)
		}
	}
	c.waitLeader(20 * time.Second)
	return c
}

// close shuts the nodes down (reporting any node failure) and closes the
// transports and stores.
func (c *scaleCluster) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range c.ids {
		n := c.nodes[id]
		if n == nil {
			continue
		}
		if err := n.Err(); err != nil {
			c.t.Errorf("node %s failed: %v", id, err)
		}
		if err := n.Shutdown(ctx); err != nil {
			c.t.Errorf("shutdown %s: %v", id, err)
		}
	}
	for _, cl := range slices.Backward(c.closers) {
		if err := cl.Close(); err != nil {
			c.t.Errorf("close: %v", err)
		}
	}
	c.closers = nil
}

// waitLeader polls until a node is leader and remembers it.
func (c *scaleCluster) waitLeader(timeout time.Duration) *scaleNode {
	c.t.Helper()
	var found *scaleNode
	waitUntil(c.t, "a leader", timeout, func() bool {
		for _, id := range c.ids {
			if n := c.nodes[id]; n.Status().State == raft.Leader {
				found = n
				return true
			}
		}
		return false
	})
	c.leader.Store(found)
	return found
}

// waitUntil polls cond every millisecond until it holds, failing the test
// after timeout.
func waitUntil(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// loadStats summarizes a load run.
type loadStats struct {
	maxIndex uint64
	retries  int64
	elapsed  time.Duration
}

// load commits total puts through the leader with the given number of
// closed-loop clients, each waiting for its put to be applied on the
// leader (Applied mode) before sending the next. Put i writes
// scaleValue(i) under key(i). A put that failed because leadership moved
// is retried (a put is idempotent). It fails the test on any other error
// or if ctx ends.
func (c *scaleCluster) load(ctx context.Context, total uint64, clients int, key func(uint64) string) loadStats {
	c.t.Helper()
	var (
		next     atomic.Uint64
		maxIndex atomic.Uint64
		retries  atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				cmd := scaleCmd{Key: key(i), Val: scaleValue(i)}
				if err := c.put(ctx, cmd, &maxIndex, &retries); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("put %d: %w", i, err); cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		c.t.Fatal(firstErr)
	}
	return loadStats{maxIndex: maxIndex.Load(), retries: retries.Load(), elapsed: time.Since(start)}
}

func (c *scaleCluster) put(ctx context.Context, cmd scaleCmd, maxIndex *atomic.Uint64, retries *atomic.Int64) error {
	for {
		n := c.leader.Load()
		res, err := n.Propose(ctx, cmd).Wait(ctx)
		if err == nil {
			for {
				cur := maxIndex.Load()
				if res.Index <= cur || maxIndex.CompareAndSwap(cur, res.Index) {
					break
				}
			}
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		retries.Add(1)
		switch {
		case errors.Is(err, raft.ErrTooManyProposals):
			// Back off: the leader's queue is full.
			select {
			case <-ctx.Done():
				return err
			case <-time.After(time.Millisecond):
			}
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
			errors.Is(err, raft.ErrIndeterminate), errors.Is(err, raft.ErrProposalDropped):
			if err := c.findLeader(ctx, n); err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// findLeader replaces old as the remembered leader once another node (or
// old again, re-elected) leads.
func (c *scaleCluster) findLeader(ctx context.Context, old *scaleNode) error {
	for {
		for _, id := range c.ids {
			if n := c.nodes[id]; n.Status().State == raft.Leader {
				c.leader.CompareAndSwap(old, n)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no leader: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// memSampler records the peak Go heap (live and dead objects not yet
// swept) and the peak RSS, sampled every interval until stop.
type memSampler struct {
	stop     chan struct{}
	done     chan struct{}
	peakHeap atomic.Uint64
	peakRSS  atomic.Uint64
}

func startMemSampler(interval time.Duration) *memSampler {
	s := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > s.peakHeap.Load() {
				s.peakHeap.Store(v)
			}
			if v := currentRSS(); v > s.peakRSS.Load() {
				s.peakRSS.Store(v)
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// finish stops the sampler and returns the peak heap and RSS in bytes.
func (s *memSampler) finish() (heap, rss uint64) {
	close(s.stop)
	<-s.done
	return s.peakHeap.Load(), s.peakRSS.Load()
}

// currentRSS reads the resident set size from /proc/self/statm (0 where
// that file does not exist).
func currentRSS() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// dirSize returns the bytes of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// mib formats bytes as MiB.
func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
