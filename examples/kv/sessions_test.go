package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/tcp"
)

// callKey is call with an Idempotency-Key (none if key is "").
func callKey(t *testing.T, method, url, body, key string) callResult {
	t.Helper()
	h := map[string]string{}
	if key != "" {
		h[IdempotencyKeyHeader] = key
	}
	return callHeader(t, method, url, body, h)
}

// metric returns node n's raft metric name (unlabelled).
func metric(t *testing.T, n *kvNode, name string) float64 {
	t.Helper()
	for _, m := range n.raft.Metrics() {
		if m.Name == name && m.Label == "" {
			return m.Value
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// openSessionAt opens a session through the HTTP API at base and returns
// its number.
func openSessionAt(t *testing.T, base string) uint64 {
	t.Helper()
	got := callHeader(t, "POST", base+"/sessions", "", nil)
	expect(t, "POST /sessions", got.httpResult, 201, nil)
	id, ok := got.body["session"].(float64)
	if !ok || id < 1 || got.body["first_key"] != fmt.Sprintf("%d:1", uint64(id)) {
		t.Fatalf("POST /sessions: %v", got.body)
	}
	if loc := got.header.Get("Location"); loc != fmt.Sprintf("/sessions/%d", uint64(id)) {
		t.Fatalf("POST /sessions: Location %q", loc)
	}
	return uint64(id)
}

// A write to a follower is forwarded through raft and answered with the
// leader's typed result, in the JSON the leader gives; the redirect is
// there for clients that ask for it.
func TestWriteOnFollowerIsForwarded(t *testing.T) {
	tc, leader := startTestCluster(t)
	base := "http://" + leader.httpAddr
	f := tc.followerOf(leader.id)
	fbase := "http://" + f.httpAddr
	fwd0 := metric(t, f, "proposals_forwarded_total")

	put := call(t, "PUT", fbase+"/kv/fw", "one")
	expect(t, "put on a follower", put, 200, map[string]any{"key": "fw", "value": "one", "found": false})
	rev := put.body["revision"]
	if rev == nil || rev != put.body["index"] {
		t.Fatalf("put on a follower: revision %v, index %v", rev, put.body["index"])
	}
	// The leader applied it at that revision.
	expect(t, "get on the leader", call(t, "GET", base+"/kv/fw", ""), 200, map[string]any{"value": "one", "revision": rev})
	// The same JSON fields as a write on the leader.
	lput := call(t, "PUT", base+"/kv/fw2", "x")
	expect(t, "put on the leader", lput, 200, nil)
	for k := range lput.body {
		if _, ok := put.body[k]; !ok {
			t.Fatalf("forwarded answer lacks %q: %v (leader's: %v)", k, put.body, lput.body)
		}
	}
	if len(put.body) != len(lput.body) {
		t.Fatalf("forwarded answer %v, leader's %v", put.body, lput.body)
	}
	expect(t, "cas on a follower", call(t, "POST", fbase+"/cas/fw", `{"old":"one","new":"two"}`), 200, map[string]any{"value": "two", "found": true})
	// The leader's Validate rejects it; the typed *Error comes back.
	expect(t, "cas conflict on a follower", call(t, "POST", fbase+"/cas/fw", `{"old":"one","new":"three"}`), 409,
		map[string]any{"error": CodeConflict, "key": "fw", "current": "two"})
	expect(t, "delete on a follower", call(t, "DELETE", fbase+"/kv/fw", ""), 200, map[string]any{"value": "two", "found": true})
	expect(t, "delete absent on a follower", call(t, "DELETE", fbase+"/kv/fw", ""), 404, map[string]any{"error": "not_found"})
	expect(t, "get deleted on the leader", call(t, "GET", base+"/kv/fw", ""), 404, nil)
	if n := metric(t, f, "proposals_forwarded_total") - fwd0; n < 5 {
		t.Fatalf("the follower forwarded %v proposals, want 5", n)
	}

	// The redirect on request: ?redirect=true or "Prefer: redirect".
	got := callHeader(t, "PUT", fbase+"/kv/r", "v", map[string]string{"Prefer": "respond-async, redirect"})
	expect(t, "Prefer: redirect", got.httpResult, 307, map[string]any{"error": "not_leader", "leader": string(leader.id), "leader_http": leader.httpAddr})
	if got.location != base+"/kv/r" || got.header.Get("Preference-Applied") != "redirect" {
		t.Fatalf("Prefer: redirect: Location %q, Preference-Applied %q", got.location, got.header.Get("Preference-Applied"))
	}
	got = callHeader(t, "POST", fbase+"/sessions?redirect=true", "", nil)
	expect(t, "POST /sessions?redirect=true", got.httpResult, 307, map[string]any{"error": "not_leader"})
	if got.location != base+"/sessions?redirect=true" {
		t.Fatalf("POST /sessions?redirect=true: Location %q", got.location)
	}
	expect(t, "redirect=false forwards", call(t, "PUT", fbase+"/kv/r?redirect=false", "v"), 200, map[string]any{"value": "v"})
	expect(t, "the leader ignores redirect", call(t, "PUT", base+"/kv/r?redirect=true", "w"), 200, map[string]any{"value": "w"})
	expect(t, "bad redirect", call(t, "PUT", fbase+"/kv/r?redirect=please", "v"), 400, map[string]any{"error": CodeInvalid})
}

// A node that knows no leader (here: one that was never added to a
// cluster) answers writes and POST /sessions 503 "no_leader", redirect
// asked for or not.
func TestWriteWithoutLeader(t *testing.T) {
	tr, err := tcp.Listen("127.0.0.1:0", &tcp.Options{LocalID: "n9", ClusterID: clusterID})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tr.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := startNode(ctx, nodeSpec{ID: "n9", Dir: filepath.Join(t.TempDir(), "n9"), Join: true, Transport: tr, HTTP: ln, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	base := "http://" + n.httpAddr
	for _, path := range []string{"/kv/a", "/kv/a?redirect=true"} {
		got := callKey(t, "PUT", base+path, "v", "")
		expect(t, "PUT "+path, got.httpResult, 503, map[string]any{"error": "no_leader"})
	}
	expect(t, "PUT with a key", callKey(t, "PUT", base+"/kv/a", "v", "5:1").httpResult, 503, map[string]any{"error": "no_leader", "idempotency_key": "5:1"})
	expect(t, "POST /sessions", call(t, "POST", base+"/sessions", ""), 503, map[string]any{"error": "no_leader"})
}

// An Idempotency-Key makes a write apply once however often, and through
// whichever node, it is retried; old, reused and unknown keys are refused
// with their JSON errors, malformed ones with 400.
func TestIdempotencyKey(t *testing.T) {
	tc, leader := startTestCluster(t)
	base := "http://" + leader.httpAddr
	f1 := tc.followerOf(leader.id)
	f2 := tc.runningOtherThan(leader.id, f1.id)
	b1, b2 := "http://"+f1.httpAddr, "http://"+f2.httpAddr
	sid := openSessionAt(t, b1) // opened through a follower
	key := func(n int) string { return fmt.Sprintf("%d:%d", sid, n) }

	dups0 := metric(t, leader, "session_duplicates_total")
	first := callKey(t, "PUT", b1+"/kv/once", "v1", key(1))
	expect(t, "first put", first.httpResult, 200, map[string]any{"value": "v1", "found": false})
	rev := first.body["revision"]
	// Retries, through the same follower, the other one and the leader:
	// the original answer, byte for byte the same JSON.
	for _, b := range []string{b1, b2, base} {
		again := callKey(t, "PUT", b+"/kv/once", "v1", key(1))
		if again.status != 200 || !reflect.DeepEqual(again.body, first.body) {
			t.Fatalf("retry via %s: %d %v, want the original %v", b, again.status, again.body, first.body)
		}
	}
	// Applied once: the key's revision is the first write's, and the
	// leader answered three duplicates.
	expect(t, "get after retries", call(t, "GET", base+"/kv/once", ""), 200, map[string]any{"value": "v1", "revision": rev})
	if n := metric(t, leader, "session_duplicates_total") - dups0; n != 3 {
		t.Fatalf("the leader answered %v duplicates, want 3", n)
	}

	second := callKey(t, "PUT", b2+"/kv/once", "v2", key(2))
	expect(t, "second put", second.httpResult, 200, map[string]any{"value": "v2", "found": true})
	if second.body["revision"].(float64) <= rev.(float64) {
		t.Fatalf("second put: revision %v after %v", second.body["revision"], rev)
	}
	old := callKey(t, "PUT", base+"/kv/once", "v1", key(1))
	t.Logf("older seq: %v", old.body)
	expect(t, "older seq", old.httpResult, 422, map[string]any{"error": CodeSessionSeqOld, "idempotency_key": key(1)})
	expect(t, "not applied", call(t, "GET", base+"/kv/once", ""), 200, map[string]any{"value": "v2", "revision": second.body["revision"]})
	reused := callKey(t, "PUT", b1+"/kv/other", "zzz", key(2))
	t.Logf("reused key: %v", reused.body)
	expect(t, "reused key", reused.httpResult, 422, map[string]any{"error": CodeKeyReused, "idempotency_key": key(2)})
	expect(t, "reused key not applied", call(t, "GET", base+"/kv/other", ""), 404, nil)

	// A CAS retried without a key would conflict with itself; with its
	// key the retry gets the original success.
	cas := callKey(t, "POST", b1+"/cas/once", `{"old":"v2","new":"v3"}`, key(3))
	expect(t, "cas", cas.httpResult, 200, map[string]any{"value": "v3"})
	if again := callKey(t, "POST", b2+"/cas/once", `{"old": "v2", "new": "v3"}`, key(3)); again.status != 200 || !reflect.DeepEqual(again.body, cas.body) {
		t.Fatalf("cas retry: %d %v, want %v", again.status, again.body, cas.body)
	}
	// A conflict in a session is decided by Apply, and kept too.
	conflict := callKey(t, "POST", b1+"/cas/once", `{"old":"v2","new":"v4"}`, `"`+key(4)+`"`) // quoted: a structured-field string
	expect(t, "cas conflict in a session", conflict.httpResult, 409, map[string]any{"error": CodeConflict, "current": "v3"})
	if again := callKey(t, "POST", base+"/cas/once", `{"old":"v2","new":"v4"}`, key(4)); again.status != 409 || !reflect.DeepEqual(again.body, conflict.body) {
		t.Fatalf("cas conflict retry: %d %v, want %v", again.status, again.body, conflict.body)
	}
	del := callKey(t, "DELETE", b2+"/kv/once", "", key(5))
	expect(t, "delete", del.httpResult, 200, map[string]any{"value": "v3", "found": true})
	if again := callKey(t, "DELETE", b1+"/kv/once", "", key(5)); again.status != 200 || !reflect.DeepEqual(again.body, del.body) {
		t.Fatalf("delete retry: %d %v, want %v (not a 404)", again.status, again.body, del.body)
	}

	unknown := callKey(t, "PUT", b1+"/kv/x", "v", "999999999:1")
	t.Logf("unknown session: %v", unknown.body)
	expect(t, "unknown session", unknown.httpResult, 422, map[string]any{"error": CodeSessionExpired, "idempotency_key": "999999999:1"})
	if msg := unknown.body["message"].(string); !strings.Contains(msg, "POST /sessions") {
		t.Fatalf("unknown session: message %q does not say to open a session", msg)
	}
	closed := call(t, "DELETE", fmt.Sprintf("%s/sessions/%d", b2, sid), "")
	expect(t, "close", closed, 200, map[string]any{"session": float64(sid), "closed": true})
	expect(t, "closed session", callKey(t, "PUT", b1+"/kv/x", "v", key(6)).httpResult, 422, map[string]any{"error": CodeSessionExpired})
	expect(t, "close again", call(t, "DELETE", fmt.Sprintf("%s/sessions/%d", base, sid), ""), 200, nil)
	expect(t, "nothing applied", call(t, "GET", base+"/kv/x", ""), 404, nil)

	for _, k := range []string{"", "abc", "1", "1:", ":1", "0:1", "1:0", "-1:2", "+1:2", "1:2:3", "1:x", " 1 : 2", "18446744073709551616:1", `"1:2`} {
		got := callHeader(t, "PUT", b1+"/kv/bad", "v", map[string]string{IdempotencyKeyHeader: k})
		expect(t, fmt.Sprintf("key %q", k), got.httpResult, 400, map[string]any{"error": CodeInvalid})
		if msg := got.body["message"].(string); !strings.Contains(msg, "<session>:<seq>") {
			t.Fatalf("key %q: message %q does not name the format", k, msg)
		}
	}
	two := callWith(t, "PUT", b1+"/kv/bad", "v", func(r *http.Request) {
		r.Header.Add(IdempotencyKeyHeader, key(7))
		r.Header.Add(IdempotencyKeyHeader, key(8))
	}, nil)
	expect(t, "two keys", two, 400, map[string]any{"error": CodeInvalid})
	expect(t, "bad keys not applied", call(t, "GET", base+"/kv/bad", ""), 404, nil)
}

// The first attempt's answer is lost (the leader cannot apply it before
// the follower's deadline): 504 "indeterminate", saying a retry with the
// key is safe. The write is applied all the same, and the retry, through
// another node, gets its original result without applying it again.
func TestIdempotencyKeyAnswerLost(t *testing.T) {
	tc, leader := startTestCluster(t)
	f := tc.followerOf(leader.id)
	other := tc.runningOtherThan(leader.id, f.id)
	sid := openSessionAt(t, "http://"+f.httpAddr)
	key := fmt.Sprintf("%d:1", sid)

	// Hold the leader's apply goroutine: writes commit, unanswered.
	entered, hold := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(hold) }) }
	t.Cleanup(release)
	go leader.raft.Read(context.Background(), raft.ReadStale, func() error {
		close(entered)
		<-hold
		return nil
	})
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the leader's apply goroutine did not run the read")
	}
	// The follower's API waits 300ms for an answer, as a client would.
	api := NewAPI(f.raft, f.kv, nil, nil)
	api.timeout = 300 * time.Millisecond
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	lost := callKey(t, "PUT", srv.URL+"/kv/lost", "v", key)
	expect(t, "lost answer", lost.httpResult, 504, map[string]any{"error": "indeterminate", "idempotency_key": key})
	if msg := lost.body["message"].(string); !strings.Contains(msg, "same Idempotency-Key") || !strings.Contains(msg, "safe") {
		t.Fatalf("lost answer: message %q does not say that a retry with the key is safe", msg)
	}
	plain := call(t, "PUT", srv.URL+"/kv/plain", "v")
	expect(t, "lost answer without a key", plain, 504, map[string]any{"error": "indeterminate"})
	if msg := plain.body["message"].(string); !strings.Contains(msg, "twice") || !strings.Contains(msg, "Idempotency-Key") {
		t.Fatalf("lost answer without a key: message %q", msg)
	}
	release()

	// The write happened: the leader's copy has it.
	var rev any
	eventually(t, "the first attempt applied", func() bool {
		got := call(t, "GET", "http://"+leader.httpAddr+"/kv/lost?consistency=stale", "")
		rev = got.body["revision"]
		return got.status == 200
	})
	dups0 := metric(t, leader, "session_duplicates_total")
	retry := callKey(t, "PUT", "http://"+other.httpAddr+"/kv/lost", "v", key)
	expect(t, "retry", retry.httpResult, 200, map[string]any{"value": "v", "found": false, "revision": rev, "index": rev})
	if n := metric(t, leader, "session_duplicates_total") - dups0; n != 1 {
		t.Fatalf("the retry was answered as %v duplicates, want 1", n)
	}
	t.Logf("lost: %v\nretry: %v", lost.body, retry.body)
	expect(t, "applied once", call(t, "GET", "http://"+leader.httpAddr+"/kv/lost", ""), 200, map[string]any{"revision": rev})
}

// Sessions are replicated state: a key stays valid after every node
// restarted, and its retry gets the original result.
func TestIdempotencyKeyAcrossRestart(t *testing.T) {
	tc, leader := startTestCluster(t)
	sid := openSessionAt(t, "http://"+leader.httpAddr)
	key := fmt.Sprintf("%d:1", sid)
	first := callKey(t, "PUT", "http://"+leader.httpAddr+"/kv/durable", "d", key)
	expect(t, "first put", first.httpResult, 200, nil)

	ids := []raft.NodeID{}
	for _, p := range tc.peers {
		ids = append(ids, p.ID)
	}
	for _, id := range ids {
		if err := tc.stop(id); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range ids {
		if _, err := tc.restart(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	leader, _, err := tc.waitLeader(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	f := tc.followerOf(leader.id)
	if err := knowsLeader(ctx, f, leader.id); err != nil {
		t.Fatal(err)
	}
	again := callKey(t, "PUT", "http://"+f.httpAddr+"/kv/durable", "d", key)
	if again.status != 200 || !reflect.DeepEqual(again.body, first.body) {
		t.Fatalf("retry after the restart: %d %v, want the original %v", again.status, again.body, first.body)
	}
	expect(t, "applied once", call(t, "GET", "http://"+leader.httpAddr+"/kv/durable", ""), 200, map[string]any{"revision": first.body["revision"]})
	if n := metric(t, leader, "session_duplicates_total"); n != 1 {
		t.Fatalf("the restarted leader answered %v duplicates, want 1", n)
	}
	expect(t, "next seq", callKey(t, "PUT", "http://"+f.httpAddr+"/kv/durable", "e", fmt.Sprintf("%d:2", sid)).httpResult, 200, map[string]any{"value": "e"})
}

// The mapping of raft's errors for writes, without a cluster.
func TestWriteErrorMapping(t *testing.T) {
	a := &API{kv: NewKV(), httpAddrs: map[raft.NodeID]string{"n1": "127.0.0.1:8001"}}
	seq := &raft.Seq{Session: 7, N: 3}
	for _, c := range []struct {
		name     string
		err      error
		seq      *raft.Seq
		status   int
		code     string
		contains string
		location string
	}{
		{"no leader", &raft.NotLeaderError{}, nil, 503, "no_leader", "no leader is known", ""},
		{"not forwarded", &raft.NotLeaderError{LeaderID: "n1", Reason: "not forwarded: because"}, nil, 307, "not_leader", "not forwarded: because", "http://127.0.0.1:8001/kv/a"},
		{"not forwarded, no address", &raft.NotLeaderError{LeaderID: "n2", Reason: "r"}, seq, 503, "not_leader", "(r)", ""},
		{"seq old", fmt.Errorf("%w: session 7", raft.ErrSessionSeqOld), seq, 422, CodeSessionSeqOld, "later sequence number", ""},
		{"expired", fmt.Errorf("%w: session 7", raft.ErrSessionExpired), seq, 422, CodeSessionExpired, "POST /sessions", ""},
		{"indeterminate with a key", fmt.Errorf("x (%w)", raft.ErrIndeterminate), seq, 504, "indeterminate", "same Idempotency-Key 7:3", ""},
		{"indeterminate without", fmt.Errorf("x (%w)", raft.ErrIndeterminate), nil, 504, "indeterminate", "send writes with an Idempotency-Key", ""},
		{"forwarded shutdown", fmt.Errorf("%w (%w)", raft.ErrShutdown, raft.ErrIndeterminate), seq, 504, "indeterminate", "safe", ""},
		{"not confirmed", fmt.Errorf("%w: the leader answered", raft.ErrNotConfirmed), nil, 503, "not_confirmed", "nothing was done", ""},
		{"busy", raft.ErrTooManyProposals, seq, 429, "overloaded", "", ""},
		{"other", errors.New("boom"), nil, 500, "internal", "boom", ""},
	} {
		rec := httptest.NewRecorder()
		a.writeWriteError(rec, httptest.NewRequest("PUT", "/kv/a", nil), c.err, c.seq)
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), `"error":"`+c.code+`"`) || !strings.Contains(rec.Body.String(), c.contains) {
			t.Errorf("%s: %d %s, want %d %q containing %q", c.name, rec.Code, rec.Body, c.status, c.code, c.contains)
		}
		if got := rec.Header().Get("Location"); got != c.location {
			t.Errorf("%s: Location %q, want %q", c.name, got, c.location)
		}
		if c.seq != nil && !strings.Contains(rec.Body.String(), `"idempotency_key":"7:3"`) {
			t.Errorf("%s: no idempotency_key in %s", c.name, rec.Body)
		}
	}
}

// The digest that detects a reused key tells apart every field of a
// command and is stable.
func TestCommandDigest(t *testing.T) {
	base := Command{Op: OpCAS, Key: "k", Value: "v", Old: "o", OldExists: true}
	seen := map[uint64]Command{base.digest(): base}
	for _, c := range []Command{
		{Op: OpPut, Key: "k", Value: "v", Old: "o", OldExists: true},
		{Op: OpCAS, Key: "kv", Value: "", Old: "o", OldExists: true}, // the boundary moved
		{Op: OpCAS, Key: "k", Value: "v", Old: "o"},
		{Op: OpCAS, Key: "k", Value: "v", Old: "", OldExists: true},
		{Op: OpCAS, Key: "k", Value: "w", Old: "o", OldExists: true},
	} {
		d := c.digest()
		if prev, ok := seen[d]; ok || d == 0 {
			t.Fatalf("digest %x of %+v equals that of %+v", d, c, prev)
		}
		seen[d] = c
	}
	if base.digest() != (Command{Op: OpCAS, Key: "k", Value: "v", Old: "o", OldExists: true}).digest() {
		t.Fatal("digest not stable")
	}
	kv := NewKV()
	if r, _ := kv.Apply(1, base); r.Digest != base.digest() {
		t.Fatalf("Apply's Digest %x, want %x", r.Digest, base.digest())
	}
}
