package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Every error the API answers has the one JSON shape documented on API
// (errorBody): an "error" code and a "message", whatever the status. The
// router's own 404 and 405 were plain text.
func TestErrorBodiesAreJSON(t *testing.T) {
	tc, leader := startTestCluster(t)
	srv := httptest.NewServer(NewAPI(leader.raft, leader.kv, nil, &APIOptions{Token: "s3cret"}).Handler())
	defer srv.Close()
	f := tc.followerOf(leader.id)
	fsrv := httptest.NewServer(NewAPI(f.raft, f.kv, nil, nil).Handler()) // no leader address: 503
	defer fsrv.Close()
	expect(t, "put", call(t, "PUT", srv.URL+"/kv/a", "one"), 200, nil)

	for _, c := range []struct {
		name, method, url, body string
		status                  int
		code                    string
		header                  string // a header the answer must have
	}{
		{"unknown path", "GET", srv.URL + "/nope", "", 404, "not_found", ""},
		{"root", "GET", srv.URL + "/", "", 404, "not_found", ""},
		{"absent key", "GET", srv.URL + "/kv/absent", "", 404, "not_found", ""},
		{"wrong method on kv", "PATCH", srv.URL + "/kv/a", "", 405, "method_not_allowed", "Allow"},
		{"wrong method on cas", "GET", srv.URL + "/cas/a", "", 405, "method_not_allowed", "Allow"},
		{"wrong method on status", "PUT", srv.URL + "/status", "x", 405, "method_not_allowed", "Allow"},
		{"bad cas body", "POST", srv.URL + "/cas/a", `{"old":`, 400, CodeInvalid, ""},
		{"empty key", "PUT", srv.URL + "/kv/", "v", 400, CodeInvalid, ""},
		{"empty key read", "GET", srv.URL + "/kv/", "", 400, CodeInvalid, ""},
		{"unknown consistency", "GET", srv.URL + "/kv/a?consistency=strong", "", 400, CodeInvalid, ""},
		{"join without token", "POST", srv.URL + "/members", `{"id":"n9","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`, 401, "unauthorized", "WWW-Authenticate"},
		{"remove without token", "DELETE", srv.URL + "/members/n9", "", 401, "unauthorized", "WWW-Authenticate"},
		{"cas conflict", "POST", srv.URL + "/cas/a", `{"old":"zero","new":"two"}`, 409, CodeConflict, ""},
		{"follower without the leader's address", "PUT", fsrv.URL + "/kv/a?redirect=true", "v", 503, "not_leader", ""},
		{"bad redirect preference", "PUT", fsrv.URL + "/kv/a?redirect=maybe", "v", 400, CodeInvalid, ""},
		{"bad session id", "DELETE", srv.URL + "/sessions/x", "", 400, CodeInvalid, ""},
	} {
		got := callHeader(t, c.method, c.url, c.body, nil)
		expect(t, c.name, got.httpResult, c.status, map[string]any{"error": c.code})
		if msg, _ := got.body["message"].(string); msg == "" {
			t.Errorf("%s: no message in %v", c.name, got.body)
		}
		if c.header != "" && got.header.Get(c.header) == "" {
			t.Errorf("%s: no %s header", c.name, c.header)
		}
		t.Logf("%s: %d %v", c.name, got.status, got.body)
	}
}

// callResult is an httpResult with the response headers.
type callResult struct {
	httpResult
	header http.Header
}

// callHeader is call with request headers, returning response headers.
func callHeader(t *testing.T, method, url, body string, header map[string]string) callResult {
	t.Helper()
	var rh http.Header
	res := callWith(t, method, url, body, func(r *http.Request) {
		for k, v := range header {
			r.Header.Set(k, v)
		}
	}, func(resp *http.Response) { rh = resp.Header })
	return callResult{res, rh}
}

func TestErrorCodeOfStatus(t *testing.T) {
	for status, want := range map[int]string{404: "not_found", 405: "method_not_allowed", 413: "request_entity_too_large", 599: "error"} {
		if got := errorCode(status); got != want {
			t.Errorf("errorCode(%d) = %q, want %q", status, got, want)
		}
	}
	if !strings.Contains(errorCode(500), "internal") {
		t.Errorf("errorCode(500) = %q", errorCode(500))
	}
}
