package raft

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ReadMode says how fresh a read must be.
type ReadMode uint8

const (
	// ReadDefault is the node's Config.ReadMode (ReadLinearizable unless
	// set otherwise).
	ReadDefault ReadMode = iota
	// ReadLinearizable reads at a linearizable point with ReadIndex (thesis
	// §6.4): the leader confirms its leadership with a quorum heartbeat
	// round after the read arrived (shared by every read waiting for it),
	// and the read runs once this node has applied the leader's commit
	// index as of the read's arrival. It needs no log entry and no fsync;
	// it costs one round trip from the leader to a quorum (plus, on a
	// follower, one to the leader).
	ReadLinearizable
	// ReadLease reads at a linearizable point using the leader's lease
	// (thesis §6.4.1) when it holds one, skipping the quorum round, and
	// falls back to ReadLinearizable otherwise. The lease assumes that the
	// nodes' clocks run at rates that differ by at most
	// Config.MaxClockDrift, and needs check-quorum (a node with
	// DisableCheckQuorum always falls back). The lease is held for
	// (ElectionTicks-1)/(1+MaxClockDrift) ticks after a heartbeat that a
	// quorum acknowledged was sent; time a paused process did not see is
	// counted (the driver measures elapsed time with the monotonic clock
	// before it answers reads). A leader that just took over, or that has
	// sent TimeoutNow in its term, falls back.
	ReadLease
	// ReadStale reads this node's state as it is now: no guarantee of
	// freshness, no communication.
	ReadStale
)

// String returns the mode's name.
func (m ReadMode) String() string {
	switch m {
	case ReadDefault:
		return "default"
	case ReadLinearizable:
		return "linearizable"
	case ReadLease:
		return "lease"
	case ReadStale:
		return "stale"
	}
	return fmt.Sprintf("ReadMode(%d)", uint8(m))
}

// ErrReadPanic: a read function passed to Read or Query panicked. The node
// keeps running; the state machine must not have been modified by a read.
var ErrReadPanic = errors.New("raft: read function panicked")

// Read runs fn against the state machine at a point chosen by mode, on the
// apply goroutine (the one that calls Apply), so fn needs no locks: it sees
// the state with every entry up to some index applied and nothing half
// applied. fn must only read the state, and must return quickly (Apply
// waits for it). With ReadLinearizable or ReadLease, fn sees every write
// acknowledged before Read was called; it works on the leader, on
// followers and on learners (which ask the leader for the read index).
// fn may be nil: Read then only waits for the linearizable point.
//
// Inside fn, Status().Applied is the index of the state fn sees. A
// ReadStale read does not communicate but still waits its turn on the apply
// goroutine (behind the batch being applied).
//
// Read returns fn's error, or an infrastructure error: a *NotLeaderError
// when no leader is known (LeaderID may name a leader learned since the
// read was asked), ErrNotConfirmed when leadership could not be confirmed
// (leader stepped down or changed; retry), ErrTooManyReads when too many
// reads wait for a read index, ErrShutdown, ctx's error, or ErrReadPanic.
// A read never changes anything, so none of these is indeterminate. If ctx
// ends first, fn does not run.
func (r *Raft[C, R, E]) Read(ctx context.Context, mode ReadMode, fn func() error) (err error) {
	mode = r.d.readMode(mode)
	if err := ctx.Err(); err != nil {
		return err
	}
	var start time.Time
	if r.d.metrics.sampleRead() {
		start = time.Now()
	}
	defer r.d.metrics.readDone(mode, start, &err)
	t := newReadTask(ctx, fn)
	if mode == ReadStale {
		r.pushRead(t)
	} else {
		t.req = readReq{lease: mode == ReadLease, task: t}
		if err := r.d.requestRead(&t.req); err != nil {
			t.recycle()
			return err
		}
	}
	select {
	case err = <-t.done:
		t.recycle()
		return err
	case <-ctx.Done():
		// The task may still be served (its fn skipped): not recycled.
		return ctx.Err()
	}
}

// Query runs fn on r's state machine like Read and returns fn's value.
func Query[T any, C any, R any, E ErrorType](ctx context.Context, r *Raft[C, R, E], mode ReadMode, fn func() T) (T, error) {
	var v T
	err := r.Read(ctx, mode, func() error { v = fn(); return nil })
	if err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// ReadIndex returns a read index obtained with mode (ReadLinearizable or
// ReadLease; ReadStale returns the local commit index): once this node has
// applied it (WaitApplied), its state reflects every write acknowledged
// before the call. It returns the same errors as Read.
func (r *Raft[C, R, E]) ReadIndex(ctx context.Context, mode ReadMode) (uint64, error) {
	mode = r.d.readMode(mode)
	if mode == ReadStale {
		return r.Status().Commit, nil
	}
	req := &readReq{lease: mode == ReadLease, index: make(chan readResult, 1)}
	if err := r.d.requestRead(req); err != nil {
		return 0, err
	}
	select {
	case res := <-req.index:
		return res.index, res.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// WaitApplied waits until this node's state machine has applied index (or
// a snapshot covering it), ctx ends (its error) or the node stops
// (ErrShutdown).
func (r *Raft[C, R, E]) WaitApplied(ctx context.Context, index uint64) error {
	if r.applied.Load() >= index {
		return nil
	}
	t := &readTask{ctx: ctx, index: index, done: make(chan error, 1)}
	r.pushRead(t)
	select {
	case err := <-t.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Barrier waits until every entry committed in the cluster before the call
// is applied on this node: a linearizable read that reads nothing. It
// works on any node and returns the same errors as Read.
func (r *Raft[C, R, E]) Barrier(ctx context.Context) error {
	return r.Read(ctx, ReadLinearizable, nil)
}

// pushRead hands t to the apply goroutine.
func (r *Raft[C, R, E]) pushRead(t *readTask) {
	if r.a.readq.push(t) == pushClosed {
		t.finish(ErrShutdown)
	}
}
