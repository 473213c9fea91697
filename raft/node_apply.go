package raft

import (
	"fmt"

	"github.com/typedraft/typedraft/raft/internal/session"
)

// The typed hooks of the applier (appHooks): the only apply-side code
// that knows C, R and E.

// applyCommand decodes the command payload of entry e, applies it and
// resolves w. If keep is set (a session command) the result is also
// encoded into it for the session table.
func (r *Raft[C, R, E]) applyCommand(e *Entry, payload []byte, w waiter, keep *session.Result) error {
	var zero C
	c := r.d.cfg.Codec
	// The reused target is zero before the decode, so the decoder builds
	// fresh values (never reusing the previous command's memory, which
	// Apply may have kept), and zero after, so it holds no reference.
	target := r.applyCmd
	*target = zero
	err := c.Unmarshal(payload, target)
	cmd := *target
	*target = zero
	if err != nil {
		return fmt.Errorf("%w: the command at log index %d (term %d, %d bytes) does not decode into %T with codec %s: %w; "+
			"the node stops here on every start: run a binary whose codec decodes it, or wipe this node's storage so that it catches up from a leader's snapshot",
			ErrDecode, e.Index, e.Term, len(payload), cmd, c.Name(), err)
	}
	res, err := r.safeApply(e.Index, cmd)
	if err != nil {
		return err
	}
	res.Term = e.Term
	if keep != nil {
		var zero E
		var verr error
		keep.Resp, verr = c.Marshal(res.Value)
		if verr == nil && res.Err != zero {
			keep.Err, verr = c.Marshal(res.Err)
		}
		if verr != nil {
			// Deterministic on every node: the command is applied, its
			// result cannot be kept for a retry.
			keep.Resp, keep.Err, keep.Lost = nil, nil, true
		}
		if fr, ok := w.(*fwdReply[C, R, E]); ok && !keep.Lost {
			// A forwarded session command: answer with the bytes just
			// encoded instead of encoding them again.
			fr.resolveKept(*keep)
			return nil
		}
	}
	if rs, ok := w.(resolver[R, E]); ok {
		rs.resolve(res, nil)
	}
	return nil
}

// resolveKept resolves w with a session's kept result (a retry of a
// command already applied).
func (r *Raft[C, R, E]) resolveKept(w waiter, kept session.Result) {
	if kept.Lost {
		w.fail(fmt.Errorf("%w: entry %d applied this command, but its result could not be encoded with codec %s, so it cannot be returned again", ErrEncode, kept.Index, r.d.cfg.Codec.Name()))
		return
	}
	if fr, ok := w.(*fwdReply[C, R, E]); ok {
		fr.resolveKept(kept)
		return
	}
	rs, ok := w.(resolver[R, E])
	if !ok {
		return
	}
	res := Result[R, E]{Index: kept.Index, Term: kept.Term}
	var err error
	ents := resultEntries(kept.Resp, kept.Err)
	if res.Value, res.Err, err = r.decodeResult(ents); err != nil {
		rs.fail(fmt.Errorf("%w: the kept result of entry %d: %w", ErrDecode, kept.Index, err))
		return
	}
	rs.resolve(res, nil)
}

// resolveEntry is the applier's hook for an applied no-op, configuration
// or session entry that a future waits for.
func (r *Raft[C, R, E]) resolveEntry(e *Entry, w waiter) {
	if rs, ok := w.(resolver[R, E]); ok {
		rs.resolve(Result[R, E]{Index: e.Index, Term: e.Term}, nil)
	}
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
