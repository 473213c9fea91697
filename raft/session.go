package raft

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/typedraft/typedraft/raft/internal/session"
)

// Client sessions make retries safe. A proposal that fails with
// ErrIndeterminate (a timeout, a lost leader, a failed forward) may or may
// not have been applied; in a session the client retries it with the same
// Seq and it is applied at most once: a retry of a command already applied
// returns the original Result (the same Value, Err, Index and Term)
// without applying it again.
//
//	sess, err := node.OpenSession(ctx)
//	seq := sess.Next()
//	for {
//		res, err := node.Propose(ctx, cmd, seq).Wait(ctx)
//		if !errors.Is(err, raft.ErrIndeterminate) {
//			return res, err // the outcome, exactly once
//		}
//	}
//
// The framework does the bookkeeping around Apply: each node keeps, per
// session, the last sequence number applied and its encoded R and E (in
// its snapshots too), so the state machine stays as it is. Sequence
// numbers must grow; one older than the last applied fails with
// ErrSessionSeqOld, so a session has at most one command outstanding
// (open more sessions for concurrency; they are cheap). Sessions expire
// deterministically, by log index: one not used for Config.SessionTTL
// entries is gone, and opening one beyond Config.MaxSessions evicts the
// least recently used. A command in an unknown or expired session fails
// with ErrSessionExpired and is not applied.
//
// R and E must survive the node's Codec (exported fields): a retry's
// result is decoded from the kept encoding.

// Session errors.
var (
	// ErrSessionExpired: the session is unknown, closed, expired or
	// evicted. The command was not applied by this attempt (an earlier
	// attempt with the same Seq may have been); open a new session.
	ErrSessionExpired = errors.New("raft: session unknown or expired")
	// ErrSessionSeqOld: the session has applied a later sequence number;
	// this one's result is no longer kept and it was not applied.
	ErrSessionSeqOld = errors.New("raft: sequence number older than the session's last")
)

// SessionID names a session: the log index of the entry that opened it.
type SessionID uint64

// Seq is one proposal's place in a session, a ProposeOption. Pass the
// same Seq to retry the proposal.
type Seq struct {
	Session SessionID
	// N is the sequence number, from 1 up.
	N uint64
}

func (s Seq) proposeOption(o *proposeOpts) error {
	if s.Session == 0 || s.N == 0 {
		return fmt.Errorf("%w: Seq needs a session and a sequence number from 1 up, got %+v", ErrInvalidArgument, s)
	}
	o.seq = &s
	return nil
}

// Session numbers one client's proposals.
//
// Concurrency: safe for concurrent use, but a session should have one
// command outstanding at a time (see ErrSessionSeqOld).
type Session struct {
	id   SessionID
	last atomic.Uint64
}

// ResumeSession returns the session id whose last sequence number used
// was last: a client that keeps its session across restarts resumes it.
func ResumeSession(id SessionID, last uint64) *Session {
	s := &Session{id: id}
	s.last.Store(last)
	return s
}

// ID returns the session's ID.
func (s *Session) ID() SessionID { return s.id }

// Next returns the next sequence number's Seq. Keep it to retry.
func (s *Session) Next() Seq { return Seq{Session: s.id, N: s.last.Add(1)} }

// OpenSession opens a session (a replicated entry; on a follower it is
// forwarded like a proposal) and returns once the leader applied it. The
// session's lifetime and the table's bound are the leader's
// Config.SessionTTL and Config.MaxSessions. Errors are those of Propose;
// an indeterminate one may leave an unused session behind, which expires.
func (r *Raft[C, R, E]) OpenSession(ctx context.Context) (*Session, error) {
	res, err := r.proposeSession(ctx, session.Entry{Kind: session.KindOpen})
	if err != nil {
		return nil, err
	}
	return &Session{id: SessionID(res.Index)}, nil
}

// CloseSession ends session id: its kept result is dropped and later
// commands in it fail with ErrSessionExpired. Closing an unknown session
// is not an error.
func (r *Raft[C, R, E]) CloseSession(ctx context.Context, id SessionID) error {
	_, err := r.proposeSession(ctx, session.Entry{Kind: session.KindClose, ID: uint64(id)})
	return err
}

// proposeSession proposes a session entry and waits until it is applied.
func (r *Raft[C, R, E]) proposeSession(ctx context.Context, se session.Entry) (Result[R, E], error) {
	f := newFuture[R, E](Applied)
	if err := ctx.Err(); err != nil {
		return Result[R, E]{}, fmt.Errorf("raft: session entry not proposed: %w", err)
	}
	if err := r.d.checkLeader(); err != nil {
		lead, ok := r.forwardTo(err, proposeOpts{})
		if !ok {
			return Result[R, E]{}, r.notForwarded(err, proposeOpts{})
		}
		r.forward(EntrySession, session.Encode(nil, se), Applied, f, lead, 0)
	} else {
		r.d.propose(pendingEntry{ctx: ctx, typ: EntrySession, data: r.sessionEntry(se), w: f})
	}
	return f.Wait(ctx)
}

// sessionEntry encodes se as the leader proposes it: an open carries the
// leader's TTL and bound.
func (r *Raft[C, R, E]) sessionEntry(se session.Entry) []byte {
	if se.Kind == session.KindOpen {
		se.TTL, se.Max = r.d.cfg.sessionTTL(), uint64(r.d.cfg.MaxSessions)
	}
	return session.Encode(nil, se)
}

// sessionError is the error of a session command the table refused.
func sessionError(v session.Verdict, e *Entry, se session.Entry) error {
	if v == session.Stale {
		return fmt.Errorf("%w: session %d, sequence number %d (entry %d)", ErrSessionSeqOld, se.ID, se.Seq, e.Index)
	}
	return fmt.Errorf("%w: session %d (sequence number %d, entry %d)", ErrSessionExpired, se.ID, se.Seq, e.Index)
}
