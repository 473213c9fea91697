package tcp

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/typedraft/typedraft/raft"
)

// TestPlaintextListenRefusesNonLoopback: without TLS, Listen binds only
// loopback addresses unless InsecurePlaintext is set; the error names the
// option. Nothing here binds a non-loopback address: the refusal happens
// before the bind.
func TestPlaintextListenRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0", "192.0.2.1:0", "[2001:db8::1]:0", "10.1.2.3:0"} {
		tr, err := Listen(addr, testOptions("a"))
		if err == nil {
			_ = tr.Close()
			t.Errorf("plaintext Listen(%q) succeeded (bound %s)", addr, tr.Addr())
			continue
		}
		if !errors.Is(err, ErrPlaintextNotLoopback) || !strings.Contains(err.Error(), "InsecurePlaintext") {
			t.Errorf("Listen(%q): error %q does not match ErrPlaintextNotLoopback and name InsecurePlaintext", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "127.0.0.2:0", "localhost:0"} {
		tr, err := Listen(addr, testOptions("a"))
		if err != nil {
			t.Errorf("plaintext Listen(%q): %v", addr, err)
			continue
		}
		_ = tr.Close()
	}
}

func TestIsLoopbackListenHost(t *testing.T) {
	cases := map[string]bool{
		"127.0.0.1": true, "127.255.0.9": true, "::1": true, "::ffff:127.0.0.1": true, "localhost": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "192.0.2.1": false, "fe80::1": false,
		"2001:db8::1": false, "128.0.0.1": false,
	}
	for host, want := range cases {
		if got := loopbackHost(context.Background(), net.DefaultResolver.LookupIPAddr, host) == nil; got != want {
			t.Errorf("loopbackHost(%q) ok = %v, want %v", host, got, want)
		}
	}
}

// recordingDial records dial targets and never connects.
type recordingDial struct {
	mu    sync.Mutex
	addrs []string
}

func (d *recordingDial) dial(_ context.Context, _, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	d.mu.Unlock()
	return nil, errors.New("test: dial recorded, not connected")
}

func (d *recordingDial) calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

// TestPlaintextSendToNonLoopbackNeverDials: in plaintext, a Send to a peer
// at a non-loopback address (literal or a name that resolves outside
// loopback) fails with a logged error naming InsecurePlaintext and reports
// the peer unreachable, without ever dialing; SendSnapshot fails the same
// way. Loopback names and literals are dialed (at the resolved IP).
func TestPlaintextSendToNonLoopbackNeverDials(t *testing.T) {
	o := testOptions("a")
	logger, logs := newLogger("a")
	o.Logger = logger
	a := listen(t, o)
	h := newHandler()
	a.Register(h)
	d := &recordingDial{}
	a.dial = d.dial
	a.lookupIP = func(_ context.Context, host string) ([]net.IPAddr, error) {
		switch host {
		case "db.example": // one loopback and one routable address: not loopback
			return []net.IPAddr{{IP: net.ParseIP("127.0.0.1")}, {IP: net.ParseIP("192.0.2.7")}}, nil
		case "local.example":
			return []net.IPAddr{{IP: net.ParseIP("127.0.0.9")}}, nil
		}
		return nil, errors.New("test: no such host")
	}
	for i, addr := range []string{"192.0.2.1:7000", "[2001:db8::1]:7000", "db.example:7000", "0.0.0.0:7000"} {
		id := raft.NodeID("p" + string(rune('0'+i)))
		a.Send(raft.Peer{ID: id, Addr: addr}, []raft.Message{heartbeat("a", id, 1)})
		waitFor(t, "a report that "+string(id)+" is unreachable", func() bool { return h.unreachableCount(id) > 0 })
		logs.waitLog(t, "dial failed", "peer="+string(id), "InsecurePlaintext")
		err := a.SendSnapshot(context.Background(), raft.Peer{ID: id, Addr: addr},
			raft.Message{Type: raft.MsgSnap, From: "a", To: id, Snapshot: &raft.SnapshotMeta{Index: 1}}, strings.NewReader("x"))
		if !errors.Is(err, ErrPlaintextNotLoopback) || !errors.Is(err, raft.ErrPeerUnreachable) {
			t.Errorf("SendSnapshot to %s: %v, want ErrPlaintextNotLoopback and ErrPeerUnreachable", addr, err)
		}
	}
	if got := d.calls(); len(got) != 0 {
		t.Fatalf("plaintext transport dialed non-loopback addresses %v", got)
	}
	a.Send(raft.Peer{ID: "q", Addr: "local.example:7000"}, []raft.Message{heartbeat("a", "q", 1)})
	waitFor(t, "a dial of the loopback name", func() bool { return len(d.calls()) > 0 })
	if got := d.calls()[0]; got != "127.0.0.9:7000" {
		t.Fatalf("dialed %q for local.example, want the resolved 127.0.0.9:7000", got)
	}
}

// TestInsecurePlaintextOptsIn: with InsecurePlaintext the same addresses
// are dialed (the dial is faked: nothing leaves loopback).
func TestInsecurePlaintextOptsIn(t *testing.T) {
	o := testOptions("a")
	o.InsecurePlaintext = true
	a := listen(t, o)
	h := newHandler()
	a.Register(h)
	d := &recordingDial{}
	a.dial = d.dial
	a.Send(raft.Peer{ID: "b", Addr: "192.0.2.1:7000"}, []raft.Message{heartbeat("a", "b", 1)})
	waitFor(t, "a dial", func() bool { return len(d.calls()) > 0 })
	if got := d.calls()[0]; got != "192.0.2.1:7000" {
		t.Fatalf("dialed %q, want 192.0.2.1:7000", got)
	}
	if err := checkListenAddr(context.Background(), "0.0.0.0:7000", &Options{InsecurePlaintext: true}); err != nil {
		t.Fatalf("InsecurePlaintext listen check: %v", err)
	}
	if err := checkListenAddr(context.Background(), "0.0.0.0:7000", &Options{TLS: nodeTLS(t, newCA(t, "ca"), newCA(t, "ca2"), "a")}); err != nil {
		t.Fatalf("TLS listen check: %v", err)
	}
}
