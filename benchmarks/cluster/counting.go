package cluster

import (
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/typedraft/typedraft/benchmarks/workload"
	"github.com/typedraft/typedraft/raft"
)

// counters are one node's storage counters. Every field is updated
// atomically, so they may be read while the node runs.
type counters struct {
	saves       atomic.Uint64
	saveEntries atomic.Uint64
	fsyncs      atomic.Uint64
	messages    atomic.Uint64
	heartbeats  atomic.Uint64
	readIndex   atomic.Uint64
	proposals   atomic.Uint64
}

// countingTransport wraps a node's raft.Transport and counts the messages
// the node sends. It forwards the optional raft.PeerSetter to the wrapped
// transport (a no-op for one without it, which then accepts any peer, as
// documented).
//
// Concurrency: as the wrapped transport's; the counters are atomic.
type countingTransport struct {
	raft.Transport
	n *counters
}

// Send counts msgs by type, then sends them.
func (t countingTransport) Send(to raft.Peer, msgs []raft.Message) {
	t.n.messages.Add(uint64(len(msgs)))
	for i := range msgs {
		switch msgs[i].Type {
		case raft.MsgHeartbeat:
			t.n.heartbeats.Add(1)
		case raft.MsgReadIndex:
			t.n.readIndex.Add(1)
		case raft.MsgPropose:
			t.n.proposals.Add(1)
		}
	}
	t.Transport.Send(to, msgs)
}

// SetPeers forwards to the wrapped transport's SetPeers, if it has one.
func (t countingTransport) SetPeers(peers []raft.Peer) {
	if ps, ok := t.Transport.(raft.PeerSetter); ok {
		ps.SetPeers(peers)
	}
}

// countingStore wraps a node's raft.Storage and counts its Save calls.
// It forwards the optional interfaces raft.NodeBinder,
// raft.FailureNotifier and raft.InlineSaver to the wrapped store; a store
// without them behaves as documented for a store that does not implement
// them (not checked, never fails, saved on the node's writer goroutine).
//
// Concurrency: as the wrapped store's; the counters are atomic.
type countingStore struct {
	raft.Storage
	n *counters
}

// Save counts the call and its entries, then saves.
func (s *countingStore) Save(hs raft.HardState, entries []raft.Entry) error {
	s.n.saves.Add(1)
	s.n.saveEntries.Add(uint64(len(entries)))
	return s.Storage.Save(hs, entries)
}

// BindNode forwards to the wrapped store's BindNode, if it has one.
func (s *countingStore) BindNode(id raft.NodeID) error {
	if b, ok := s.Storage.(raft.NodeBinder); ok {
		return b.BindNode(id)
	}
	return nil
}

// Failed forwards to the wrapped store's Failed; without one it returns a
// nil channel, which never closes.
func (s *countingStore) Failed() <-chan struct{} {
	if f, ok := s.Storage.(raft.FailureNotifier); ok {
		return f.Failed()
	}
	return nil
}

// FailureErr forwards to the wrapped store's FailureErr (nil without one).
func (s *countingStore) FailureErr() error {
	if f, ok := s.Storage.(raft.FailureNotifier); ok {
		return f.FailureErr()
	}
	return nil
}

// SavesInline forwards to the wrapped store's SavesInline (false without
// one): counting a Save adds no wait.
func (s *countingStore) SavesInline() bool {
	is, ok := s.Storage.(raft.InlineSaver)
	return ok && is.SavesInline()
}

// countingFS is a vfs.FS that counts the syncs of every file it opens:
// Pebble's WAL, sstables, manifest and directories, and the store's own
// files (snapshots, high-water mark), which all go through Options.FS.
type countingFS struct {
	vfs.FS
	n *counters
}

func (fs countingFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	return countingFile{File: f, n: fs.n}, nil
}

// Create wraps the created file.
func (fs countingFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.Create(name, c))
}

// Open wraps the opened file.
func (fs countingFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.wrap(fs.FS.Open(name, opts...))
}

// OpenReadWrite wraps the opened file.
func (fs countingFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.wrap(fs.FS.OpenReadWrite(name, c, opts...))
}

// OpenDir wraps the opened directory (directories are synced too).
func (fs countingFS) OpenDir(name string) (vfs.File, error) {
	return fs.wrap(fs.FS.OpenDir(name))
}

// ReuseForWrite wraps the reused file (Pebble recycles WAL files).
func (fs countingFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.ReuseForWrite(oldname, newname, c))
}

// Unwrap returns the wrapped FS.
func (fs countingFS) Unwrap() vfs.FS { return fs.FS }

// countingFile counts Sync, SyncData and the SyncTo calls that synced the
// whole file (a partial SyncTo is only a write-back hint, not a sync).
type countingFile struct {
	vfs.File
	n *counters
}

// Sync counts one fsync.
func (f countingFile) Sync() error {
	f.n.fsyncs.Add(1)
	return f.File.Sync()
}

// SyncData counts one fdatasync.
func (f countingFile) SyncData() error {
	f.n.fsyncs.Add(1)
	return f.File.SyncData()
}

// SyncTo counts one sync when it synced the whole file.
func (f countingFile) SyncTo(length int64) (bool, error) {
	full, err := f.File.SyncTo(length)
	if full {
		f.n.fsyncs.Add(1)
	}
	return full, err
}

// StorageCounts returns the Save calls, saved entries and file syncs of
// every node since the cluster started. Subtract two readings to count a
// window (StorageCounts.Sub). Safe for concurrent use with the nodes.
func (c *Cluster) StorageCounts() workload.StorageCounts {
	out := workload.StorageCounts{Synced: c.synced}
	for _, n := range c.counters {
		out.Saves += n.saves.Load()
		out.SaveEntries += n.saveEntries.Load()
		out.Fsyncs += n.fsyncs.Load()
	}
	return out
}

// NetCounts returns the messages every node sent since the cluster
// started. Safe for concurrent use with the nodes.
func (c *Cluster) NetCounts() workload.NetCounts {
	var out workload.NetCounts
	for _, n := range c.counters {
		out.Messages += n.messages.Load()
		out.Heartbeats += n.heartbeats.Load()
		out.ReadIndex += n.readIndex.Load()
		out.Proposals += n.proposals.Load()
	}
	return out
}

// CountWindow returns a workload.Spec.Window function that counts the
// cluster's storage work into *st and its messages into *net during the
// measured window.
func (c *Cluster) CountWindow(st *workload.StorageCounts, net *workload.NetCounts) func(open bool) {
	var st0 workload.StorageCounts
	var net0 workload.NetCounts
	return func(open bool) {
		s, n := c.StorageCounts(), c.NetCounts()
		if open {
			st0, net0 = s, n
			return
		}
		*st, *net = s.Sub(st0), n.Sub(net0)
	}
}
