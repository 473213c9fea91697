package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is an io.Writer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls out until it contains want.
func waitFor(t *testing.T, out *syncBuffer, want string, errc <-chan error) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), want) {
		select {
		case err := <-errc:
			t.Fatalf("run returned %v before printing %q:\n%s", err, want, out.String())
		case <-deadline:
			t.Fatalf("no %q in output:\n%s", want, out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// The README's run command: the tour completes, then the nodes keep
// serving HTTP until the context ends (Ctrl-C), and the temporary
// directory is removed.
func TestTourThenServeUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, out, nil) }()
	waitFor(t, out, "Press Ctrl-C", errc)

	text := out.String()
	for _, want := range []string{
		"1. Election:", "events (node.Observe):", "state-changed to leader", "2. Typed writes", "put greeting=hello", "Committed mode",
		"3. Typed rejection", `*Error{Code: "conflict", Current: "hello"}`, "which forwards it to the leader", `409 {"error":"conflict"`,
		"4. ", "elected leader in term", "writes acknowledged",
		"5. Reads without the log", "every acknowledged write is there",
		"GET /kv/news?consistency=stale", `GET /kv/news?consistency=linearizable  -> 200 "fresh"`,
		"restarted from its Pebble directory and caught up",
		"6. Membership: n4 started empty", "configuration {n1 n2 n3 n4}",
		"7. Writes on any node, exactly once: POST /sessions on follower", "-> 201 session",
		"Idempotency-Key: ", "(forwarded to the leader", "as a retry after a lost answer -> 200 revision", "the original answer, applied once",
		"Idempotency-Key: <session>:1",
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("tour output lacks %q:\n%s", want, text)
		}
	}
	dir := regexp.MustCompile(`Pebble in (\S+)`).FindStringSubmatch(text)
	if dir == nil {
		t.Fatalf("no directory in output:\n%s", text)
	}
	// Still serving after the tour: every node answers reads itself.
	nodes := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)\n`).FindAllStringSubmatch(text, -1)
	if len(nodes) != 3 {
		t.Fatalf("found %d node addresses in the output", len(nodes))
	}
	for _, m := range nodes {
		resp, err := http.Get("http://" + m[1] + "/kv/greeting")
		if err != nil {
			t.Fatalf("node at %s not serving: %v", m[1], err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"value":"hello"`) {
			t.Fatalf("GET greeting via %s: %d %s", m[1], resp.StatusCode, body)
		}
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Fatalf("directory %s not removed: %v", dir[1], err)
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-addr", "127.0.0.1:1"},                                   // node flags without -id
		{"-id", "n1"},                                              // no -addr
		{"-id", "n1", "-addr", "127.0.0.1:1"},                      // no -http
		{"-id", "n1", "-addr", "a:1", "-http", "b:2"},              // no -dir
		{"-id", "n1", "-addr", "a:1", "-http", "b:2", "-dir", "d"}, // no -peers
		{"-id", "n1", "-addr", "a:1", "-http", "b:2", "-dir", "d", "-peers", "n2=a:1/b:2"},                 // not listed
		{"-id", "n1", "-addr", "a:1", "-http", "b:2", "-dir", "d", "-peers", "n1"},                         // malformed
		{"-id", "n1", "-addr", "a:1", "-http", "b:2", "-dir", "d", "-peers", "n1=nohost"},                  // bad address
		{"-id", "n1", "-addr", "a:1", "-http", "b:2", "-dir", "d", "-peers", "n1=a:1,n1=a:2"},              // twice
		{"-id", "n1", "-addr", "a:1", "-http", "b:2", "-dir", "d", "-peers", "n1=a:1", "-join", "x:1"},     // both
		{"-id", "n1", "-addr", "a:1", "-http", "b:2", "-dir", "d", "-peers", "n1=a:0"},                     // port 0
		{"-id", "n1", "-addr", "a:1", "-http", "b:2", "-dir", "d", "-peers", "n1=a:1/0.0.0.0:2"},           // undialable
		{"-id", "n1", "-addr", "a:1", "-http", "b:2", "-dir", "d", "-peers", "n1=a:1,n/2=a:2"},             // bad ID
		{"-id", strings.Repeat("n", 300), "-addr", "a:1", "-http", "b:2", "-dir", "d", "-peers", "n1=a:1"}, // long ID
		{"-join-timeout", "0s"},
		{"-http-read-timeout", "-1s"},
		{"-http-max-conns", "0"},
		{"-join", "x:1"}, // without -id
		{"stray"},
		{"-no-such-flag"},
	} {
		if err := run(context.Background(), io.Discard, args); err == nil {
			t.Errorf("run(%q): no error", args)
		}
	}
}

// The token comes from -token, else from $KV_TOKEN; the usage text never
// shows it.
func TestTokenFromFlagOrEnvironment(t *testing.T) {
	env := func(k string) string {
		if k == "KV_TOKEN" {
			return "from-env"
		}
		return ""
	}
	for _, c := range []struct {
		args []string
		want string
	}{{nil, "from-env"}, {[]string{"-token", "from-flag"}, "from-flag"}} {
		o, err := parseFlags(io.Discard, c.args, env)
		if err != nil || o.token != c.want {
			t.Fatalf("parseFlags(%q): token %q (%v), want %q", c.args, o.token, err, c.want)
		}
	}
	var usage strings.Builder
	if _, err := parseFlags(&usage, []string{"-h"}, env); err == nil || strings.Contains(usage.String(), "from-env") {
		t.Fatalf("-h: %v; usage shows the token:\n%s", err, usage.String())
	}
}

func TestParsePeers(t *testing.T) {
	ps, err := parsePeers("n1=127.0.0.1:7001/127.0.0.1:8001, n2=10.0.0.2:7001")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0] != (Peer{"n1", "127.0.0.1:7001", "127.0.0.1:8001"}) || ps[1] != (Peer{"n2", "10.0.0.2:7001", ""}) {
		t.Fatalf("parsed %+v", ps)
	}
}

// freeAddrs returns n loopback addresses that were free a moment ago.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

// One node per "process" (here: per run call), as on several machines:
// a write through any node is readable through any other. The membership
// endpoints need the cluster's token: n1 gets it with -token, the others
// from $KV_TOKEN, and the joining node sends it.
func TestOneNodePerProcess(t *testing.T) {
	const token = "t0k3n"
	t.Setenv("KV_TOKEN", token)
	addrs := freeAddrs(t, 6)
	var peers []string
	for i := range 3 {
		peers = append(peers, fmt.Sprintf("n%d=%s/%s", i+1, addrs[2*i], addrs[2*i+1]))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errcs := make([]chan error, 3)
	outs := make([]*syncBuffer, 3)
	for i := range 3 {
		errcs[i] = make(chan error, 1)
		outs[i] = &syncBuffer{}
		args := []string{"-id", fmt.Sprintf("n%d", i+1), "-addr", addrs[2*i], "-http", addrs[2*i+1],
			"-dir", t.TempDir(), "-peers", strings.Join(peers, ",")}
		if i == 0 {
			args = append(args, "-token", token)
		}
		go func() { errcs[i] <- run(ctx, outs[i], args) }()
	}
	for i := range 3 {
		waitFor(t, outs[i], "kv node", errcs[i])
	}
	put := func(url, body string) int {
		req, _ := http.NewRequest("PUT", url, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("PUT %s: %v", url, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Until a leader is elected writes fail with 503; retry with a deadline.
	deadline := time.Now().Add(30 * time.Second)
	for put("http://"+addrs[1]+"/kv/k", "v") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("no write succeeded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Every node printed the leader it learned of, from its events.
	for i := range 3 {
		waitFor(t, outs[i], "leader: n", errcs[i])
	}
	for i := range 3 {
		resp, err := http.Get("http://" + addrs[2*i+1] + "/kv/k")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"value":"v"`) {
			t.Fatalf("GET via n%d: %d %s", i+1, resp.StatusCode, body)
		}
	}

	// A fourth node joins through a follower-or-leader's HTTP address,
	// serves reads, and is removed again.
	more := freeAddrs(t, 2)
	errc4 := make(chan error, 1)
	out4 := &syncBuffer{}
	go func() {
		errc4 <- run(ctx, out4, []string{"-id", "n4", "-addr", more[0], "-http", more[1], "-dir", t.TempDir(), "-join", addrs[3]})
	}()
	waitFor(t, out4, "joined: n4 is a voter", errc4)
	var mb membersBody
	getJSON(t, "http://"+addrs[1]+"/members", &mb)
	if len(mb.Members) != 4 {
		t.Fatalf("members after join: %+v", mb)
	}
	for _, m := range mb.Members {
		if m.Role != "voter" || m.HTTPAddr == "" {
			t.Fatalf("member %+v after join", m)
		}
	}
	// n4 has the data itself (a stale read is served from its own copy),
	// and receives later writes too; a linearizable read on n4 (served by
	// n4 with the leader's read index) sees them as well.
	if put("http://"+addrs[1]+"/kv/after", "join") != 200 {
		t.Fatal("write after the join failed")
	}
	for _, path := range []string{"/kv/k?stale=true", "/kv/after?stale=true", "/kv/after"} {
		want := `"value":"v"`
		if strings.Contains(path, "after") {
			want = `"value":"join"`
		}
		deadline = time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get("http://" + more[1] + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(body), want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s via n4: %d %s", path, resp.StatusCode, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, c := range []struct {
		auth   string
		status int
	}{{"", 401}, {"Bearer " + token, 200}} {
		req, _ := http.NewRequest("DELETE", "http://"+addrs[5]+"/members/n4", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Fatalf("DELETE /members/n4 with Authorization %q: %d, want %d", c.auth, resp.StatusCode, c.status)
		}
	}
	getJSON(t, "http://"+addrs[1]+"/members", &mb)
	if len(mb.Members) != 3 {
		t.Fatalf("members after removal: %+v", mb)
	}

	cancel()
	if err := <-errc4; err != nil {
		t.Fatalf("n4: %v", err)
	}
	for i := range 3 {
		select {
		case err := <-errcs[i]:
			if err != nil {
				t.Fatalf("n%d: %v", i+1, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("n%d did not stop", i+1)
		}
		if !strings.Contains(outs[i].String(), "shutting down") {
			t.Fatalf("n%d output: %s", i+1, outs[i].String())
		}
	}
}

// -tour-only returns after the tour instead of serving.
func TestTourOnly(t *testing.T) {
	var out syncBuffer
	if err := run(context.Background(), &out, []string{"-tour-only"}); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if s := out.String(); !strings.Contains(s, "every acknowledged write is there") || strings.Contains(s, "Press Ctrl-C") {
		t.Fatalf("output:\n%s", s)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
