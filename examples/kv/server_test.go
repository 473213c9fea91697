package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/tcp"
)

// startSingle starts a one-node cluster with the given HTTP limits and API
// options, stopped when the test ends.
func startSingle(t *testing.T, limits httpLimits, api APIOptions) *kvNode {
	t.Helper()
	tr, err := tcp.Listen("127.0.0.1:0", &tcp.Options{LocalID: "n1", ClusterID: clusterID})
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
	n, err := startNode(ctx, nodeSpec{ID: "n1", Dir: filepath.Join(t.TempDir(), "n1"), Transport: tr, HTTP: ln, Logger: hclog.NewNullLogger(),
		Peers: []Peer{{ID: "n1", RaftAddr: tr.Addr(), HTTPAddr: ln.Addr().String()}}, Limits: limits, API: api})
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
	return n
}

// closedWithin reads c until the server closes it, failing if that takes
// longer than d.
func closedWithin(t *testing.T, what string, c net.Conn, d time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	c.SetReadDeadline(t0.Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: connection still open after %v", what, d)
	}
	return time.Since(t0)
}

// A client that sends its body slowly, one that sends nothing, and one
// that stays idle after a response are all cut off within the server's
// timeouts (they once stayed open indefinitely).
func TestHTTPServerCutsOffSlowAndIdleClients(t *testing.T) {
	const timeout = 500 * time.Millisecond
	n := startSingle(t, httpLimits{ReadTimeout: timeout, IdleTimeout: timeout}, APIOptions{})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", n.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	slow := dial()
	fmt.Fprintf(slow, "PUT /kv/slow HTTP/1.1\r\nHost: kv\r\nContent-Length: 1000\r\n\r\n")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // one byte every 50ms: the body would take 50s
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := slow.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	took := closedWithin(t, "slow body", slow, timeout+3*time.Second)
	close(stop)
	wg.Wait()
	t.Logf("slow body cut off after %v", took)

	silent := dial() // sends nothing at all
	t.Logf("silent connection closed after %v", closedWithin(t, "silent", silent, timeout+3*time.Second))

	idle := dial()
	fmt.Fprintf(idle, "GET /status HTTP/1.1\r\nHost: kv\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("status: %d (close %v)", resp.StatusCode, resp.Close)
	}
	t.Logf("idle keep-alive connection closed after %v", closedWithin(t, "idle", idle, timeout+3*time.Second))
}

// Connections beyond the cap are not served (nor accepted: they wait in
// the kernel's bounded backlog) until one of the open ones closes.
func TestHTTPServerCapsConnections(t *testing.T) {
	const maxConns = 3
	n := startSingle(t, httpLimits{MaxConns: maxConns}, APIOptions{})
	type conn struct {
		c net.Conn
		r *bufio.Reader
	}
	open := func() conn {
		c, err := net.Dial("tcp", n.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET /status HTTP/1.1\r\nHost: kv\r\n\r\n")
		return conn{c, bufio.NewReader(c)}
	}
	status := func(c conn) error {
		resp, err := http.ReadResponse(c.r, nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	var held []conn
	for range maxConns {
		c := open()
		if err := status(c); err != nil { // served, and kept open (keep-alive)
			t.Fatal(err)
		}
		held = append(held, c)
	}
	var waiting []conn
	for range 20 {
		waiting = append(waiting, open())
	}
	// Not served while the cap is reached (an absence: wait a little).
	waiting[0].c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var ne net.Error
	if err := status(waiting[0]); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a connection over the cap was served (%v)", err)
	}
	// Each connection closed lets one more in.
	for i, c := range held {
		c.c.Close()
		w := waiting[i]
		w.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		// The first waiting one has already sent its request; the read
		// that timed out consumed nothing.
		if err := status(w); err != nil {
			t.Fatalf("waiting connection %d not served after one closed: %v", i, err)
		}
	}
}

// limitListener never has more than its cap of accepted connections open,
// however many dial at once, and Close wakes a blocked Accept.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 2)
	var clients []net.Conn
	for range 10 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted over the cap of 2")
	case <-time.After(100 * time.Millisecond): // an absence: wait a little
	}
	if l.open() != 2 {
		t.Fatalf("open = %d, want 2", l.open())
	}
	a.Close()
	a.Close() // a second Close frees nothing more
	c := <-accepted
	if c == nil || l.open() != 2 {
		t.Fatalf("after one close: accepted %v, open %d", c, l.open())
	}
	b.Close()
	c.Close()
	if l.open() != 0 {
		t.Fatalf("open = %d after closing all", l.open())
	}
	// Fill the slots again, then Close must wake the blocked Accept.
	x, _ := l.Accept()
	y, _ := l.Accept()
	defer x.Close()
	defer y.Close()
	errc := make(chan error, 1)
	go func() { _, err := l.Accept(); errc <- err }()
	l.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake Accept")
	}
}

// A membership change may take longer than the write timeout: the join
// extends its own deadline, so its answer still arrives.
func TestJoinAnswerOutlivesWriteTimeout(t *testing.T) {
	n := startSingle(t, httpLimits{WriteTimeout: 200 * time.Millisecond}, APIOptions{JoinTimeout: 600 * time.Millisecond})
	deadline := time.Now().Add(10 * time.Second)
	for n.raft.Status().State != raft.Leader {
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		time.Sleep(5 * time.Millisecond)
	}
	free := freeAddrs(t, 2)
	status, eb, took := postJoin(t, "http://"+n.httpAddr, joinRequest{ID: "n9", RaftAddr: free[0], HTTPAddr: free[1]}, "", 10*time.Second)
	if status != http.StatusGatewayTimeout || eb.Error != "join_timeout" {
		t.Fatalf("join: %d %+v after %v", status, eb, took)
	}
}

// Request bodies are bounded: a join body over its own, smaller bound is
// answered 413 without being read to the end.
func TestJoinBodyIsBounded(t *testing.T) {
	n := startSingle(t, httpLimits{}, APIOptions{})
	got := call(t, "POST", "http://"+n.httpAddr+"/members", string(make([]byte, 10*maxJoinBody)))
	expect(t, "join body over the bound", got, 413, map[string]any{"error": "too_large"})
}
