package raft

import (
	"context"
	"fmt"
	"reflect"

	"github.com/typedraft/typedraft/codec"
	"github.com/typedraft/typedraft/raft/internal/bugs"
	"github.com/typedraft/typedraft/raft/internal/session"
)

// ProposeOption adjusts one proposal. The options are a ResponseMode
// (Applied, Committed), Forward or NoForward, and a Seq (a place in a
// client session, from Session.Next).
type ProposeOption interface {
	proposeOption(o *proposeOpts) error
}

// proposeOpts are a proposal's parsed options.
type proposeOpts struct {
	mode  ResponseMode
	modes int
	// forward is 0 for the node's default, 1 for Forward, -1 for
	// NoForward (and for a proposal a leader received forwarded).
	forward int8
	seq     *Seq
}

func (m ResponseMode) proposeOption(o *proposeOpts) error {
	if m > Committed {
		return fmt.Errorf("%w: unknown ResponseMode %d", ErrInvalidArgument, m)
	}
	o.mode = m
	o.modes++
	return nil
}

// ForwardOption overrides Config.DisableForwarding for one proposal.
type ForwardOption bool

const (
	// Forward sends the proposal to the leader when this node is not the
	// leader, even if Config.DisableForwarding is set.
	Forward ForwardOption = true
	// NoForward fails the proposal with a *NotLeaderError when this node
	// is not the leader, even if forwarding is on.
	NoForward ForwardOption = false
)

func (f ForwardOption) proposeOption(o *proposeOpts) error {
	if f {
		o.forward = 1
	} else {
		o.forward = -1
	}
	return nil
}

func parseProposeOpts(opts []ProposeOption) (proposeOpts, error) {
	var o proposeOpts
	if len(opts) == 0 {
		return o, nil
	}
	// A ResponseMode alone (the common case) is read without the
	// interface call, which would move o to the heap.
	if m, ok := opts[0].(ResponseMode); ok && len(opts) == 1 && m <= Committed {
		o.mode, o.modes = m, 1
		return o, nil
	}
	return parseProposeOptsSlow(opts)
}

func parseProposeOptsSlow(opts []ProposeOption) (proposeOpts, error) {
	var o proposeOpts
	for _, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("%w: a nil ProposeOption", ErrInvalidArgument)
		}
		if err := opt.proposeOption(&o); err != nil {
			return o, err
		}
	}
	switch {
	case o.modes > 1:
		return o, fmt.Errorf("%w: Propose takes at most one ResponseMode, got %d", ErrInvalidArgument, o.modes)
	case o.seq != nil && o.mode == Committed:
		return o, fmt.Errorf("%w: a session's proposal is answered when applied (whether it applies depends on the session table); Committed cannot be used with a Seq", ErrInvalidArgument)
	}
	return o, nil
}

// Propose submits cmd for replication and returns its future at once. The
// response mode is Applied unless an option says Committed.
//
// On a follower or learner that knows the leader, the proposal is
// forwarded to the leader (unless Config.DisableForwarding is set or the
// NoForward option given) and the future resolves with the leader's
// typed answer; see Config.DisableForwarding for what forwarding needs
// and how its failures map. Otherwise a node that is not the leader fails
// the future with a *NotLeaderError (naming the leader it knows, if any,
// and why it did not forward).
//
// If the state machine validates and rejects cmd, the future resolves
// with the rejection in Result.Err and Index 0. A proposal in a session
// (a Seq option) is not validated before it enters the log (Apply's checks
// decide): it is applied at most once however often it is retried with
// the same Seq, and a retry of a command already applied returns its
// original Result. See Session.
//
// ctx bounds how long the proposal may wait in the queue before it is
// appended; once appended, only Wait's ctx matters. A ctx that has already
// ended fails the proposal at once (it was never proposed, so the error is
// not ErrIndeterminate), and so do invalid options (ErrInvalidArgument).
func (r *Raft[C, R, E]) Propose(ctx context.Context, cmd C, opts ...ProposeOption) *Future[R, E] {
	o, err := parseProposeOpts(opts)
	f := newFuture[R, E](o.mode)
	switch {
	case err != nil:
		f.fail(err)
	case ctx.Err() != nil:
		// Definitely not proposed: not indeterminate.
		f.fail(fmt.Errorf("raft: command not proposed: %w", ctx.Err()))
	default:
		r.propose(ctx, cmd, o, f)
	}
	return f
}

// Apply proposes cmd in Applied mode and waits for its outcome: Apply's
// response, the application's error (from Validate or Apply), and an
// infrastructure error. opts may say Forward, NoForward or give a Seq;
// Committed is refused (ErrInvalidArgument).
func (r *Raft[C, R, E]) Apply(ctx context.Context, cmd C, opts ...ProposeOption) (R, E, error) {
	for _, opt := range opts {
		if opt == Committed {
			var v R
			var e E
			return v, e, fmt.Errorf("%w: Apply answers when applied; use Propose for Committed", ErrInvalidArgument)
		}
	}
	res, err := r.Propose(ctx, cmd, opts...).Wait(ctx)
	return res.Value, res.Err, err
}

// propose routes a parsed proposal: to the leader's validation and log,
// or forwarded to the leader.
func (r *Raft[C, R, E]) propose(ctx context.Context, cmd C, o proposeOpts, f resolver[R, E]) {
	if err := r.d.checkLeader(); err != nil {
		if lead, ok := r.forwardTo(err, o); ok {
			typ, data, err := r.encode(cmd, o.seq)
			if err != nil {
				f.fail(err)
				return
			}
			r.forward(typ, data, o.mode, f, lead, 0)
			return
		}
		f.fail(r.notForwarded(err, o))
		return
	}
	if r.validator != nil && o.seq == nil {
		switch r.a.validateq.push(&proposal[C, R, E]{r: r, ctx: ctx, cmd: cmd, f: f}) {
		case pushFull:
			f.fail(ErrTooManyProposals)
		case pushClosed:
			f.fail(ErrShutdown)
		}
		return
	}
	r.submit(ctx, cmd, o.seq, f)
}

// encode encodes cmd as a log entry's type and data: a plain command, or
// one tagged with its session and sequence number. A command that does
// not decode back is refused here: it would stop every node that applies
// it, on every restart, so one decode (cheap next to an fsync) keeps a
// buggy codec or a version-skewed node from poisoning the log.
func (r *Raft[C, R, E]) encode(cmd C, seq *Seq) (EntryType, []byte, error) {
	data, err := r.d.cfg.Codec.Marshal(cmd)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrEncode, err)
	}
	if len(data) > r.d.cfg.MaxEntryBytes {
		return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrEntryTooLarge, len(data), r.d.cfg.MaxEntryBytes)
	}
	if err := r.checkDecode(data); err != nil {
		return 0, nil, fmt.Errorf("%w: codec %s cannot decode its own encoding of %T, so the command was not proposed: %w", ErrEncode, r.d.cfg.Codec.Name(), cmd, err)
	}
	if seq == nil {
		return EntryCommand, data, nil
	}
	return EntrySession, session.Encode(make([]byte, 0, len(data)+21), session.Entry{
		Kind: session.KindCommand, ID: uint64(seq.Session), Seq: seq.N, Payload: data}), nil
}

// checkDecode decodes data into a pooled, zeroed C and drops the result,
// unless that cannot fail.
func (r *Raft[C, R, E]) checkDecode(data []byte) error {
	if r.skipCheck {
		return nil
	}
	var zero C
	target := r.checkCmds.Get().(*C)
	*target = zero
	err := r.d.cfg.Codec.Unmarshal(data, target)
	*target = zero
	r.checkCmds.Put(target)
	return err
}

// decodeCannotFail reports whether every encoding of a C by c decodes back:
// the stock codecs (a nil Codec is msgpack) and a command that is raw
// bytes or a string, which applications that encode their own commands
// use. Propose's decode check is skipped for them.
func decodeCannotFail[C any](c codec.Codec) bool {
	if c != nil && c != codec.Msgpack() && c != codec.JSON() {
		return false
	}
	t := reflect.TypeFor[C]()
	return t.Kind() == reflect.String || (t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8)
}

// submit encodes cmd and hands it to the driver.
func (r *Raft[C, R, E]) submit(ctx context.Context, cmd C, seq *Seq, f resolver[R, E]) {
	typ, data, err := r.encode(cmd, seq)
	if err != nil {
		f.fail(err)
		return
	}
	r.d.propose(pendingEntry{ctx: ctx, typ: typ, data: data, w: f})
}

// resolver is a typed waiter: a local Future, or the reply to a proposal
// a follower forwarded.
type resolver[R any, E ErrorType] interface {
	waiter
	resolve(res Result[R, E], err error)
}

// proposal is a command waiting for validation on the apply goroutine.
type proposal[C any, R any, E ErrorType] struct {
	r   *Raft[C, R, E]
	ctx context.Context
	cmd C
	f   resolver[R, E]
}

// validate runs Validate on the apply goroutine, then submits the command
// or confirms the rejection.
func (p *proposal[C, R, E]) validate() {
	r := p.r
	var zero E
	if p.ctx.Err() != nil {
		p.f.fail(p.ctx.Err())
		return
	}
	if e := r.validator.Validate(p.cmd); e != zero {
		if bugs.Enabled && r.d.cfg.bugs.RejectWithoutConfirm {
			p.f.resolve(Result[R, E]{Err: e}, nil)
			return
		}
		r.confirmRejection(p)
		return
	}
	r.submit(p.ctx, p.cmd, nil, p.f)
}

func (p *proposal[C, R, E]) fail(err error) { p.f.fail(err) }

// confirmRejection answers a Validate rejection only once it is known to
// reflect a linearizable point: it is a read of the state, so it obtains a
// read index after the command arrived (the leader's own-term entry
// committed, its leadership confirmed by a quorum) and validates the
// command again once that index is applied. If the command is valid by
// then it is proposed; if leadership cannot be confirmed the caller gets
// that infrastructure error (the command was never proposed), never an E
// read from stale state.
func (r *Raft[C, R, E]) confirmRejection(p *proposal[C, R, E]) {
	t := &readTask{ctx: p.ctx, fn: func() error {
		var zero E
		if e := r.validator.Validate(p.cmd); e != zero {
			r.d.metrics.add(&r.d.metrics.rejections, 1)
			p.f.resolve(Result[R, E]{Err: e}, nil)
			return nil
		}
		r.submit(p.ctx, p.cmd, nil, p.f)
		return nil
	}, then: func(err error) {
		if err != nil {
			p.f.fail(err)
		}
	}}
	mode := r.d.readMode(ReadDefault)
	if err := r.d.requestRead(&readReq{lease: mode == ReadLease, task: t}); err != nil {
		p.f.fail(err)
	}
}
