package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/raft/raftprom"
)

// The observability endpoints of the API (see API):
//
//	GET /metrics   Prometheus text: the node's raft metrics (raftprom, typedraft_*)
//	               and the Go runtime's and the process's (go_*, process_*)
//	GET /healthz   200 while the node runs; 503 "stopped" once it has stopped
//	GET /readyz    200 once the node knows a leader and has applied what it
//	               knew committed; 503 with the reason otherwise
//	GET /status    the node's raft status; on the leader, each peer's progress

// readyWait bounds how long GET /readyz waits for the node to apply the
// commit index it saw before it answers 503 "not_caught_up".
const readyWait = time.Second

// newMetricsHandler returns the handler of GET /metrics for node: a
// registry of its own (so the tour's nodes, in one process, each export
// their own) holding the node's raftprom collector and the Go and process
// collectors.
func newMetricsHandler(node *Node) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		raftprom.NewCollector(node),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// healthBody is the body of a 200 from GET /healthz and /readyz.
type healthBody struct {
	Status  string      `json:"status"`
	State   string      `json:"state"`
	Leader  raft.NodeID `json:"leader,omitempty"`
	Term    uint64      `json:"term"`
	Commit  uint64      `json:"commit"`
	Applied uint64      `json:"applied"`
}

func health(s raft.Status, status string) healthBody {
	return healthBody{Status: status, State: s.State.String(), Leader: s.Leader, Term: s.Term, Commit: s.Commit, Applied: s.Applied}
}

// stopped returns the reason the node stopped, or "" while it runs.
func (a *API) stopped() string {
	select {
	case <-a.node.Done():
		if err := a.node.Err(); err != nil {
			return "the node stopped: " + err.Error()
		}
		return "the node stopped"
	default:
		return ""
	}
}

// healthz answers whether the node runs: it fails only once raft has
// stopped (shut down, failed, or removed with ShutdownOnRemove).
func (a *API) healthz(w http.ResponseWriter, _ *http.Request) {
	if msg := a.stopped(); msg != "" {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "stopped", Message: msg})
		return
	}
	writeJSON(w, http.StatusOK, health(a.node.Status(), "ok"))
}

// readyz answers whether the node can serve: it runs, is a member, knows
// a leader, and has applied every entry it knew committed when asked
// (waiting up to readyWait for that). A node catching up after a restart
// or a join, or cut off from the leader, is not ready.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	notReady := func(code, msg string) {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: code, Message: msg})
	}
	if msg := a.stopped(); msg != "" {
		notReady("stopped", msg)
		return
	}
	s := a.node.Status()
	switch {
	case s.Removed:
		notReady("removed", "the node holds a configuration it is not a member of")
		return
	case s.Leader == "":
		notReady("no_leader", fmt.Sprintf("no leader is known in term %d", s.Term))
		return
	}
	if s.Applied < s.Commit {
		ctx, cancel := context.WithTimeout(r.Context(), readyWait)
		defer cancel()
		commit := s.Commit
		var err error
		if s, err = a.node.WaitFor(ctx, func(s raft.Status) bool { return s.Applied >= commit }); err != nil {
			notReady("not_caught_up", fmt.Sprintf("applied %d of the commit index %d (%v)", s.Applied, commit, err))
			return
		}
	}
	writeJSON(w, http.StatusOK, health(s, "ready"))
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
	// Removed: the node holds a configuration it is not a member of.
	Removed       bool       `json:"removed"`
	Configuration configBody `json:"configuration"`
	// Transferee is the target of a leadership transfer in progress.
	Transferee raft.NodeID `json:"transferee,omitempty"`
	// Peers is, on the leader, each member's replication progress (the
	// leader included); absent on other nodes.
	Peers []peerBody `json:"peers,omitempty"`
}

// configBody is the configuration in force in GET /status.
type configBody struct {
	// Index is the log index of the entry that created it.
	Index   uint64       `json:"index"`
	Joint   bool         `json:"joint"`
	Servers []memberBody `json:"servers"`
	// Old is C(old) during joint consensus.
	Old []memberBody `json:"old,omitempty"`
}

// peerBody is one peer's replication progress, as the leader sees it.
type peerBody struct {
	ID raft.NodeID `json:"id"`
	// Match is the highest index known to be on the peer, Next the next
	// index the leader sends it, Lag how far Match is behind the leader's
	// last index.
	Match uint64 `json:"match"`
	Next  uint64 `json:"next"`
	Lag   uint64 `json:"lag"`
	// LastContactSeconds is how long ago the peer last answered (0 for
	// the leader itself).
	LastContactSeconds float64 `json:"last_contact_seconds"`
	Learner            bool    `json:"learner,omitempty"`
	Probing            bool    `json:"probing,omitempty"`
	SnapshotSending    bool    `json:"snapshot_sending,omitempty"`
}

// memberList describes servers as GET /members does.
func (a *API) memberList(servers []raft.Server) []memberBody {
	out := make([]memberBody, 0, len(servers))
	for _, srv := range servers {
		out = append(out, memberBody{ID: srv.ID, RaftAddr: srv.Addr, HTTPAddr: a.httpAddr(srv.ID), Role: srv.Suffrage.String()})
	}
	return out
}

func (a *API) status(w http.ResponseWriter, _ *http.Request) {
	s := a.node.Status()
	body := statusBody{
		ID: s.ID, State: s.State.String(), Term: s.Term, Leader: s.Leader,
		LeaderHTTP: a.httpAddr(s.Leader), Commit: s.Commit, Applied: s.Applied,
		LastIndex: s.LastIndex, Keys: a.kv.Len(), Removed: s.Removed, Transferee: s.Transferee,
		Configuration: configBody{Index: s.ConfigIndex, Joint: s.Joint(), Servers: a.memberList(s.Configuration.Servers)},
	}
	if s.Joint() {
		body.Configuration.Old = a.memberList(s.Configuration.Old)
	}
	for _, p := range s.Peers {
		body.Peers = append(body.Peers, peerBody{ID: p.ID, Match: p.Match, Next: p.Next, Lag: p.Lag,
			LastContactSeconds: p.LastContact.Seconds(), Learner: p.Learner, Probing: p.Probing, SnapshotSending: p.SnapshotSending})
	}
	writeJSON(w, http.StatusOK, body)
}
