package raft

import (
	"fmt"

	"github.com/typedraft/typedraft/raft/internal/session"
)

// applySession applies a session entry (see Session): it opens or closes
// a session, or decides a session command against the table (apply it
// and keep its result, answer a retry with the kept result, or refuse
// it). Every node decides alike: the table is a function of the log.
func (a *applier) applySession(e *Entry, w waiter) error {
	se, err := session.Decode(e.Data)
	if err != nil {
		return fmt.Errorf("%w: the session entry at log index %d (term %d): %w; "+
			"the node stops here on every start: run a binary that knows this entry, or wipe this node's storage so that it catches up from a leader's snapshot",
			ErrDecode, e.Index, e.Term, err)
	}
	switch se.Kind {
	case session.KindOpen:
		a.sessions.Open(e.Index, se.TTL, se.Max)
	case session.KindClose:
		a.sessions.Close(se.ID)
	case session.KindCommand:
		v, kept := a.sessions.Check(e.Index, se.ID, se.Seq)
		switch v {
		case session.Apply:
			res := session.Result{Index: e.Index, Term: e.Term}
			if err := a.hooks.applyCommand(e, se.Payload, w, &res); err != nil {
				return err
			}
			a.sessions.Record(e.Index, se.ID, se.Seq, res)
		case session.Duplicate:
			a.d.metrics.add(&a.d.metrics.sessionDuplicates, 1)
			if w != nil {
				a.hooks.resolveKept(w, kept)
			}
		default:
			a.d.metrics.add(&a.d.metrics.sessionRefused, 1)
			if w != nil {
				w.fail(sessionError(v, e, se))
			}
		}
		a.d.metrics.sessions.Store(uint64(a.sessions.Len()))
		return nil
	}
	a.d.metrics.sessions.Store(uint64(a.sessions.Len()))
	if w != nil {
		a.hooks.resolveEntry(e, w)
	}
	return nil
}
