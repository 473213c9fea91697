package raft

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/typedraft/typedraft/raft/internal/bugs"
	"github.com/typedraft/typedraft/raft/internal/session"
)

// Snapshots on the apply goroutine (the applier): it knows exactly which entries the state
// machine has applied, so it decides when to snapshot, captures the view,
// and restores installed snapshots in order with the entries around them.

// snapshotReq is a manual Snapshot call waiting for its outcome.
type snapshotReq struct {
	done chan snapshotOutcome
}

type snapshotOutcome struct {
	meta SnapshotMeta
	err  error
}

// applyState is what the apply goroutine tracks besides the state machine.
type applyState struct {
	lastTerm      uint64
	config        Configuration
	configIndex   uint64
	snapIndex     uint64 // newest snapshot taken or restored
	writing       bool   // a snapshot is being written
	waitingManual []snapshotReq
}

func (a *applier) restoreFrom(store Storage, want SnapshotMeta) error {
	meta, rc, err := store.OpenSnapshot()
	if err != nil {
		return fmt.Errorf("raft: open snapshot %d: %w", want.Index, err)
	}
	closed := false
	defer func() {
		if !closed {
			rc.Close()
		}
	}()
	if meta.Index != want.Index || meta.Term != want.Term {
		return fmt.Errorf("raft: snapshot store holds %d/%d, expected %d/%d", meta.Index, meta.Term, want.Index, want.Term)
	}
	if a.snapshotter == nil {
		return fmt.Errorf("%w: cannot install snapshot %d: the state machine does not implement Snapshotter", ErrInvalidConfig, meta.Index)
	}
	// The session table travels ahead of the state machine's data.
	br := bufio.NewReaderSize(rc, 64<<10)
	sessions, err := session.ReadSection(br)
	if err != nil {
		return fmt.Errorf("raft: restore the session table from snapshot %d: %w", meta.Index, err)
	}
	if err := a.snapshotter.Restore(meta, br); err != nil {
		return fmt.Errorf("raft: restore state machine from snapshot %d: %w", meta.Index, err)
	}
	// The state machine may stop reading before the end; the rest is read
	// (and checked, for stores that verify as they read) before the state
	// is trusted: a snapshot that fails its checks stops the node rather
	// than leaving a half-checked state in service.
	if n, err := io.Copy(io.Discard, br); err != nil {
		return fmt.Errorf("raft: restore state machine from snapshot %d: reading %d bytes past what Restore read: %w", meta.Index, n, err)
	}
	closed = true
	if err := rc.Close(); err != nil {
		return fmt.Errorf("raft: restore state machine from snapshot %d: close: %w", meta.Index, err)
	}
	a.sessions = *sessions
	a.d.metrics.sessions.Store(uint64(a.sessions.Len()))
	a.as.lastTerm = meta.Term
	a.as.config, a.as.configIndex = meta.Configuration.Clone(), meta.ConfigIndex
	a.as.snapIndex = meta.Index
	a.applied.Store(meta.Index)
	return nil
}

// noteApplied tracks configuration entries for snapshot metadata.
func (a *applier) noteApplied(e *Entry) error {
	a.as.lastTerm = e.Term
	if e.Type == EntryConfig {
		cfg, err := decodeConfiguration(e.Data)
		if err != nil {
			return fmt.Errorf("raft: configuration entry %d: %w", e.Index, err)
		}
		a.as.config, a.as.configIndex = cfg, e.Index
	}
	return nil
}

// snapshotBehind reports whether applying should wait for the snapshot
// being written: it is a whole threshold behind the next one that is due.
// Snapshots are written concurrently with Apply, so normally the log grows
// by the entries applied during a write; this back-pressure bounds it at
// TrailingLogs + 2*SnapshotThreshold (plus one apply batch and the entries
// not yet applied) even when writing a snapshot is slower than applying a
// threshold's worth of entries.
func (a *applier) snapshotBehind() bool {
	// A queued restore is never held back: the receiver of that snapshot
	// holds the snapshot store's lock until it is done, and the writer
	// needs that lock to finish.
	return a.as.writing && !a.d.cfg.DisableAutoSnapshot && a.d.restoresQueued.Load() == 0 &&
		a.applied.Load() >= a.as.snapIndex+2*a.d.cfg.SnapshotThreshold
}

// maybeSnapshot starts a snapshot if one is due or requested.
func (a *applier) maybeSnapshot() error {
	if a.snapshotter == nil || a.as.writing {
		return nil
	}
	applied := a.applied.Load()
	manual := len(a.as.waitingManual) > 0
	auto := !a.d.cfg.DisableAutoSnapshot && applied >= a.as.snapIndex+a.d.cfg.SnapshotThreshold
	if !manual && !auto {
		return nil
	}
	if applied <= a.as.snapIndex {
		a.finishManual(snapshotOutcome{err: ErrNothingToSnapshot})
		return nil
	}
	meta := SnapshotMeta{Index: applied, Term: a.as.lastTerm, Configuration: a.as.config.Clone(), ConfigIndex: a.as.configIndex}
	view, err := a.snapshotter.Snapshot(meta)
	if err != nil {
		return fmt.Errorf("raft: snapshot state machine at %d: %w", applied, err)
	}
	// The table as of the same entry as the view, encoded here: Apply
	// changes it as soon as this returns.
	var sessions []byte
	if a.sessions.Len() > 0 && !(bugs.Enabled && a.d.cfg.bugs.SessionsNotInSnapshot) {
		sessions = a.sessions.Marshal()
	}
	a.as.writing = true
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		meta, err := a.writeSnapshot(meta, sessions, view)
		a.snapDone.push(snapshotOutcome{meta: meta, err: err})
	}()
	return nil
}

// writeSnapshot runs on its own goroutine, concurrently with Apply.
func (a *applier) writeSnapshot(meta SnapshotMeta, sessions []byte, view StateSnapshot) (SnapshotMeta, error) {
	defer view.Release()
	start := time.Now()
	sink, err := a.d.store.CreateSnapshot(meta)
	if err != nil {
		return meta, fmt.Errorf("raft: create snapshot %d: %w", meta.Index, err)
	}
	cw := &countingWriter{w: sink}
	if err := session.WriteSection(cw, sessions, sessions == nil); err != nil {
		_ = sink.Abort()
		return meta, fmt.Errorf("raft: write snapshot %d: session table: %w", meta.Index, err)
	}
	if err := view.Write(cw); err != nil {
		_ = sink.Abort()
		return meta, fmt.Errorf("raft: write snapshot %d: %w", meta.Index, err)
	}
	meta.Size = cw.n
	if _, err := a.d.commitSnapshot(meta, sink); err != nil {
		return meta, err
	}
	m := a.d.metrics
	m.add(&m.snapshotsTaken, 1)
	m.add(&m.snapshotBytes, uint64(meta.Size))
	m.since(m.snapshotWrite, start)
	a.d.emit(Event{Kind: EventSnapshotTaken, Snapshot: meta})
	a.d.log.Info("snapshot taken", "index", meta.Index, "size", meta.Size)
	return meta, nil
}

// snapshotWritten runs on the apply goroutine when a writer finishes.
func (a *applier) snapshotWritten(out snapshotOutcome) error {
	a.as.writing = false
	if out.err == nil && out.meta.Index > a.as.snapIndex {
		a.as.snapIndex = out.meta.Index
	}
	a.finishManual(out)
	if out.err != nil && !errors.Is(out.err, ErrShutdown) {
		return out.err
	}
	return nil
}

func (a *applier) finishManual(out snapshotOutcome) {
	for _, req := range a.as.waitingManual {
		req.done <- out
	}
	a.as.waitingManual = nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// startSnapshot returns the newest stored snapshot, which the apply
// goroutine restores before anything else (zero if none). A store holding
// a snapshot for a state machine that cannot restore one is refused.
func startSnapshot(store Storage, snapshotter Snapshotter) (SnapshotMeta, error) {
	meta, err := store.LatestSnapshot()
	if errors.Is(err, ErrNoSnapshot) {
		return SnapshotMeta{}, nil
	}
	if err != nil {
		return SnapshotMeta{}, fmt.Errorf("raft: read latest snapshot: %w", err)
	}
	if snapshotter == nil {
		return SnapshotMeta{}, fmt.Errorf("%w: storage holds snapshot %d but the state machine does not implement Snapshotter", ErrInvalidConfig, meta.Index)
	}
	return meta, nil
}
