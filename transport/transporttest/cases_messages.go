package transporttest

import (
	"fmt"
	"math/rand"
	"sync"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// send calls from's Send to to and fails the test if it blocks.
func (c *cluster) send(from, to *node, msgs ...raft.Message) {
	c.t.Helper()
	if err := timedSend(from.tr, to.peer(), msgs); err != nil {
		c.t.Fatal(err)
	}
}

// timedSend calls tr.Send and returns an error if it took longer than
// sendBlockLimit. It is safe to call from any goroutine.
func timedSend(tr raft.Transport, to raft.Peer, msgs []raft.Message) error {
	start := time.Now()
	tr.Send(to, msgs)
	if d := time.Since(start); d > sendBlockLimit {
		return fmt.Errorf("Send of %d messages to %s blocked for %v", len(msgs), to.ID, d)
	}
	return nil
}

// checkIndexes fails unless msgs carry exactly the indexes first..last in
// order.
func (c *cluster) checkIndexes(what string, msgs []raft.Message, first, last uint64) {
	c.t.Helper()
	if want := int(last - first + 1); len(msgs) != want {
		c.t.Fatalf("%s: got %d messages, want %d", what, len(msgs), want)
	}
	for i, m := range msgs {
		if want := first + uint64(i); m.Index != want {
			c.t.Fatalf("%s: message %d has index %d, want %d (out of order or lost)", what, i, m.Index, want)
		}
	}
}

// testFieldRoundTrip: every field of every message type arrives unchanged,
// in both directions, whether sent in one batch or one by one; empty Sends
// are harmless.
func testFieldRoundTrip(c *cluster) {
	t := c.t
	a, b := c.nodes[0], c.nodes[1]
	c.send(a, b)
	c.send(a, b, []raft.Message{}...)

	c.send(a, b, sampleMessages(a.id, b.id)...)
	want := sampleMessages(a.id, b.id)
	waitFor(t, "sample batch to arrive", func() bool { return b.rec.count(a.id) >= len(want) })
	got := b.rec.from(a.id)
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if d := diffMessage(got[i], want[i]); d != "" {
			t.Errorf("message %d (%s) from batch: %s", i, want[i].Type, d)
		}
	}

	for _, m := range sampleMessages(b.id, a.id) {
		c.send(b, a, m)
	}
	want = sampleMessages(b.id, a.id)
	waitFor(t, "sample messages sent one by one to arrive", func() bool { return a.rec.count(b.id) >= len(want) })
	got = a.rec.from(b.id)
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if d := diffMessage(got[i], want[i]); d != "" {
			t.Errorf("message %d (%s) sent alone: %s", i, want[i].Type, d)
		}
	}
}

// testPerPeerOrdering: messages sent at a modest rate all arrive, in order;
// a burst may lose messages but what arrives is in send order, without
// duplicates.
func testPerPeerOrdering(c *cluster) {
	t := c.t
	a, b := c.nodes[0], c.nodes[1]
	const paced = 400
	for i := uint64(1); i <= paced; i++ {
		c.send(a, b, heartbeat(a.id, b.id, i))
		if i%50 == 0 {
			waitFor(t, fmt.Sprintf("%d paced messages", i), func() bool { return b.rec.count(a.id) >= int(i) })
		}
	}
	c.checkIndexes("paced messages", b.rec.from(a.id), 1, paced)

	const burst, batch = 3000, 30
	next := uint64(paced + 1)
	for sent := 0; sent < burst; sent += batch {
		msgs := make([]raft.Message, batch)
		for i := range msgs {
			msgs[i] = heartbeat(a.id, b.id, next)
			next++
		}
		c.send(a, b, msgs...)
	}
	fence := c.fence(a, b, next)
	got := b.rec.from(a.id)[paced:]
	last := uint64(paced)
	inBurst := 0
	for i, m := range got {
		if m.Index <= last {
			t.Fatalf("burst message %d has index %d after index %d: reordered or duplicated", i, m.Index, last)
		}
		last = m.Index
		if m.Index < fence {
			inBurst++
		}
	}
	if inBurst == 0 {
		t.Fatalf("none of %d burst messages arrived", burst)
	}
	t.Logf("%d of %d burst messages arrived", inBurst, burst)
}

// fence sends messages from a to b with indexes from first upwards until one
// arrives, and returns first. Everything a sent to b before has then either
// arrived or been lost.
func (c *cluster) fence(a, b *node, first uint64) uint64 {
	c.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for idx := first; ; idx++ {
		c.send(a, b, heartbeat(a.id, b.id, idx))
		if poll(100*time.Millisecond, func() bool {
			return b.rec.has(a.id, func(m raft.Message) bool { return m.Index >= first })
		}) {
			return first
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no fence message from %s reached %s within %v", a.id, b.id, waitTimeout)
		}
	}
}

// testLargeMessage: a MsgApp carrying 4 MiB of entries arrives intact, and
// the link keeps working after it.
func testLargeMessage(c *cluster) {
	t := c.t
	a, b := c.nodes[0], c.nodes[1]
	build := func() raft.Message {
		rng := rand.New(rand.NewSource(42))
		m := raft.Message{Type: raft.MsgApp, From: a.id, To: b.id, Term: 3, Index: 10, LogTerm: 3, Commit: 9}
		for i := 0; i < 16; i++ {
			data := make([]byte, 256<<10)
			rng.Read(data)
			m.Entries = append(m.Entries, raft.Entry{Index: uint64(11 + i), Term: 3, Data: data})
		}
		return m
	}
	c.send(a, b, build())
	waitFor(t, "the 4 MiB message", func() bool { return b.rec.count(a.id) >= 1 })
	if d := diffMessage(b.rec.from(a.id)[0], build()); d != "" {
		t.Fatalf("large message corrupted: %s", d)
	}
	c.send(a, b, heartbeat(a.id, b.id, 11))
	waitFor(t, "a message after the large one", func() bool { return b.rec.count(a.id) >= 2 })
	if got := b.rec.from(a.id)[1]; got.Index != 11 {
		t.Fatalf("second message has index %d, want 11", got.Index)
	}
}

// testManyPeers: five endpoints send to each other all at once; every
// message arrives, in order per sender, with the right From and To.
func testManyPeers(c *cluster) {
	t := c.t
	const rounds = 20
	var wg sync.WaitGroup
	for _, from := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := uint64(1); r <= rounds; r++ {
				for _, to := range c.nodes {
					if to == from {
						continue
					}
					if err := timedSend(from.tr, to.peer(), []raft.Message{heartbeat(from.id, to.id, r)}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, to := range c.nodes {
		for _, from := range c.nodes {
			if from == to {
				continue
			}
			waitFor(t, fmt.Sprintf("%s to receive %d messages from %s", to.id, rounds, from.id),
				func() bool { return to.rec.count(from.id) >= rounds })
			c.checkIndexes(fmt.Sprintf("%s->%s", from.id, to.id), to.rec.from(from.id), 1, rounds)
		}
	}
}

// testConcurrentSenders: eight goroutines share one transport to send to two
// peers while those peers send back; each goroutine's messages all arrive in
// the order it sent them.
func testConcurrentSenders(c *cluster) {
	t := c.t
	a, dests := c.nodes[0], c.nodes[1:]
	const senders, perSender, window = 8, 100, 20
	// mine counts the messages goroutine g sent from a that to received.
	mine := func(to *node, g uint64) []raft.Message {
		var out []raft.Message
		for _, m := range to.rec.from(a.id) {
			if m.Commit == g {
				out = append(out, m)
			}
		}
		return out
	}
	var wg sync.WaitGroup
	for g := uint64(1); g <= senders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := uint64(1); k <= perSender; k++ {
				for _, to := range dests {
					m := heartbeat(a.id, to.id, k)
					m.Commit = g
					if err := timedSend(a.tr, to.peer(), []raft.Message{m}); err != nil {
						t.Error(err)
						return
					}
				}
				if k%window == 0 {
					for _, to := range dests {
						if !poll(waitTimeout, func() bool { return len(mine(to, g)) >= int(k) }) {
							t.Errorf("sender %d: %s got %d of its first %d messages", g, to.id, len(mine(to, g)), k)
							return
						}
					}
				}
			}
		}()
	}
	for _, from := range dests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := uint64(1); k <= perSender; k++ {
				if err := timedSend(from.tr, a.peer(), []raft.Message{heartbeat(from.id, a.id, k)}); err != nil {
					t.Error(err)
					return
				}
				if k%window == 0 && !poll(waitTimeout, func() bool { return a.rec.count(from.id) >= int(k) }) {
					t.Errorf("%s: %s got %d of the first %d messages", from.id, a.id, a.rec.count(from.id), k)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, to := range dests {
		for g := uint64(1); g <= senders; g++ {
			c.checkIndexes(fmt.Sprintf("sender %d -> %s", g, to.id), mine(to, g), 1, perSender)
		}
		c.checkIndexes(fmt.Sprintf("%s -> %s", to.id, a.id), a.rec.from(to.id), 1, perSender)
	}
}

// testRegisterReplaces: after Register(nil) the old handler gets nothing
// more, and after Register(h2) messages reach h2.
func testRegisterReplaces(c *cluster) {
	t := c.t
	a, b := c.nodes[0], c.nodes[1]
	h1 := b.rec
	c.send(a, b, heartbeat(a.id, b.id, 1))
	waitFor(t, "first message", func() bool { return h1.count(a.id) >= 1 })

	b.tr.Register(nil)
	for i := uint64(2); i <= 11; i++ {
		c.send(a, b, heartbeat(a.id, b.id, i))
	}
	h2 := newRecorder(t, b.id)
	b.tr.Register(h2)
	b.rec = h2
	c.fence(a, b, 100)
	if got := h1.from(a.id); len(got) != 1 {
		t.Fatalf("replaced handler received %d messages after Register(nil), want none (last index %d)",
			len(got)-1, got[len(got)-1].Index)
	}
	// Messages sent while no handler was registered are dropped or reach h2;
	// either way, what h2 got is in order.
	last := uint64(0)
	for _, m := range h2.from(a.id) {
		if m.Index <= last {
			t.Fatalf("new handler got index %d after %d", m.Index, last)
		}
		last = m.Index
	}
}
