package raft

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
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
	a         *applier
	fsm       StateMachine[C, R, E]
	validator Validator[C, E]
	// fwdOff says why proposals cannot be forwarded ("" if they can).
	fwdOff string
	// applyCmd is the apply goroutine's decode target, reused (zeroed
	// around each use) so that decoding a command does not allocate the
	// variable; checkCmds pools the targets of Propose's decode check.
	applyCmd  *C
	checkCmds sync.Pool
	// skipCheck: Propose's decode check cannot fail (see checkDecode).
	skipCheck bool
	applied   atomic.Uint64
	wg        sync.WaitGroup
}

// New creates a node and starts its goroutines. The node restores its state
// from store; a node with an empty store does nothing until Bootstrap is
// called or a leader replicates a configuration to it. C, R and E are
// inferred from fsm. If fsm implements Validator[C, E], the leader validates
// every command before it enters the log.
//
// If the store holds a snapshot, the state machine is restored from it on
// the apply goroutine after New returns, before anything else touches it
// (Restored is closed then; Status().Applied reaches the snapshot's index),
// so Restore may hand data to consumers that start after New. A restore
// that fails stops the node (Done, Err).
//
// New returns an error matching ErrInvalidConfig for a bad cfg (or a store
// holding a snapshot for a state machine that is not a Snapshotter), or an
// error describing why the stored state could not be read.
func New[C any, R any, E ErrorType](cfg Config, fsm StateMachine[C, R, E], store Storage, transport Transport) (*Raft[C, R, E], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if fsm == nil || store == nil || transport == nil {
		return nil, fmt.Errorf("%w: state machine, storage and transport are required", ErrInvalidConfig)
	}
	cfg = cfg.withDefaults()
	if nb, ok := store.(NodeBinder); ok {
		// A store belongs to one node: refuse another node's data before
		// reading any of it.
		if err := nb.BindNode(cfg.ID); err != nil {
			return nil, fmt.Errorf("raft: storage of node %s: %w", cfg.ID, err)
		}
	}
	r := &Raft[C, R, E]{fsm: fsm, applyCmd: new(C)}
	r.checkCmds.New = func() any { return new(C) }
	r.skipCheck = decodeCannotFail[C](cfg.Codec)
	if v, ok := fsm.(Validator[C, E]); ok {
		r.validator = v
	}
	snapshotter, _ := fsm.(Snapshotter)
	r.a = newApplier(r, snapshotter, cfg.MaxPendingProposals, &r.applied, &r.wg)
	d, err := newDriver(cfg, store, transport, r.a.applyq, r.a.readq, &r.applied)
	if err != nil {
		return nil, err
	}
	r.d, r.a.d = d, d
	d.fwdHooks = r
	if r.fwdOff = forwardingUnavailable[R, E](); r.fwdOff != "" && !cfg.DisableForwarding {
		d.log.Info("proposals are not forwarded to the leader", "reason", r.fwdOff)
	}
	if r.a.startSnapshot, err = startSnapshot(store, snapshotter); err != nil {
		return nil, err
	}
	r.wg.Add(2)
	go func() { defer r.wg.Done(); d.run() }()
	go func() { defer r.wg.Done(); r.a.run() }()
	return r, nil
}

// Restored is closed once the state machine holds the node's starting
// state: at once for a node that started without a snapshot, after the
// startup Restore otherwise. If that restore fails, the node stops instead
// (Done is closed, Err says why) and Restored stays open.
func (r *Raft[C, R, E]) Restored() <-chan struct{} { return r.a.restored }

// ID returns the node's ID.
func (r *Raft[C, R, E]) ID() NodeID { return r.d.cfg.ID }

// Bootstrap writes the initial configuration of a new cluster to this
// node's storage. Every founding node calls it with the same servers; it is
// idempotent: calling it again with the same servers (after a restart, or
// on a node that received that bootstrap configuration from a leader) is a
// no-op, so a program may call it on every start. HasState tells whether a
// store was ever used. It returns ErrBootstrapped if the
// storage already holds a different configuration or other entries, and an
// error matching ErrInvalidConfig if servers is invalid or does not include
// this node as a voter.
func (r *Raft[C, R, E]) Bootstrap(ctx context.Context, servers []Server) error {
	return r.d.bootstrap(ctx, Configuration{Servers: append([]Server(nil), servers...)})
}

// HasState reports whether store holds any state — a hard state, log
// entries or a snapshot — written by a node (bootstrapped, or added to a
// cluster by a leader). A program that must tell a first start from a
// restart asks it before New. It returns the store's read error, if any.
func HasState(store Storage) (bool, error) {
	hs, err := store.InitialState()
	if err != nil {
		return false, fmt.Errorf("raft: read hard state: %w", err)
	}
	last, err := store.LastIndex()
	if err != nil {
		return false, fmt.Errorf("raft: read last index: %w", err)
	}
	_, err = store.LatestSnapshot()
	switch {
	case err == nil:
		return true, nil
	case !errors.Is(err, ErrNoSnapshot):
		return false, fmt.Errorf("raft: read latest snapshot: %w", err)
	}
	return !hs.IsZero() || last > 0, nil
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
	s.Configuration = s.Configuration.Clone()
	if s.State == Leader {
		if p := r.d.peerStatus.Load(); p != nil {
			s.Peers = slices.Clone(*p)
		}
	}
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

// newSeededRand returns the random source of a node's core.
func newSeededRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}
