package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/typedraft/typedraft/raft"
)

// Consistency names accepted by GET /kv/{key}?consistency=.
const (
	ConsistencyLinearizable = "linearizable"
	ConsistencyLease        = "lease"
	ConsistencyStale        = "stale"
)

// consistencies maps each accepted ?consistency= value to its read mode.
var consistencies = map[string]raft.ReadMode{
	ConsistencyLinearizable: raft.ReadLinearizable,
	ConsistencyLease:        raft.ReadLease,
	ConsistencyStale:        raft.ReadStale,
}

// readConsistency returns the consistency a GET asks for: ?consistency=
// (linearizable, lease or stale; default linearizable), or ?stale=true, an
// alias of consistency=stale kept from earlier versions (?stale=false
// means the default). It reports a request that names an unknown value,
// or a stale= that contradicts consistency=, as an *Error (400).
func readConsistency(q url.Values) (string, *Error) {
	name := q.Get("consistency")
	if _, ok := consistencies[name]; name != "" && !ok {
		return "", &Error{Code: CodeInvalid, Message: fmt.Sprintf("unknown consistency %q: use linearizable (the default), lease or stale", name)}
	}
	if s := q.Get("stale"); s != "" {
		stale, err := strconv.ParseBool(s)
		if err != nil {
			return "", &Error{Code: CodeInvalid, Message: fmt.Sprintf("stale=%q: use stale=true (or consistency=stale)", s)}
		}
		switch {
		case stale && name != "" && name != ConsistencyStale:
			return "", &Error{Code: CodeInvalid, Message: fmt.Sprintf("stale=true contradicts consistency=%s", name)}
		case stale:
			name = ConsistencyStale
		}
	}
	if name == "" {
		name = ConsistencyLinearizable
	}
	return name, nil
}

// getBody is the JSON body of a successful GET /kv/{key}.
type getBody struct {
	kvBody
	// Consistency is the consistency the read was served with.
	Consistency string `json:"consistency"`
}

// get serves GET /kv/{key} on any node, leader, follower or learner: it
// runs KV.Get inside raft.Query with the requested mode, on the node's
// apply goroutine. A linearizable or lease read on a follower asks the
// leader for its commit index and is served here once this node has
// applied it; nothing enters the log. "index" in the answer is the log
// index this node had applied when the read ran.
func (a *API) get(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	consistency, e := readConsistency(r.URL.Query())
	if e == nil {
		e = checkKey(key)
	}
	if e != nil {
		e.Key = truncated(key)
		writeJSON(w, http.StatusBadRequest, toErrorBody(e))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	type read struct {
		res     Response
		found   bool
		applied uint64
	}
	got, err := raft.Query(ctx, a.node, consistencies[consistency], func() read {
		res, found := a.kv.Get(key)
		return read{res, found, a.node.Status().Applied}
	})
	if err != nil {
		status, body := a.readError(err)
		writeJSON(w, status, body)
		return
	}
	if !got.found {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "not_found", Key: key, Message: fmt.Sprintf("no such key (%s read)", consistency)})
		return
	}
	writeJSON(w, http.StatusOK, getBody{kvBody{Key: key, Response: got.res, Index: got.applied}, consistency})
}

// readError maps the error of a read to a status and body. A read changes
// nothing, so every failure is safe to retry: no leader known (503
// "no_leader"), leadership not confirmed (503 "not_confirmed", naming the
// leader if one is known), the request's time up (504 "timeout"), too many
// reads waiting (429 "overloaded"), the node stopping or the client gone
// (503 "unavailable"); a read that panicked is 500 "internal". It needs
// only a.kv and a.httpAddrs (for the leader's address), not a.node.
func (a *API) readError(err error) (int, errorBody) {
	var nl *raft.NotLeaderError
	switch {
	case errors.As(err, &nl) && nl.LeaderID == "":
		return http.StatusServiceUnavailable, errorBody{Error: "no_leader", Message: "no leader is known to confirm the read; retry shortly"}
	case errors.As(err, &nl): // a leader became known while the read failed
		return http.StatusServiceUnavailable, errorBody{Error: "not_confirmed", Leader: string(nl.LeaderID), LeaderHTTP: a.httpAddr(nl.LeaderID),
			Message: fmt.Sprintf("the read could not be confirmed (%v); retry", err)}
	case errors.Is(err, raft.ErrNotConfirmed):
		return http.StatusServiceUnavailable, errorBody{Error: "not_confirmed", Message: err.Error() + "; retry"}
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, errorBody{Error: "timeout", Message: fmt.Sprintf("the read was not served within %v: %v; retry", a.timeout, err)}
	case errors.Is(err, raft.ErrTooManyReads):
		return http.StatusTooManyRequests, errorBody{Error: "overloaded", Message: err.Error()}
	case errors.Is(err, raft.ErrShutdown), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, errorBody{Error: "unavailable", Message: err.Error()}
	default: // raft.ErrReadPanic among them
		return http.StatusInternalServerError, errorBody{Error: "internal", Message: err.Error()}
	}
}
