package tcp

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// floodBound is how long a legitimate peer's heartbeat may take to get
// through a connection flood. Without the limits it took seconds (until
// the flood's handshakes timed out) or never arrived.
const floodBound = time.Second

// partialHeader is the first byte of a frame header: a flood connection
// sending it is not silent, so eviction cannot tell it from a real peer by
// silence alone.
func partialHeader(int) []byte { return []byte{magic0} }

// TestRedialFloodDoesNotLockOutPeers: 300 sockets that connect, send one
// byte and redial whenever they are closed keep the handshake slots full;
// three real peers, one after another, each get their first heartbeat
// through within floodBound (over a connection dialed through the flood),
// in plaintext and over mutual TLS.
func TestRedialFloodDoesNotLockOutPeers(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", secure), func(t *testing.T) {
			var ca *testCA
			var b *Transport
			var hb *handler
			if secure {
				ca = newCA(t, "ca")
				b, hb, _ = secureNode(t, "b", nodeTLS(t, ca, ca, "b"))
			} else {
				b, hb, _ = loggedNode(t, testOptions("b"))
			}
			f := startFlood(t, 300, "", b.Addr(), partialHeader)
			waitFor(t, "the flood to connect 600 times", func() bool { return f.dials.Load() >= 600 })
			var times []time.Duration
			for i := range 3 {
				id := raft.NodeID(fmt.Sprintf("a%d", i))
				var a *Transport
				if secure {
					a, _, _ = secureNode(t, id, nodeTLS(t, ca, ca, id))
				} else {
					a = listen(t, testOptions(id))
				}
				times = append(times, deliveryTimes(t, a, peerOf(b), hb, 1, floodBound)...)
				_ = a.Close()
			}
			t.Logf("first heartbeats of 3 peers through a flood of 300 redialling sockets (%d dials): %v",
				f.dials.Load(), times)
		})
	}
}

// TestNonMemberHelloFloodDoesNotLockOutPeers: 260 connections that
// complete a hello as nodes outside the configuration are refused after
// the hello once SetPeers has named it, so they cannot hold the inbound
// slots; a configured peer's heartbeats arrive within floodBound.
func TestNonMemberHelloFloodDoesNotLockOutPeers(t *testing.T) {
	bo := testOptions("b")
	bo.ReadTimeout = time.Minute // idle stranger connections would stay for good
	a := listen(t, testOptions("a"))
	b, hb, logs := loggedNode(t, bo)
	b.SetPeers([]raft.Peer{{ID: "a"}, {ID: "b"}, {ID: "c"}})
	stop := make(chan struct{})
	done := make(chan struct{})
	var refused, accepted int
	var hellos atomic.Int64
	go func() {
		defer close(done)
		var open []net.Conn
		defer func() {
			for _, c := range open {
				_ = c.Close()
			}
		}()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c, r, err := rawHello("", b.Addr(), raft.NodeID(fmt.Sprintf("x%d", i%260)), "b")
			hellos.Add(1)
			if err != nil {
				continue
			}
			if r.OK {
				accepted++
				open = append(open, c) // a stranger that got in holds its slot
				continue
			}
			refused++
			_ = c.Close()
		}
	}()
	waitFor(t, "300 hellos from strangers", func() bool { return hellos.Load() >= 300 })
	times := deliveryTimes(t, a, peerOf(b), hb, 10, floodBound)
	close(stop)
	<-done
	t.Logf("heartbeats through a flood of non-member hellos (%d refused, %d accepted): first %v, max %v",
		refused, accepted, times[0], maxDuration(times))
	if accepted != 0 {
		t.Fatalf("%d hellos from nodes outside the configuration were accepted", accepted)
	}
	logs.waitLog(t, "refused inbound connection", "is not a member")
}

// TestSetPeersRefusesStrangers: after SetPeers, a hello from an ID outside
// the configuration is refused with a reason (under TLS too, with a valid
// certificate for that ID), established connections from such IDs are
// closed, and configured peers take reserved slots that the shared limit
// does not count.
func TestSetPeersRefusesStrangers(t *testing.T) {
	bo := testOptions("b")
	bo.MaxInboundConns = 2
	b, hb, logs := loggedNode(t, bo)
	var strangers []net.Conn
	for _, id := range []raft.NodeID{"x1", "x2"} {
		c, r, err := rawHello("", b.Addr(), id, "b")
		if err != nil || !r.OK {
			t.Fatalf("hello as %s before SetPeers: %+v %v", id, r, err)
		}
		defer c.Close()
		strangers = append(strangers, c)
	}
	// The shared pool is full: before SetPeers even a future member waits.
	if _, r, err := rawHello("", b.Addr(), "a", "b"); err != nil || r.OK || !strings.Contains(r.Reason, "MaxInboundConns") {
		t.Fatalf("hello past MaxInboundConns: %+v %v, want a refusal naming the limit", r, err)
	}
	b.SetPeers([]raft.Peer{{ID: "a"}, {ID: "b"}})
	for _, c := range strangers {
		waitClosed(t, c, waitTimeout)
	}
	logs.waitLog(t, "closed inbound connections from nodes outside the configuration", "count=2")
	if _, r, err := rawHello("", b.Addr(), "x3", "b"); err != nil || r.OK || !strings.Contains(r.Reason, `node "x3" is not a member`) {
		t.Fatalf("stranger's hello after SetPeers: %+v %v, want a refusal", r, err)
	}
	if _, r, err := rawHello("", b.Addr(), "b", "b"); err != nil || r.OK {
		t.Fatalf("hello claiming b's own ID: %+v %v, want a refusal", r, err)
	}
	// Members are not limited by MaxInboundConns (2): three connections as a.
	for i := range 3 {
		c, r, err := rawHello("", b.Addr(), "a", "b")
		if err != nil || !r.OK {
			t.Fatalf("member hello %d: %+v %v", i, r, err)
		}
		defer c.Close()
		if err := writeFrame(c, frameMessage, encodeForTest(t, heartbeat("a", "b", uint64(i+1)))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the member's three messages", func() bool { return hb.count() == 3 })
	if c := b.adm.counts(); c.shared != 0 || c.members != 3 {
		t.Fatalf("admission counts %+v, want 3 members and nothing shared", c)
	}

	ca := newCA(t, "ca")
	bt, hbt, logsT := secureNode(t, "b", nodeTLS(t, ca, ca, "b"))
	bt.SetPeers([]raft.Peer{{ID: "a"}, {ID: "b"}})
	x, hx, _ := secureNode(t, "x", nodeTLS(t, ca, ca, "x")) // certified, but not a member
	expectRefused(t, x, hx, bt, hbt, logsT, "refused inbound connection", `node \"x\" is not a member`)
	at, _, _ := secureNode(t, "a", nodeTLS(t, ca, ca, "a"))
	at.Send(peerOf(bt), []raft.Message{heartbeat("a", "b", 1)})
	waitFor(t, "the member's message over TLS", func() bool { return hbt.count() == 1 })
}

// TestPerPeerConnectionCap: one ID holds at most maxConnsPerPeer
// connections; a new one closes its oldest, so a restarted peer gets in.
func TestPerPeerConnectionCap(t *testing.T) {
	b, _, _ := loggedNode(t, testOptions("b"))
	b.SetPeers([]raft.Peer{{ID: "a"}})
	var conns []net.Conn
	for i := range maxConnsPerPeer + 1 {
		c, r, err := rawHello("", b.Addr(), "a", "b")
		if err != nil || !r.OK {
			t.Fatalf("hello %d: %+v %v", i, r, err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	waitClosed(t, conns[0], waitTimeout)
	if c := b.adm.counts(); c.members != maxConnsPerPeer {
		t.Fatalf("admission counts %+v, want %d members", c, maxConnsPerPeer)
	}
}

// TestPerSourceIPLimit: one source IP gets at most MaxConnsPerIP of the
// shared slots (the rest are refused with a reason) and cannot evict the
// pending handshakes of other IPs; a peer from another IP gets in even
// though the shared pool would otherwise be full.
func TestPerSourceIPLimit(t *testing.T) {
	bo := testOptions("b")
	bo.MaxInboundConns = 8
	bo.MaxConnsPerIP = 6
	bo.MaxPendingConns = 8
	a := listen(t, testOptions("a"))
	b, hb, logs := loggedNode(t, bo)

	// Three silent, pending connections from 127.0.0.3.
	var quiet []net.Conn
	for range 3 {
		c, err := dialFrom("127.0.0.3", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		quiet = append(quiet, c)
	}
	waitFor(t, "three pending connections", func() bool { return b.adm.counts().pending == 3 })

	accepted, refused := 0, 0
	for i := range 10 {
		c, r, err := rawHello("127.0.0.2", b.Addr(), raft.NodeID(fmt.Sprintf("x%d", i)), "b")
		if err != nil {
			t.Fatalf("hello %d from 127.0.0.2: %v", i, err)
		}
		defer c.Close()
		if r.OK {
			accepted++
		} else {
			refused++
			if !strings.Contains(r.Reason, "MaxConnsPerIP") {
				t.Fatalf("refusal %q does not name MaxConnsPerIP", r.Reason)
			}
		}
	}
	if accepted != bo.MaxConnsPerIP {
		t.Fatalf("127.0.0.2 got %d shared slots, want MaxConnsPerIP = %d (%d refused)", accepted, bo.MaxConnsPerIP, refused)
	}
	logs.waitLog(t, "refused inbound connection", "too many connections from 127.0.0.2")

	// Twenty silent sockets from 127.0.0.2 fill the pending slots (5 of
	// them: 127.0.0.3 holds 3 of the 8) and evict only their own pending
	// connections, never 127.0.0.3's.
	for range 20 {
		c, err := dialFrom("127.0.0.2", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	waitFor(t, "127.0.0.2's connections to fill the pending slots and be evicted", func() bool {
		b.adm.mu.Lock()
		defer b.adm.mu.Unlock()
		return b.adm.pendingByIP["127.0.0.2"] == 5 && logs.contains("closing a pending inbound connection to make room")
	})
	for _, c := range quiet {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		var buf [1]byte
		if _, err := c.Read(buf[:]); err == nil || !isTimeout(err) {
			t.Fatalf("a pending connection from 127.0.0.3 was closed by another IP's flood: %v", err)
		}
	}

	a.Send(peerOf(b), []raft.Message{heartbeat("a", "b", 1)})
	waitFor(t, "a peer from 127.0.0.1", func() bool { return hb.count() == 1 })
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestLimitsValidated: the new limits are validated like the others.
func TestLimitsValidated(t *testing.T) {
	for name, o := range map[string]func(*Options){
		"MaxPendingConns":   func(o *Options) { o.MaxPendingConns = -1 },
		"MaxConnsPerIP":     func(o *Options) { o.MaxConnsPerIP = -1 },
		"MaxInflightBytes":  func(o *Options) { o.MaxFrameSize = 1 << 20; o.MaxInflightBytes = 1 << 19 },
		"WriteStallTimeout": func(o *Options) { o.WriteTimeout = time.Second; o.WriteStallTimeout = 2 * time.Second },
	} {
		opts := testOptions("a")
		o(opts)
		tr, err := Listen("127.0.0.1:0", opts)
		if err == nil {
			_ = tr.Close()
			t.Errorf("%s: Listen accepted %+v", name, opts)
			continue
		}
		if !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %q does not name it", name, err)
		}
	}
	opts := testOptions("a")
	opts.WriteTimeout = 100 * time.Millisecond
	tr := listen(t, opts)
	if tr.opts.WriteStallTimeout != 100*time.Millisecond || tr.opts.MaxInflightBytes != 2*DefaultMaxFrameSize {
		t.Fatalf("defaults: stall %v, inflight %d", tr.opts.WriteStallTimeout, tr.opts.MaxInflightBytes)
	}
}
