package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// joinRequest is the body of POST /members.
type joinRequest struct {
	ID       raft.NodeID `json:"id"`
	RaftAddr string      `json:"raft_addr"`
	HTTPAddr string      `json:"http_addr"`
}

// memberBody describes one member in GET /members.
type memberBody struct {
	ID       raft.NodeID `json:"id"`
	RaftAddr string      `json:"raft_addr"`
	HTTPAddr string      `json:"http_addr,omitempty"`
	Role     string      `json:"role"`
}

// membersBody is the body of GET /members and of a successful join.
type membersBody struct {
	Leader  raft.NodeID  `json:"leader"`
	Joint   bool         `json:"joint"`
	Members []memberBody `json:"members"`
}

// changeTimeout bounds one membership change that waits for no new node:
// a promotion, a removal (a rollback included), recording HTTP addresses.
const changeTimeout = 10 * time.Second

func (a *API) membersSnapshot() membersBody {
	s := a.node.Status()
	out := membersBody{Leader: s.Leader, Joint: s.Joint()}
	for _, srv := range s.Configuration.Servers {
		out.Members = append(out.Members, memberBody{ID: srv.ID, RaftAddr: srv.Addr, HTTPAddr: a.httpAddr(srv.ID), Role: srv.Suffrage.String()})
	}
	return out
}

func (a *API) members(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.membersSnapshot())
}

// notLeader answers a membership request that reached a follower.
func (a *API) notLeader(w http.ResponseWriter, r *http.Request) bool {
	s := a.node.Status()
	if s.State == raft.Leader {
		return false
	}
	a.writeInfraError(w, r, &raft.NotLeaderError{LeaderID: s.Leader, LeaderAddr: s.LeaderAddr})
	return true
}

// record proposes OpMember commands (on the leader) and waits for them.
func (a *API) record(ctx context.Context, addrs map[raft.NodeID]string) error {
	for _, id := range slices.Sorted(maps.Keys(addrs)) {
		if a.kv.MemberHTTP(id) == addrs[id] {
			continue
		}
		_, appErr, err := a.node.Apply(ctx, Command{Op: OpMember, Key: string(id), Value: addrs[id]})
		if err != nil {
			return err
		}
		if appErr != nil {
			return fmt.Errorf("%w: %v", raft.ErrInvalidConfig, appErr)
		}
	}
	return nil
}

// join adds a node: it records the HTTP addresses (so that every node,
// the new one included, can redirect to any leader), adds the node as a
// learner, waits until it has caught up (raft's check, and the node's own
// GET /status reporting the log applied), and promotes it to voter. The
// wait is bounded by APIOptions.JoinTimeout; a join that fails after
// adding the learner (it did not catch up in time, the client went away,
// the promotion failed) removes it again and says so. It is idempotent: a
// node that is already a voter is answered at once.
func (a *API) join(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, maxJoinBody)
	if !ok {
		return
	}
	var req joinRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: CodeInvalid, Message: "body must be {\"id\", \"raft_addr\", \"http_addr\"}: " + err.Error()})
		return
	}
	if err := req.validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: CodeInvalid, Key: truncated(string(req.ID)), Message: err.Error()})
		return
	}
	if a.notLeader(w, r) {
		return
	}
	extendWrite(w, a.opts.JoinTimeout+3*changeTimeout)
	srv, member := a.node.Status().Configuration.Server(req.ID)
	if member && srv.Addr != req.RaftAddr {
		writeJSON(w, http.StatusConflict, errorBody{Error: CodeConflict, Key: string(req.ID),
			Message: fmt.Sprintf("%s is already a member at %s", req.ID, srv.Addr)})
		return
	}
	addrs := make(map[raft.NodeID]string, len(a.httpAddrs)+1)
	maps.Copy(addrs, a.httpAddrs) // a.httpAddrs may be nil
	addrs[req.ID] = req.HTTPAddr
	recordCtx, cancel := context.WithTimeout(r.Context(), changeTimeout)
	err := a.record(recordCtx, addrs)
	cancel()
	if err != nil {
		a.writeInfraError(w, r, err)
		return
	}
	if member && srv.Suffrage == raft.Voter {
		writeJSON(w, http.StatusOK, a.membersSnapshot())
		return
	}
	// Promote only a learner that demonstrably serves the log it receives:
	// AddLearner's wait proves that the raft node answers; asking the
	// joining node's own HTTP status under its ID also proves that the
	// HTTP address clients will be redirected to belongs to it (not to
	// another node or a dead process).
	catchCtx, cancel := context.WithTimeout(r.Context(), a.opts.JoinTimeout)
	defer cancel()
	if !member {
		if err := a.node.AddLearner(catchCtx, req.ID, req.RaftAddr, true); err != nil {
			_, added := a.node.Status().Configuration.Server(req.ID) // the change went in, the wait failed
			a.joinFailed(w, r, req, added, waitEnded(catchCtx, err), err)
			return
		}
	}
	if err := waitApplied(catchCtx, req, a.node.Status().Commit); err != nil {
		a.joinFailed(w, r, req, !member, waitEnded(catchCtx, err), err)
		return
	}
	promoteCtx, cancel2 := context.WithTimeout(r.Context(), changeTimeout)
	defer cancel2()
	if err := a.node.PromoteLearner(promoteCtx, req.ID); err != nil {
		a.joinFailed(w, r, req, !member, false, err)
		return
	}
	writeJSON(w, http.StatusOK, a.membersSnapshot())
}

// waitEnded reports whether err is ctx's own end: the catch-up wait ran
// out of time (or the client left).
func waitEnded(ctx context.Context, err error) bool {
	return ctx.Err() != nil && errors.Is(err, ctx.Err())
}

// joinFailed answers a join that failed with err, removing the learner
// first if this join added it (added). A catch-up wait that ended
// (timedOut) is answered 504 "join_timeout"; other errors as
// writeInfraError maps them. The message says whether the learner was
// removed.
func (a *API) joinFailed(w http.ResponseWriter, r *http.Request, req joinRequest, added, timedOut bool, err error) {
	status, body, location := a.infraError(r, err)
	if timedOut {
		status, location = http.StatusGatewayTimeout, ""
		body = errorBody{Error: "join_timeout", Key: string(req.ID),
			Message: fmt.Sprintf("%s did not catch up within %v%s: %v", req.ID, a.opts.JoinTimeout, a.progressOf(req.ID), err)}
		if r.Context().Err() != nil {
			body.Message = fmt.Sprintf("the request ended before %s caught up: %v", req.ID, err)
		}
	}
	if added {
		if rbErr := a.rollback(req.ID); rbErr != nil {
			body.Message += fmt.Sprintf("; removing the learner %s failed (%v): remove it with DELETE /members/%s", req.ID, rbErr, req.ID)
		} else {
			body.Message += fmt.Sprintf("; the learner %s was removed again", req.ID)
		}
	}
	if location != "" {
		w.Header().Set("Location", location)
	}
	writeJSON(w, status, body)
}

// progressOf describes how far id's log has come, for a join_timeout
// message ("" if the leader cannot tell).
func (a *API) progressOf(id raft.NodeID) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	prs, err := a.node.Progress(ctx)
	match, ok := prs[id]
	switch {
	case err != nil || !ok:
		return ""
	case match == 0:
		return " (it acknowledged no entry: is its raft_addr right and reachable from the leader?)"
	default:
		return fmt.Sprintf(" (its log reached index %d, the leader's commit index is %d)", match, a.node.Status().Commit)
	}
}

// rollback removes the learner id that a failed join added, and forgets
// its HTTP address. It uses a context of its own (the request's may have
// ended: the learner must not stay behind because the client left) and
// retries while an earlier change is still in flight.
func (a *API) rollback(id raft.NodeID) error {
	ctx, cancel := context.WithTimeout(context.Background(), changeTimeout)
	defer cancel()
	for {
		err := a.node.RemoveServer(ctx, id)
		if err == nil || errors.Is(err, raft.ErrInvalidConfig) { // removed, or no longer a member
			return a.record(ctx, map[raft.NodeID]string{id: ""})
		}
		if !errors.Is(err, raft.ErrConfigChangePending) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// extendWrite moves the connection's write deadline (the server's
// WriteTimeout) to d from now, for handlers that wait longer than it.
// Writers that cannot (test recorders) are left as they are.
func extendWrite(w http.ResponseWriter, d time.Duration) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}

// authorized wraps h so that, when a token is configured, requests
// without "Authorization: Bearer <token>" are answered 401.
func (a *API) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.opts.Token != "" && !bearerMatches(r.Header.Get("Authorization"), a.opts.Token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kv"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: "unauthorized", Message: errUnauthorized.Error()})
			return
		}
		h(w, r)
	}
}

// bearerMatches reports whether an Authorization header carries token,
// comparing in constant time.
func bearerMatches(header, token string) bool {
	scheme, got, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) == 1
}

// waitApplied polls the joining node's GET /status until it reports, under
// its own ID, that it has applied index. It returns an error matching
// ctx.Err() with the node's last answer if ctx ends first.
func waitApplied(ctx context.Context, req joinRequest, index uint64) error {
	client := &http.Client{Timeout: 2 * time.Second}
	url := "http://" + req.HTTPAddr + "/status"
	last := "no answer"
	for {
		st, err := getStatus(ctx, client, url)
		switch {
		case err != nil:
			last = err.Error()
		case st.ID != req.ID:
			last = fmt.Sprintf("%s answers as node %q", req.HTTPAddr, st.ID)
		case st.Applied >= index:
			return nil
		default:
			last = fmt.Sprintf("applied %d", st.Applied)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s (%s) has not applied index %d: %s", ctx.Err(), req.ID, url, index, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// getStatus reads a node's GET /status.
func getStatus(ctx context.Context, client *http.Client, url string) (statusBody, error) {
	var st statusBody
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return st, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("GET %s: %w", url, err)
	}
	return st, nil
}

// validate checks a join request before anything is proposed.
func (req joinRequest) validate() error {
	if err := validateNodeID(req.ID); err != nil {
		return fmt.Errorf("join: id: %w", err)
	}
	if err := validateAddr(req.RaftAddr); err != nil {
		return fmt.Errorf("join: raft_addr: %w", err)
	}
	if err := validateAddr(req.HTTPAddr); err != nil {
		return fmt.Errorf("join: http_addr: %w", err)
	}
	return nil
}

// removeMember removes a node and forgets its HTTP address.
func (a *API) removeMember(w http.ResponseWriter, r *http.Request) {
	id := raft.NodeID(r.PathValue("id"))
	if err := validateNodeID(id); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: CodeInvalid, Key: truncated(string(id)), Message: "remove: " + err.Error()})
		return
	}
	if a.notLeader(w, r) {
		return
	}
	extendWrite(w, 2*changeTimeout)
	ctx, cancel := context.WithTimeout(r.Context(), changeTimeout)
	defer cancel()
	if err := a.node.RemoveServer(ctx, id); err != nil {
		a.writeInfraError(w, r, err)
		return
	}
	if a.node.Status().State == raft.Leader { // a removed leader steps down
		if err := a.record(ctx, map[raft.NodeID]string{id: ""}); err != nil {
			a.writeInfraError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, a.membersSnapshot())
}

// joinCluster asks the cluster at joinAddr (any member's HTTP host:port or
// URL; followers redirect to the leader) to add self, sending token (if
// not empty) as the bearer token, to the leader too. It retries while the
// cluster has no leader or is busy (503) or cannot be reached, until ctx
// ends; any other answer but 200 is final (a 504 "join_timeout" means the
// leader gave up on this node and removed it again).
func joinCluster(ctx context.Context, joinAddr string, self joinRequest, token string) error {
	url := strings.TrimSuffix(joinAddr, "/")
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	url += "/members"
	body, err := json.Marshal(self)
	if err != nil {
		return err
	}
	setAuth := func(req *http.Request) {
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
	}
	client := &http.Client{
		// net/http drops Authorization on a redirect to another host; the
		// leader of the same cluster is meant to have it.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			setAuth(req)
			return nil
		},
	}
	delay := 100 * time.Millisecond
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("join %s: %w", url, err)
		}
		req.Header.Set("Content-Type", "application/json")
		setAuth(req)
		resp, err := client.Do(req)
		var msg string
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			msg = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
			switch resp.StatusCode {
			case http.StatusOK:
				return nil
			case http.StatusServiceUnavailable:
			default:
				return fmt.Errorf("join %s: %s", url, msg)
			}
		} else {
			msg = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("join %s: %w (last answer: %s)", url, ctx.Err(), msg)
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}
