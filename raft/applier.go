package raft

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/typedraft/typedraft/raft/internal/session"
)

// The applier runs the apply goroutine, which owns the state machine: it
// validates proposals, applies committed entries in order, runs reads,
// takes and restores snapshots. It is not generic: the typed layer (Raft)
// gives it one small hook for what needs the application's types.
//
// Concurrency: every applier field is owned by the apply goroutine, except
// the queues (safe for concurrent use), applied (atomic, read by anyone)
// and restored (closed once).

// appHooks is what the applier needs from the typed layer.
type appHooks interface {
	// applyCommand decodes the command payload of entry e (its Data, or
	// the command inside a session entry), applies it and resolves w (nil
	// when nobody waits) with the typed result; with keep set it also
	// encodes the result into keep for the session table. An error stops
	// the node: the command does not decode, or Apply panicked.
	applyCommand(e *Entry, payload []byte, w waiter, keep *session.Result) error
	// resolveEntry resolves w for a non-command entry e (a no-op, a
	// configuration or a session's open or close) applied at its index.
	resolveEntry(e *Entry, w waiter)
	// resolveKept resolves w with a session's kept result.
	resolveKept(w waiter, kept session.Result)
}

// validation is a proposal waiting for Validate on the apply goroutine.
type validation interface {
	// validate validates and then submits, or confirms the rejection of,
	// the proposal.
	validate()
	// fail fails it (the node is shutting down).
	fail(err error)
}

// applier is the apply goroutine's state.
type applier struct {
	d     *driver
	hooks appHooks
	// applied is the index of the state the state machine holds.
	applied *atomic.Uint64

	applyq    *queue[applyTask]
	validateq *queue[validation]
	// readq and waitingReads hold reads (apply_read.go).
	readq        *queue[*readTask]
	waitingReads readHeap

	// sessions is the client session table (applier_session.go).
	sessions session.Table

	// Snapshots (applier_snapshot.go).
	snapshotter Snapshotter
	as          applyState
	snapReqs    *queue[snapshotReq]
	snapDone    *queue[snapshotOutcome]
	// startSnapshot is the snapshot restored when the goroutine starts
	// (zero if none); restored is closed once that is done.
	startSnapshot SnapshotMeta
	restored      chan struct{}

	wg *sync.WaitGroup
}

func newApplier(hooks appHooks, snapshotter Snapshotter, maxPending int, applied *atomic.Uint64, wg *sync.WaitGroup) *applier {
	return &applier{
		hooks: hooks, snapshotter: snapshotter, applied: applied, wg: wg,
		applyq:    newQueue[applyTask](0),
		validateq: newQueue[validation](maxPending),
		readq:     newQueue[*readTask](0),
		snapReqs:  newQueue[snapshotReq](1024),
		snapDone:  newQueue[snapshotOutcome](0),
		restored:  make(chan struct{}),
	}
}

// run is the apply goroutine: it restores the newest snapshot, if the node
// started with one, then validates proposals and applies committed entries
// in the order they arrive.
func (a *applier) run() {
	if !a.startSnapshot.IsZero() {
		if err := a.restoreFrom(a.d.store, a.startSnapshot); err != nil {
			a.fatal(fmt.Errorf("raft: restore at start: %w", err), applyTask{})
			return
		}
	}
	close(a.restored)
	for {
		applyReady := a.applyq.ready()
		if a.snapshotBehind() {
			applyReady = nil
		}
		select {
		case <-a.d.exited:
			a.failBacklog()
			return
		case <-a.d.restoreWake:
			// A restore was queued: look at applyReady again.
		case <-a.validateq.ready():
			a.d.replies.begin()
			for _, p := range a.validateq.drain() {
				p.validate()
			}
			a.d.replies.end(a.d)
		case <-a.readq.ready():
			a.takeReads(a.readq.drain())
		case <-a.snapReqs.ready():
			a.as.waitingManual = append(a.as.waitingManual, a.snapReqs.drain()...)
		case <-a.snapDone.ready():
			for _, out := range a.snapDone.drain() {
				if err := a.snapshotWritten(out); err != nil {
					a.fatal(err, applyTask{})
					return
				}
			}
		case <-applyReady:
			t0 := time.Now()
			for _, t := range a.applyq.drain() {
				// The answers to forwarded proposals a task resolves go
				// out together (a restore, which reads the store, is not
				// a batch).
				batch := t.restore == nil
				if batch {
					a.d.replies.begin()
				}
				err := a.applyTask(t)
				if batch {
					a.d.replies.end(a.d)
				}
				if err != nil {
					// The entries of t from the failing one on were not applied.
					a.fatal(err, t)
					return
				}
			}
			a.d.metrics.since(a.d.metrics.apply, t0)
			a.serveReads()
			a.d.applyProgress()
		}
		if err := a.maybeSnapshot(); err != nil {
			a.fatal(err, applyTask{})
			return
		}
	}
}

// fatal stops the node from the apply goroutine, failing t's waiters and
// everything queued behind it.
func (a *applier) fatal(err error, t applyTask) {
	a.d.stop(err)
	for _, w := range t.waiters {
		if w != nil {
			w.fail(err)
		}
	}
	<-a.d.exited
	a.failBacklog()
}

func (a *applier) applyTask(t applyTask) error {
	if t.restore != nil {
		defer a.d.restoresQueued.Add(-1)
		if err := a.restoreFrom(a.d.store, *t.restore); err != nil {
			return err
		}
		close(t.restored)
		return nil
	}
	for i := range t.entries {
		e := &t.entries[i]
		if e.Index <= a.applied.Load() {
			// Already covered by a restored snapshot.
			continue
		}
		if err := a.noteApplied(e); err != nil {
			return err
		}
		var w waiter
		if t.waiters != nil {
			w = t.waiters[i]
		}
		switch e.Type {
		case EntryCommand:
			if err := a.hooks.applyCommand(e, e.Data, w, nil); err != nil {
				return err
			}
		case EntrySession:
			if err := a.applySession(e, w); err != nil {
				return err
			}
		default:
			if w != nil {
				a.hooks.resolveEntry(e, w)
			}
		}
		a.applied.Store(e.Index)
		a.d.metrics.add(&a.d.metrics.applied, 1)
	}
	return nil
}

// failBacklog fails every future still waiting in the apply queues.
func (a *applier) failBacklog() {
	a.failReads()
	for _, p := range a.validateq.close() {
		p.fail(ErrShutdown)
	}
	for _, req := range a.snapReqs.close() {
		req.done <- snapshotOutcome{err: ErrShutdown}
	}
	a.finishManual(snapshotOutcome{err: ErrShutdown})
	for _, t := range a.applyq.close() {
		for _, w := range t.waiters {
			if w != nil {
				w.fail(indeterminate(ErrShutdown))
			}
		}
	}
}
