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
//	GET    /kv/{key}              read through the log (linearizable); 404 if absent
//	GET    /kv/{key}?stale=true   read this node's copy, on any node (may be stale)
//	PUT    /kv/{key}              body is the new value
//	DELETE /kv/{key}              404 if absent
//	POST   /cas/{key}             body {"old": "v" | null, "new": "w"}; 409 on conflict
//	GET    /status                this node's raft status
//	GET    /members               the membership, with roles and HTTP addresses
//	POST   /members               body {"id", "raft_addr", "http_addr"}: add a node
//	                              (as a learner, then a voter once caught up)
//	DELETE /members/{id}          remove a node
//
// Requests that need the leader and reach a follower are answered with
// 307 Temporary Redirect to the leader's HTTP address (clients re-send the
// same method and body; curl needs -L), or with 503 and a JSON body naming
// the leader if its HTTP address is unknown. Every error body is JSON with
// an "error" code: the application's own errors ("conflict" 409,
// "invalid" 400, "not_found" 404) and infrastructure ones ("not_leader",
// "no_leader" and "unavailable" 503, "indeterminate" 504 — the write may
// or may not have happened —, "overloaded" 429, "too_large" 413).
//
// Concurrency: API is safe for concurrent use; it holds no state but the
// node and the read-only peer map.
type API struct {
	node *Node
	kv   *KV
	// httpAddrs maps node IDs to their HTTP host:port, for redirects.
	httpAddrs map[raft.NodeID]string
	// timeout bounds each request's wait for its command.
	timeout time.Duration
}

// NewAPI returns the HTTP API of node, whose state machine is kv.
// httpAddrs (not modified, may be nil) maps node IDs to HTTP host:port.
func NewAPI(node *Node, kv *KV, httpAddrs map[raft.NodeID]string) *API {
	return &API{node: node, kv: kv, httpAddrs: httpAddrs, timeout: 5 * time.Second}
}

// Handler returns the routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /kv/{key...}", a.get)
	mux.HandleFunc("PUT /kv/{key...}", a.put)
	mux.HandleFunc("DELETE /kv/{key...}", a.del)
	mux.HandleFunc("POST /cas/{key...}", a.cas)
	mux.HandleFunc("GET /status", a.status)
	mux.HandleFunc("GET /members", a.members)
	mux.HandleFunc("POST /members", a.join)
	mux.HandleFunc("DELETE /members/{id}", a.removeMember)
	return mux
}

// errorBody is the JSON body of infrastructure errors.
type errorBody struct {
	Error      string `json:"error"`
	Message    string `json:"message"`
	Key        string `json:"key,omitempty"`
	Leader     string `json:"leader,omitempty"`
	LeaderHTTP string `json:"leader_http,omitempty"`
}

// kvBody is the JSON body of a successful request.
type kvBody struct {
	Key string `json:"key"`
	Response
	Index uint64 `json:"index"`
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if r.URL.Query().Get("stale") == "true" {
		res, ok := a.kv.Local(key)
		if !ok {
			writeJSON(w, http.StatusNotFound, errorBody{Error: "not_found", Key: key, Message: "no such key (stale read)"})
			return
		}
		writeJSON(w, http.StatusOK, kvBody{Key: key, Response: res})
		return
	}
	a.do(w, r, Command{Op: OpGet, Key: key})
}

func (a *API) put(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
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
	body, ok := readBody(w, r)
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

// statusBody is the JSON body of GET /status.
type statusBody struct {
	ID         raft.NodeID `json:"id"`
	State      string      `json:"state"`
	Term       uint64      `json:"term"`
	Leader     raft.NodeID `json:"leader"`
	LeaderHTTP string      `json:"leader_http,omitempty"`
	Commit     uint64      `json:"commit"`
	Applied    uint64      `json:"applied"`
	LastIndex  uint64      `json:"last_index"`
	Keys       int         `json:"keys"`
}

func (a *API) status(w http.ResponseWriter, _ *http.Request) {
	s := a.node.Status()
	writeJSON(w, http.StatusOK, statusBody{
		ID: s.ID, State: s.State.String(), Term: s.Term, Leader: s.Leader,
		LeaderHTTP: a.httpAddr(s.Leader), Commit: s.Commit, Applied: s.Applied,
		LastIndex: s.LastIndex, Keys: a.kv.Len(),
	})
}

// httpAddr returns node id's HTTP address: from the static -peers list,
// else as recorded in the replicated state (nodes that joined later).
func (a *API) httpAddr(id raft.NodeID) string {
	if v := a.httpAddrs[id]; v != "" {
		return v
	}
	return a.kv.MemberHTTP(id)
}

// readBody reads a request body of at most MaxValueLen bytes, answering
// 413 if it is longer.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxValueLen+1024))
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

// do proposes c and writes the outcome.
func (a *API) do(w http.ResponseWriter, r *http.Request, c Command) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	res, err := a.node.Propose(ctx, c).Wait(ctx)
	if err != nil {
		a.writeInfraError(w, r, err)
		return
	}
	if e := res.Err; e != nil { // the application's own *Error, no assertion
		status := http.StatusBadRequest
		if e.Code == CodeConflict {
			status = http.StatusConflict
		}
		writeJSON(w, status, e)
		return
	}
	v := res.Value
	if (c.Op == OpGet || c.Op == OpDelete) && !v.Found {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "not_found", Key: c.Key, Message: "no such key"})
		return
	}
	writeJSON(w, http.StatusOK, kvBody{Key: c.Key, Response: v, Index: res.Index})
}

// writeInfraError maps an infrastructure error to a redirect or a status.
func (a *API) writeInfraError(w http.ResponseWriter, r *http.Request, err error) {
	var nl *raft.NotLeaderError
	switch {
	case errors.As(err, &nl):
		if nl.LeaderID == "" {
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "no_leader", Message: "no leader is known; retry shortly"})
			return
		}
		httpAddr := a.httpAddr(nl.LeaderID)
		body := errorBody{Error: "not_leader", Leader: string(nl.LeaderID), LeaderHTTP: httpAddr,
			Message: fmt.Sprintf("this node is not the leader; the leader is %s", nl.LeaderID)}
		if httpAddr == "" {
			writeJSON(w, http.StatusServiceUnavailable, body)
			return
		}
		w.Header().Set("Location", "http://"+httpAddr+r.URL.RequestURI())
		writeJSON(w, http.StatusTemporaryRedirect, body)
	case errors.Is(err, raft.ErrIndeterminate):
		writeJSON(w, http.StatusGatewayTimeout, errorBody{Error: "indeterminate", Message: err.Error() + "; the command may or may not have been applied"})
	case errors.Is(err, raft.ErrConfigChangePending), errors.Is(err, raft.ErrNotCaughtUp):
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "busy", Message: err.Error() + "; retry shortly"})
	case errors.Is(err, raft.ErrInvalidConfig):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: CodeInvalid, Message: err.Error()})
	case errors.Is(err, raft.ErrTooManyProposals):
		writeJSON(w, http.StatusTooManyRequests, errorBody{Error: "overloaded", Message: err.Error()})
	case errors.Is(err, raft.ErrShutdown), errors.Is(err, raft.ErrTransferInProgress),
		errors.Is(err, raft.ErrProposalDropped), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "unavailable", Message: err.Error()})
	default:
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal", Message: err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
