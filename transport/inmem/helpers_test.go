package inmem_test

import (
	"io"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/inmem"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitTimeout = 10 * time.Second

// collector is a raft.Handler that records what it receives, with the time
// each message arrived.
type collector struct {
	mu          sync.Mutex
	msgs        []raft.Message
	at          []time.Time
	unreachable map[raft.NodeID]int
	onMessage   func(raft.Message)
	onSnapshot  func(raft.Message, io.Reader) error
}

func newCollector() *collector { return &collector{unreachable: make(map[raft.NodeID]int)} }

func (c *collector) HandleMessage(m raft.Message) {
	c.mu.Lock()
	hook := c.onMessage
	c.mu.Unlock()
	if hook != nil {
		hook(m)
	}
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.at = append(c.at, time.Now())
	c.mu.Unlock()
}

func (c *collector) HandleSnapshot(m raft.Message, r io.Reader) error {
	c.mu.Lock()
	hook := c.onSnapshot
	c.mu.Unlock()
	if hook != nil {
		return hook(m, r)
	}
	_, err := io.Copy(io.Discard, r)
	return err
}

func (c *collector) ReportUnreachable(id raft.NodeID) {
	c.mu.Lock()
	c.unreachable[id]++
	c.mu.Unlock()
}

func (c *collector) messages() []raft.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]raft.Message(nil), c.msgs...)
}

func (c *collector) arrivals() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.at...)
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func (c *collector) reports(id raft.NodeID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unreachable[id]
}

// waitFor polls cond until it holds or fails the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// node is a joined transport with a collector registered.
type node struct {
	id raft.NodeID
	tr *inmem.Transport
	c  *collector
}

// join joins ids to net with collectors, closing them at the end of the test.
func join(t *testing.T, net *inmem.Network, ids ...raft.NodeID) []*node {
	t.Helper()
	var out []*node
	for _, id := range ids {
		n := &node{id: id, tr: net.Join(id), c: newCollector()}
		n.tr.Register(n.c)
		t.Cleanup(func() { _ = n.tr.Close() })
		out = append(out, n)
	}
	return out
}

func peer(n *node) raft.Peer { return raft.Peer{ID: n.id} }

func hb(from, to *node, index uint64) raft.Message {
	return raft.Message{Type: raft.MsgHeartbeat, From: from.id, To: to.id, Term: 1, Index: index}
}

// send sends one heartbeat tagged index from -> to.
func send(from, to *node, index uint64) {
	from.tr.Send(peer(to), []raft.Message{hb(from, to, index)})
}

// fence sends heartbeats from -> to with index >= first until one arrives,
// so that everything sent from -> to earlier has arrived or been dropped.
func fence(t *testing.T, from, to *node, first uint64) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for idx := first; ; idx++ {
		send(from, to, idx)
		for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); time.Sleep(time.Millisecond) {
			for _, m := range to.c.messages() {
				if m.From == from.id && m.Index >= first {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("fence %s->%s: nothing arrived", from.id, to.id)
		}
	}
}

// indexes returns the indexes of the messages c got from id.
func indexes(c *collector, id raft.NodeID) []uint64 {
	var out []uint64
	for _, m := range c.messages() {
		if m.From == id {
			out = append(out, m.Index)
		}
	}
	return out
}

// reportFence makes from report an unknown peer and waits for that report;
// any report scheduled before it has then been delivered too.
func reportFence(t *testing.T, from *node) {
	t.Helper()
	ghost := raft.NodeID("ghost-fence")
	from.tr.Send(raft.Peer{ID: ghost}, []raft.Message{{Type: raft.MsgHeartbeat, From: from.id, To: ghost}})
	waitFor(t, "report fence", func() bool { return from.c.reports(ghost) > 0 })
}
