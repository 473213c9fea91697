package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

func TestReadConsistency(t *testing.T) {
	for query, want := range map[string]string{
		"":                                 ConsistencyLinearizable,
		"consistency=":                     ConsistencyLinearizable,
		"consistency=linearizable":         ConsistencyLinearizable,
		"consistency=lease":                ConsistencyLease,
		"consistency=stale":                ConsistencyStale,
		"stale=true":                       ConsistencyStale,
		"stale=1":                          ConsistencyStale,
		"stale=false":                      ConsistencyLinearizable,
		"stale=false&consistency=lease":    ConsistencyLease,
		"stale=true&consistency=stale":     ConsistencyStale,
		"consistency=lease&other=ignored":  ConsistencyLease,
		"consistency=stale&stale=false":    ConsistencyStale,
		"consistency=linearizable&stale=0": ConsistencyLinearizable,
	} {
		q, err := url.ParseQuery(query)
		if err != nil {
			t.Fatal(err)
		}
		if got, e := readConsistency(q); e != nil || got != want {
			t.Errorf("%q: %q %v, want %q", query, got, e, want)
		}
	}
	for _, query := range []string{
		"consistency=log", "consistency=Linearizable", "consistency=strong",
		"stale=maybe", "stale=true&consistency=linearizable", "stale=true&consistency=lease",
	} {
		q, _ := url.ParseQuery(query)
		if got, e := readConsistency(q); e == nil || e.Code != CodeInvalid || e.Message == "" {
			t.Errorf("%q: %q %v, want an invalid error", query, got, e)
		}
	}
}

// Every failure of a read maps to a retryable status (503, 504, 429)
// except a panic in the read (500).
func TestReadErrors(t *testing.T) {
	a := &API{kv: NewKV(), httpAddrs: map[raft.NodeID]string{"n2": "127.0.0.1:8002"}, timeout: time.Second}
	for _, c := range []struct {
		err    error
		status int
		code   string
		leader string
	}{
		{&raft.NotLeaderError{}, 503, "no_leader", ""},
		{fmt.Errorf("wrapped: %w", &raft.NotLeaderError{}), 503, "no_leader", ""},
		{&raft.NotLeaderError{LeaderID: "n2", LeaderAddr: "127.0.0.1:7002"}, 503, "not_confirmed", "n2"},
		{fmt.Errorf("%w: n2 did not answer within an election timeout", raft.ErrNotConfirmed), 503, "not_confirmed", ""},
		{context.DeadlineExceeded, 504, "timeout", ""},
		{raft.ErrTooManyReads, 429, "overloaded", ""},
		{raft.ErrShutdown, 503, "unavailable", ""},
		{context.Canceled, 503, "unavailable", ""},
		{fmt.Errorf("%w: boom", raft.ErrReadPanic), 500, "internal", ""},
		{errors.New("something else"), 500, "internal", ""},
	} {
		status, body := a.readError(c.err)
		if status != c.status || body.Error != c.code || body.Leader != c.leader || body.Message == "" {
			t.Errorf("%v: %d %+v, want %d %s leader %q", c.err, status, body, c.status, c.code, c.leader)
		}
		if c.leader != "" && body.LeaderHTTP != "127.0.0.1:8002" {
			t.Errorf("%v: leader_http %q", c.err, body.LeaderHTTP)
		}
	}
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReads reads on the leader and on both followers with every
// consistency; the follower answers itself (no redirect, no log entry).
func TestReads(t *testing.T) {
	tc, leader := startTestCluster(t)
	nodes := []*kvNode{leader}
	for _, p := range tc.peers {
		if p.ID != leader.id {
			nodes = append(nodes, tc.nodes[p.ID])
		}
	}
	lbase := "http://" + leader.httpAddr

	t.Run("each consistency on each node", func(t *testing.T) {
		put := call(t, "PUT", lbase+"/kv/k", "v1")
		expect(t, "put", put, 200, nil)
		rev := put.body["revision"].(float64)
		for _, n := range nodes {
			base := "http://" + n.httpAddr + "/kv/"
			for _, c := range []struct{ query, consistency string }{
				{"", ConsistencyLinearizable},
				{"?consistency=linearizable", ConsistencyLinearizable},
				{"?consistency=lease", ConsistencyLease},
				{"?stale=false", ConsistencyLinearizable},
				{"?consistency=stale", ConsistencyStale},
				{"?stale=true", ConsistencyStale},
			} {
				what := fmt.Sprintf("%s GET k%s", n.id, c.query)
				fields := map[string]any{"key": "k", "value": "v1", "found": true, "revision": rev, "consistency": c.consistency}
				if c.consistency == ConsistencyStale && n != leader {
					// A stale read on a follower may lag; it catches up.
					eventually(t, what, func() bool { return call(t, "GET", base+"k"+c.query, "").body["value"] == "v1" })
				}
				got := call(t, "GET", base+"k"+c.query, "")
				expect(t, what, got, 200, fields)
				if idx, _ := got.body["index"].(float64); idx < rev {
					t.Fatalf("%s: read at applied index %v, before the write at %v", what, got.body["index"], rev)
				}
				expect(t, what+" (absent)", call(t, "GET", base+"absent"+c.query, ""), 404,
					map[string]any{"error": "not_found", "key": "absent"})
			}
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for _, n := range nodes {
			base := "http://" + n.httpAddr + "/kv/"
			for _, path := range []string{"k?consistency=log", "k?consistency=bogus", "k?stale=yes", "k?stale=true&consistency=linearizable", "", "?consistency=stale"} {
				expect(t, fmt.Sprintf("%s GET /kv/%s", n.id, path), call(t, "GET", base+path, ""), 400, map[string]any{"error": CodeInvalid})
			}
		}
	})

	// The point of ReadIndex on a follower: a read sent after a write was
	// acknowledged sees it, at once, on every node.
	t.Run("follower read after an acknowledged put", func(t *testing.T) {
		for i := range 20 {
			val := fmt.Sprintf("value-%d", i)
			expect(t, "put", call(t, "PUT", lbase+"/kv/fresh", val), 200, nil)
			for _, n := range nodes[1:] {
				for _, q := range []string{"", "?consistency=lease"} {
					expect(t, fmt.Sprintf("%s GET fresh%s after put %d", n.id, q, i), call(t, "GET", "http://"+n.httpAddr+"/kv/fresh"+q, ""), 200,
						map[string]any{"value": val})
				}
			}
		}
	})

	// Reads write nothing: the leader's log does not grow. Neither does a
	// conflicting CAS, rejected by Validate (after a read-index
	// confirmation) with the same typed error Apply would return.
	t.Run("reads and rejected cas stay out of the log", func(t *testing.T) {
		before := leader.raft.Status().LastIndex
		for _, n := range nodes {
			for _, q := range []string{"", "?consistency=lease", "?consistency=stale"} {
				expect(t, "read", call(t, "GET", "http://"+n.httpAddr+"/kv/k"+q, ""), 200, nil)
			}
		}
		expect(t, "cas conflict", call(t, "POST", lbase+"/cas/k", `{"old":"other","new":"v2"}`), 409,
			map[string]any{"error": CodeConflict, "key": "k", "current": "v1"})
		if after := leader.raft.Status().LastIndex; after != before {
			t.Fatalf("reads and a rejected cas grew the log from %d to %d", before, after)
		}
	})

	// A follower that missed writes (stopped while they were made, then
	// restarted from its directory) answers a linearizable read only once
	// it has caught up to the leader's read index: every answer that is
	// not "retry" (503) has the latest acknowledged value.
	t.Run("restarted follower", func(t *testing.T) {
		f := nodes[1]
		if err := tc.stop(f.id); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var fs []*raft.Future[Response, *Error]
		for i := range 300 {
			fs = append(fs, leader.raft.Propose(ctx, Command{Op: OpPut, Key: fmt.Sprintf("missed%03d", i), Value: "x"}))
		}
		for _, fut := range fs {
			if res, err := fut.Wait(ctx); err != nil || res.Rejected() {
				t.Fatalf("put while %s is down: %v %v", f.id, err, res.Err)
			}
		}
		expect(t, "put", call(t, "PUT", lbase+"/kv/fresh", "while-down"), 200, nil)
		back, err := tc.restart(ctx, f.id)
		if err != nil {
			t.Fatal(err)
		}
		nodes[1] = back
		for _, q := range []string{"", "?consistency=lease"} {
			var got httpResult
			eventually(t, "restarted follower answers", func() bool {
				got = call(t, "GET", "http://"+back.httpAddr+"/kv/fresh"+q, "")
				return got.status != http.StatusServiceUnavailable
			})
			expect(t, "restarted follower GET fresh"+q, got, 200, map[string]any{"value": "while-down"})
		}
	})

	t.Run("timeout is 504", func(t *testing.T) {
		api := NewAPI(nodes[1].raft, nodes[1].kv, nil, nil)
		api.timeout = 0 // over before the read starts
		srv := httptest.NewServer(api.Handler())
		defer srv.Close()
		expect(t, "read out of time", call(t, "GET", srv.URL+"/kv/k", ""), 504, map[string]any{"error": "timeout"})
	})

	// Without a quorum a linearizable read cannot be confirmed: 503, to
	// retry; a stale read is still served.
	t.Run("no quorum is 503", func(t *testing.T) {
		survivor := nodes[2]
		for _, n := range nodes[:2] {
			if err := tc.stop(n.id); err != nil {
				t.Fatal(err)
			}
		}
		base := "http://" + survivor.httpAddr + "/kv/k"
		for _, q := range []string{"", "?consistency=lease"} {
			got := call(t, "GET", base+q, "")
			if got.status != http.StatusServiceUnavailable || (got.body["error"] != "no_leader" && got.body["error"] != "not_confirmed") {
				t.Fatalf("GET k%s without a quorum: %d %v, want 503 no_leader or not_confirmed", q, got.status, got.body)
			}
		}
		expect(t, "stale without a quorum", call(t, "GET", base+"?consistency=stale", ""), 200, map[string]any{"value": "v1"})
	})
}
