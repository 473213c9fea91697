package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/tcp"
)

// startJoiner starts an empty node that waits to be added to tc's
// cluster, stopped when the test ends.
func startJoiner(t *testing.T, tc *tourCluster, id raft.NodeID) *kvNode {
	t.Helper()
	tr, err := tcp.Listen("127.0.0.1:0", &tcp.Options{LocalID: id, ClusterID: clusterID})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tr.Close()
		t.Fatal(err)
	}
	n, err := startNode(context.Background(), nodeSpec{ID: id, Dir: filepath.Join(tc.dir, string(id)), Join: true,
		Transport: tr, HTTP: ln, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.stop(ctx)
	})
	return n
}

// postJoin sends POST /members for req to base with the bearer token (if
// any), giving up after timeout.
func postJoin(t *testing.T, base string, req joinRequest, token string, timeout time.Duration) (int, errorBody, time.Duration) {
	t.Helper()
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	hreq, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/members", strings.NewReader(string(body)))
	if token != "" {
		hreq.Header.Set("Authorization", "Bearer "+token)
	}
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatalf("join %s: no answer after %v: %v", truncated(string(req.ID)), time.Since(t0).Round(time.Millisecond), err)
	}
	defer resp.Body.Close()
	var eb errorBody
	if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
		t.Fatalf("join %s: %d, body not JSON: %v", truncated(string(req.ID)), resp.StatusCode, err)
	}
	return resp.StatusCode, eb, time.Since(t0)
}

// waitNotMember polls until id is neither in leader's configuration nor
// has an HTTP address recorded.
func waitNotMember(t *testing.T, leader *kvNode, id raft.NodeID) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, member := leader.raft.Status().Configuration.Server(id)
		if !member && leader.kv.MemberHTTP(id) == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s left behind: configuration %v, http %q", id, leader.raft.Status().Configuration, leader.kv.MemberHTTP(id))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A join whose node does not catch up within the join timeout answers 504
// "join_timeout" in time (it once waited two minutes) and removes the
// learner it added (which once stayed behind): a node that nothing serves,
// and a node whose raft is fine but whose HTTP address answers as another
// node. A client that gives up early leaves no learner behind either.
func TestJoinTimesOutAndRollsBack(t *testing.T) {
	tc, leader := startTestCluster(t)
	const joinTimeout = 700 * time.Millisecond
	srv := httptest.NewServer(NewAPI(leader.raft, leader.kv, nil, &APIOptions{JoinTimeout: joinTimeout}).Handler())
	defer srv.Close()
	free := freeAddrs(t, 2)
	joiner := startJoiner(t, tc, "n10")
	other := tc.followerOf(leader.id)
	for _, req := range []joinRequest{
		{ID: "n9", RaftAddr: free[0], HTTPAddr: free[1]},                  // nothing listens
		{ID: "n10", RaftAddr: joiner.tr.Addr(), HTTPAddr: other.httpAddr}, // answers as another node
	} {
		status, eb, took := postJoin(t, srv.URL, req, "", joinTimeout+5*time.Second)
		if status != http.StatusGatewayTimeout || eb.Error != "join_timeout" || eb.Key != string(req.ID) {
			t.Fatalf("join %s: %d %+v, want 504 join_timeout", req.ID, status, eb)
		}
		if took > joinTimeout+3*time.Second {
			t.Fatalf("join %s answered after %v, join timeout %v", req.ID, took, joinTimeout)
		}
		if !strings.Contains(eb.Message, "did not catch up within 700ms") || !strings.Contains(eb.Message, "removed again") {
			t.Fatalf("join %s: message %q does not say why and what happened", req.ID, eb.Message)
		}
		waitNotMember(t, leader, req.ID)
		t.Logf("join %s: %d in %v: %s", req.ID, status, took.Round(time.Millisecond), eb.Message)
	}

	// The client leaves long before the join timeout: the learner goes too.
	slow := httptest.NewServer(NewAPI(leader.raft, leader.kv, nil, &APIOptions{JoinTimeout: time.Minute}).Handler())
	defer slow.Close()
	body, _ := json.Marshal(joinRequest{ID: "n11", RaftAddr: free[0], HTTPAddr: free[1]})
	ctx, cancel := context.WithCancel(context.Background())
	hreq, _ := http.NewRequestWithContext(ctx, http.MethodPost, slow.URL+"/members", strings.NewReader(string(body)))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(hreq); err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for { // wait until the learner is added, then hang up
		if _, ok := leader.raft.Status().Configuration.Server("n11"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("n11 never added")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	waitNotMember(t, leader, "n11")
}

// IDs and addresses are checked against the transport's limits before any
// change is proposed: a 300-byte ID (which the TCP transport refuses in
// every handshake and message, so every later snapshot send to it failed)
// and addresses that are not a dialable host:port are answered 400.
func TestJoinValidatesIDsAndAddresses(t *testing.T) {
	_, leader := startTestCluster(t)
	srv := httptest.NewServer(NewAPI(leader.raft, leader.kv, nil, nil).Handler())
	defer srv.Close()
	free := freeAddrs(t, 2)
	before := leader.raft.Status().Configuration
	long := raft.NodeID(strings.Repeat("n", 300))
	for _, c := range []struct {
		req  joinRequest
		want string // in the message
	}{
		{joinRequest{ID: long, RaftAddr: free[0], HTTPAddr: free[1]}, "300 bytes, limit 255"},
		{joinRequest{ID: raft.NodeID(strings.Repeat("n", tcp.MaxIDLen+1)), RaftAddr: free[0], HTTPAddr: free[1]}, "limit 255"},
		{joinRequest{ID: "n 9", RaftAddr: free[0], HTTPAddr: free[1]}, "node ID"},
		{joinRequest{ID: "n9/x", RaftAddr: free[0], HTTPAddr: free[1]}, "node ID"},
		{joinRequest{ID: "n9\x00", RaftAddr: free[0], HTTPAddr: free[1]}, "node ID"},
		{joinRequest{ID: "n9", RaftAddr: "127.0.0.1:0", HTTPAddr: free[1]}, "raft_addr"},
		{joinRequest{ID: "n9", RaftAddr: "127.0.0.1:99999", HTTPAddr: free[1]}, "port"},
		{joinRequest{ID: "n9", RaftAddr: "127.0.0.1:http", HTTPAddr: free[1]}, "port"},
		{joinRequest{ID: "n9", RaftAddr: ":7000", HTTPAddr: free[1]}, "no host"},
		{joinRequest{ID: "n9", RaftAddr: "0.0.0.0:7000", HTTPAddr: free[1]}, "cannot be dialed"},
		{joinRequest{ID: "n9", RaftAddr: "[::]:7000", HTTPAddr: free[1]}, "cannot be dialed"},
		{joinRequest{ID: "n9", RaftAddr: "bad host:7000", HTTPAddr: free[1]}, "neither an IP address nor a DNS name"},
		{joinRequest{ID: "n9", RaftAddr: strings.Repeat("h", 300) + ":7000", HTTPAddr: free[1]}, "limit"},
		{joinRequest{ID: "n9", RaftAddr: free[0], HTTPAddr: "nohost"}, "http_addr"},
		{joinRequest{ID: "n9", RaftAddr: free[0], HTTPAddr: "-bad-.example:80"}, "http_addr"},
	} {
		status, eb, _ := postJoin(t, srv.URL, c.req, "", 5*time.Second)
		if status != http.StatusBadRequest || eb.Error != CodeInvalid || !strings.Contains(eb.Message, c.want) {
			t.Errorf("join %+v: %d %+v, want 400 invalid naming %q", c.req, status, eb, c.want)
		}
	}
	expect(t, "remove a too long ID", call(t, "DELETE", srv.URL+"/members/"+string(long), ""), 400, map[string]any{"error": CodeInvalid})
	after := leader.raft.Status().Configuration
	if len(after.Servers) != len(before.Servers) || leader.kv.MemberHTTP(long) != "" || leader.kv.MemberHTTP("n9") != "" {
		t.Fatalf("configuration changed from %v to %v (or addresses recorded)", before, after)
	}
}

// With a token configured, membership changes need "Authorization: Bearer
// <token>" (401 JSON otherwise); reads and key-value requests do not. The
// join flow sends the token, also after a redirect to another host (which
// net/http would strip it from).
func TestMembershipNeedsToken(t *testing.T) {
	tc, leader := startTestCluster(t)
	const token = "s3cret"
	opts := &APIOptions{Token: token}
	// The leader's API on 127.0.0.2, a follower's on 127.0.0.1 redirecting
	// to it: another host as far as net/http is concerned.
	lln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	lsrv := &httptest.Server{Listener: lln, Config: &http.Server{Handler: NewAPI(leader.raft, leader.kv, nil, opts).Handler()}}
	lsrv.Start()
	defer lsrv.Close()
	f := tc.followerOf(leader.id)
	fsrv := httptest.NewServer(NewAPI(f.raft, f.kv, map[raft.NodeID]string{leader.id: lln.Addr().String()}, opts).Handler())
	defer fsrv.Close()
	base := lsrv.URL
	join := `{"id":"n9","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`
	for _, h := range []string{"", "Bearer", "Bearer wrong", "Basic " + token, "bearer" + token, "Bearer " + token + "x"} {
		for _, r := range []struct{ method, path, body string }{{"POST", "/members", join}, {"DELETE", "/members/n9", ""}} {
			got := callHeader(t, r.method, base+r.path, r.body, map[string]string{"Authorization": h})
			expect(t, r.method+" with Authorization "+h, got.httpResult, 401, map[string]any{"error": "unauthorized"})
		}
	}
	auth := map[string]string{"Authorization": "Bearer " + token}
	expect(t, "remove with token", callHeader(t, "DELETE", base+"/members/n9", "", auth).httpResult, 400, map[string]any{"error": CodeInvalid})
	expect(t, "join with token, bad body", callHeader(t, "POST", base+"/members", `{"id":`, auth).httpResult, 400, map[string]any{"error": CodeInvalid})
	expect(t, "members without token", call(t, "GET", base+"/members", ""), 200, nil)
	expect(t, "put without token", call(t, "PUT", base+"/kv/x", "y"), 200, nil)

	joiner := startJoiner(t, tc, "n4")
	req := joinRequest{ID: "n4", RaftAddr: joiner.tr.Addr(), HTTPAddr: joiner.httpAddr}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := joinCluster(ctx, fsrv.URL, req, "wrong"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("join with a wrong token: %v, want a 401", err)
	}
	if took := time.Since(t0); took > 5*time.Second {
		t.Fatalf("a 401 was retried for %v", took)
	}
	if err := joinCluster(ctx, fsrv.URL, req, token); err != nil {
		t.Fatalf("join through the follower with the token: %v", err)
	}
	if role, ok := leader.raft.Status().Role("n4"); !ok || role != raft.Voter {
		t.Fatalf("n4 after join: role %v, member %v", role, ok)
	}
}
