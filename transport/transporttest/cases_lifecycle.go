package transporttest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// testUnreachablePeer: Send to a peer whose endpoint is closed (nothing
// listens at its address) never blocks, and the sender's handler is
// eventually told the peer is unreachable.
func testUnreachablePeer(c *cluster) {
	t := c.t
	a, b := c.nodes[0], c.nodes[1]
	c.closeNode(b)
	idx := uint64(0)
	waitFor(t, "ReportUnreachable for the closed peer", func() bool {
		idx++
		c.send(a, b, heartbeat(a.id, b.id, idx))
		return a.rec.unreachableCount(b.id) > 0
	})
}

// testStuckReceiver: when the receiver's handler blocks, Send keeps returning
// at once, the sender's queue overflows and the peer is reported
// unreachable, but not once per lost message; other peers still get their
// messages; and once the handler unblocks, what arrived holds no duplicates,
// and messages flow again, in order and without loss.
func testStuckReceiver(c *cluster) {
	t := c.t
	a, b, other := c.nodes[0], c.nodes[1], c.nodes[2]
	wait, release := c.gate()
	b.rec.setOnMessage(func(raft.Message) { <-wait })

	const batch, maxMessages = 64, 200_000
	data := make([]byte, 1<<10) // shared read-only by every message
	idx := uint64(0)
	flood := func() {
		msgs := make([]raft.Message, batch)
		for i := range msgs {
			idx++
			msgs[i] = raft.Message{Type: raft.MsgApp, From: a.id, To: b.id, Term: 1, Index: idx,
				Entries: []raft.Entry{{Index: idx, Term: 1, Data: data}}}
		}
		c.send(a, b, msgs...)
	}
	start := time.Now()
	for sent := 0; a.rec.unreachableCount(b.id) == 0; sent += batch {
		if sent >= maxMessages || time.Since(start) > waitTimeout {
			// Reports are asynchronous: give the last one a moment.
			waitFor(t, "ReportUnreachable after the sender's queue to a stuck peer overflowed",
				func() bool { return a.rec.unreachableCount(b.id) > 0 })
			break
		}
		flood()
	}
	t.Logf("unreachable reported after %d messages in %v", idx, time.Since(start).Round(time.Millisecond))

	// The queue is full: every further message is lost, and reported, but
	// at most about once per Send (a transport that reports every lost
	// message keeps a leader's follower probing).
	const more = 50
	before := a.rec.unreachableCount(b.id)
	for range more {
		flood()
	}
	c.send(a, other, heartbeat(a.id, other.id, 1))
	waitFor(t, "a message to another peer while one peer is stuck", func() bool { return other.rec.count(a.id) >= 1 })
	if n := a.rec.unreachableCount(b.id) - before; n > 2*more+10 {
		t.Fatalf("%d Send calls of %d messages each to a peer with a full queue gave %d ReportUnreachable calls: report once per Send or per failure, not per lost message",
			more, batch, n)
	}

	release()
	c.fence(a, b, idx+1)
	// A loss was reported, so a new connection may have overtaken the old
	// one: only duplicates are ruled out.
	c.checkArrivals("messages from the stuck period", b.rec.from(a.id), true)
	// The link has recovered: nothing is lost any more.
	// (Indexes far above the fence's, which may still be arriving.)
	c.exchange("messages after the receiver recovered", a, b, idx+1<<20, 50)
}

// testCloseInFlight: closing both ends while messages and a snapshot are in
// flight neither panics nor deadlocks; afterwards Send returns at once,
// SendSnapshot fails, and Register is harmless.
func testCloseInFlight(c *cluster) {
	t := c.t
	a, b := c.nodes[0], c.nodes[1]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent atomic.Int64
	flood := func(from, to *node) {
		defer wg.Done()
		for idx := uint64(1); ; idx++ {
			select {
			case <-stop:
				return
			default:
			}
			msgs := []raft.Message{heartbeat(from.id, to.id, idx), heartbeat(from.id, to.id, idx)}
			if err := timedSend(from.tr, to.peer(), msgs); err != nil {
				t.Error(err)
				return
			}
			sent.Add(2)
			time.Sleep(50 * time.Microsecond) // pace the flood; not a wait for state
		}
	}
	wg.Add(4)
	go flood(a, b)
	go flood(a, b)
	go flood(b, a)
	go flood(b, a)

	// An endless snapshot: it can only end because an endpoint closes.
	snapCtx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
	defer cancel()
	snapErr := sendSnapshotAsync(snapCtx, a, b, snapMessage(a.id, b.id, 0), newGenerator(5, 1<<62))
	waitFor(t, "traffic in both directions and a snapshot in progress", func() bool {
		return a.rec.count(b.id) > 0 && b.rec.count(a.id) > 0 && snapsStarted(b.rec) > 0
	})

	a.closed, b.closed = true, true
	closeErr := make(chan error, 2)
	go func() { closeErr <- a.close() }()
	go func() { closeErr <- b.close() }()
	for i := 0; i < 2; i++ {
		select {
		case err := <-closeErr:
			if err != nil {
				t.Errorf("Close with traffic in flight: %v", err)
			}
		case <-after(waitTimeout):
			t.Fatalf("Close with traffic in flight did not return within %v", waitTimeout)
		}
	}
	if err := c.result("SendSnapshot interrupted by Close", snapErr); err == nil {
		t.Error("an endless snapshot returned nil although both ends closed")
	}

	// After Close: Send must neither block nor panic, SendSnapshot must fail.
	for i := 0; i < 10; i++ {
		if err := timedSend(a.tr, b.peer(), []raft.Message{heartbeat(a.id, b.id, 1)}); err != nil {
			t.Errorf("after Close: %v", err)
		}
		if err := timedSend(b.tr, a.peer(), []raft.Message{heartbeat(b.id, a.id, 1)}); err != nil {
			t.Errorf("after Close: %v", err)
		}
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), 3*waitTimeout)
	defer cancel2()
	if err := c.result("SendSnapshot after Close",
		sendSnapshotAsync(ctx, a, b, snapMessage(a.id, b.id, 1<<20), newGenerator(6, 1<<20))); err == nil {
		t.Error("SendSnapshot after Close returned nil")
	}
	a.tr.Register(newRecorder(t, a.id))
	a.tr.Register(nil)

	close(stop)
	wg.Wait()
	t.Logf("%d messages sent around Close", sent.Load())
}

func snapsStarted(r *recorder) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snaps
}

// testPeerRestart: a peer that closes and reopens at the same address gets
// messages again, without loss once both ends are up, can send, and can
// receive a snapshot; and it never gets again a message its previous
// incarnation received.
func testPeerRestart(c *cluster) {
	t := c.t
	a, b := c.nodes[0], c.nodes[1]
	c.send(a, b, heartbeat(a.id, b.id, 1))
	waitFor(t, "a message before the restart", func() bool { return b.rec.count(a.id) >= 1 })

	c.closeNode(b)
	c.send(a, b, heartbeat(a.id, b.id, 2)) // lost, but must not block

	tr, err := b.restart()
	if err != nil {
		t.Fatalf("restart %s: %v", b.id, err)
	}
	if tr == nil {
		t.Fatalf("restart %s returned no transport", b.id)
	}
	b.tr, b.closed = tr, false
	b.rec = newRecorder(t, b.id)
	b.tr.Register(b.rec)

	c.fence(a, b, 100)
	c.fence(b, a, 100)
	// Losses were reported (the peer was down): only duplicates are ruled
	// out for the messages around the restart.
	c.checkArrivals("messages to the restarted peer", b.rec.from(a.id), true)
	// Both directions are healthy again: nothing is lost.
	// (Indexes far above the fences', which may still be arriving.)
	c.exchange("messages to the restarted peer", a, b, 1<<20, 20)
	c.exchange("messages from the restarted peer", b, a, 1<<20, 20)
	if b.rec.has(a.id, func(m raft.Message) bool { return m.Index == 1 }) {
		t.Fatalf("the restarted peer got message 1 again, which its previous incarnation had received: a transport never resends a message it may have delivered")
	}

	// The snapshot may need a retry while the sender notices the restart.
	deadline := time.Now().Add(waitTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		err := c.result("SendSnapshot after restart",
			sendSnapshotAsync(ctx, a, b, snapMessage(a.id, b.id, 1<<20), newGenerator(8, 1<<20)))
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SendSnapshot to the restarted peer: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // retry pacing
	}
}
