package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
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

// membershipTimeout bounds a join: the new node must catch up first.
const membershipTimeout = 2 * time.Minute

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
// GET /status reporting the log applied), and promotes it to voter. It is
// idempotent: a node that is already a voter is answered at once.
func (a *API) join(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req joinRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: CodeInvalid, Message: "body must be {\"id\", \"raft_addr\", \"http_addr\"}: " + err.Error()})
		return
	}
	if err := req.validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: CodeInvalid, Message: err.Error()})
		return
	}
	if a.notLeader(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), membershipTimeout)
	defer cancel()
	srv, member := a.node.Status().Configuration.Server(req.ID)
	if member && srv.Addr != req.RaftAddr {
		writeJSON(w, http.StatusConflict, errorBody{Error: CodeConflict, Key: string(req.ID),
			Message: fmt.Sprintf("%s is already a member at %s", req.ID, srv.Addr)})
		return
	}
	addrs := make(map[raft.NodeID]string, len(a.httpAddrs)+1)
	maps.Copy(addrs, a.httpAddrs) // a.httpAddrs may be nil
	addrs[req.ID] = req.HTTPAddr
	if err := a.record(ctx, addrs); err != nil {
		a.writeInfraError(w, r, err)
		return
	}
	if !member {
		if err := a.node.AddLearner(ctx, req.ID, req.RaftAddr, true); err != nil {
			a.writeInfraError(w, r, err)
			return
		}
	}
	if !member || srv.Suffrage == raft.Learner {
		// Promote only a learner that demonstrably serves the log it
		// receives: AddLearner's wait already proves that the raft node
		// answers; asking the joining node's own HTTP status under its ID
		// also proves that the HTTP address clients will be redirected to
		// belongs to it (not to another node or a dead process).
		if err := waitApplied(ctx, req, a.node.Status().Commit); err != nil {
			a.writeInfraError(w, r, err)
			return
		}
		if err := a.node.PromoteLearner(ctx, req.ID); err != nil {
			a.writeInfraError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, a.membersSnapshot())
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

func (req joinRequest) validate() error {
	if req.ID == "" {
		return errors.New("join: empty id")
	}
	for name, addr := range map[string]string{"raft_addr": req.RaftAddr, "http_addr": req.HTTPAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("join: bad %s %q: %w", name, addr, err)
		}
	}
	return nil
}

// removeMember removes a node and forgets its HTTP address.
func (a *API) removeMember(w http.ResponseWriter, r *http.Request) {
	id := raft.NodeID(r.PathValue("id"))
	if a.notLeader(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), membershipTimeout)
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
// URL; followers redirect to the leader) to add self, retrying while the
// cluster is busy or has no leader, until ctx ends.
func joinCluster(ctx context.Context, joinAddr string, self joinRequest) error {
	url := strings.TrimSuffix(joinAddr, "/")
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	url += "/members"
	body, err := json.Marshal(self)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: membershipTimeout + 10*time.Second}
	delay := 100 * time.Millisecond
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("join %s: %w", url, err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		var msg string
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			msg = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
			switch {
			case resp.StatusCode == http.StatusOK:
				return nil
			case resp.StatusCode < 500:
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
