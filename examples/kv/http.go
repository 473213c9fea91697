package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// Node is a key-value node: the typed Raft node of the application's
// Command, Response and Error types.
type Node = raft.Raft[Command, Response, *Error]

// API serves the HTTP interface of one node:
//
//	GET    /kv/{key}              read on this node, whichever it is; 404 if absent
//	       ?consistency=linearizable  (the default) sees every write acknowledged
//	                              before the request: ReadIndex, no log entry
//	       ?consistency=lease     the same, skipping the leader's quorum round while
//	                              it holds a lease (assumes bounded clock drift)
//	       ?consistency=stale     this node's copy as it is (may lag; no messages)
//	       ?stale=true            an alias of consistency=stale
//	PUT    /kv/{key}              body is the new value
//	DELETE /kv/{key}              404 if absent
//	POST   /cas/{key}             body {"old": "v" | null, "new": "w"}; 409 on conflict
//	       (writes, on any node)  ?redirect=true or "Prefer: redirect": a follower answers
//	                              307 to the leader instead of forwarding the write;
//	                              "Idempotency-Key: <session>:<seq>": applied at most once
//	POST   /sessions              open a client session for Idempotency-Key: 201
//	                              {"session": 17, "first_key": "17:1"}
//	DELETE /sessions/{id}         close a session (closing an unknown one is not an error)
//	GET    /status                this node's raft status: term, leader, commit, applied,
//	                              configuration, removed, and on the leader each peer's
//	                              match, next, lag and last contact
//	GET    /metrics               Prometheus metrics (typedraft_*, see raft/raftprom)
//	GET    /healthz               200 while the node runs, 503 once it has stopped
//	GET    /readyz                200 once it knows a leader and has applied what it saw
//	                              committed; 503 with the reason ("no_leader", ...) if not
//	GET    /members               the membership, with roles and HTTP addresses
//	POST   /members               body {"id", "raft_addr", "http_addr"}: add a node
//	                              (as a learner, then a voter once caught up)
//	DELETE /members/{id}          remove a node
//
// Reads are served by the node that receives them, followers and learners
// included: a linearizable or lease read on a follower asks the leader for
// its commit index (the read index) and answers once it has applied that
// index itself, so it sees every write acknowledged before it was sent,
// without a log entry, an fsync or a redirect. The read runs with
// raft.Query on the node's apply goroutine. Its answer is
// {"key", "value", "found", "revision", "index", "consistency"}, where
// "index" is the log index the node had applied when it read. An unknown
// consistency is a 400 "invalid", and every failure of a read is safe to
// retry (see Errors). There is no read through the log: a read index gives
// the same guarantee without writing anything.
//
// Every node takes writes. A follower or learner that knows the leader
// forwards the write to it through raft (raft's proposal forwarding: the
// command travels over the raft transport, the leader validates and
// proposes it, and its typed Response or *Error comes back) and answers
// with the leader's result: the same status and JSON as the leader would
// give, "revision" and "index" included. A client that would rather talk
// to the leader itself asks for the redirect with ?redirect=true (or 1;
// ?redirect=false is the default) or the header "Prefer: redirect": a
// follower then answers 307 Temporary Redirect to the leader's HTTP
// address (clients re-send the same method and body; curl needs -L), or
// 503 "not_leader" naming the leader if its HTTP address is unknown. A
// node that knows no leader answers 503 "no_leader" either way, and a
// forward that raft could not make is answered like the redirect, with
// raft's reason in "reason". A CAS whose expectation fails is rejected by
// the leader's Validate before it enters the log, with the same *Error
// that Apply returns when the CAS loses a race after validation; the
// leader answers that rejection only once a read index has confirmed it,
// so a 409's "current" is linearizable too.
//
// A write whose outcome is unknown (its answer was lost: a timeout, a
// leader change, a failed forward) is answered 504 "indeterminate": it may
// or may not have been applied. Retrying it blindly may apply it twice (a
// CAS retried after it succeeded reports a conflict with itself); a retry
// with the same Idempotency-Key is safe on any node, also after nodes
// restarted: it is applied at most once and answered with the original
// result. See openSession for the scheme and its errors.
//
// When APIOptions.Token is set, the membership changes (POST /members and
// DELETE /members/{id}) require the header "Authorization: Bearer <token>"
// and answer 401 without it. (curl -L does not re-send that header to
// another host when it follows a redirect; use --location-trusted, or ask
// the leader directly.)
//
// POST /members waits until the new node has caught up, at most
// APIOptions.JoinTimeout; if it has not by then, the learner it added is
// removed again and the answer is 504 with the error "join_timeout".
//
// # Errors
//
// Every error is answered with one JSON shape (errorBody), whatever the
// status, the router's own 404 and 405 included:
//
//	{"error": "<code>", "message": "<for humans>", "key": "...", "current": "...",
//	 "leader": "...", "leader_http": "...", "reason": "...", "idempotency_key": "..."}
//
// where only "error" and "message" are always present. The codes are the
// application's own errors ("conflict" 409 with the key's "current" value,
// "invalid" 400, "not_found" 404) and the infrastructure's: "not_leader"
// (307 or 503, naming the leader, with raft's "reason" if it did not
// forward), "no_leader", "not_confirmed" (a read, or a CAS rejection, whose
// leader could not confirm its leadership), "busy" and "unavailable" 503,
// "indeterminate" 504 (the write may or may not have happened; retry it
// with its Idempotency-Key), "session_expired", "session_seq_old" and
// "idempotency_key_reused" 422 (see openSession; the write was not
// applied), "timeout" 504 (a read not served in time), "join_timeout" 504,
// "unauthorized" 401, "method_not_allowed" 405 (with an Allow header),
// "too_large" 413, "overloaded" 429 and "internal" 500. Clients should
// branch on the status and "error", never on "message". GET /healthz and
// /readyz answer 503 with "stopped" (the node has stopped), and /readyz
// also with "removed", "no_leader" or "not_caught_up" (it has not applied,
// within a second, the commit index it saw when asked). Only GET /metrics
// (Prometheus text) and answers that net/http writes itself before a
// request reaches the API (a malformed request line, headers over the size
// limit) are not JSON.
//
// Concurrency: API is safe for concurrent use; it holds no state but the
// node, the read-only peer map, its options and its metrics registry.
type API struct {
	node *Node
	kv   *KV
	// httpAddrs maps node IDs to their HTTP host:port, for redirects.
	httpAddrs map[raft.NodeID]string
	// timeout bounds each request's wait for its command or read.
	timeout time.Duration
	opts    APIOptions
	// metrics serves GET /metrics.
	metrics http.Handler
}

// DefaultJoinTimeout is APIOptions.JoinTimeout's default.
const DefaultJoinTimeout = 30 * time.Second

// APIOptions configures an API. The zero value is the defaults.
type APIOptions struct {
	// Token, if not empty, is the bearer token that the membership
	// endpoints require ("Authorization: Bearer <Token>"); requests
	// without it are answered 401. Empty: no token is required.
	Token string
	// JoinTimeout bounds how long POST /members waits for a new node to
	// catch up before it removes the node again and answers 504
	// "join_timeout". Zero means DefaultJoinTimeout.
	JoinTimeout time.Duration
}

// NewAPI returns the HTTP API of node, whose state machine is kv.
// httpAddrs (not modified, may be nil) maps node IDs to HTTP host:port;
// opts may be nil (the defaults). It copies *opts.
func NewAPI(node *Node, kv *KV, httpAddrs map[raft.NodeID]string, opts *APIOptions) *API {
	a := &API{node: node, kv: kv, httpAddrs: httpAddrs, timeout: 5 * time.Second, metrics: newMetricsHandler(node)}
	if opts != nil {
		a.opts = *opts
	}
	if a.opts.JoinTimeout <= 0 {
		a.opts.JoinTimeout = DefaultJoinTimeout
	}
	return a
}

// Handler returns the routes. Every request body is bounded (MaxBodyBytes)
// and every error is JSON, unknown paths and methods included.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /kv/{key...}", a.get)
	mux.HandleFunc("PUT /kv/{key...}", a.put)
	mux.HandleFunc("DELETE /kv/{key...}", a.del)
	mux.HandleFunc("POST /cas/{key...}", a.cas)
	mux.HandleFunc("POST /sessions", a.openSession)
	mux.HandleFunc("DELETE /sessions/{id}", a.closeSession)
	mux.HandleFunc("GET /status", a.status)
	mux.Handle("GET /metrics", a.metrics)
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("GET /members", a.members)
	mux.HandleFunc("POST /members", a.authorized(a.join))
	mux.HandleFunc("DELETE /members/{id}", a.authorized(a.removeMember))
	return withJSONErrors(mux)
}

// errorBody is the one shape of every error answer (see API). The
// application's *Error is written in it too (toErrorBody).
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Key     string `json:"key,omitempty"`
	// Current is the key's value when a "cas" conflicted.
	Current    *string `json:"current,omitempty"`
	Leader     string  `json:"leader,omitempty"`
	LeaderHTTP string  `json:"leader_http,omitempty"`
	// Reason is raft's reason for not forwarding a write to the leader.
	Reason string `json:"reason,omitempty"`
	// IdempotencyKey is the request's Idempotency-Key, on the errors of
	// a write that sent one.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// toErrorBody writes the application's error in the shared shape.
func toErrorBody(e *Error) errorBody {
	return errorBody{Error: e.Code, Message: e.Message, Key: e.Key, Current: e.Current}
}

// kvBody is the JSON body of a successful request.
type kvBody struct {
	Key string `json:"key"`
	Response
	Index uint64 `json:"index"`
}

func (a *API) put(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, MaxBodyBytes)
	if ok {
		a.do(w, r, Command{Op: OpPut, Key: r.PathValue("key"), Value: string(body)})
	}
}

func (a *API) del(w http.ResponseWriter, r *http.Request) {
	a.do(w, r, Command{Op: OpDelete, Key: r.PathValue("key")})
}

// casRequest is the body of POST /cas/{key}.
type casRequest struct {
	Old *string `json:"old"`
	New *string `json:"new"`
}

func (a *API) cas(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, MaxBodyBytes)
	if !ok {
		return
	}
	var req casRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: CodeInvalid, Message: "body must be {\"old\": string or null, \"new\": string}: " + err.Error()})
		return
	}
	if req.New == nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: CodeInvalid, Message: "body lacks \"new\""})
		return
	}
	c := Command{Op: OpCAS, Key: r.PathValue("key"), Value: *req.New}
	if req.Old != nil {
		c.Old, c.OldExists = *req.Old, true
	}
	a.do(w, r, c)
}

// httpAddr returns node id's HTTP address: from the static -peers list,
// else as recorded in the replicated state (nodes that joined later).
func (a *API) httpAddr(id raft.NodeID) string {
	if v := a.httpAddrs[id]; v != "" {
		return v
	}
	return a.kv.MemberHTTP(id)
}

// readBody reads a request body of at most limit bytes, answering 413 if
// it is longer and 400 if it cannot be read (a client that sends it too
// slowly is cut off by the server's read deadline).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Error: "too_large", Message: fmt.Sprintf("body over %d bytes", tooBig.Limit)})
		return nil, false
	case err != nil:
		writeJSON(w, http.StatusBadRequest, errorBody{Error: CodeInvalid, Message: "read body: " + err.Error()})
		return nil, false
	}
	return body, true
}

// do proposes the write c, forwarded to the leader if this node is not
// it (unless the request asks for the redirect), in the session of its
// Idempotency-Key if it has one, and writes the outcome.
func (a *API) do(w http.ResponseWriter, r *http.Request, c Command) {
	opts, seq, bad := writeOptions(r)
	if bad != nil {
		writeJSON(w, http.StatusBadRequest, bad)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	res, err := a.node.Propose(ctx, c, opts...).Wait(ctx)
	if err != nil {
		a.writeWriteError(w, r, err, seq)
		return
	}
	if seq != nil && res.Value.Digest != 0 && res.Value.Digest != c.digest() {
		// A retry returns the result kept for the key, whatever the
		// request: this one was not the request that used the key.
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Error: CodeKeyReused, Key: c.Key, IdempotencyKey: formatKey(*seq),
			Message: fmt.Sprintf("Idempotency-Key %s was already used, by a different request (applied at index %d); this request was not applied: "+
				"send each new request with the session's next sequence number", formatKey(*seq), res.Index)})
		return
	}
	if e := res.Err; e != nil { // the application's own *Error, no assertion
		status := http.StatusBadRequest
		if e.Code == CodeConflict {
			status = http.StatusConflict
		}
		writeJSON(w, status, toErrorBody(e))
		return
	}
	v := res.Value
	if c.Op == OpDelete && !v.Found {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "not_found", Key: c.Key, Message: "no such key"})
		return
	}
	writeJSON(w, http.StatusOK, kvBody{Key: c.Key, Response: v, Index: res.Index})
}

// writeInfraError maps an infrastructure error to a redirect or a status
// (see infraError) and writes it.
func (a *API) writeInfraError(w http.ResponseWriter, r *http.Request, err error) {
	status, body, location := a.infraError(r, err)
	writeMapped(w, r, status, body, location)
}

// writeMapped writes an error mapped by infraError: with its Location, if
// it is a redirect (and Preference-Applied if the request's Prefer header
// asked for one).
func writeMapped(w http.ResponseWriter, r *http.Request, status int, body errorBody, location string) {
	if location != "" {
		w.Header().Set("Location", location)
		if preferRedirect(r) {
			w.Header().Set("Preference-Applied", "redirect")
		}
	}
	writeJSON(w, status, body)
}

// infraError maps an infrastructure error to a status and body, and for a
// redirect to the leader the Location ("" otherwise).
func (a *API) infraError(r *http.Request, err error) (int, errorBody, string) {
	var nl *raft.NotLeaderError
	switch {
	case errors.As(err, &nl):
		reason := ""
		if nl.Reason != "" {
			reason = " (" + nl.Reason + ")"
		}
		if nl.LeaderID == "" {
			return http.StatusServiceUnavailable, errorBody{Error: "no_leader", Reason: nl.Reason,
				Message: "no leader is known" + reason + "; nothing was done; retry shortly"}, ""
		}
		httpAddr := a.httpAddr(nl.LeaderID)
		body := errorBody{Error: "not_leader", Leader: string(nl.LeaderID), LeaderHTTP: httpAddr, Reason: nl.Reason,
			Message: fmt.Sprintf("this node is not the leader%s; the leader is %s", reason, nl.LeaderID)}
		if httpAddr == "" {
			return http.StatusServiceUnavailable, body, ""
		}
		return http.StatusTemporaryRedirect, body, "http://" + httpAddr + r.URL.RequestURI()
	case errors.Is(err, raft.ErrIndeterminate):
		return http.StatusGatewayTimeout, errorBody{Error: "indeterminate", Message: err.Error() + "; the command may or may not have been applied"}, ""
	case errors.Is(err, raft.ErrNotConfirmed):
		return http.StatusServiceUnavailable, errorBody{Error: "not_confirmed", Message: err.Error() + "; nothing was done; retry"}, ""
	case errors.Is(err, raft.ErrConfigChangePending), errors.Is(err, raft.ErrNotCaughtUp):
		return http.StatusServiceUnavailable, errorBody{Error: "busy", Message: err.Error() + "; retry shortly"}, ""
	case errors.Is(err, raft.ErrInvalidConfig):
		return http.StatusBadRequest, errorBody{Error: CodeInvalid, Message: err.Error()}, ""
	case errors.Is(err, raft.ErrTooManyProposals):
		return http.StatusTooManyRequests, errorBody{Error: "overloaded", Message: err.Error()}, ""
	case errors.Is(err, raft.ErrShutdown), errors.Is(err, raft.ErrTransferInProgress),
		errors.Is(err, raft.ErrProposalDropped), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, errorBody{Error: "unavailable", Message: err.Error()}, ""
	default:
		return http.StatusInternalServerError, errorBody{Error: "internal", Message: err.Error()}, ""
	}
}

// writeJSON writes v as the JSON body of a status answer. HTML characters
// are not escaped (messages stay readable); nosniff keeps browsers from
// taking the body for anything but JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
