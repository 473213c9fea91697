// Package cluster starts an in-process typedraft cluster over any
// combination of store (memory, pebble) and transport (inmem, tcp on
// loopback) for benchmarks, and offers workload.Ops that write (to the
// current leader, through a follower, in a session) and read it.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/typedraft/typedraft/benchmarks/workload"
	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/store/pebble"
	"github.com/typedraft/typedraft/transport/inmem"
	"github.com/typedraft/typedraft/transport/tcp"
)

// Stores and Transports list the accepted Options values.
var (
	Stores     = []string{"memory", "pebble"}
	Transports = []string{"inmem", "tcp"}
)

// MaxNodes bounds Options.Nodes.
const MaxNodes = 15

// Options configure Start.
type Options struct {
	// Nodes is the cluster size, in [1, MaxNodes].
	Nodes int
	// Store is "memory" or "pebble" (durable, fsync on).
	Store string
	// Transport is "inmem" or "tcp" (loopback).
	Transport string
	// Dir is the parent directory of the Pebble stores; required for
	// "pebble". Start creates one subdirectory per node.
	Dir string
	// Configure, if set, may adjust each node's raft.Config (the defaults
	// are typedraft's own).
	Configure func(*raft.Config)
}

// Validate reports the first invalid option.
func (o Options) Validate() error {
	switch {
	case o.Nodes < 1 || o.Nodes > MaxNodes:
		return fmt.Errorf("cluster: nodes %d outside [1, %d]", o.Nodes, MaxNodes)
	case !slices.Contains(Stores, o.Store):
		return fmt.Errorf("cluster: unknown store %q (want one of %v)", o.Store, Stores)
	case !slices.Contains(Transports, o.Transport):
		return fmt.Errorf("cluster: unknown transport %q (want one of %v)", o.Transport, Transports)
	case o.Store == "pebble" && o.Dir == "":
		return errors.New("cluster: store pebble needs a Dir")
	}
	return nil
}

// Node is one member of a benchmark cluster.
type Node = raft.Raft[[]byte, uint64, *Error]

// Cluster is a running in-process cluster.
//
// Concurrency: Apply, the other operations and Leader are safe for
// concurrent use; Close must not run concurrently with them.
type Cluster struct {
	Nodes []*Node
	// FSMs are the nodes' state machines, FSMs[i] Nodes[i]'s. They belong
	// to the nodes' apply goroutines: read them only from raft.Read or
	// raft.Query.
	FSMs     []*FSM
	closers  []io.Closer
	leader   atomic.Pointer[Node]
	counters []*counters
	synced   bool
	sess     sessions
}

// Start creates, bootstraps and starts a cluster and waits (bounded by
// ctx) until it has elected a leader. On error it releases everything it
// had started.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	c = &Cluster{}
	defer func() {
		if err != nil {
			_ = c.Close()
			c = nil
		}
	}()
	ids := make([]raft.NodeID, o.Nodes)
	transports := make([]raft.Transport, o.Nodes)
	servers := make([]raft.Server, o.Nodes)
	var net *inmem.Network
	if o.Transport == "inmem" {
		net = inmem.NewNetwork(1)
	}
	for i := range o.Nodes {
		ids[i] = raft.NodeID(fmt.Sprintf("n%d", i+1))
		switch o.Transport {
		case "inmem":
			t := net.Join(ids[i])
			c.closers = append(c.closers, t)
			transports[i] = t
			servers[i] = raft.Server{ID: ids[i], Addr: t.Addr()}
		case "tcp":
			t, err := tcp.Listen("127.0.0.1:0", &tcp.Options{LocalID: ids[i], ClusterID: "raftbench"})
			if err != nil {
				return nil, fmt.Errorf("cluster: node %s: %w", ids[i], err)
			}
			c.closers = append(c.closers, t)
			transports[i] = t
			servers[i] = raft.Server{ID: ids[i], Addr: t.Addr()}
		}
	}
	c.synced = o.Store == "pebble"
	cnts := make([]*counters, o.Nodes)
	for i := range cnts {
		cnts[i] = &counters{}
		transports[i] = countingTransport{Transport: transports[i], n: cnts[i]}
	}
	for i, id := range ids {
		cnt := cnts[i]
		var st raft.Storage
		switch o.Store {
		case "memory":
			m := memory.New()
			c.closers = append(c.closers, m)
			st = m
		case "pebble":
			p, err := pebble.Open(filepath.Join(o.Dir, string(id)), &pebble.Options{FS: countingFS{FS: vfs.Default, n: cnt}})
			if err != nil {
				return nil, fmt.Errorf("cluster: node %s: %w", id, err)
			}
			c.closers = append(c.closers, p)
			st = p
		}
		cfg := raft.Config{ID: id}
		if o.Configure != nil {
			o.Configure(&cfg)
		}
		fsm := &FSM{}
		n, err := raft.New(cfg, fsm, &countingStore{Storage: st, n: cnt}, transports[i])
		if err != nil {
			return nil, fmt.Errorf("cluster: node %s: %w", id, err)
		}
		c.Nodes = append(c.Nodes, n)
		c.FSMs = append(c.FSMs, fsm)
		c.counters = append(c.counters, cnt)
		if err := n.Bootstrap(ctx, servers); err != nil {
			return nil, fmt.Errorf("cluster: bootstrap %s: %w", id, err)
		}
	}
	if _, err := c.WaitLeader(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// WaitLeader polls until some node is leader, remembers it for Apply, and
// returns it; it fails with workload.ErrNoLeader once ctx ends.
func (c *Cluster) WaitLeader(ctx context.Context) (*Node, error) {
	for {
		for _, n := range c.Nodes {
			if n.Status().State == raft.Leader {
				c.leader.Store(n)
				return n, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", workload.ErrNoLeader, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Leader returns the node Apply currently sends to (nil before Start
// found one).
func (c *Cluster) Leader() *Node { return c.leader.Load() }

// Apply proposes cmd to the leader in Applied mode and waits for the
// outcome. If the node it asked is not the leader it looks for the new
// leader (bounded by ctx) and returns the error; the caller retries.
// Apply does not retain cmd: the node encodes its own copy.
func (c *Cluster) Apply(ctx context.Context, cmd []byte) error {
	// The benchmark targets the leader itself: a forwarded write is
	// measured separately (the follower workload).
	return c.applyOnLeader(ctx, cmd, raft.NoForward)
}

// applyOnLeader applies cmd on the leader with opts; a failure that
// says it is no longer the leader makes the next request look it up
// again.
func (c *Cluster) applyOnLeader(ctx context.Context, cmd []byte, opts ...raft.ProposeOption) error {
	n, err := c.leaderNode(ctx)
	if err != nil {
		return err
	}
	_, appErr, err := n.Apply(ctx, cmd, opts...)
	if err != nil {
		c.forgetLeader(n, err)
		return err
	}
	if appErr != nil {
		return appErr
	}
	return nil
}

// Op adapts Apply to workload.Op: the write workload.
func (c *Cluster) Op() workload.Op {
	return func(ctx context.Context, _ int, cmd []byte) error { return c.Apply(ctx, cmd) }
}

// Close shuts every node down and closes the transports and stores, and
// returns the first error.
func (c *Cluster) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, n := range c.Nodes {
		if err := n.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("cluster: shutdown %s: %w", n.ID(), err))
		}
	}
	for _, cl := range slices.Backward(c.closers) {
		if err := cl.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cluster: close: %w", err))
		}
	}
	c.Nodes, c.FSMs, c.closers = nil, nil, nil
	return errors.Join(errs...)
}
