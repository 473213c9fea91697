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
// learner, waits until it has caught up, and promotes it to voter. It is
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
	addrs := maps.Clone(a.httpAddrs)
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
		if err := a.node.PromoteLearner(ctx, req.ID); err != nil {
			a.writeInfraError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, a.membersSnapshot())
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
// cluster is busy or has no leader, until ctx ends. Before that it reads the
// membership from joinAddr and hands every member's raft address to learn
// (see addrBook).
func joinCluster(ctx context.Context, joinAddr string, self joinRequest, learn func(raft.NodeID, string)) error {
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
	learned := false
	for {
		if !learned {
			learned = learnMembers(ctx, client, url, learn)
		}
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

// learnMembers reads GET /members at url and passes each member's raft
// address to learn. It reports whether it succeeded.
func learnMembers(ctx context.Context, client *http.Client, url string, learn func(raft.NodeID, string)) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var mb membersBody
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&mb) != nil || len(mb.Members) == 0 {
		return false
	}
	for _, m := range mb.Members {
		learn(m.ID, m.RaftAddr)
	}
	return true
}
