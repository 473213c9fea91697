package raft

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/typedraft/typedraft/raft/internal/session"
)

// maxForwardHops bounds how often a forwarded proposal follows "not the
// leader, try X" answers before it fails with that *NotLeaderError.
const maxForwardHops = 3

// forwardingUnavailable says why proposals of a Raft[C, R, E] cannot be
// forwarded ("" if they can): the follower must decode the leader's R and
// E, and a codec cannot decode into an interface type such as error.
func forwardingUnavailable[R any, E ErrorType]() string {
	if t := reflect.TypeFor[E](); t.Kind() == reflect.Interface {
		return fmt.Sprintf("the error type E is the interface %v, which the codec cannot decode; use a concrete type such as *MyError", t)
	}
	if t := reflect.TypeFor[R](); t.Kind() == reflect.Interface {
		return fmt.Sprintf("the response type R is the interface %v, which the codec cannot decode; use a concrete type", t)
	}
	return ""
}

// forwardTo reports whether a proposal refused locally with err (not the
// leader) goes to the leader, and to which.
func (r *Raft[C, R, E]) forwardTo(err error, o proposeOpts) (NodeID, bool) {
	var nl *NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderID == "" || nl.LeaderID == r.d.cfg.ID || r.fwdOff != "" {
		return "", false
	}
	on := !r.d.cfg.DisableForwarding
	if o.forward != 0 {
		on = o.forward > 0
	}
	return nl.LeaderID, on
}

// notForwarded is the error of a proposal that was not forwarded: err,
// with the reason when forwarding was wanted but is impossible.
func (r *Raft[C, R, E]) notForwarded(err error, o proposeOpts) error {
	var nl *NotLeaderError
	if r.fwdOff != "" && o.forward >= 0 && errors.As(err, &nl) && nl.LeaderID != "" {
		out := *nl
		out.Reason = "not forwarded: " + r.fwdOff
		return &out
	}
	return err
}

// forward sends an encoded entry to the leader lead and resolves f with
// its answer. It never blocks: the transport queues the message.
func (r *Raft[C, R, E]) forward(typ EntryType, data []byte, mode ResponseMode, f resolver[R, E], lead NodeID, hops int) {
	d := r.d
	id, err := d.fwd.add(lead, d.cfg.ForwardTimeout, d.cfg.MaxForwarded, func(m *Message, err error) {
		switch {
		case err != nil:
			f.fail(err)
		case m.Reject && m.Hint == fwdNotLeader && m.Leader != "" && m.Leader != lead && m.Leader != d.cfg.ID && hops < maxForwardHops:
			// Definitely not proposed there: follow the hint.
			r.forward(typ, data, mode, f, m.Leader, hops+1)
		case m.Reject:
			err := fwdError(*m)
			var nl *NotLeaderError
			if errors.As(err, &nl) {
				nl.LeaderAddr = d.peerAddr(nl.LeaderID).Addr
			}
			f.fail(err)
		default:
			r.resolveForwarded(m, f)
		}
	})
	if err != nil {
		f.fail(err)
		return
	}
	d.metrics.add(&d.metrics.forwarded, 1)
	if fut, ok := f.(*Future[R, E]); ok {
		fut.forwarded.Store(true)
	}
	// The driver sends it, batched with the other forwards of its loop
	// (forward_batch.go).
	if d.fwdq.push(fwdOut{to: lead, mode: mode, ent: Entry{Index: id, Type: typ, Data: data}}) != pushed {
		if w := d.fwd.take(id, lead); w != nil {
			w.done(nil, ErrShutdown)
		}
	}
}

// resolveForwarded resolves f with the leader's accepted answer m: the
// entry's index and term and, when it carries them, the encoded R and E.
func (r *Raft[C, R, E]) resolveForwarded(m *Message, f resolver[R, E]) {
	res := Result[R, E]{Index: m.Index, Term: m.LogTerm}
	if len(m.Entries) > 0 {
		var err error
		if res.Value, res.Err, err = r.decodeResult(m.Entries); err != nil {
			// It happened, but what it returned is unknown.
			f.fail(indeterminate(fmt.Errorf("%w: the leader (%s) answered for entry %d, but: %w", ErrForwarding, m.From, m.Index, err)))
			return
		}
	}
	if res.Index > 0 {
		f.markAppended(res.Index, res.Term)
	}
	f.resolve(res, nil)
}

// decodeResult decodes an encoded response and, if present, error.
func (r *Raft[C, R, E]) decodeResult(ents []Entry) (R, E, error) {
	var v R
	var e E
	c := r.d.cfg.Codec
	if len(ents) > 0 && len(ents[0].Data) > 0 {
		if err := c.Unmarshal(ents[0].Data, &v); err != nil {
			return v, e, fmt.Errorf("the response does not decode into %T with codec %s: %w", v, c.Name(), err)
		}
	}
	if len(ents) > 1 {
		if err := c.Unmarshal(ents[1].Data, &e); err != nil {
			return v, e, fmt.Errorf("the error does not decode into %T with codec %s: %w", e, c.Name(), err)
		}
	}
	return v, e, nil
}

// handleProposeResp is a follower receiving the leader's answer, or a
// batch of answers (Context 0).
func (r *Raft[C, R, E]) handleProposeResp(m Message) {
	if m.Context != 0 {
		if w := r.d.fwd.take(m.Context, m.From); w != nil {
			w.done(&m, nil)
		}
		return
	}
	for _, e := range m.Entries {
		a, err := decodeAnswer(m.From, e)
		if err != nil {
			// The forwards it answers expire as indeterminate.
			r.d.warnForwardAnswer(m.From, err)
			return
		}
		if w := r.d.fwd.take(a.Context, a.From); w != nil {
			w.done(&a, nil)
		}
	}
}

// handlePropose is the leader receiving a proposal forwarded by member
// m.From, or a batch of them (Context 0, each entry's Index its forward
// ID): each is proposed like a local one (validated unless in a session)
// and answered with a MsgProposeResp once resolved.
func (r *Raft[C, R, E]) handlePropose(m Message) {
	d := r.d
	if !d.isMember(m.From) {
		// Strangers get no answer (and no amplification).
		d.metrics.add(&d.metrics.inboxDropped, 1)
		return
	}
	if m.Context != 0 {
		r.serveForward(m.From, m.Context, m.Hint, m.Entries)
		return
	}
	// The refusals a batch meets at once go out together.
	d.replies.begin()
	defer d.replies.end(d)
	for i := range m.Entries {
		if id := m.Entries[i].Index; id != 0 {
			r.serveForward(m.From, id, m.Hint, m.Entries[i:i+1])
		}
	}
}

// serveForward proposes forward id from follower `from`: ents must be one
// entry, mode a response mode.
func (r *Raft[C, R, E]) serveForward(from NodeID, id, mode uint64, ents []Entry) {
	d := r.d
	reply := &fwdReply[C, R, E]{r: r, to: from, id: id, mode: ResponseMode(mode)}
	if n := d.fwdServing.Add(1); n > int64(d.cfg.MaxForwarded) {
		reply.fail(fmt.Errorf("%w: %d forwarded proposals in progress", ErrTooManyProposals, n-1))
		return
	}
	if len(ents) != 1 || mode > uint64(Committed) {
		reply.fail(fmt.Errorf("%w: a forwarded proposal carries one entry and a response mode, got %d entries and mode %d", ErrInvalidArgument, len(ents), mode))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ForwardTimeout)
	reply.cancel = cancel
	d.metrics.add(&d.metrics.forwardedServed, 1)
	e := ents[0]
	o := proposeOpts{mode: reply.mode, forward: -1}
	payload := e.Data
	switch e.Type {
	case EntryCommand:
	case EntrySession:
		se, err := session.Decode(e.Data)
		if err != nil {
			reply.fail(fmt.Errorf("%w: %w", ErrInvalidArgument, err))
			return
		}
		if se.Kind != session.KindCommand {
			if err := d.checkLeader(); err != nil {
				reply.fail(err)
				return
			}
			if reply.mode != Applied {
				reply.fail(fmt.Errorf("%w: session entries are answered when applied", ErrInvalidArgument))
				return
			}
			d.propose(pendingEntry{ctx: ctx, typ: EntrySession, data: r.sessionEntry(se), w: reply})
			return
		}
		if se.Seq == 0 || se.ID == 0 || reply.mode != Applied {
			reply.fail(fmt.Errorf("%w: a session command needs a session, a sequence number from 1 up and the Applied mode", ErrInvalidArgument))
			return
		}
		o.seq = &Seq{Session: SessionID(se.ID), N: se.Seq}
		payload = se.Payload
	default:
		reply.fail(fmt.Errorf("%w: a forwarded proposal of entry type %s", ErrInvalidArgument, e.Type))
		return
	}
	if len(payload) > d.cfg.MaxEntryBytes {
		reply.fail(fmt.Errorf("%w: %d bytes, limit %d", ErrEntryTooLarge, len(payload), d.cfg.MaxEntryBytes))
		return
	}
	var cmd C
	if err := d.cfg.Codec.Unmarshal(payload, &cmd); err != nil {
		reply.fail(fmt.Errorf("%w: the forwarded command does not decode into %T with the leader's codec %s: %w", ErrEncode, cmd, d.cfg.Codec.Name(), err))
		return
	}
	r.propose(ctx, cmd, o, reply)
}

// fwdReply is the leader's waiter for a forwarded proposal: it answers
// the follower once, with the outcome encoded by the node's codec.
//
// Concurrency: its methods may be called from the driver and the apply
// goroutine; the first outcome wins.
type fwdReply[C any, R any, E ErrorType] struct {
	r      *Raft[C, R, E]
	to     NodeID
	id     uint64
	mode   ResponseMode
	cancel context.CancelFunc
	sent   atomic.Bool
}

var _ resolver[int, error] = (*fwdReply[string, int, error])(nil)

func (w *fwdReply[C, R, E]) markAppended(index, term uint64) {}

func (w *fwdReply[C, R, E]) committedAt(index, term uint64) bool {
	if w.mode != Committed {
		return false
	}
	w.send(Message{Index: index, LogTerm: term})
	return true
}

func (w *fwdReply[C, R, E]) fail(err error) {
	m := Message{Reject: true, Hint: fwdCode(err), Entries: []Entry{{Data: []byte(err.Error())}}}
	var nl *NotLeaderError
	if errors.As(err, &nl) {
		m.Leader = nl.LeaderID
	}
	w.send(m)
}

//lint:ignore U1000 called through the resolver interface (staticcheck misses it for generic types)
func (w *fwdReply[C, R, E]) resolve(res Result[R, E], err error) {
	if err != nil {
		w.fail(err)
		return
	}
	m := Message{Index: res.Index, LogTerm: res.Term}
	var zero E
	if w.mode == Applied || res.Err != zero {
		// The applied outcome, or a Validate rejection in either mode.
		c := w.r.d.cfg.Codec
		v, verr := c.Marshal(res.Value)
		var ev []byte
		if verr == nil && res.Err != zero {
			ev, verr = c.Marshal(res.Err)
		}
		if verr != nil {
			// Applied, but the outcome cannot travel: the follower's
			// caller learns that much.
			w.fail(fmt.Errorf("%w: entry %d was applied but its result does not encode with codec %s: %w", ErrForwarding, res.Index, c.Name(), verr))
			return
		}
		m.Entries = resultEntries(v, ev)
	}
	w.send(m)
}

// resolveKept answers with a session's kept (encoded) result as it is.
func (w *fwdReply[C, R, E]) resolveKept(kept session.Result) {
	w.send(Message{Index: kept.Index, LogTerm: kept.Term, Entries: resultEntries(kept.Resp, kept.Err)})
}

// resultEntries carries an encoded response and, if the application
// returned one, its encoded error.
func resultEntries(resp, errb []byte) []Entry {
	if errb == nil {
		return []Entry{{Data: resp}}
	}
	return []Entry{{Data: resp}, {Data: errb}}
}

// send answers the follower, once.
func (w *fwdReply[C, R, E]) send(m Message) {
	if !w.sent.CompareAndSwap(false, true) {
		return
	}
	if w.cancel != nil {
		w.cancel()
	}
	d := w.r.d
	d.fwdServing.Add(-1)
	m.Type, m.To, m.Context = MsgProposeResp, w.to, w.id
	d.replies.send(d, m)
}
