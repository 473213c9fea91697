package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
)

// startTestCluster starts the tour's three nodes in t.TempDir() and waits
// for a leader.
func startTestCluster(t *testing.T) (*tourCluster, *kvNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tc := &tourCluster{dir: t.TempDir(), logger: hclog.NewNullLogger(), nodes: map[raft.NodeID]*kvNode{}}
	t.Cleanup(tc.stopAll)
	if err := tc.startAll(ctx); err != nil {
		t.Fatal(err)
	}
	leader, _, err := tc.waitLeader(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	// Wait until every follower knows the leader (for redirects).
	for _, p := range tc.peers {
		if err := knowsLeader(ctx, tc.nodes[p.ID], leader.id); err != nil {
			t.Fatal(err)
		}
	}
	return tc, leader
}

type httpResult struct {
	status   int
	location string
	body     map[string]any
}

// call sends one request without following redirects and decodes the
// JSON body.
func call(t *testing.T, method, url, body string) httpResult {
	t.Helper()
	return callWith(t, method, url, body, nil, nil)
}

// callWith is call with a hook to prepare the request (may be nil) and one
// to inspect the response before its body is read (may be nil).
func callWith(t *testing.T, method, url, body string, prepare func(*http.Request), inspect func(*http.Response)) httpResult {
	t.Helper()
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(req)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if inspect != nil {
		inspect(resp)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: content type %q", method, url, ct)
	}
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object: %v", method, url, raw, err)
	}
	return httpResult{status: resp.StatusCode, location: resp.Header.Get("Location"), body: m}
}

func expect(t *testing.T, what string, got httpResult, status int, fields map[string]any) {
	t.Helper()
	if got.status != status {
		t.Fatalf("%s: status %d, want %d (body %v)", what, got.status, status, got.body)
	}
	for k, v := range fields {
		if got.body[k] != v {
			t.Fatalf("%s: body[%q] = %v, want %v (body %v)", what, k, got.body[k], v, got.body)
		}
	}
}

func TestHTTPAPI(t *testing.T) {
	tc, leader := startTestCluster(t)
	base := "http://" + leader.httpAddr

	expect(t, "get absent", call(t, "GET", base+"/kv/a", ""), 404, map[string]any{"error": "not_found", "key": "a"})
	expect(t, "put", call(t, "PUT", base+"/kv/a", "one"), 200, map[string]any{"key": "a", "value": "one", "found": false})
	expect(t, "get", call(t, "GET", base+"/kv/a", ""), 200, map[string]any{"value": "one", "found": true})
	expect(t, "put nested key", call(t, "PUT", base+"/kv/dir/sub", "x"), 200, map[string]any{"key": "dir/sub"})

	// CAS: success, conflict (the application's own error as 409 JSON),
	// create-if-absent with "old": null.
	expect(t, "cas", call(t, "POST", base+"/cas/a", `{"old":"one","new":"two"}`), 200, map[string]any{"value": "two"})
	expect(t, "cas conflict", call(t, "POST", base+"/cas/a", `{"old":"one","new":"three"}`), 409,
		map[string]any{"error": CodeConflict, "key": "a", "current": "two"})
	expect(t, "cas create", call(t, "POST", base+"/cas/b", `{"old":null,"new":"bee"}`), 200, map[string]any{"value": "bee", "found": false})
	expect(t, "cas create conflict", call(t, "POST", base+"/cas/b", `{"new":"again"}`), 409, map[string]any{"error": CodeConflict, "current": "bee"})
	expect(t, "cas bad json", call(t, "POST", base+"/cas/a", `{"old":`), 400, map[string]any{"error": CodeInvalid})
	expect(t, "cas no new", call(t, "POST", base+"/cas/a", `{"old":"two"}`), 400, map[string]any{"error": CodeInvalid})

	// Invalid commands are the application's errors too (400).
	expect(t, "empty key", call(t, "PUT", base+"/kv/", "v"), 400, map[string]any{"error": CodeInvalid})
	expect(t, "long key", call(t, "PUT", base+"/kv/"+strings.Repeat("k", MaxKeyLen+1), "v"), 400, map[string]any{"error": CodeInvalid})
	expect(t, "value over the limit", call(t, "PUT", base+"/kv/big", strings.Repeat("v", MaxValueLen+1)), 400, map[string]any{"error": CodeInvalid})
	expect(t, "body far over the limit", call(t, "PUT", base+"/kv/big", strings.Repeat("v", 2*MaxValueLen)), 413, map[string]any{"error": "too_large"})

	expect(t, "delete", call(t, "DELETE", base+"/kv/a", ""), 200, map[string]any{"value": "two", "found": true})
	expect(t, "delete absent", call(t, "DELETE", base+"/kv/a", ""), 404, map[string]any{"error": "not_found"})
	expect(t, "get deleted", call(t, "GET", base+"/kv/a", ""), 404, map[string]any{"error": "not_found"})

	// Membership requests: bad bodies are 400 before anything happens.
	expect(t, "join bad json", call(t, "POST", base+"/members", `{"id":`), 400, map[string]any{"error": CodeInvalid})
	expect(t, "join no id", call(t, "POST", base+"/members", `{"raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`), 400, map[string]any{"error": CodeInvalid})
	expect(t, "join bad addr", call(t, "POST", base+"/members", `{"id":"n9","raft_addr":"nohost","http_addr":"127.0.0.1:2"}`), 400, map[string]any{"error": CodeInvalid})
	expect(t, "join existing id elsewhere", call(t, "POST", base+"/members", `{"id":"`+string(leader.id)+`","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`), 409, map[string]any{"error": CodeConflict})
	expect(t, "remove unknown", call(t, "DELETE", base+"/members/n9", ""), 400, map[string]any{"error": CodeInvalid})
	mem := call(t, "GET", base+"/members", "")
	expect(t, "members", mem, 200, map[string]any{"leader": string(leader.id), "joint": false})
	if ms, _ := mem.body["members"].([]any); len(ms) != 3 {
		t.Fatalf("members: %v", mem.body)
	}

	st := call(t, "GET", base+"/status", "")
	expect(t, "status", st, 200, map[string]any{"id": string(leader.id), "state": "leader", "leader": string(leader.id), "leader_http": leader.httpAddr})

	// A follower forwards writes to the leader (see sessions_test.go); on
	// request (?redirect=true) it redirects them to the leader's HTTP
	// address instead, path and query included, and it always redirects
	// the membership changes, which are not proposals.
	f := tc.followerOf(leader.id)
	fbase := "http://" + f.httpAddr
	for _, r := range []struct{ method, path, body string }{
		{"PUT", "/kv/c?x=1&redirect=true", "see"},
		{"DELETE", "/kv/b?redirect=1", ""},
		{"POST", "/cas/b?redirect", `{"old":"bee","new":"b2"}`},
		{"POST", "/members", `{"id":"n9","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`},
		{"DELETE", "/members/n9", ""},
	} {
		got := call(t, r.method, fbase+r.path, r.body)
		expect(t, "follower "+r.method, got, 307, map[string]any{"error": "not_leader", "leader": string(leader.id), "leader_http": leader.httpAddr})
		if want := base + r.path; got.location != want {
			t.Fatalf("follower %s: Location %q, want %q", r.method, got.location, want)
		}
	}
	// A client that follows redirects (re-sending the body) succeeds.
	resp, err := http.Post(fbase+"/cas/b?redirect=true", "application/json", strings.NewReader(`{"old":"bee","new":"b2"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("cas through a follower with redirects followed: status %d", resp.StatusCode)
	}
	// Stale reads are answered by the follower itself, once it has applied.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := call(t, "GET", fbase+"/kv/b?stale=true", "")
		if got.status == 200 && got.body["value"] == "b2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("follower never served the stale read: %d %v", got.status, got.body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	expect(t, "stale absent", call(t, "GET", fbase+"/kv/none?stale=true", ""), 404, map[string]any{"error": "not_found"})
	expect(t, "follower status", call(t, "GET", fbase+"/status", ""), 200, map[string]any{"state": "follower", "leader": string(leader.id)})
}

// Without the leader's HTTP address a follower asked for the redirect
// answers 503 naming the leader instead; it still forwards other writes.
func TestHTTPFollowerWithoutLeaderAddress(t *testing.T) {
	tc, leader := startTestCluster(t)
	f := tc.followerOf(leader.id)
	srv := httptest.NewServer(NewAPI(f.raft, f.kv, nil, nil).Handler())
	defer srv.Close()
	got := call(t, "PUT", srv.URL+"/kv/x?redirect=true", "y")
	expect(t, "follower without addresses", got, 503, map[string]any{"error": "not_leader", "leader": string(leader.id)})
	if got.location != "" {
		t.Fatalf("redirected to %q without an address", got.location)
	}
	expect(t, "forwarded without addresses", call(t, "PUT", srv.URL+"/kv/x", "y"), 200, map[string]any{"key": "x", "value": "y"})
}
