package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/typedraft/typedraft/raft"
)

// IdempotencyKeyHeader is the request header that makes a write safe to
// retry (see openSession).
const IdempotencyKeyHeader = "Idempotency-Key"

// Error codes of the Idempotency-Key scheme (HTTP 422: the key cannot be
// used; the request was not applied).
const (
	// CodeSessionExpired: the key's session is unknown, closed, expired
	// or evicted; open a new one.
	CodeSessionExpired = "session_expired"
	// CodeSessionSeqOld: the session has applied a later sequence number.
	CodeSessionSeqOld = "session_seq_old"
	// CodeKeyReused: the key was used by a different request.
	CodeKeyReused = "idempotency_key_reused"
)

// keyFormat describes a well-formed Idempotency-Key, for 400 answers.
const keyFormat = `"<session>:<seq>": two decimal numbers from 1 up, the session from POST /sessions ` +
	`and the request's sequence number in it (1, 2, 3, ...; one request at a time per session)`

// sessionBody is the JSON answer of POST and DELETE /sessions.
type sessionBody struct {
	Session uint64 `json:"session"`
	// FirstKey is the Idempotency-Key of the session's first write.
	FirstKey string `json:"first_key,omitempty"`
	Closed   bool   `json:"closed,omitempty"`
}

// openSession serves POST /sessions, on any node (a follower forwards it):
// it opens a raft client session (raft.Raft.OpenSession, a replicated log
// entry) and answers 201 with its number, {"session": 17, "first_key":
// "17:1"}.
//
// # Exactly-once writes with Idempotency-Key
//
// A write (PUT, DELETE, POST /cas) with the header
//
//	Idempotency-Key: <session>:<seq>
//
// is proposed in that raft session with sequence number seq
// (raft.Seq{Session: session, N: seq}). The client numbers its writes in a
// session 1, 2, 3, ..., one at a time, and retries a write whose answer it
// did not get (a timeout, a 504 "indeterminate", a connection reset) with
// the same key, through the same node or any other. Raft applies the
// command at most once: a retry of a write already applied is answered
// with the original result, the same status and body ("revision" and
// "index" included), and changes nothing. The session lives in the
// replicated state (and the nodes' snapshots), so a key stays valid
// across nodes and across restarts of every node; the client keeps its
// session number and counter. The key may be sent as a structured-field
// string ("17:3", quoted) too. Session writes skip the leader's Validate
// (Apply decides: a CAS conflict costs a log entry and is answered when
// applied, which makes its "current" linearizable as well).
//
// Errors (JSON, see API), none of which applied the request:
//
//   - 400 "invalid": the header is malformed (the message names the
//     format) or sent twice.
//   - 422 "session_seq_old": a later sequence number of the session was
//     applied, so this one's result is no longer kept. Each session keeps
//     the result of its last write only: one write at a time per session
//     (open more sessions for concurrency; they are cheap).
//   - 422 "session_expired": the session is unknown, closed (DELETE
//     /sessions/{id}), expired (unused for raft.DefaultSessionTTL log
//     entries) or evicted (more than raft.DefaultMaxSessions sessions, the
//     least recently used goes). Open a new session. An earlier attempt
//     with this key may have been applied: read the key to find out.
//   - 422 "idempotency_key_reused": the key was already used by a
//     different request (another method, key or body); its result is not
//     this request's. Use the next sequence number.
//
// Sessions cost one log entry to open and one to close, and a slot of the
// bounded table until then; any client may open them (no token), so on a
// shared cluster a client that opens thousands evicts other clients'
// sessions, whose retries then fail with "session_expired", safely.
//
// An indeterminate POST /sessions may have opened a session nobody will
// use; it expires. Retrying it is safe.
func (a *API) openSession(w http.ResponseWriter, r *http.Request) {
	if a.sessionAnswered(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	s, err := a.node.OpenSession(ctx)
	if err != nil {
		a.writeSessionError(w, r, err)
		return
	}
	id := uint64(s.ID())
	w.Header().Set("Location", fmt.Sprintf("/sessions/%d", id))
	writeJSON(w, http.StatusCreated, sessionBody{Session: id, FirstKey: formatKey(raft.Seq{Session: s.ID(), N: 1})})
}

// sessionAnswered answers a session request that cannot or need not go
// further on this node: a malformed redirect preference (400), or a
// follower asked for the redirect (307 to the leader, or 503). The
// session calls have no NoForward option, so the redirect is decided
// here.
func (a *API) sessionAnswered(w http.ResponseWriter, r *http.Request) bool {
	redirect, bad := wantsRedirect(r)
	if bad != nil {
		writeJSON(w, http.StatusBadRequest, bad)
		return true
	}
	return redirect && a.notLeader(w, r)
}

// closeSession serves DELETE /sessions/{id} on any node: later writes in
// the session fail with "session_expired". Closing an unknown session is
// not an error.
func (a *API) closeSession(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: CodeInvalid, Message: fmt.Sprintf("session %q: want a decimal number from 1 up, as POST /sessions gave it", truncated(r.PathValue("id")))})
		return
	}
	if a.sessionAnswered(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	if err := a.node.CloseSession(ctx, raft.SessionID(id)); err != nil {
		a.writeSessionError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sessionBody{Session: id, Closed: true})
}

// writeSessionError writes the error of opening or closing a session.
// Both are safe to retry: an indeterminate open may leave an unused
// session behind, which expires.
func (a *API) writeSessionError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, raft.ErrIndeterminate) {
		writeJSON(w, http.StatusGatewayTimeout, errorBody{Error: "indeterminate",
			Message: err.Error() + "; the outcome is unknown; retrying is safe (an unused session expires)"})
		return
	}
	a.writeInfraError(w, r, err)
}

// writeWriteError writes the infrastructure error of a write proposed
// with seq (nil without an Idempotency-Key): the session's errors, and
// for an outcome that is unknown whether a retry is safe; the rest as
// writeInfraError does.
func (a *API) writeWriteError(w http.ResponseWriter, r *http.Request, err error, seq *raft.Seq) {
	key := ""
	if seq != nil {
		key = formatKey(*seq)
	}
	switch {
	case seq != nil && errors.Is(err, raft.ErrSessionSeqOld):
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Error: CodeSessionSeqOld, IdempotencyKey: key,
			Message: fmt.Sprintf("Idempotency-Key %s: session %d has applied a later sequence number than %d, so this one's result is no longer kept; "+
				"this request was not applied; number each new write with the session's next sequence number, one write at a time (%v)", key, seq.Session, seq.N, err)})
	case seq != nil && errors.Is(err, raft.ErrSessionExpired):
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Error: CodeSessionExpired, IdempotencyKey: key,
			Message: fmt.Sprintf("Idempotency-Key %s: session %d is unknown, closed, expired or evicted; this request was not applied "+
				"(an earlier attempt with this key may have been: read the key to find out); open a new session with POST /sessions (%v)", key, seq.Session, err)})
	case errors.Is(err, raft.ErrIndeterminate) && seq != nil:
		writeJSON(w, http.StatusGatewayTimeout, errorBody{Error: "indeterminate", IdempotencyKey: key,
			Message: err.Error() + "; the outcome is unknown: the write may or may not have been applied; " +
				"retrying it with the same Idempotency-Key " + key + " (on any node) is safe: it is applied at most once and answered with the original result"})
	case errors.Is(err, raft.ErrIndeterminate):
		writeJSON(w, http.StatusGatewayTimeout, errorBody{Error: "indeterminate",
			Message: err.Error() + "; the outcome is unknown: the write may or may not have been applied, and retrying it may apply it twice; " +
				"send writes with an Idempotency-Key (POST /sessions) to make retries safe, or read the key to find out"})
	default:
		status, body, location := a.infraError(r, err)
		body.IdempotencyKey = key
		writeMapped(w, r, status, body, location)
	}
}

// writeOptions returns the raft.ProposeOptions of a write request:
// raft.NoForward if it asks for the redirect (wantsRedirect), and the
// raft.Seq of its Idempotency-Key (also returned; nil without one). A
// malformed request is returned as the body of a 400.
func writeOptions(r *http.Request) ([]raft.ProposeOption, *raft.Seq, *errorBody) {
	var opts []raft.ProposeOption
	redirect, bad := wantsRedirect(r)
	if bad != nil {
		return nil, nil, bad
	}
	if redirect {
		opts = append(opts, raft.NoForward)
	}
	seq, bad := idempotencyKey(r.Header)
	if bad != nil {
		return nil, nil, bad
	}
	if seq != nil {
		opts = append(opts, *seq)
	}
	return opts, seq, nil
}

// wantsRedirect reports whether the request asks a follower to redirect
// it to the leader instead of forwarding it: ?redirect=true (or 1, t,
// TRUE...; a bare ?redirect too; false is the default) or a "redirect"
// preference in a Prefer header (RFC 7240). An unparsable ?redirect= is
// returned as the body of a 400.
func wantsRedirect(r *http.Request) (bool, *errorBody) {
	q := r.URL.Query()
	if q.Has("redirect") {
		v := q.Get("redirect")
		if v == "" {
			return true, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, &errorBody{Error: CodeInvalid, Message: fmt.Sprintf("redirect=%q: use redirect=true (a follower answers 307 to the leader) or redirect=false (the default: it forwards the write)", truncated(v))}
		}
		if b {
			return true, nil
		}
	}
	return preferRedirect(r), nil
}

// preferRedirect reports whether a Prefer header holds the preference
// "redirect" (case-insensitive, parameters ignored).
func preferRedirect(r *http.Request) bool {
	for _, h := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(h, ",") {
			token, _, _ := strings.Cut(p, ";")
			token, _, _ = strings.Cut(token, "=")
			if strings.EqualFold(strings.TrimSpace(token), "redirect") {
				return true
			}
		}
	}
	return false
}

// idempotencyKey parses the request's Idempotency-Key, "<session>:<seq>"
// (optionally in double quotes), into a raft.Seq; nil without the header.
// A malformed key, or more than one, is returned as the body of a 400.
func idempotencyKey(h http.Header) (*raft.Seq, *errorBody) {
	vals := h.Values(IdempotencyKeyHeader)
	switch len(vals) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, &errorBody{Error: CodeInvalid, Message: fmt.Sprintf("%d Idempotency-Key headers: send one, %s", len(vals), keyFormat)}
	}
	raw := strings.TrimSpace(vals[0])
	v := raw
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	sess, n, ok := strings.Cut(v, ":")
	id, err1 := strconv.ParseUint(sess, 10, 64)
	seq, err2 := strconv.ParseUint(n, 10, 64)
	if !ok || err1 != nil || err2 != nil || id == 0 || seq == 0 {
		return nil, &errorBody{Error: CodeInvalid, Message: fmt.Sprintf("Idempotency-Key %q is malformed: want %s", truncated(raw), keyFormat)}
	}
	return &raft.Seq{Session: raft.SessionID(id), N: seq}, nil
}

// formatKey returns the Idempotency-Key of s.
func formatKey(s raft.Seq) string { return fmt.Sprintf("%d:%d", s.Session, s.N) }
