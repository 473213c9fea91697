package tcp

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/typedraft/typedraft/raft"
)

func TestListenValidatesOptions(t *testing.T) {
	ok := func() *Options { return testOptions("n1") }
	cases := []struct {
		name  string
		opts  *Options
		field string
	}{
		{"nil", nil, "LocalID"},
		{"no local id", &Options{ClusterID: "c"}, "LocalID"},
		{"no cluster id", &Options{LocalID: "n1"}, "ClusterID"},
		{"long local id", &Options{LocalID: raft.NodeID(strings.Repeat("x", 256)), ClusterID: "c"}, "LocalID"},
		{"negative queue", func() *Options { o := ok(); o.QueueSize = -1; return o }(), "QueueSize"},
		{"negative timeout", func() *Options { o := ok(); o.ReadTimeout = -time.Second; return o }(), "ReadTimeout"},
		{"tiny frames", func() *Options { o := ok(); o.MaxFrameSize = 100; return o }(), "MaxFrameSize"},
		{"huge frames", func() *Options { o := ok(); o.MaxFrameSize = 2 << 30; return o }(), "MaxFrameSize"},
		{"chunk > frame", func() *Options { o := ok(); o.MaxFrameSize = 1 << 20; o.SnapshotChunkSize = 2 << 20; return o }(), "SnapshotChunkSize"},
		{"advertise no port", func() *Options { o := ok(); o.AdvertiseAddr = "localhost"; return o }(), "AdvertiseAddr"},
		{"advertise port 0", func() *Options { o := ok(); o.AdvertiseAddr = "127.0.0.1:0"; return o }(), "AdvertiseAddr"},
		{"advertise long", func() *Options { o := ok(); o.AdvertiseAddr = strings.Repeat("h", 1100) + ":1"; return o }(), "AdvertiseAddr"},
		{"backoff order", func() *Options { o := ok(); o.BackoffMin = time.Second; o.BackoffMax = time.Millisecond; return o }(), "BackoffMax"},
	}
	for _, c := range cases {
		tr, err := Listen("127.0.0.1:0", c.opts)
		if err == nil {
			_ = tr.Close()
			t.Errorf("%s: Listen succeeded", c.name)
			continue
		}
		if !errors.Is(err, errOptions) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: error %q does not name %s", c.name, err, c.field)
		}
	}
	if _, err := Listen("127.0.0.1:notaport", ok()); err == nil || !strings.Contains(err.Error(), "notaport") {
		t.Errorf("bad address: got %v", err)
	}
}

func TestAddrReportsBoundPort(t *testing.T) {
	tr := listen(t, testOptions("n1"))
	host, port, err := net.SplitHostPort(tr.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" || port == "" {
		t.Fatalf("Addr() = %q (%v), want 127.0.0.1 with a real port", tr.Addr(), err)
	}
}

// countingConn counts Write calls on an outbound connection.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func TestCoalescesQueuedMessagesIntoFewWrites(t *testing.T) {
	a, b := listen(t, testOptions("a")), listen(t, testOptions("b"))
	h := newHandler()
	b.Register(h)
	var writes atomic.Int64
	dial := a.dial
	a.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, writes: &writes}, nil
	}
	const n = 2000
	msgs := make([]raft.Message, n)
	for i := range msgs {
		msgs[i] = heartbeat("a", "b", uint64(i+1))
	}
	a.Send(peerOf(b), msgs)
	waitFor(t, "all messages", func() bool { return h.count() == n })
	for i, m := range h.messages() {
		if m.Index != uint64(i+1) {
			t.Fatalf("message %d has index %d", i, m.Index)
		}
	}
	// Two writes are the handshake; the rest carry the messages.
	got := writes.Load()
	t.Logf("%d messages in %d writes", n, got)
	if got > 50 {
		t.Fatalf("%d messages took %d writes: not coalesced", n, got)
	}
}

func TestReconnectsAfterPeerRestarts(t *testing.T) {
	a := listen(t, testOptions("a"))
	bOpts := testOptions("b")
	b := listen(t, bOpts)
	addr := b.Addr()
	h1 := newHandler()
	b.Register(h1)
	a.Send(peerOf(b), []raft.Message{heartbeat("a", "b", 1)})
	waitFor(t, "first message", func() bool { return h1.count() == 1 })

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, err := Listen(addr, bOpts)
	if err != nil {
		t.Fatalf("relisten on %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = b2.Close() })
	h2 := newHandler()
	b2.Register(h2)
	idx := uint64(1)
	waitFor(t, "a message to the restarted peer", func() bool {
		idx++
		a.Send(raft.Peer{ID: "b", Addr: addr}, []raft.Message{heartbeat("a", "b", idx)})
		return h2.count() > 0
	})
}

// freeAddr returns a loopback address where nothing listens.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestReportsUnreachablePeer(t *testing.T) {
	o := testOptions("a")
	logger, logs := newLogger("a")
	o.Logger = logger
	a := listen(t, o)
	h := newHandler()
	a.Register(h)
	a.Send(raft.Peer{ID: "b", Addr: freeAddr(t)}, []raft.Message{heartbeat("a", "b", 1)})
	waitFor(t, "ReportUnreachable", func() bool { return h.unreachableCount("b") > 0 })
	logs.waitLog(t, "dial failed", "peer=b")
}

func TestSendNeverBlocksAndReportsWhenQueueFull(t *testing.T) {
	o := testOptions("a")
	o.QueueSize = 4
	a := listen(t, o)
	h := newHandler()
	a.Register(h)
	release := make(chan struct{})
	defer close(release)
	a.dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
		select { // a dial that hangs until the test ends
		case <-release:
		case <-ctx.Done():
		}
		return nil, errors.New("test dial released")
	}
	msgs := make([]raft.Message, 20)
	for i := range msgs {
		msgs[i] = heartbeat("a", "b", uint64(i))
	}
	start := time.Now()
	for i := 0; i < 10; i++ {
		a.Send(raft.Peer{ID: "b", Addr: "127.0.0.1:1"}, msgs)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Send blocked for %v", d)
	}
	if h.unreachableCount("b") == 0 {
		t.Fatal("a full queue did not report the peer unreachable")
	}
}

func TestBackoffBounds(t *testing.T) {
	b := backoff{min: 10 * time.Millisecond, max: 100 * time.Millisecond}
	want := []time.Duration{10, 20, 40, 80, 100, 100, 100}
	for round := 0; round < 2; round++ {
		for i, w := range want {
			w *= time.Millisecond
			for k := 0; k < 50; k++ {
				c := b
				d := c.next()
				if d < w/2 || d > w {
					t.Fatalf("attempt %d: delay %v outside [%v, %v]", i, d, w/2, w)
				}
			}
			b.next()
		}
		b.reset()
	}
}

// TestDialBackoffSpacesAttempts: repeated dial failures to one peer are
// spaced by at least the growing backoff lower bound.
func TestDialBackoffSpacesAttempts(t *testing.T) {
	o := testOptions("a")
	o.BackoffMin, o.BackoffMax = 10*time.Millisecond, 80*time.Millisecond
	a := listen(t, o)
	var mu sync.Mutex
	var dials []time.Time
	a.dial = func(context.Context, string, string) (net.Conn, error) {
		mu.Lock()
		dials = append(dials, time.Now())
		mu.Unlock()
		return nil, errors.New("test: connection refused")
	}
	h := newHandler()
	a.Register(h)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(dials) }
	for i := uint64(0); count() < 7; i++ {
		a.Send(raft.Peer{ID: "b", Addr: "127.0.0.1:1"}, []raft.Message{heartbeat("a", "b", i)})
		time.Sleep(time.Millisecond) // pace the sender; a raft node sends continuously too
	}
	mu.Lock()
	defer mu.Unlock()
	for k := 1; k < len(dials); k++ {
		bound := min(o.BackoffMin<<(k-1), o.BackoffMax) / 2
		if gap := dials[k].Sub(dials[k-1]); gap < bound {
			t.Errorf("dial %d came %v after the previous one, backoff lower bound %v", k, gap, bound)
		}
	}
	if n := h.unreachableCount("b"); n < len(dials)-1 {
		t.Errorf("%d failed dials but %d unreachable reports", len(dials), n)
	}
}

func TestCloseStopsAllGoroutines(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	a, err := Listen("127.0.0.1:0", testOptions("a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Listen("127.0.0.1:0", testOptions("b"))
	if err != nil {
		t.Fatal(err)
	}
	hb := newHandler()
	b.Register(hb)
	a.Send(peerOf(b), []raft.Message{heartbeat("a", "b", 1)})                             // connected peer
	a.Send(raft.Peer{ID: "c", Addr: freeAddr(t)}, []raft.Message{heartbeat("a", "c", 1)}) // peer in backoff
	waitFor(t, "delivery", func() bool { return hb.count() == 1 })
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	a.Send(peerOf(b), []raft.Message{heartbeat("a", "b", 2)}) // dropped, no panic
	if err := a.SendSnapshot(context.Background(), peerOf(b), raft.Message{Type: raft.MsgSnap}, strings.NewReader("x")); !errors.Is(err, raft.ErrTransportClosed) {
		t.Fatalf("SendSnapshot after Close: %v", err)
	}
	goleak.VerifyNone(t, ignore)
}

// TestKeepaliveHoldsIdleLinkOpen: with ReadTimeout short, an idle link is
// kept open by keepalives instead of being torn down and redialled.
func TestKeepaliveHoldsIdleLinkOpen(t *testing.T) {
	ao, bo := testOptions("a"), testOptions("b")
	ao.ReadTimeout, bo.ReadTimeout = 200*time.Millisecond, 200*time.Millisecond
	a, b := listen(t, ao), listen(t, bo)
	h := newHandler()
	b.Register(h)
	var dials atomic.Int64
	dial := a.dial
	a.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return dial(ctx, network, addr)
	}
	a.Send(peerOf(b), []raft.Message{heartbeat("a", "b", 1)})
	waitFor(t, "first message", func() bool { return h.count() == 1 })
	time.Sleep(5 * ao.ReadTimeout) // idle well past the read timeout: that is what is tested
	a.Send(peerOf(b), []raft.Message{heartbeat("a", "b", 2)})
	waitFor(t, "second message", func() bool { return h.count() == 2 })
	if n := dials.Load(); n != 1 {
		t.Fatalf("idle link was redialled: %d dials", n)
	}
}

func TestOversizedMessageDroppedBySender(t *testing.T) {
	ao := testOptions("a")
	ao.MaxFrameSize = MinFrameSize
	logger, logs := newLogger("a")
	ao.Logger = logger
	a, b := listen(t, ao), listen(t, testOptions("b"))
	h := newHandler()
	b.Register(h)
	big := raft.Message{Type: raft.MsgApp, From: "a", To: "b", Index: 1,
		Entries: []raft.Entry{{Data: make([]byte, MinFrameSize)}}}
	a.Send(peerOf(b), []raft.Message{big, heartbeat("a", "b", 2)})
	waitFor(t, "the message after the oversized one", func() bool { return h.count() == 1 })
	if m := h.messages()[0]; m.Index != 2 {
		t.Fatalf("got %v, want the heartbeat", m)
	}
	logs.waitLog(t, "larger than the max frame size", "peer=b")
}

func TestOversizedFrameClosesReceiverConnection(t *testing.T) {
	bo := testOptions("b")
	bo.MaxFrameSize = MinFrameSize
	logger, logs := newLogger("b")
	bo.Logger = logger
	a, b := listen(t, testOptions("a")), listen(t, bo)
	h := newHandler()
	b.Register(h)
	big := raft.Message{Type: raft.MsgApp, From: "a", To: "b", Index: 1,
		Entries: []raft.Entry{{Data: make([]byte, MinFrameSize)}}}
	a.Send(peerOf(b), []raft.Message{big})
	logs.waitLog(t, "closing inbound connection", "exceeds max frame size")
	if h.count() != 0 {
		t.Fatalf("handler got %d messages", h.count())
	}
	// The sender notices, reconnects, and small messages flow again.
	idx := uint64(1)
	waitFor(t, "a message after the connection was closed", func() bool {
		idx++
		a.Send(peerOf(b), []raft.Message{heartbeat("a", "b", idx)})
		return h.count() > 0
	})
}
