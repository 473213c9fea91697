package raft

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Snapshots on the apply goroutine: it knows exactly which entries the state
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

// Snapshot takes a snapshot of the state machine now (at the last applied
// entry), stores it durably and returns its metadata. The log is compacted
// behind it (keeping TrailingLogs entries) by the node's driver shortly
// after; Snapshot does not wait for that. It returns an error if the state machine does not implement
// Snapshotter, if nothing was applied since the last snapshot
// (ErrNothingToSnapshot), or the storage failed.
func (r *Raft[C, R, E]) Snapshot(ctx context.Context) (SnapshotMeta, error) {
	if r.snapshotter == nil {
		return SnapshotMeta{}, fmt.Errorf("%w: the state machine does not implement Snapshotter", ErrInvalidConfig)
	}
	req := snapshotReq{done: make(chan snapshotOutcome, 1)}
	switch r.snapReqs.push(req) {
	case pushClosed, pushFull:
		return SnapshotMeta{}, ErrShutdown
	}
	select {
	case out := <-req.done:
		return out.meta, out.err
	case <-ctx.Done():
		return SnapshotMeta{}, ctx.Err()
	}
}

// restoreAtStart loads the newest snapshot into the state machine before
// the node starts.
func (r *Raft[C, R, E]) restoreAtStart(store Storage) error {
	meta, err := store.LatestSnapshot()
	if errors.Is(err, ErrNoSnapshot) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("raft: read latest snapshot: %w", err)
	}
	if r.snapshotter == nil {
		return fmt.Errorf("%w: storage holds snapshot %d but the state machine does not implement Snapshotter", ErrInvalidConfig, meta.Index)
	}
	return r.restoreFrom(store, meta)
}

func (r *Raft[C, R, E]) restoreFrom(store Storage, want SnapshotMeta) error {
	meta, rc, err := store.OpenSnapshot()
	if err != nil {
		return fmt.Errorf("raft: open snapshot %d: %w", want.Index, err)
	}
	defer rc.Close()
	if meta.Index != want.Index || meta.Term != want.Term {
		return fmt.Errorf("raft: snapshot store holds %d/%d, expected %d/%d", meta.Index, meta.Term, want.Index, want.Term)
	}
	if r.snapshotter == nil {
		return fmt.Errorf("%w: cannot install snapshot %d: the state machine does not implement Snapshotter", ErrInvalidConfig, meta.Index)
	}
	if err := r.snapshotter.Restore(rc); err != nil {
		return fmt.Errorf("raft: restore state machine from snapshot %d: %w", meta.Index, err)
	}
	r.as.lastTerm = meta.Term
	r.as.config, r.as.configIndex = meta.Configuration.Clone(), meta.ConfigIndex
	r.as.snapIndex = meta.Index
	r.applied.Store(meta.Index)
	return nil
}

// noteApplied tracks configuration entries for snapshot metadata.
func (r *Raft[C, R, E]) noteApplied(e *Entry) error {
	r.as.lastTerm = e.Term
	if e.Type == EntryConfig {
		cfg, err := decodeConfiguration(e.Data)
		if err != nil {
			return fmt.Errorf("raft: configuration entry %d: %w", e.Index, err)
		}
		r.as.config, r.as.configIndex = cfg, e.Index
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
func (r *Raft[C, R, E]) snapshotBehind() bool {
	// A queued restore is never held back: the receiver of that snapshot
	// holds the snapshot store's lock until it is done, and the writer
	// needs that lock to finish.
	return r.as.writing && !r.d.cfg.DisableAutoSnapshot && r.d.restoresQueued.Load() == 0 &&
		r.applied.Load() >= r.as.snapIndex+2*r.d.cfg.SnapshotThreshold
}

// maybeSnapshot starts a snapshot if one is due or requested.
func (r *Raft[C, R, E]) maybeSnapshot() error {
	if r.snapshotter == nil || r.as.writing {
		return nil
	}
	applied := r.applied.Load()
	manual := len(r.as.waitingManual) > 0
	auto := !r.d.cfg.DisableAutoSnapshot && applied >= r.as.snapIndex+r.d.cfg.SnapshotThreshold
	if !manual && !auto {
		return nil
	}
	if applied <= r.as.snapIndex {
		r.finishManual(snapshotOutcome{err: ErrNothingToSnapshot})
		return nil
	}
	view, err := r.snapshotter.Snapshot()
	if err != nil {
		return fmt.Errorf("raft: snapshot state machine at %d: %w", applied, err)
	}
	meta := SnapshotMeta{Index: applied, Term: r.as.lastTerm, Configuration: r.as.config.Clone(), ConfigIndex: r.as.configIndex}
	r.as.writing = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		meta, err := r.writeSnapshot(meta, view)
		r.snapDone.push(snapshotOutcome{meta: meta, err: err})
	}()
	return nil
}

// writeSnapshot runs on its own goroutine, concurrently with Apply.
func (r *Raft[C, R, E]) writeSnapshot(meta SnapshotMeta, view StateSnapshot) (SnapshotMeta, error) {
	defer view.Release()
	sink, err := r.d.store.CreateSnapshot(meta)
	if err != nil {
		return meta, fmt.Errorf("raft: create snapshot %d: %w", meta.Index, err)
	}
	cw := &countingWriter{w: sink}
	if err := view.Write(cw); err != nil {
		_ = sink.Abort()
		return meta, fmt.Errorf("raft: write snapshot %d: %w", meta.Index, err)
	}
	meta.Size = cw.n
	if _, err := r.d.commitSnapshot(meta, sink); err != nil {
		return meta, err
	}
	r.d.log.Info("snapshot taken", "index", meta.Index, "size", meta.Size)
	return meta, nil
}

// snapshotWritten runs on the apply goroutine when a writer finishes.
func (r *Raft[C, R, E]) snapshotWritten(out snapshotOutcome) error {
	r.as.writing = false
	if out.err == nil && out.meta.Index > r.as.snapIndex {
		r.as.snapIndex = out.meta.Index
	}
	r.finishManual(out)
	if out.err != nil && !errors.Is(out.err, ErrShutdown) {
		return out.err
	}
	return nil
}

func (r *Raft[C, R, E]) finishManual(out snapshotOutcome) {
	for _, req := range r.as.waitingManual {
		req.done <- out
	}
	r.as.waitingManual = nil
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
