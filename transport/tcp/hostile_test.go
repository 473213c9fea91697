package tcp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// loggedNode opens a plaintext transport with a captured log and a handler.
func loggedNode(t *testing.T, o *Options) (*Transport, *handler, *logBuffer) {
	t.Helper()
	logger, logs := newLogger(string(o.LocalID))
	o.Logger = logger
	tr := listen(t, o)
	h := newHandler()
	tr.Register(h)
	return tr, h, logs
}

// handshaken returns a connection to b that completed the handshake as
// node "a", for writing raw frames.
func handshaken(t *testing.T, b *Transport, kind connKind) net.Conn {
	t.Helper()
	a := listen(t, testOptions("a"))
	conn, _, err := a.dialPeer(context.Background(), b.opts.LocalID, b.Addr(), kind)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// waitClosed fails unless the peer closes conn within d.
func waitClosed(t *testing.T, conn net.Conn, d time.Duration) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", d)
	}
}

func TestMalformedFramesCloseTheConnection(t *testing.T) {
	good := encodeForTest(t, heartbeat("a", "b", 1))
	cases := map[string][]byte{
		"garbage body":       frameBytes(frameMessage, []byte{0xdd, 0xff, 0xff, 0xff, 0xff}),
		"bad magic":          append([]byte("GET / HTTP/1.1\r\n"), good...),
		"huge length":        header(frameMessage, 1<<32-1),
		"trailing bytes":     frameBytes(frameMessage, append(bytes.Clone(good), 0)),
		"unexpected hello":   frameBytes(frameHello, encodeHello(hello{ClusterID: "x", From: "a", To: "b", Kind: kindMessages})),
		"snapshot on stream": frameBytes(frameSnapChunk, []byte("data")),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			b, h, logs := loggedNode(t, testOptions("b"))
			conn := handshaken(t, b, kindMessages)
			if _, err := conn.Write(in); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, conn, waitTimeout)
			logs.waitLog(t, "closing inbound connection", "peer=a")
			if h.count() != 0 {
				t.Fatalf("handler got %v", h.messages())
			}
		})
	}
}

func TestBadHandshakesRefused(t *testing.T) {
	cases := map[string][]byte{
		"http request":  []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"wrong version": {magic0, magic1, 9, byte(frameHello), 0, 0, 0, 0},
		"huge hello":    header(frameHello, 1<<32-1),
		"message first": frameBytes(frameMessage, encodeForTest(t, heartbeat("a", "b", 1))),
		"bad hello":     frameBytes(frameHello, []byte{0x94, 0xdb, 0xff, 0xff, 0xff, 0xff}),
		"empty from":    frameBytes(frameHello, encodeHello(hello{ClusterID: "test-cluster", To: "b", Kind: kindMessages})),
		"bad advertised address": frameBytes(frameHello, encodeHello(hello{
			ClusterID: "test-cluster", From: "a", To: "b", Kind: kindMessages, Addr: "no-port"})),
		"advertised port 0": frameBytes(frameHello, encodeHello(hello{
			ClusterID: "test-cluster", From: "a", To: "b", Kind: kindMessages, Addr: "127.0.0.1:0"})),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			b, h, logs := loggedNode(t, testOptions("b"))
			conn, err := net.Dial("tcp", b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(in); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, conn, waitTimeout)
			logs.waitLog(t, "refused inbound connection")
			if h.count() != 0 {
				t.Fatal("handler got messages")
			}
		})
	}
}

// TestSlowlorisCannotPinConnections: silent and trickling connections fill
// the pending-handshake budget only until the handshake timeout; meanwhile
// a new connection evicts the silent one (never the one that sent bytes),
// and a real peer gets through at once, while they are still pending.
func TestSlowlorisCannotPinConnections(t *testing.T) {
	bo := testOptions("b")
	bo.MaxPendingConns = 2
	bo.HandshakeTimeout = time.Second
	b, h, logs := loggedNode(t, bo)

	trickle, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer trickle.Close()
	stopTrickle := make(chan struct{})
	trickleDone := make(chan struct{})
	go func() { // a valid hello, one byte every 100 ms: never finishes in time
		defer close(trickleDone)
		in := frameBytes(frameHello, encodeHello(hello{ClusterID: "test-cluster", From: "a", To: "b", Kind: kindMessages}))
		for _, c := range in {
			if _, err := trickle.Write([]byte{c}); err != nil {
				return
			}
			select {
			case <-stopTrickle:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stopTrickle); <-trickleDone }()
	waitFor(t, "the trickling connection to be pending and heard", func() bool {
		b.adm.mu.Lock()
		defer b.adm.mu.Unlock()
		return len(b.adm.pending) == 1 && b.adm.pending[0].received.Load() > 0
	})
	silent, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start := time.Now()
	waitFor(t, "two pending connections", func() bool { return b.adm.counts().pending == 2 })

	// The budget is full: the next connection evicts the silent one.
	extra, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	waitClosed(t, silent, waitTimeout)
	if d := time.Since(start); d > bo.HandshakeTimeout/2 {
		t.Fatalf("the silent connection was closed after %v, not evicted at once", d)
	}
	logs.waitLog(t, "closing a pending inbound connection to make room")

	// A real peer gets through while the trickle is still pending.
	a := listen(t, testOptions("a"))
	a.Send(peerOf(b), []raft.Message{heartbeat("a", "b", 1)})
	waitFor(t, "a real peer's message while slow handshakes are pending", func() bool { return h.count() == 1 })
	if d := time.Since(start); d > bo.HandshakeTimeout {
		t.Fatalf("the real peer got through after %v, not before the slow handshakes timed out", d)
	}

	waitClosed(t, trickle, waitTimeout)
	waitClosed(t, extra, waitTimeout)
	if d := time.Since(start); d > bo.HandshakeTimeout+5*time.Second {
		t.Fatalf("slow handshakes held their slots for %v (timeout %v)", d, bo.HandshakeTimeout)
	}
	logs.waitLog(t, "refused inbound connection: bad handshake", "timeout")
}

func TestIdleInboundConnectionClosedAfterReadTimeout(t *testing.T) {
	bo := testOptions("b")
	bo.ReadTimeout = 200 * time.Millisecond
	b, _, logs := loggedNode(t, bo)
	conn := handshaken(t, b, kindMessages) // sends nothing, not even keepalives
	start := time.Now()
	waitClosed(t, conn, waitTimeout)
	if d := time.Since(start); d < bo.ReadTimeout {
		t.Fatalf("closed after %v, before the read timeout %v", d, bo.ReadTimeout)
	}
	logs.waitLog(t, "closing inbound connection", "timeout")
}

func snapHeader(t *testing.T, from raft.NodeID) []byte {
	m := raft.Message{Type: raft.MsgSnap, From: from, To: "b", Snapshot: &raft.SnapshotMeta{Index: 5, Term: 1}}
	return frameBytes(frameSnapHeader, encodeForTest(t, m))
}

// TestBrokenSnapshotStreamFailsHandlerRead: if the stream breaks or lies
// about its length, the handler's reader returns an error (never a clean
// EOF that would let a truncated snapshot be installed).
func TestBrokenSnapshotStreamFailsHandlerRead(t *testing.T) {
	cases := map[string]struct {
		frames [][]byte
		log    string
	}{
		"connection drops": {[][]byte{frameBytes(frameSnapChunk, []byte("part"))}, "snapshot stream failed"},
		"length mismatch": {[][]byte{frameBytes(frameSnapChunk, []byte("part")), frameBytes(frameSnapEnd, encodeSnapEnd(99))},
			"length mismatch"},
		"message frame": {[][]byte{frameBytes(frameMessage, encodeForTest(t, heartbeat("a", "b", 1)))}, "unexpected message frame"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			b, h, logs := loggedNode(t, testOptions("b"))
			readErr := make(chan error, 1)
			h.mu.Lock()
			h.onSnapshot = func(_ raft.Message, r io.Reader) error {
				_, err := io.Copy(io.Discard, r)
				readErr <- err
				return err
			}
			h.mu.Unlock()
			conn := handshaken(t, b, kindSnapshot)
			if _, err := conn.Write(snapHeader(t, "a")); err != nil {
				t.Fatal(err)
			}
			for _, f := range c.frames {
				if _, err := conn.Write(f); err != nil {
					t.Fatal(err)
				}
			}
			if name == "connection drops" {
				_ = conn.Close()
			}
			select {
			case err := <-readErr:
				if err == nil {
					t.Fatal("handler read the broken stream to a clean EOF")
				}
			case <-time.After(waitTimeout):
				t.Fatal("handler not called or never unblocked")
			}
			logs.waitLog(t, "snapshot stream failed", c.log)
		})
	}
}

func TestSnapshotWithSpoofedSenderRefused(t *testing.T) {
	b, h, logs := loggedNode(t, testOptions("b"))
	a := listen(t, testOptions("a"))
	m := raft.Message{Type: raft.MsgSnap, From: "mallory", To: "b", Snapshot: &raft.SnapshotMeta{Index: 1}}
	err := a.SendSnapshot(context.Background(), peerOf(b), m, bytes.NewReader(make([]byte, 1000)))
	if !errors.Is(err, ErrSnapshotRefused) {
		t.Fatalf("got %v, want ErrSnapshotRefused", err)
	}
	logs.waitLog(t, "refusing snapshot", "does not match the authenticated peer")
	if h.snapCount() != 0 {
		t.Fatal("handler was called")
	}
	if err := a.SendSnapshot(context.Background(), peerOf(b), raft.Message{Type: raft.MsgApp}, nil); err == nil {
		t.Fatal("SendSnapshot accepted a non-MsgSnap message")
	}
}
