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

// timedSend calls tr.Send and returns an error if it has not returned
// within sendBlockLimit (the call is then left running). It is safe to
// call from any goroutine.
func timedSend(tr raft.Transport, to raft.Peer, msgs []raft.Message) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.Send(to, msgs)
	}()
	timer := time.NewTimer(sendBlockLimit)
	defer timer.Stop()
	select {
	case <-done:
		return nil
	case <-timer.C:
		return fmt.Errorf("a Send of %d messages to %s blocked for more than %v: Send must never wait for the network, a peer or a snapshot",
			len(msgs), to.ID, sendBlockLimit)
	}
}

// checkNoReports fails the test if any endpoint's handler was told that a
// peer is unreachable: on a healthy link with room in its queues nothing is
// lost, and a report would needlessly send a replicating follower back to
// probing.
func (c *cluster) checkNoReports(what string) {
	c.t.Helper()
	for _, nd := range c.nodes {
		if rep := nd.rec.reports(); len(rep) > 0 {
			c.t.Fatalf("%s: %s's handler got ReportUnreachable %v on a healthy link (report only when messages are being lost)",
				what, nd.id, rep)
		}
	}
}

// exchange sends n messages of mixed types from a to b, tagged with the
// indexes first.., waiting for every tenth to arrive, and fails the test
// unless all of them arrive, in order. It returns the next free index.
func (c *cluster) exchange(what string, a, b *node, first uint64, n int) uint64 {
	c.t.Helper()
	last := first + uint64(n) - 1
	for i := first; i <= last; i++ {
		c.send(a, b, mixed(a.id, b.id, i))
		if (i-first)%10 == 9 || i == last {
			waitFor(c.t, fmt.Sprintf("%s: message %d from %s at %s", what, i, a.id, b.id), func() bool {
				return b.rec.has(a.id, func(m raft.Message) bool { return m.Index == i })
			})
		}
	}
	var got []raft.Message
	for _, m := range b.rec.from(a.id) {
		if m.Index >= first && m.Index <= last {
			got = append(got, m)
		}
	}
	c.checkIndexes(what, got, first, last)
	return last + 1
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
// are harmless; and nobody is reported unreachable.
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
	c.checkNoReports("field round trip")
}

// testPerPeerOrdering: messages of mixed types sent at a modest rate all
// arrive, in order, without anyone being reported unreachable; a burst may
// lose messages, but only if the sender's handler is told the peer is
// unreachable, and what arrives is in send order, without duplicates.
func testPerPeerOrdering(c *cluster) {
	t := c.t
	a, b := c.nodes[0], c.nodes[1]
	const paced = 400
	for i := uint64(1); i <= paced; i++ {
		c.send(a, b, mixed(a.id, b.id, i))
		if i%50 == 0 {
			waitFor(t, fmt.Sprintf("%d paced messages", i), func() bool { return b.rec.count(a.id) >= int(i) })
		}
	}
	c.checkIndexes("paced messages", b.rec.from(a.id), 1, paced)
	c.checkNoReports("paced messages")

	const burst, batch = 3000, 30
	next := uint64(paced + 1)
	for sent := 0; sent < burst; sent += batch {
		msgs := make([]raft.Message, batch)
		for i := range msgs {
			msgs[i] = mixed(a.id, b.id, next)
			next++
		}
		c.send(a, b, msgs...)
	}
	fence := c.fence(a, b, next)
	got := b.rec.from(a.id)[paced:]
	reported := a.rec.unreachableCount(b.id) > 0
	c.checkArrivals("burst messages", got, reported)
	inBurst := 0
	for _, m := range got {
		if m.Index < fence {
			inBurst++
		}
	}
	if inBurst == 0 {
		t.Fatalf("none of %d burst messages arrived", burst)
	}
	if inBurst < burst && !reported {
		t.Fatalf("%d of %d burst messages were lost without ReportUnreachable(%s): a transport may drop only when it reports the loss",
			burst-inBurst, burst, b.id)
	}
	t.Logf("%d of %d burst messages arrived (loss reported: %v)", inBurst, burst, reported)
}

// checkArrivals fails the test if msgs (what one receiver got from one
// sender, in arrival order) hold an index twice, or, unless a loss was
// reported meanwhile (which may start a new connection, whose messages may
// overtake those still in flight on the old one), out of order.
func (c *cluster) checkArrivals(what string, msgs []raft.Message, lossReported bool) {
	c.t.Helper()
	seen := make(map[uint64]bool, len(msgs))
	last := uint64(0)
	for i, m := range msgs {
		if seen[m.Index] {
			c.t.Fatalf("%s: message %d (index %d) arrived twice: a transport delivers each message at most once", what, i, m.Index)
		}
		seen[m.Index] = true
		if !lossReported && m.Index < last {
			c.t.Fatalf("%s: message %d has index %d after index %d, with no loss reported: reordered", what, i, m.Index, last)
		}
		last = max(last, m.Index)
	}
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

// testLargeMessage: a MsgApp carrying 4 MiB of entries arrives intact, the
// link keeps working after it, and nobody is reported unreachable.
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
	c.checkNoReports("a large message")
}

// testManyPeers: five endpoints send to each other all at once; every
// message arrives, in order per sender, with the right From and To, and
// nobody is reported unreachable.
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
					if err := timedSend(from.tr, to.peer(), []raft.Message{mixed(from.id, to.id, r)}); err != nil {
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
	c.checkNoReports("five peers sending at once")
}

// testConcurrentSenders: eight goroutines share one transport to send to two
// peers while those peers send back; each goroutine's messages all arrive in
// the order it sent them, and nobody is reported unreachable.
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
					m := mixed(a.id, to.id, k)
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
				if err := timedSend(from.tr, a.peer(), []raft.Message{mixed(from.id, a.id, k)}); err != nil {
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
	c.checkNoReports("concurrent senders")
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

// testNoSharedMemory: messages to two peers whose entries share one slice
// and one Data array, as a leader's would (it sends the same log entries to
// every follower), reach each peer as a copy of its own: a handler that
// overwrites everything it was given changes neither the other peer's copy
// nor the sender's entries.
func testNoSharedMemory(c *cluster) {
	t := c.t
	a, b, d := c.nodes[0], c.nodes[1], c.nodes[2]
	data := []byte("0123456789abcdefghijklmnopqrstuv") // the sender's log
	ents := []raft.Entry{
		{Index: 5, Term: 2, Type: raft.EntryCommand, Data: data[:16]},
		{Index: 6, Term: 2, Type: raft.EntryConfig, Data: data[16:]},
	}
	meta := &raft.SnapshotMeta{Index: 4, Term: 2, Configuration: sampleConfig(a.id, b.id), ConfigIndex: 3}
	build := func(to raft.NodeID) []raft.Message {
		return []raft.Message{
			{Type: raft.MsgApp, From: a.id, To: to, Term: 2, Index: 4, LogTerm: 2, Commit: 4, Entries: ents},
			{Type: raft.MsgHeartbeat, From: a.id, To: to, Term: 2, Index: 7, Snapshot: meta},
		}
	}
	// want is built from private copies: what every receiver must get.
	want := func(to raft.NodeID) []raft.Message {
		ms := build(to)
		ms[0].Entries = []raft.Entry{ents[0], ents[1]}
		ms[0].Entries[0].Data = []byte(string(data[:16]))
		ms[0].Entries[1].Data = []byte(string(data[16:]))
		m := *meta
		m.Configuration = sampleConfig(a.id, b.id)
		ms[1].Snapshot = &m
		return ms
	}
	wantB, wantD := want(b.id), want(d.id)
	origData := string(data)

	scribble := func(m raft.Message) {
		for i := range m.Entries {
			for j := range m.Entries[i].Data {
				m.Entries[i].Data[j] = 0xee
			}
			m.Entries[i].Index, m.Entries[i].Term = 999, 999
		}
		if s := m.Snapshot; s != nil {
			s.Index = 999
			for i := range s.Configuration.Servers {
				s.Configuration.Servers[i].ID = "scribbled"
			}
			for i := range s.Configuration.Old {
				s.Configuration.Old[i].Addr = "scribbled"
			}
		}
	}
	b.rec.setOnMessage(func(m raft.Message) {
		// Record an untouched copy first, then overwrite what was given.
		b.rec.mu.Lock()
		b.rec.pristine = append(b.rec.pristine, cloneMessage(m))
		b.rec.mu.Unlock()
		scribble(m)
	})
	c.send(a, b, build(b.id)...)
	waitFor(t, "both messages at the first peer", func() bool { return b.rec.count(a.id) >= 2 })
	b.rec.mu.Lock()
	gotB := append([]raft.Message(nil), b.rec.pristine...)
	b.rec.mu.Unlock()
	for i := range wantB {
		if dm := diffMessage(gotB[i], wantB[i]); dm != "" {
			t.Fatalf("message %d at the first peer, as delivered: %s", i, dm)
		}
	}
	if string(data) != origData || ents[0].Index != 5 || ents[1].Index != 6 || meta.Index != 4 ||
		meta.Configuration.Servers[0].ID != a.id || meta.Configuration.Old[0].Addr != "addr-of-"+string(a.id) {
		t.Fatalf("a receiving handler that modified its messages changed the sender's entries or snapshot meta: the transport shares memory between nodes")
	}

	c.send(a, d, build(d.id)...)
	waitFor(t, "both messages at the second peer", func() bool { return d.rec.count(a.id) >= 2 })
	gotD := d.rec.from(a.id)
	for i := range wantD {
		if dm := diffMessage(gotD[i], wantD[i]); dm != "" {
			t.Fatalf("message %d at the second peer, after the first peer modified its copy: %s (the transport shares memory between nodes)", i, dm)
		}
	}
	c.checkNoReports("messages sharing memory at the sender")
}
