package tcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/typedraft/typedraft/raft"
)

// legacyHello encodes a hello as sent before address learning: 4 fields.
func legacyHello(cluster string, from, to raft.NodeID, k connKind) []byte {
	return encodeBody(func(e *errWriter) {
		e.arrayLen(helloFieldsV1)
		e.str(cluster)
		e.str(string(from))
		e.str(string(to))
		e.uint(uint64(k))
	})
}

func TestHelloCarriesAddr(t *testing.T) {
	want := hello{ClusterID: "c", From: "a", To: "b", Kind: kindSnapshot, Addr: "[::1]:7000"}
	got, err := decodeHello(encodeHello(want))
	if err != nil || got != want {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, want)
	}
	got, err = decodeHello(legacyHello("c", "a", "b", kindMessages))
	if want := (hello{ClusterID: "c", From: "a", To: "b", Kind: kindMessages}); err != nil || got != want {
		t.Fatalf("4-field hello: %+v, %v; want %+v", got, err, want)
	}
	bad := map[string][]byte{
		"3 fields":   {0x93, 0xa1, 'c', 0xa1, 'a', 0xa1, 'b'},
		"6 fields":   {0x96, 0xa1, 'c', 0xa1, 'a', 0xa1, 'b', 0x01, 0xa0, 0xc0},
		"addr int":   {0x95, 0xa1, 'c', 0xa1, 'a', 0xa1, 'b', 0x01, 0x07},
		"addr long":  encodeHelloRaw(t, strings.Repeat("x", maxAddrLen+1)),
		"addr str32": {0x95, 0xa1, 'c', 0xa1, 'a', 0xa1, 'b', 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff},
	}
	for name, body := range bad {
		if h, err := decodeHello(body); !errors.Is(err, errMalformed) {
			t.Errorf("%s: decoded %+v, %v; want a malformed-body error", name, h, err)
		}
	}
}

// encodeHelloRaw encodes a 5-field hello without encodeHello's truncation.
func encodeHelloRaw(t *testing.T, addr string) []byte {
	return append([]byte{0x95, 0xa1, 'c', 0xa1, 'a', 0xa1, 'b', 0x01}, mp(t, addr)...)
}

func TestAdvertiseAddrDefaultsToBoundAddress(t *testing.T) {
	a := listen(t, testOptions("a"))
	if a.opts.AdvertiseAddr != a.Addr() {
		t.Fatalf("AdvertiseAddr = %q, want the bound address %q", a.opts.AdvertiseAddr, a.Addr())
	}
}

// TestSendWithEmptyAddrUsesLearnedAddr: with no address for b, Send drops
// and reports b unreachable; once b has dialed a, a answers b with an
// empty Peer.Addr.
func TestSendWithEmptyAddrUsesLearnedAddr(t *testing.T) {
	a := listen(t, testOptions("a"))
	ha := newHandler()
	a.Register(ha)
	b := listen(t, testOptions("b"))
	hb := newHandler()
	b.Register(hb)

	a.Send(raft.Peer{ID: "b"}, []raft.Message{heartbeat("a", "b", 1)})
	if n := ha.unreachableCount("b"); n != 1 {
		t.Fatalf("Send to an unknown address reported unreachable %d times, want 1 (synchronously)", n)
	}
	b.Send(peerOf(a), []raft.Message{heartbeat("b", "a", 1)})
	waitFor(t, "b's message at a", func() bool { return ha.count() == 1 })
	if got := a.learnedAddr("b"); got != b.Addr() {
		t.Fatalf("a learned %q for b, want %q", got, b.Addr())
	}
	a.Send(raft.Peer{ID: "b"}, []raft.Message{heartbeat("a", "b", 2)})
	waitFor(t, "a's answer at b", func() bool { return hb.count() == 1 })
	if m := hb.messages()[0]; m.Index != 2 {
		t.Fatalf("b got %+v, want only the message sent after learning", m)
	}
}

// TestLearnedAddrFollowsPeerRestart: the newest handshake wins, so a peer
// that comes back on another port is reached there.
func TestLearnedAddrFollowsPeerRestart(t *testing.T) {
	a := listen(t, testOptions("a"))
	ha := newHandler()
	a.Register(ha)
	b1 := listen(t, testOptions("b"))
	b1.Send(peerOf(a), []raft.Message{heartbeat("b", "a", 1)})
	waitFor(t, "b1's message", func() bool { return ha.count() == 1 })
	_ = b1.Close()

	b2 := listen(t, testOptions("b"))
	hb := newHandler()
	b2.Register(hb)
	b2.Send(peerOf(a), []raft.Message{heartbeat("b", "a", 2)})
	waitFor(t, "b2's message", func() bool { return ha.count() == 2 })
	if got := a.learnedAddr("b"); got != b2.Addr() {
		t.Fatalf("a learned %q for b, want the restarted b at %q", got, b2.Addr())
	}
	a.Send(raft.Peer{ID: "b"}, []raft.Message{heartbeat("a", "b", 3)})
	waitFor(t, "a's message at the restarted b", func() bool { return hb.count() == 1 })
}

// TestConfiguredAddrTakesPrecedence: a non-empty Peer.Addr is dialed even
// when another address was learned; an empty one uses the learned address.
func TestConfiguredAddrTakesPrecedence(t *testing.T) {
	dead := freeAddr(t)
	bo := testOptions("b")
	bo.AdvertiseAddr = dead // b lies (or is misconfigured)
	b := listen(t, bo)
	hb := newHandler()
	b.Register(hb)

	a := listen(t, testOptions("a"))
	ha := newHandler()
	a.Register(ha)
	b.Send(peerOf(a), []raft.Message{heartbeat("b", "a", 1)})
	waitFor(t, "b's message at a", func() bool { return ha.count() == 1 })
	if got := a.learnedAddr("b"); got != dead {
		t.Fatalf("a learned %q, want b's advertised %q", got, dead)
	}
	a.Send(peerOf(b), []raft.Message{heartbeat("a", "b", 1)})
	waitFor(t, "a's message at b's configured address", func() bool { return hb.count() == 1 })

	co := testOptions("c")
	logger, logs := newLogger("c")
	co.Logger = logger
	c := listen(t, co)
	hc := newHandler()
	c.Register(hc)
	b.Send(peerOf(c), []raft.Message{heartbeat("b", "c", 1)})
	waitFor(t, "b's message at c", func() bool { return hc.count() == 1 })
	c.Send(raft.Peer{ID: "b"}, []raft.Message{heartbeat("c", "b", 1)})
	waitFor(t, "c to report b unreachable", func() bool { return hc.unreachableCount("b") > 0 })
	logs.waitLog(t, "dial failed", "peer=b", "addr="+dead)
	if hb.count() != 1 {
		t.Fatalf("b got %d messages, want 1: c had only b's advertised (dead) address", hb.count())
	}
}

// TestUnspecifiedAdvertisedHostUsesSourceIP: a node advertising
// 0.0.0.0:port is learned at the IP its connection came from.
func TestUnspecifiedAdvertisedHostUsesSourceIP(t *testing.T) {
	for _, host := range []string{"0.0.0.0", "", "::"} {
		t.Run(fmt.Sprintf("host=%q", host), func(t *testing.T) {
			// The advertised port must be known before Listen: pick a free
			// one, retrying if another process takes it meanwhile.
			var (
				b    *Transport
				addr string
				bo   *Options
				err  error
			)
			for try := 0; b == nil; try++ {
				addr = freeAddr(t)
				_, port, _ := net.SplitHostPort(addr)
				bo = testOptions("b")
				bo.AdvertiseAddr = net.JoinHostPort(host, port)
				if b, err = Listen(addr, bo); err != nil && try == 10 {
					t.Fatalf("listen on a free port: %v", err)
				}
			}
			t.Cleanup(func() { _ = b.Close() })
			hb := newHandler()
			b.Register(hb)
			a := listen(t, testOptions("a"))
			ha := newHandler()
			a.Register(ha)
			b.Send(peerOf(a), []raft.Message{heartbeat("b", "a", 1)})
			waitFor(t, "b's message at a", func() bool { return ha.count() == 1 })
			if got := a.learnedAddr("b"); got != addr {
				t.Fatalf("a learned %q for b advertising %q, want %q", got, bo.AdvertiseAddr, addr)
			}
			a.Send(raft.Peer{ID: "b"}, []raft.Message{heartbeat("a", "b", 1)})
			waitFor(t, "a's answer at b", func() bool { return hb.count() == 1 })
		})
	}
}

func TestLearnable(t *testing.T) {
	v4 := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5555}
	v6 := &net.TCPAddr{IP: net.ParseIP("::1"), Port: 5555}
	cases := []struct {
		adv    string
		remote net.Addr
		want   string
	}{
		{"10.0.0.1:7000", v4, "10.0.0.1:7000"},
		{"node1.example:7000", v4, "node1.example:7000"},
		{"0.0.0.0:7000", v4, "127.0.0.1:7000"},
		{"[::]:7000", v4, "127.0.0.1:7000"},
		{":7000", v4, "127.0.0.1:7000"},
		{":7000", v6, "[::1]:7000"},
		{":7000", &net.UnixAddr{Name: "x"}, ""},
		{"garbage", v4, ""},
	}
	for _, c := range cases {
		if got := learnable(c.adv, c.remote); got != c.want {
			t.Errorf("learnable(%q, %v) = %q, want %q", c.adv, c.remote, got, c.want)
		}
	}
}

// TestLegacyHelloAccepted: a dialer that sends the 4-field hello (no
// address) is accepted; nothing is learned from it.
func TestLegacyHelloAccepted(t *testing.T) {
	b, hb, _ := loggedNode(t, testOptions("b"))
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := writeFrame(conn, frameHello, legacyHello("test-cluster", "a", "b", kindMessages)); err != nil {
		t.Fatal(err)
	}
	typ, body, err := readFrame(conn, maxHandshakeFrame, nil)
	if err != nil || typ != frameHelloReply {
		t.Fatalf("reply: %v %v", typ, err)
	}
	if r, err := decodeHelloReply(body); err != nil || !r.OK {
		t.Fatalf("legacy hello refused: %+v %v", r, err)
	}
	if err := writeFrame(conn, frameMessage, encodeForTest(t, heartbeat("a", "b", 1))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message", func() bool { return hb.count() == 1 })
	if got := b.learnedAddr("a"); got != "" {
		t.Fatalf("learned %q from a hello without an address", got)
	}
}

// TestBadAdvertisedAddrRefused: a hello whose address is not host:port is
// refused with a reason before any message is delivered.
func TestBadAdvertisedAddrRefused(t *testing.T) {
	b, hb, logs := loggedNode(t, testOptions("b"))
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := hello{ClusterID: "test-cluster", From: "a", To: "b", Kind: kindMessages, Addr: "no-port"}
	if err := writeFrame(conn, frameHello, encodeHello(h)); err != nil {
		t.Fatal(err)
	}
	typ, body, err := readFrame(conn, maxHandshakeFrame, nil)
	if err != nil || typ != frameHelloReply {
		t.Fatalf("reply: %v %v", typ, err)
	}
	r, err := decodeHelloReply(body)
	if err != nil || r.OK || !strings.Contains(r.Reason, "bad advertised address") {
		t.Fatalf("reply %+v, %v; want a refusal naming the bad address", r, err)
	}
	waitClosed(t, conn, waitTimeout)
	logs.waitLog(t, "refused inbound connection", "bad advertised address", "peer=a")
	if hb.count() != 0 || b.learnedAddr("a") != "" {
		t.Fatal("a refused peer delivered messages or taught an address")
	}
}

func TestLearnedAddrTableBounded(t *testing.T) {
	a := listen(t, testOptions("a"))
	for i := range maxLearnedAddrs + 100 {
		a.learnAddr(raft.NodeID(fmt.Sprintf("n%d", i)), "127.0.0.1:1")
	}
	a.addrMu.Lock()
	n := len(a.learned)
	a.addrMu.Unlock()
	if n != maxLearnedAddrs {
		t.Fatalf("table holds %d addresses, want the bound %d", n, maxLearnedAddrs)
	}
	last := raft.NodeID(fmt.Sprintf("n%d", maxLearnedAddrs+99))
	if a.learnedAddr(last) == "" {
		t.Fatal("the newest address was not kept")
	}
}

func TestSendSnapshotUsesLearnedAddr(t *testing.T) {
	a := listen(t, testOptions("a"))
	ha := newHandler()
	a.Register(ha)
	b := listen(t, testOptions("b"))
	hb := newHandler()
	b.Register(hb)
	m := raft.Message{Type: raft.MsgSnap, From: "a", To: "b", Snapshot: &raft.SnapshotMeta{Index: 5, Term: 1}}
	ctx := context.Background()
	err := a.SendSnapshot(ctx, raft.Peer{ID: "b"}, m, bytes.NewReader([]byte("state")))
	if !errors.Is(err, raft.ErrPeerUnreachable) {
		t.Fatalf("snapshot to a node with no known address: %v, want ErrPeerUnreachable", err)
	}
	b.Send(peerOf(a), []raft.Message{heartbeat("b", "a", 1)})
	waitFor(t, "b's message at a", func() bool { return ha.count() == 1 })
	if err := a.SendSnapshot(ctx, raft.Peer{ID: "b"}, m, bytes.NewReader([]byte("state"))); err != nil {
		t.Fatalf("snapshot to the learned address: %v", err)
	}
	if hb.snapCount() != 1 {
		t.Fatalf("b received %d snapshots, want 1", hb.snapCount())
	}
}

// TestOnlyAuthenticatedHandshakesTeachAddresses: under TLS a dialer whose
// certificate does not prove the ID it claims is refused and teaches no
// address; an authenticated one does.
func TestOnlyAuthenticatedHandshakesTeachAddresses(t *testing.T) {
	ca := newCA(t, "ca")
	a, ha, logsA := secureNode(t, "a", nodeTLS(t, ca, ca, "a"))
	impostor, hi, _ := secureNode(t, "b", nodeTLS(t, ca, ca, "mallory"))
	expectRefused(t, impostor, hi, a, ha, logsA, "refused inbound connection", "certificate identity mismatch")
	if got := a.learnedAddr("b"); got != "" {
		t.Fatalf("a refused handshake taught address %q", got)
	}
	b, _, _ := secureNode(t, "b", nodeTLS(t, ca, ca, "b"))
	b.Send(peerOf(a), []raft.Message{heartbeat("b", "a", 1)})
	waitFor(t, "b's message at a", func() bool { return ha.count() == 1 })
	if got := a.learnedAddr("b"); got != b.Addr() {
		t.Fatalf("a learned %q for the authenticated b, want %q", got, b.Addr())
	}
}
