package raft

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Raft is one node of a cluster replicating a StateMachine[C, R, E]: C is
// the application's command type, R its response type and E its error type.
//
// A Raft runs two goroutines: the driver, which owns the deterministic core
// (ticks, messages, proposals, persistence, sending), and the apply
// goroutine, which owns the state machine (Validate and Apply), so that a
// slow Apply never delays heartbeats.
//
// Concurrency: every method is safe for concurrent use. Ownership: Raft
// does not own the Storage and Transport it is given; the caller closes them
// after Shutdown.
type Raft[C any, R any, E ErrorType] struct {
	d         *driver
	fsm       StateMachine[C, R, E]
	validator Validator[C, E]
	applyq    *queue[applyTask]
	validateq *queue[*proposal[C, R, E]]
	applied   atomic.Uint64
	wg        sync.WaitGroup

	// Snapshots (node_snapshot.go), owned by the apply goroutine.
	snapshotter Snapshotter
	as          applyState
	snapReqs    *queue[snapshotReq]
	snapDone    *queue[snapshotOutcome]
}

// proposal is a command waiting for validation on the apply goroutine.
type proposal[C any, R any, E ErrorType] struct {
	ctx context.Context
	cmd C
	f   *Future[R, E]
}

// New creates a node and starts its goroutines. The node restores its state
// from store; a node with an empty store does nothing until Bootstrap is
// called or a leader replicates a configuration to it. C, R and E are
// inferred from fsm. If fsm implements Validator[C, E], the leader validates
// every command before it enters the log.
//
// New returns an error matching ErrInvalidConfig for a bad cfg, or an error
// describing why the stored state could not be read.
func New[C any, R any, E ErrorType](cfg Config, fsm StateMachine[C, R, E], store Storage, transport Transport) (*Raft[C, R, E], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if fsm == nil || store == nil || transport == nil {
		return nil, fmt.Errorf("%w: state machine, storage and transport are required", ErrInvalidConfig)
	}
	cfg = cfg.withDefaults()
	r := &Raft[C, R, E]{
		fsm:       fsm,
		applyq:    newQueue[applyTask](0),
		validateq: newQueue[*proposal[C, R, E]](cfg.MaxPendingProposals),
	}
	if v, ok := fsm.(Validator[C, E]); ok {
		r.validator = v
	}
	if s, ok := fsm.(Snapshotter); ok {
		r.snapshotter = s
	}
	r.snapReqs = newQueue[snapshotReq](1024)
	r.snapDone = newQueue[snapshotOutcome](0)
	d, err := newDriver(cfg, store, transport, r.applyq, &r.applied)
	if err != nil {
		return nil, err
	}
	r.d = d
	if err := r.restoreAtStart(store); err != nil {
		return nil, err
	}
	r.wg.Add(2)
	go func() { defer r.wg.Done(); d.run() }()
	go func() { defer r.wg.Done(); r.runApply() }()
	return r, nil
}

// ID returns the node's ID.
func (r *Raft[C, R, E]) ID() NodeID { return r.d.cfg.ID }

// Propose submits cmd for replication and returns its future at once. The
// response mode is Applied unless mode says Committed. If this node is not
// the leader the future fails with a *NotLeaderError; if the state machine
// validates and rejects cmd, the future resolves with the rejection in
// Result.Err and Index 0.
//
// ctx bounds how long the proposal may wait in the queue before it is
// appended; once appended, only Wait's ctx matters.
func (r *Raft[C, R, E]) Propose(ctx context.Context, cmd C, mode ...ResponseMode) *Future[R, E] {
	m := Applied
	if len(mode) > 0 {
		m = mode[0]
	}
	f := newFuture[R, E](m)
	if err := r.d.checkLeader(); err != nil {
		f.fail(err)
		return f
	}
	if r.validator != nil {
		switch r.validateq.push(&proposal[C, R, E]{ctx: ctx, cmd: cmd, f: f}) {
		case pushFull:
			f.fail(ErrTooManyProposals)
		case pushClosed:
			f.fail(ErrShutdown)
		}
		return f
	}
	r.submit(ctx, cmd, f)
	return f
}

// Apply proposes cmd in Applied mode and waits for its outcome: Apply's
// response, the application's error (from Validate or Apply), and an
// infrastructure error.
func (r *Raft[C, R, E]) Apply(ctx context.Context, cmd C) (R, E, error) {
	res, err := r.Propose(ctx, cmd).Wait(ctx)
	return res.Value, res.Err, err
}

// submit encodes cmd and hands it to the driver.
func (r *Raft[C, R, E]) submit(ctx context.Context, cmd C, f *Future[R, E]) {
	data, err := r.d.cfg.Codec.Marshal(cmd)
	if err != nil {
		f.fail(fmt.Errorf("%w: %w", ErrEncode, err))
		return
	}
	if len(data) > r.d.cfg.MaxEntryBytes {
		f.fail(fmt.Errorf("%w: %d bytes, limit %d", ErrEntryTooLarge, len(data), r.d.cfg.MaxEntryBytes))
		return
	}
	r.d.propose(pendingEntry{ctx: ctx, data: data, w: f})
}

// Bootstrap writes the initial configuration of a new cluster to this
// node's storage. Every founding node calls it with the same servers; calling
// it again with the same servers is a no-op. It returns ErrBootstrapped if the
// storage already holds a different configuration or other entries, and an
// error matching ErrInvalidConfig if servers is invalid or does not include
// this node as a voter.
func (r *Raft[C, R, E]) Bootstrap(ctx context.Context, servers []Server) error {
	return r.d.bootstrap(ctx, Configuration{Servers: append([]Server(nil), servers...)})
}

// TransferLeadership asks the leader to hand leadership to the voter to (or,
// if to is empty, to the most up-to-date voter) and waits until it has or the
// transfer fails. While it runs the leader accepts no proposals. It returns
// a *NotLeaderError on a follower, an error matching ErrInvalidConfig if to
// is not a voter, ErrTransferTimeout if the target did not take over within
// an election timeout, or ctx's error.
func (r *Raft[C, R, E]) TransferLeadership(ctx context.Context, to NodeID) error {
	return r.d.transferLeadership(ctx, to)
}

// Status returns the node's current state without taking locks.
func (r *Raft[C, R, E]) Status() Status {
	s := *r.d.status.Load()
	s.Applied = r.applied.Load()
	return s
}

// Done is closed when the node has stopped, by Shutdown or a fatal error.
func (r *Raft[C, R, E]) Done() <-chan struct{} { return r.d.done }

// Err returns nil while the node runs, the fatal error that stopped it (a
// storage error, a panic in Apply), or ErrShutdown after a clean Shutdown.
func (r *Raft[C, R, E]) Err() error {
	select {
	case <-r.d.done:
		return r.d.stopErr()
	default:
		return nil
	}
}

// Shutdown stops the node and waits for every goroutine it started to exit,
// or for ctx to end (the goroutines still exit). Pending proposals fail with
// ErrShutdown, marked ErrIndeterminate if they were appended. It is safe to
// call more than once.
func (r *Raft[C, R, E]) Shutdown(ctx context.Context) error {
	r.d.stop(nil)
	waited := make(chan struct{})
	go func() { r.wg.Wait(); close(waited) }()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runApply is the apply goroutine: it validates proposals and applies
// committed entries, in the order they arrive.
func (r *Raft[C, R, E]) runApply() {
	for {
		applyReady := r.applyq.ready()
		if r.snapshotBehind() {
			applyReady = nil
		}
		select {
		case <-r.d.exited:
			r.failApplyBacklog()
			return
		case <-r.d.restoreWake:
			// A restore was queued: look at applyReady again.
		case <-r.validateq.ready():
			r.validateBatch(r.validateq.drain())
		case <-r.snapReqs.ready():
			r.as.waitingManual = append(r.as.waitingManual, r.snapReqs.drain()...)
		case <-r.snapDone.ready():
			for _, out := range r.snapDone.drain() {
				if err := r.snapshotWritten(out); err != nil {
					r.fatal(err, applyTask{})
					return
				}
			}
		case <-applyReady:
			for _, t := range r.applyq.drain() {
				if err := r.applyTask(t); err != nil {
					// The entries of t from the failing one on were not applied.
					r.fatal(err, t)
					return
				}
			}
			r.d.applyProgress()
		}
		if err := r.maybeSnapshot(); err != nil {
			r.fatal(err, applyTask{})
			return
		}
	}
}

// fatal stops the node from the apply goroutine, failing t's waiters and
// everything queued behind it.
func (r *Raft[C, R, E]) fatal(err error, t applyTask) {
	r.d.stop(err)
	for _, w := range t.waiters {
		if w != nil {
			w.fail(err)
		}
	}
	<-r.d.exited
	r.failApplyBacklog()
}

func (r *Raft[C, R, E]) validateBatch(ps []*proposal[C, R, E]) {
	var zero E
	for _, p := range ps {
		if p.ctx.Err() != nil {
			p.f.fail(p.ctx.Err())
			continue
		}
		if e := r.validator.Validate(p.cmd); e != zero {
			p.f.resolve(Result[R, E]{Err: e}, nil)
			continue
		}
		r.submit(p.ctx, p.cmd, p.f)
	}
}

func (r *Raft[C, R, E]) applyTask(t applyTask) (err error) {
	if t.restore != nil {
		defer r.d.restoresQueued.Add(-1)
		if err := r.restoreFrom(r.d.store, *t.restore); err != nil {
			return err
		}
		close(t.restored)
		return nil
	}
	for i := range t.entries {
		e := &t.entries[i]
		if e.Index <= r.applied.Load() {
			// Already covered by a restored snapshot.
			continue
		}
		if err := r.noteApplied(e); err != nil {
			return err
		}
		var w waiter
		if t.waiters != nil {
			w = t.waiters[i]
		}
		if e.Type == EntryCommand {
			var cmd C
			if err := r.d.cfg.Codec.Unmarshal(e.Data, &cmd); err != nil {
				return fmt.Errorf("raft: decode command at index %d: %w", e.Index, err)
			}
			res, err := r.safeApply(e.Index, cmd)
			if err != nil {
				return err
			}
			res.Term = e.Term
			if f, ok := w.(*Future[R, E]); ok {
				f.resolve(res, nil)
			}
		} else if f, ok := w.(*Future[R, E]); ok {
			f.resolve(Result[R, E]{Index: e.Index, Term: e.Term}, nil)
		}
		r.applied.Store(e.Index)
	}
	return nil
}

func (r *Raft[C, R, E]) safeApply(index uint64, cmd C) (res Result[R, E], err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w at index %d: %v", ErrApplyPanic, index, p)
		}
	}()
	v, e := r.fsm.Apply(index, cmd)
	return Result[R, E]{Index: index, Value: v, Err: e}, nil
}

// failApplyBacklog fails every future still waiting in the apply queues.
func (r *Raft[C, R, E]) failApplyBacklog() {
	for _, p := range r.validateq.close() {
		p.f.fail(ErrShutdown)
	}
	for _, req := range r.snapReqs.close() {
		req.done <- snapshotOutcome{err: ErrShutdown}
	}
	r.finishManual(snapshotOutcome{err: ErrShutdown})
	for _, t := range r.applyq.close() {
		for _, w := range t.waiters {
			if w != nil {
				w.fail(indeterminate(ErrShutdown))
			}
		}
	}
}

// newSeededRand returns the random source of a node's core.
func newSeededRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}
