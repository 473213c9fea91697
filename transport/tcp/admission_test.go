package tcp

import (
	"net"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// addrConn is a net.Conn that only has a remote address.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }
func (c addrConn) Close() error         { return nil }

func fakeInConn(ip string) *inConn {
	c := addrConn{remote: &net.TCPAddr{IP: net.ParseIP(ip), Port: 1}}
	return &inConn{raw: c, ip: sourceIP(c)}
}

func testAdmission() *admission {
	return newAdmission(&Options{LocalID: "b", MaxPendingConns: 2, MaxConnsPerIP: 2, MaxInboundConns: 4,
		HandshakeTimeout: time.Second})
}

// TestAdmissionParksAndServesInOrder: beyond the pending limits
// connections are parked; nothing is evicted before minPendingAge; then
// the pending connection with the fewest bytes goes first, freed slots go
// to the IP with the fewest pending connections, in arrival order per IP.
func TestAdmissionParksAndServesInOrder(t *testing.T) {
	a := testAdmission()
	t0 := time.Now()
	ids := func(cs []*inConn) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ip)
		}
		return out
	}
	c1, c2 := fakeInConn("10.0.0.1"), fakeInConn("10.0.0.1")
	for _, c := range []*inConn{c1, c2} {
		if start, drop := a.accept(c, t0); start != c || drop != nil {
			t.Fatalf("first connections: start %v, drop %v", start, drop)
		}
	}
	c1.received.Store(10) // c1 has sent a few bytes, c2 nothing; both wait for more
	c1.waiting.Store(t0.UnixNano())
	c2.waiting.Store(t0.UnixNano())
	p1, p2, q := fakeInConn("10.0.0.1"), fakeInConn("10.0.0.1"), fakeInConn("10.0.0.2")
	for _, c := range []*inConn{p1, p2, q} {
		if start, drop := a.accept(c, t0); start != nil || drop != nil {
			t.Fatalf("over the limits: start %v, drop %v; want parked", start, drop)
		}
	}
	if c := a.counts(); c.pending != 2 || c.parked != 3 {
		t.Fatalf("counts %+v, want 2 pending and 3 parked", c)
	}
	if stale, evicted, start := a.sweep(t0.Add(minPendingAge / 2)); len(stale)+len(evicted)+len(start) != 0 {
		t.Fatalf("sweep before minPendingAge: stale %v, evicted %v, start %v", ids(stale), ids(evicted), ids(start))
	}
	stale, evicted, start := a.sweep(t0.Add(minPendingAge))
	if len(stale) != 0 || len(evicted) != 2 || evicted[0] != c2 || evicted[1] != c1 {
		t.Fatalf("evicted %v (c2 first: it sent nothing), stale %v", ids(evicted), ids(stale))
	}
	// 10.0.0.2 has no pending connection, so it is served first; then
	// 10.0.0.1's queue in order.
	if len(start) != 2 || start[0] != q || start[1] != p1 {
		t.Fatalf("started %v, want q (the IP with none pending) then p1", ids(start))
	}
	// p2 waited past the handshake timeout: its dialer gave up.
	stale, _, _ = a.sweep(t0.Add(time.Second))
	if len(stale) != 1 || stale[0] != p2 {
		t.Fatalf("stale %v, want p2", ids(stale))
	}
	// q completes; the slot is free for new connections again.
	if _, reason, _, start := a.establish(q, "q"); reason != "" || len(start) != 0 {
		t.Fatalf("establish: %q, start %v", reason, ids(start))
	}
	if c := a.counts(); c.pending != 1 || c.parked != 0 || c.shared != 1 {
		t.Fatalf("counts %+v", c)
	}
}

func TestAdmissionParkingBounded(t *testing.T) {
	a := testAdmission()
	now := time.Now()
	for range 2 + parkedPerPendingPerIP*2 {
		if _, drop := a.accept(fakeInConn("10.0.0.1"), now); drop != nil {
			t.Fatal("dropped within the parking bound")
		}
	}
	if _, drop := a.accept(fakeInConn("10.0.0.1"), now); drop == nil {
		t.Fatal("parked past the per-IP bound")
	}
	if _, drop := a.accept(fakeInConn("10.0.0.9"), now); drop != nil {
		t.Fatal("another IP was refused parking")
	}
}

func TestAdmissionSetPeers(t *testing.T) {
	a := testAdmission()
	now := time.Now()
	est := func(ip string, id raft.NodeID) (*inConn, string) {
		c := fakeInConn(ip)
		a.accept(c, now)
		_, reason, _, _ := a.establish(c, id)
		return c, reason
	}
	x, _ := est("10.0.0.1", "x")
	y, _ := est("10.0.0.2", "y")
	if evicted := a.setPeers([]raft.Peer{{ID: "y"}, {ID: "b"}}); len(evicted) != 1 || evicted[0] != x {
		t.Fatalf("setPeers evicted %v, want x", evicted)
	}
	if c := a.counts(); c.shared != 0 || c.members != 1 || y.state != stateMember {
		t.Fatalf("counts %+v, y %v", c, y.state)
	}
	if _, reason := est("10.0.0.1", "b"); reason == "" {
		t.Fatal("a connection claiming this node's own ID was admitted")
	}
	for range maxConnsPerPeer {
		if _, reason := est("10.0.0.2", "y"); reason != "" {
			t.Fatalf("member refused: %s", reason)
		}
	}
	if y.state != stateGone {
		t.Fatal("y's oldest connection was kept past maxConnsPerPeer")
	}
}
