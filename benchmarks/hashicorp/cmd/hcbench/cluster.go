package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

// logCacheSize is the LogCache that hashicorp/raft's users put in front
// of raft-boltdb (Consul and Nomad use 512 entries).
const logCacheSize = 512

// hcCluster is an in-process hashicorp/raft cluster.
type hcCluster struct {
	nodes   []*raft.Raft
	closers []func() error
	leader  atomic.Pointer[raft.Raft]
}

// startCluster starts n nodes with store "boltdb" (raft-boltdb/v2, fsync
// on, behind a LogCache, FileSnapshotStore) or "inmem" (InmemStore,
// InmemSnapshotStore), over transport "tcp" (NetworkTransport on loopback)
// or "inmem" (InmemTransport), with raft.DefaultConfig(), bootstraps it
// and waits for a leader.
func startCluster(ctx context.Context, n int, store, transport, dir string) (c *hcCluster, err error) {
	c = &hcCluster{}
	defer func() {
		if err != nil {
			c.close()
			c = nil
		}
	}()
	ids := make([]raft.ServerID, n)
	trans := make([]raft.Transport, n)
	var servers []raft.Server
	for i := range n {
		ids[i] = raft.ServerID(fmt.Sprintf("n%d", i+1))
		switch transport {
		case "tcp":
			// The pool size and timeout most deployments use.
			t, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 3, 10*time.Second, hclog.NewNullLogger())
			if err != nil {
				return nil, fmt.Errorf("hashicorp: tcp transport: %w", err)
			}
			c.closers = append(c.closers, t.Close)
			trans[i] = t
		case "inmem":
			_, t := raft.NewInmemTransport(raft.ServerAddress(ids[i]))
			c.closers = append(c.closers, t.Close)
			trans[i] = t
		default:
			return nil, fmt.Errorf("hashicorp: unknown transport %q", transport)
		}
		servers = append(servers, raft.Server{ID: ids[i], Address: trans[i].LocalAddr()})
	}
	if transport == "inmem" {
		for i := range trans {
			for j := range trans {
				if i != j {
					trans[i].(*raft.InmemTransport).Connect(trans[j].LocalAddr(), trans[j])
				}
			}
		}
	}
	for i, id := range ids {
		conf := raft.DefaultConfig()
		conf.LocalID = id
		conf.Logger = hclog.NewNullLogger()
		var logs raft.LogStore
		var stable raft.StableStore
		var snaps raft.SnapshotStore
		switch store {
		case "boltdb":
			nodeDir := filepath.Join(dir, string(id))
			bolt, err := raftboltdb.NewBoltStore(filepath.Join(nodeDir + "-raft.db"))
			if err != nil {
				return nil, fmt.Errorf("hashicorp: boltdb: %w", err)
			}
			c.closers = append(c.closers, bolt.Close)
			cache, err := raft.NewLogCache(logCacheSize, bolt)
			if err != nil {
				return nil, fmt.Errorf("hashicorp: log cache: %w", err)
			}
			logs, stable = cache, bolt
			if snaps, err = raft.NewFileSnapshotStoreWithLogger(nodeDir, 2, hclog.NewNullLogger()); err != nil {
				return nil, fmt.Errorf("hashicorp: snapshot store: %w", err)
			}
		case "inmem":
			mem := raft.NewInmemStore()
			logs, stable = mem, mem
			snaps = raft.NewInmemSnapshotStore()
		default:
			return nil, fmt.Errorf("hashicorp: unknown store %q", store)
		}
		if err := raft.BootstrapCluster(conf, logs, stable, snaps, trans[i], raft.Configuration{Servers: servers}); err != nil {
			return nil, fmt.Errorf("hashicorp: bootstrap %s: %w", id, err)
		}
		r, err := raft.NewRaft(conf, &fsm{}, logs, stable, snaps, trans[i])
		if err != nil {
			return nil, fmt.Errorf("hashicorp: start %s: %w", id, err)
		}
		c.nodes = append(c.nodes, r)
	}
	if _, err := c.waitLeader(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// waitLeader polls until some node is leader and remembers it.
func (c *hcCluster) waitLeader(ctx context.Context) (*raft.Raft, error) {
	for {
		for _, n := range c.nodes {
			if n.State() == raft.Leader {
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

// apply proposes cmd to the leader and waits until it is applied there
// (hashicorp/raft's ApplyFuture resolves after the leader's FSM.Apply),
// the same point at which typedraft's Applied-mode future resolves.
func (c *hcCluster) apply(ctx context.Context, cmd []byte) error {
	n := c.leader.Load()
	if n == nil {
		var err error
		if n, err = c.waitLeader(ctx); err != nil {
			return err
		}
	}
	// hashicorp/raft keeps the slice in its log until it is persisted and
	// replicated, so it gets its own copy.
	f := n.Apply(append([]byte(nil), cmd...), 0)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			c.leader.CompareAndSwap(n, nil)
		}
		return err
	}
	if err, ok := f.Response().(error); ok {
		return err
	}
	return nil
}

// close shuts the nodes down and releases transports and stores.
func (c *hcCluster) close() error {
	var errs []error
	for _, n := range c.nodes {
		if err := n.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("hashicorp: shutdown: %w", err))
		}
	}
	for i := len(c.closers) - 1; i >= 0; i-- {
		if err := c.closers[i](); err != nil {
			errs = append(errs, fmt.Errorf("hashicorp: close: %w", err))
		}
	}
	return errors.Join(errs...)
}

// fsm is the same state machine as typedraft's benchmark FSM: it counts
// commands and bytes and snapshots the two counters.
type fsm struct {
	count atomic.Uint64
	bytes atomic.Uint64
}

func (f *fsm) Apply(l *raft.Log) interface{} {
	f.bytes.Add(uint64(len(l.Data)))
	return f.count.Add(1)
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{count: f.count.Load(), bytes: f.bytes.Load()}, nil
}

func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return fmt.Errorf("hashicorp: restore counters: %w", err)
	}
	f.count.Store(binary.LittleEndian.Uint64(b[:8]))
	f.bytes.Store(binary.LittleEndian.Uint64(b[8:]))
	return nil
}

type fsmSnapshot struct{ count, bytes uint64 }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], s.count)
	binary.LittleEndian.PutUint64(b[8:], s.bytes)
	if _, err := sink.Write(b[:]); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
