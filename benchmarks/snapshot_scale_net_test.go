package benchmarks

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// scalePartition is the set of nodes cut off from everyone, shared by the
// filtering transports of one cluster. It works the same over every
// transport, TCP included.
//
// Concurrency: safe for concurrent use.
type scalePartition struct {
	mu       sync.RWMutex
	isolated map[raft.NodeID]bool
}

func newScalePartition() *scalePartition {
	return &scalePartition{isolated: map[raft.NodeID]bool{}}
}

func (p *scalePartition) isolate(id raft.NodeID) {
	p.mu.Lock()
	p.isolated[id] = true
	p.mu.Unlock()
}

func (p *scalePartition) heal() {
	p.mu.Lock()
	clear(p.isolated)
	p.mu.Unlock()
}

// cut reports whether traffic between a and b is blocked.
func (p *scalePartition) cut(a, b raft.NodeID) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.isolated[a] || p.isolated[b]
}

// filterTransport wraps a node's raft.Transport and drops everything to and
// from isolated nodes, in both directions: outbound messages are dropped,
// SendSnapshot fails with ErrPeerUnreachable, and inbound messages and
// snapshots from an isolated peer (or to an isolated self) are dropped or
// refused, which also catches traffic already in flight when the partition
// starts.
//
// Concurrency: every method may be called from any goroutine, as the
// raft.Transport contract requires.
type filterTransport struct {
	inner raft.Transport
	self  raft.NodeID
	part  *scalePartition

	// snapMu guards the counters below it. snapTo and snapOK count, per
	// peer, the SendSnapshot calls that reached the inner transport and
	// those that succeeded; snapBlocked counts those refused by the
	// partition.
	snapMu      sync.Mutex
	snapTo      map[raft.NodeID]int
	snapOK      map[raft.NodeID]int
	snapErr     error               // the last error of a started stream
	snapActive  int                 // streams in progress
	hbResps     map[raft.NodeID]int // heartbeat responses received, per peer
	snapBlocked atomic.Int64
	dropped     atomic.Int64

	// hook, if set, is called (and may block) when a stream that passed
	// the partition starts and when it has ended.
	hook atomic.Pointer[func(snapEvent)]
}

// snapEvent is a snapshot stream starting (err nil) or ending.
type snapEvent struct {
	end   bool
	to    raft.NodeID
	index uint64
	seq   int // the stream's number among those to the same peer, from 1
	err   error
}

func (f *filterTransport) callHook(ev snapEvent) {
	if h := f.hook.Load(); h != nil {
		(*h)(ev)
	}
}

// heartbeatResponses returns how many heartbeat responses from id arrived.
func (f *filterTransport) heartbeatResponses(id raft.NodeID) int {
	f.snapMu.Lock()
	defer f.snapMu.Unlock()
	return f.hbResps[id]
}

// snapshotSends returns how many snapshot streams to id were started and
// how many of them succeeded, and how many streams (to anyone) are still in
// progress.
func (f *filterTransport) snapshotSends(id raft.NodeID) (started, ok, active int) {
	f.snapMu.Lock()
	defer f.snapMu.Unlock()
	return f.snapTo[id], f.snapOK[id], f.snapActive
}

var _ raft.Transport = (*filterTransport)(nil)

func (f *filterTransport) Register(h raft.Handler) {
	if h == nil {
		f.inner.Register(nil)
		return
	}
	f.inner.Register(filterHandler{h: h, f: f})
}

func (f *filterTransport) Send(to raft.Peer, msgs []raft.Message) {
	if f.part.cut(f.self, to.ID) {
		f.dropped.Add(int64(len(msgs)))
		return
	}
	f.inner.Send(to, msgs)
}

func (f *filterTransport) SendSnapshot(ctx context.Context, to raft.Peer, m raft.Message, r io.Reader) error {
	if f.part.cut(f.self, to.ID) {
		f.snapBlocked.Add(1)
		return fmt.Errorf("filter: %s -> %s partitioned: %w", f.self, to.ID, raft.ErrPeerUnreachable)
	}
	f.snapMu.Lock()
	if f.snapTo == nil {
		f.snapTo, f.snapOK = map[raft.NodeID]int{}, map[raft.NodeID]int{}
	}
	f.snapTo[to.ID]++
	seq := f.snapTo[to.ID]
	f.snapActive++
	f.snapMu.Unlock()
	var index uint64
	if m.Snapshot != nil {
		index = m.Snapshot.Index
	}
	f.callHook(snapEvent{to: to.ID, index: index, seq: seq})
	err := f.inner.SendSnapshot(ctx, to, m, r)
	f.callHook(snapEvent{end: true, to: to.ID, index: index, seq: seq, err: err})
	f.snapMu.Lock()
	f.snapActive--
	if err == nil {
		f.snapOK[to.ID]++
	} else {
		f.snapErr = err
	}
	f.snapMu.Unlock()
	return err
}

// filterHandler drops inbound traffic crossing the partition.
type filterHandler struct {
	h raft.Handler
	f *filterTransport
}

func (fh filterHandler) HandleMessage(m raft.Message) {
	if fh.f.part.cut(m.From, fh.f.self) {
		fh.f.dropped.Add(1)
		return
	}
	if m.Type == raft.MsgHeartbeatResp {
		fh.f.snapMu.Lock()
		if fh.f.hbResps == nil {
			fh.f.hbResps = map[raft.NodeID]int{}
		}
		fh.f.hbResps[m.From]++
		fh.f.snapMu.Unlock()
	}
	fh.h.HandleMessage(m)
}

func (fh filterHandler) HandleSnapshot(m raft.Message, r io.Reader) error {
	if fh.f.part.cut(m.From, fh.f.self) {
		return fmt.Errorf("filter: %s -> %s partitioned: %w", m.From, fh.f.self, raft.ErrPeerUnreachable)
	}
	return fh.h.HandleSnapshot(m, r)
}

func (fh filterHandler) ReportUnreachable(id raft.NodeID) { fh.h.ReportUnreachable(id) }

// logPeak is the longest log a watchedStore held, with what the node had
// applied and snapshotted at that moment.
type logPeak struct {
	Len, First, Last uint64
	Applied          uint64 // the node's applied index (Status) just after the Save
	Snap             uint64 // the newest committed snapshot's index
}

// snapCycles describes a node's snapshot-and-compact cycles, measured when
// each compaction behind a local snapshot S ran.
type snapCycles struct {
	// Compactions behind a snapshot this node wrote (to S - TrailingLogs),
	// resets to an installed snapshot (to S), and compactions to any other
	// point (a broken trailing-log policy).
	Local, Installs, Other int
	// MaxGap is the largest distance between consecutive local snapshots.
	MaxGap uint64
	// MaxApplied is the largest Applied - S when S's compaction ran: the
	// entries applied after the snapshot's index while it was being
	// written and committed.
	MaxApplied uint64
	// MaxTail is the largest LastIndex - Applied when a compaction ran.
	MaxTail uint64
	// MaxWrite is the longest time from CreateSnapshot to the compaction,
	// and MaxCommitted the longest part of it after the sink's Commit
	// returned (the driver picking the snapshot up and compacting).
	MaxWrite, MaxCommitted time.Duration
}

// watchedStore wraps a node's raft.Storage and measures the log length
// (LastIndex − FirstIndex + 1) after every Save, which is the only call
// that lengthens the log, so the maximum it records is exact, not sampled.
// It also times every snapshot from CreateSnapshot to the compaction
// behind it.
//
// Concurrency: the node calls Save and Compact from one goroutine at a
// time and CreateSnapshot from others; every field is guarded by mu.
type watchedStore struct {
	raft.Storage
	trailing uint64 // the node's TrailingLogs
	applied  atomic.Pointer[func() uint64]

	mu        sync.Mutex
	max       logPeak
	saves     int64
	storeErrs int64
	created   map[uint64]time.Time // snapshot index -> CreateSnapshot time
	metas     map[uint64]raft.SnapshotMeta
	installed []raft.SnapshotMeta  // snapshots the log was reset to, in order
	committed map[uint64]time.Time // snapshot index -> Commit time
	lastLocal uint64
	cycles    snapCycles
}

func (w *watchedStore) appliedNow() uint64 {
	if f := w.applied.Load(); f != nil {
		return (*f)()
	}
	return 0
}

func (w *watchedStore) Save(hs raft.HardState, entries []raft.Entry) error {
	if err := w.Storage.Save(hs, entries); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	first, err1 := w.Storage.FirstIndex()
	last, err2 := w.Storage.LastIndex()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.saves++
	if err1 != nil || err2 != nil {
		w.storeErrs++
		return nil
	}
	n := uint64(0)
	if last >= first {
		n = last - first + 1
	}
	if n > w.max.Len {
		p := logPeak{Len: n, First: first, Last: last, Applied: w.appliedNow()}
		if meta, err := w.Storage.LatestSnapshot(); err == nil {
			p.Snap = meta.Index
		}
		w.max = p
	}
	return nil
}

func (w *watchedStore) CreateSnapshot(meta raft.SnapshotMeta) (raft.SnapshotSink, error) {
	w.mu.Lock()
	if w.created == nil {
		w.created, w.metas = map[uint64]time.Time{}, map[uint64]raft.SnapshotMeta{}
	}
	if _, ok := w.created[meta.Index]; !ok {
		w.created[meta.Index] = time.Now()
		w.metas[meta.Index] = meta
	}
	w.mu.Unlock()
	sink, err := w.Storage.CreateSnapshot(meta)
	if err != nil {
		return nil, err
	}
	return &timedSink{SnapshotSink: sink, w: w, index: meta.Index}, nil
}

// timedSink records when a snapshot was committed.
type timedSink struct {
	raft.SnapshotSink
	w     *watchedStore
	index uint64
}

func (k *timedSink) Commit() error {
	err := k.SnapshotSink.Commit()
	if err == nil {
		k.w.mu.Lock()
		if k.w.committed == nil {
			k.w.committed = map[uint64]time.Time{}
		}
		k.w.committed[k.index] = time.Now()
		k.w.mu.Unlock()
	}
	return err
}

func (w *watchedStore) Compact(index, term uint64) error {
	err := w.Storage.Compact(index, term)
	if err != nil {
		return err
	}
	applied := w.appliedNow()
	last, lerr := w.Storage.LastIndex()
	w.mu.Lock()
	defer w.mu.Unlock()
	s := index + w.trailing
	at, local := w.created[s]
	switch {
	case local && w.trailing > 0:
		cy := &w.cycles
		cy.Local++
		if w.lastLocal > 0 && s > w.lastLocal {
			cy.MaxGap = max(cy.MaxGap, s-w.lastLocal)
		}
		w.lastLocal = max(w.lastLocal, s)
		if applied > s {
			cy.MaxApplied = max(cy.MaxApplied, applied-s)
		}
		if lerr == nil && last > applied {
			cy.MaxTail = max(cy.MaxTail, last-applied)
		}
		cy.MaxWrite = max(cy.MaxWrite, time.Since(at))
		if ct, ok := w.committed[s]; ok {
			cy.MaxCommitted = max(cy.MaxCommitted, time.Since(ct))
		}
	default:
		if _, ok := w.created[index]; ok {
			w.cycles.Installs++
			w.installed = append(w.installed, w.metas[index])
			w.lastLocal = max(w.lastLocal, index)
		} else {
			w.cycles.Other++
		}
	}
	return nil
}

// installs returns the snapshots the log was reset to (installed from a
// leader), oldest first. Their Size is the one the leader announced.
func (w *watchedStore) installs() []raft.SnapshotMeta {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.installed)
}

// peak returns the longest log seen, the number of Saves with entries,
// the snapshot cycles, and how many bound reads failed.
func (w *watchedStore) peak() (p logPeak, saves int64, cycles snapCycles, errs int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.max, w.saves, w.cycles, w.storeErrs
}

// logLen returns the store's current log length.
func logLen(s raft.LogStore) (uint64, error) {
	first, err := s.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := s.LastIndex()
	if err != nil {
		return 0, err
	}
	if last < first {
		return 0, nil
	}
	return last - first + 1, nil
}
