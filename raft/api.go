package raft

import (
	"context"
	"sync"
	"sync/atomic"
)

// ErrorType constrains an application's error type E: an error whose zero
// value means "no error". A pointer to the application's error struct (such
// as *kv.Error) is the usual choice; the interface type error works too.
type ErrorType interface {
	error
	comparable
}

// StateMachine is the application's replicated state machine.
//
// Concurrency: the node calls Apply (and Validate, Snapshot, Restore, if
// implemented, and the functions passed to Read and Query) from one
// goroutine, never concurrently, so the state machine needs no locks for
// them. Apply must be deterministic: every node applies the same commands in
// the same order and must reach the same state and the same results.
type StateMachine[C any, R any, E ErrorType] interface {
	// Apply applies the committed command cmd at log index index and returns
	// the response and the application's error (zero for success). A
	// rejection is an ordinary, deterministic outcome: the entry stays in the
	// log. A panic stops the node (Err reports ErrApplyPanic).
	Apply(index uint64, cmd C) (R, E)
}

// Validator is implemented by state machines that check commands on the
// leader before they enter the log. A non-zero E rejects the command: the
// caller gets E back in the Result with Index 0 and the command is never
// appended. Validation is advisory (the state can change before the command
// commits), so checks that must hold are repeated in Apply with the same E.
// Followers never validate.
//
// Validate sees the state applied up to some point at or after the commit
// index when the command arrived, not the effect of proposals still in
// flight (a withdrawal proposed right after an unacknowledged deposit may be
// rejected: linearizable, since the deposit had not happened). A rejection
// is a read of that state, so it is answered only once it is known to be
// linearizable: the leader obtains a read index after the command arrived
// (its own-term entry committed, its leadership confirmed by a quorum),
// waits until it is applied and validates again; if leadership cannot be
// confirmed the caller gets an infrastructure error (ErrNotConfirmed, a
// *NotLeaderError), never an E computed from a stale leader's state. An
// accepted command needs no wait: Apply re-checks it.
type Validator[C any, E ErrorType] interface {
	Validate(cmd C) E
}

// ResponseMode says when a proposal's future resolves.
type ResponseMode uint8

const (
	// Applied resolves once the entry is applied, with Apply's R and E
	// (the default).
	Applied ResponseMode = iota
	// Committed resolves once the entry is committed, before it is applied;
	// the Result carries Index and Term only.
	Committed
)

// String returns the mode's name.
func (m ResponseMode) String() string {
	if m == Committed {
		return "committed"
	}
	return "applied"
}

// Result is a proposal's outcome. Err is the application's own error: from
// Validate (Index is 0: the command never entered the log) or from Apply
// (Index > 0). Value is Apply's response (zero in Committed mode or when
// validation rejected the command).
//
// Durability: an Applied-mode result means the entry is durable in the
// leader's own log as well as on a quorum (the leader applies only what its
// log holds durably); a Committed-mode result means it is durable on a
// quorum, which may not yet include the leader (its own write may still be
// in flight, thesis §10.2.1).
//
// Index is a log index, which counts no-ops and configuration entries too;
// it is not a count of commands. An application that numbers its own
// commands keeps the counter in its state machine (Apply runs once per
// command, in log order, on every node) and returns it in R.
type Result[R any, E ErrorType] struct {
	Index uint64
	Term  uint64
	Value R
	Err   E
}

// Rejected reports whether the application rejected the command (Err is
// not zero).
func (r Result[R, E]) Rejected() bool {
	var zero E
	return r.Err != zero
}

// Future is the pending outcome of one proposal.
//
// Concurrency: all methods are safe for concurrent use; Wait may be called
// any number of times and returns the same outcome.
type Future[R any, E ErrorType] struct {
	mode  ResponseMode
	done  chan struct{}
	state atomic.Uint32 // 0 pending, 1 appended, 2 resolved
	// forwarded is set when the proposal went to the leader from a
	// follower.
	forwarded   atomic.Bool
	index, term atomic.Uint64
	res         Result[R, E]
	err         error
	// appended is made only if someone asks for it (Appended): most
	// callers only Wait, and a channel per proposal is an allocation.
	// mu guards it and appendedClosed.
	mu             sync.Mutex
	appended       chan struct{}
	appendedClosed bool
}

func newFuture[R any, E ErrorType](mode ResponseMode) *Future[R, E] {
	return &Future[R, E]{mode: mode, done: make(chan struct{})}
}

// Mode returns the response mode the proposal asked for.
func (f *Future[R, E]) Mode() ResponseMode { return f.mode }

// Appended is closed once the leader has appended the entry to its log (or
// the future resolved without an entry, e.g. a validation rejection).
func (f *Future[R, E]) Appended() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.appended == nil {
		f.appended = make(chan struct{})
		if f.appendedClosed {
			close(f.appended)
		}
	}
	return f.appended
}

// closeAppended marks the future past "pending": called once, by whoever
// moved state away from 0.
func (f *Future[R, E]) closeAppended() {
	f.mu.Lock()
	f.appendedClosed = true
	if f.appended != nil {
		close(f.appended)
	}
	f.mu.Unlock()
}

// Index returns the entry's log index and term once Appended is closed, and
// zeros before that or if the command never entered the log. A forwarded
// proposal (Forwarded) learns its position from the leader's answer: zeros
// after a failure then mean "unknown", not "never appended".
func (f *Future[R, E]) Index() (index, term uint64) {
	if f.state.Load() == 0 {
		return 0, 0
	}
	return f.index.Load(), f.term.Load()
}

// Forwarded reports whether the proposal was forwarded to the leader by
// this node (a follower or learner; see Config.DisableForwarding).
func (f *Future[R, E]) Forwarded() bool { return f.forwarded.Load() }

// Done is closed when the outcome is known.
func (f *Future[R, E]) Done() <-chan struct{} { return f.done }

// Wait blocks until the outcome is known or ctx ends. The error is an
// infrastructure error (not leader, leadership lost, shutdown, ctx); the
// application's own error is in Result.Err. If ctx ends first the error
// wraps ctx.Err() and ErrIndeterminate: the command may still be applied.
func (f *Future[R, E]) Wait(ctx context.Context) (Result[R, E], error) {
	select {
	case <-f.done:
		return f.res, f.err
	default:
	}
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		return Result[R, E]{}, indeterminate(ctx.Err())
	}
}

// markAppended records the entry's position. Called once by the driver
// (or, for a forwarded proposal, on the leader's answer).
func (f *Future[R, E]) markAppended(index, term uint64) {
	if f.state.Load() != 0 {
		return
	}
	f.index.Store(index)
	f.term.Store(term)
	if f.state.CompareAndSwap(0, 1) {
		f.closeAppended()
	}
}

// resolve sets the outcome once; later calls are ignored.
func (f *Future[R, E]) resolve(res Result[R, E], err error) {
	for {
		s := f.state.Load()
		if s == 2 {
			return
		}
		if f.state.CompareAndSwap(s, 2) {
			if s == 0 {
				f.closeAppended()
			}
			f.res, f.err = res, err
			close(f.done)
			return
		}
	}
}

// waiter is the driver's untyped view of a Future.
type waiter interface {
	markAppended(index, term uint64)
	// committed resolves a Committed-mode future and reports whether it did.
	committedAt(index, term uint64) bool
	fail(err error)
}

func (f *Future[R, E]) committedAt(index, term uint64) bool {
	if f.mode != Committed {
		return false
	}
	f.resolve(Result[R, E]{Index: index, Term: term}, nil)
	return true
}

func (f *Future[R, E]) fail(err error) { f.resolve(Result[R, E]{}, err) }
