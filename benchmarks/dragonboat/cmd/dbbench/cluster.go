package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/client"
	"github.com/lni/dragonboat/v4/config"
	chantransport "github.com/lni/dragonboat/v4/plugin/chan"
	sm "github.com/lni/dragonboat/v4/statemachine"
	lnivfs "github.com/lni/vfs"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

// shardID is the one Raft shard of the benchmark cluster.
const shardID = 1

// options are the dragonboat settings a run uses; see the package doc for
// why each has its value.
type options struct {
	nodes     int
	store     string // "pebble" or "memfs"
	transport string // "tcp" or "inmem"
	dir       string
	rtt       time.Duration // NodeHostConfig.RTTMillisecond
	// heartbeat and election are the heartbeat interval and the minimum
	// election timeout, converted to RTTs.
	heartbeat, election time.Duration
	snapshotEntries     uint64
	compactionOverhead  uint64
	concurrentSM        bool
}

// dbCluster is an in-process dragonboat cluster: one NodeHost per node,
// each hosting one replica of shardID.
type dbCluster struct {
	hosts  []*dragonboat.NodeHost
	leader atomic.Pointer[dragonboat.NodeHost]
}

// freeLoopbackAddr returns a loopback TCP address that was free a moment
// ago (dragonboat's NodeHost wants its RaftAddress before it listens).
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// ticks converts d into a number of RTTs of length rtt (at least 1).
func ticks(d, rtt time.Duration) uint64 {
	return uint64(max(1, d/rtt))
}

// startCluster starts o.nodes NodeHosts, starts one replica of shardID on
// each with the others as initial members, and waits for a leader.
func startCluster(ctx context.Context, o options) (c *dbCluster, err error) {
	c = &dbCluster{}
	defer func() {
		if err != nil {
			c.close()
			c = nil
		}
	}()
	members := map[uint64]dragonboat.Target{}
	addrs := make([]string, o.nodes)
	for i := range o.nodes {
		switch o.transport {
		case "tcp":
			if addrs[i], err = freeLoopbackAddr(); err != nil {
				return nil, fmt.Errorf("dragonboat: loopback address: %w", err)
			}
		case "inmem":
			// plugin/chan takes any unique string as an address.
			addrs[i] = "dbbench-" + strconv.Itoa(i+1) + ":1"
		default:
			return nil, fmt.Errorf("dragonboat: unknown transport %q", o.transport)
		}
		members[uint64(i+1)] = addrs[i]
	}
	var memFS lnivfs.FS
	switch o.store {
	case "pebble":
	case "memfs":
		// One in-memory file system for the process; every NodeHost has
		// its own directory on it.
		memFS = lnivfs.NewMem()
	default:
		return nil, fmt.Errorf("dragonboat: unknown store %q", o.store)
	}
	rttMS := uint64(o.rtt / time.Millisecond)
	for i := range o.nodes {
		nhc := config.NodeHostConfig{
			NodeHostDir:    filepath.Join(o.dir, "n"+strconv.Itoa(i+1)),
			RTTMillisecond: rttMS,
			RaftAddress:    addrs[i],
		}
		if memFS != nil || o.transport == "inmem" {
			nhc.Expert = config.GetDefaultExpertConfig()
			if memFS != nil {
				nhc.Expert.FS = memFS
			}
			if o.transport == "inmem" {
				nhc.Expert.TransportFactory = chanFactory{&chantransport.ChanTransportFactory{}}
			}
		}
		nh, err := dragonboat.NewNodeHost(nhc)
		if err != nil {
			return nil, fmt.Errorf("dragonboat: node host %d: %w", i+1, err)
		}
		c.hosts = append(c.hosts, nh)
	}
	for i, nh := range c.hosts {
		rc := config.Config{
			ReplicaID:          uint64(i + 1),
			ShardID:            shardID,
			CheckQuorum:        true,
			PreVote:            true,
			ElectionRTT:        ticks(o.election, o.rtt),
			HeartbeatRTT:       ticks(o.heartbeat, o.rtt),
			SnapshotEntries:    o.snapshotEntries,
			CompactionOverhead: o.compactionOverhead,
		}
		if o.concurrentSM {
			err = nh.StartConcurrentReplica(members, false, newConcurrentFSM, rc)
		} else {
			err = nh.StartReplica(members, false, newFSM, rc)
		}
		if err != nil {
			return nil, fmt.Errorf("dragonboat: start replica %d: %w", i+1, err)
		}
	}
	if _, err := c.waitLeader(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// waitLeader polls until some NodeHost's replica is the leader and
// remembers that host.
func (c *dbCluster) waitLeader(ctx context.Context) (*dragonboat.NodeHost, error) {
	for {
		for i, nh := range c.hosts {
			id, _, ok, err := nh.GetLeaderID(shardID)
			if err == nil && ok && id == uint64(i+1) {
				c.leader.Store(nh)
				return nh, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", workload.ErrNoLeader, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// proposeTimeout bounds each SyncPropose (dragonboat requires a deadline).
const proposeTimeout = 10 * time.Second

// apply proposes cmd to the leader's NodeHost with the client's NO-OP
// session and waits until it is applied there: SyncPropose returns the
// leader's Update result (NotifyCommit is off), the point at which
// typedraft's Applied-mode futures resolve.
func (c *dbCluster) apply(ctx context.Context, session *client.Session, cmd []byte) error {
	nh := c.leader.Load()
	if nh == nil {
		var err error
		if nh, err = c.waitLeader(ctx); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, proposeTimeout)
	defer cancel()
	// SyncPropose copies cmd before it returns (its doc: the slice may be
	// reused at once).
	if _, err := nh.SyncPropose(ctx, session, cmd); err != nil {
		if errors.Is(err, dragonboat.ErrShardNotReady) || errors.Is(err, dragonboat.ErrTimeout) || errors.Is(err, dragonboat.ErrSystemBusy) {
			c.leader.CompareAndSwap(nh, nil)
		}
		return err
	}
	return nil
}

// close stops every NodeHost (which stops its replicas, transport and
// log DB).
func (c *dbCluster) close() {
	for _, nh := range c.hosts {
		nh.Close()
	}
	c.hosts = nil
}

// chanFactory is dragonboat's channel transport (plugin/chan) with the
// address check it leaves to its users (its own Validate panics): any
// non-empty address.
type chanFactory struct {
	*chantransport.ChanTransportFactory
}

// Validate accepts any non-empty address.
func (chanFactory) Validate(addr string) bool { return addr != "" }

// fsm is the same state machine as typedraft's benchmark FSM, as a
// dragonboat IStateMachine: it counts commands and bytes and snapshots the
// two counters. dragonboat calls Update, SaveSnapshot and
// RecoverFromSnapshot without overlap and Lookup concurrently with them;
// the counters are atomic so that Lookup may read them.
type fsm struct {
	count atomic.Uint64
	bytes atomic.Uint64
}

func newFSM(uint64, uint64) sm.IStateMachine { return &fsm{} }

func (f *fsm) Update(e sm.Entry) (sm.Result, error) {
	f.bytes.Add(uint64(len(e.Cmd)))
	return sm.Result{Value: f.count.Add(1)}, nil
}

func (f *fsm) Lookup(any) (any, error) { return f.count.Load(), nil }

func (f *fsm) SaveSnapshot(w io.Writer, _ sm.ISnapshotFileCollection, _ <-chan struct{}) error {
	return writeCounters(w, f.count.Load(), f.bytes.Load())
}

func (f *fsm) RecoverFromSnapshot(r io.Reader, _ []sm.SnapshotFile, _ <-chan struct{}) error {
	count, bytes, err := readCounters(r)
	if err != nil {
		return err
	}
	f.count.Store(count)
	f.bytes.Store(bytes)
	return nil
}

func (f *fsm) Close() error { return nil }

// concurrentFSM is the same counters as an IConcurrentStateMachine:
// batched Update, and a snapshot prepared under the update lock (a copy,
// as typedraft's FSM.Snapshot takes) and written concurrently with
// Update.
type concurrentFSM struct{ fsm }

func newConcurrentFSM(uint64, uint64) sm.IConcurrentStateMachine { return &concurrentFSM{} }

func (f *concurrentFSM) Update(es []sm.Entry) ([]sm.Entry, error) {
	for i := range es {
		f.bytes.Add(uint64(len(es[i].Cmd)))
		es[i].Result = sm.Result{Value: f.count.Add(1)}
	}
	return es, nil
}

func (f *concurrentFSM) PrepareSnapshot() (any, error) {
	return [2]uint64{f.count.Load(), f.bytes.Load()}, nil
}

func (f *concurrentFSM) SaveSnapshot(ctx any, w io.Writer, _ sm.ISnapshotFileCollection, _ <-chan struct{}) error {
	v := ctx.([2]uint64)
	return writeCounters(w, v[0], v[1])
}

func writeCounters(w io.Writer, count, bytes uint64) error {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], count)
	binary.LittleEndian.PutUint64(b[8:], bytes)
	_, err := w.Write(b[:])
	return err
}

func readCounters(r io.Reader) (count, bytes uint64, err error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, 0, fmt.Errorf("dragonboat: restore counters: %w", err)
	}
	return binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:]), nil
}
