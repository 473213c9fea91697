package tcp

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// stuckPeer is a fake node that completes the handshake on every
// connection, never reads its first connection again (a paused process),
// and delivers the messages of later connections to got.
type stuckPeer struct {
	ln    net.Listener
	id    raft.NodeID
	quit  chan struct{} // closed when the test ends
	mu    sync.Mutex
	conns []net.Conn
	got   chan stuckMsg
}

type stuckMsg struct {
	m    raft.Message
	conn int // which connection, in accept order from 0
	at   time.Time
}

func startStuckPeer(t *testing.T, id raft.NodeID) *stuckPeer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stuckPeer{ln: ln, id: id, quit: make(chan struct{}), got: make(chan stuckMsg, 1<<16)}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(p.quit)
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			if i == 0 {
				_ = c.(*net.TCPConn).SetReadBuffer(4 << 10) // fills up at once
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.serve(i, c)
			}()
		}
	}()
	return p
}

func (p *stuckPeer) serve(i int, c net.Conn) {
	if _, _, err := readFrame(c, maxHandshakeFrame, nil); err != nil {
		return
	}
	reply := helloReply{OK: true, ClusterID: "test-cluster", NodeID: p.id}
	if err := writeFrame(c, frameHelloReply, encodeHelloReply(reply)); err != nil {
		return
	}
	if i == 0 {
		<-p.quit // never reads again
		return
	}
	for {
		typ, body, err := readFrame(c, DefaultMaxFrameSize, nil)
		if err != nil {
			return
		}
		if typ != frameMessage {
			continue
		}
		if m, err := decodeMessage(body); err == nil {
			p.got <- stuckMsg{m: m, conn: i, at: time.Now()}
		}
	}
}

func (p *stuckPeer) peer() raft.Peer { return raft.Peer{ID: p.id, Addr: p.ln.Addr().String()} }

// writeWatch records when the write in progress on a connection began.
type writeWatch struct {
	net.Conn
	since *atomic.Int64 // UnixNano of the current Write's start; 0 between writes
}

func (c writeWatch) Write(b []byte) (int, error) {
	c.since.Store(time.Now().UnixNano())
	n, err := c.Conn.Write(b)
	c.since.Store(0)
	return n, err
}

// TestStalledPeerDoesNotDelayVotes: the writer to a peer that stops
// reading blocks once the socket buffers are full. Messages to a third
// peer are not delayed meanwhile, and a vote to the stalled peer goes out
// on a fresh connection within WriteStallTimeout plus a redial, far below
// an election timeout (before, it waited for the 10 s WriteTimeout).
func TestStalledPeerDoesNotDelayVotes(t *testing.T) {
	const bound = time.Second
	a := listen(t, testOptions("a"))
	c, hc, _ := loggedNode(t, testOptions("c"))
	x := startStuckPeer(t, "x")

	var since atomic.Int64
	dial := a.dial
	a.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil || addr != x.ln.Addr().String() {
			return conn, err
		}
		_ = conn.(*net.TCPConn).SetWriteBuffer(16 << 10)
		return writeWatch{Conn: conn, since: &since}, nil
	}
	// 1 MiB of appends: far more than the stalled connection's buffers.
	// (Whatever is still queued after the stall goes out on the new
	// connection before the vote: the transport keeps the order.)
	var msgs []raft.Message
	for i := range 8 {
		msgs = append(msgs, raft.Message{Type: raft.MsgApp, From: "a", To: "x", Index: uint64(i + 1),
			Entries: []raft.Entry{{Index: uint64(i + 2), Data: make([]byte, 128<<10)}}})
	}
	a.Send(x.peer(), msgs)
	waitFor(t, "the writer to x to be blocked in a write", func() bool {
		s := since.Load()
		return s != 0 && time.Since(time.Unix(0, s)) > 20*time.Millisecond
	})
	blocked := time.Unix(0, since.Load())

	// The third peer is not held up by the stalled writer.
	times := deliveryTimes(t, a, peerOf(c), hc, 10, 200*time.Millisecond)
	if s := since.Load(); s == 0 {
		t.Logf("note: the stalled write ended after %v, while heartbeats to c were measured", time.Since(blocked))
	}

	voteAt := time.Now()
	a.Send(x.peer(), []raft.Message{{Type: raft.MsgVote, From: "a", To: "x", Term: 2, Index: 100, LogTerm: 1}})
	deadline := time.After(3 * bound)
	for {
		select {
		case got := <-x.got:
			if got.m.Type != raft.MsgVote {
				continue
			}
			took := got.at.Sub(voteAt)
			t.Logf("heartbeats to c during the stall: max %v; vote to the stalled peer arrived on connection %d "+
				"%v after it was sent (%v after the write blocked; WriteStallTimeout %v)",
				maxDuration(times), got.conn, took, got.at.Sub(blocked), a.opts.WriteStallTimeout)
			if got.conn == 0 {
				t.Fatal("the vote came over the stalled connection")
			}
			if took > bound {
				t.Fatalf("the vote took %v to reach the stalled peer, bound %v", took, bound)
			}
			return
		case <-deadline:
			t.Fatalf("the vote did not reach the stalled peer within %v (bound %v)", 3*bound, bound)
		}
	}
}
