package inmem

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/typedraft/typedraft/raft"
)

var _ raft.Transport = (*Transport)(nil)

// Transport is one node's endpoint on a Network; it implements
// raft.Transport. Create it with Network.Join or Network.JoinAddr and release
// it with Close.
//
// Concurrency: all methods are safe for concurrent use. Handler methods are
// called from the network's goroutines, possibly several at once.
type Transport struct {
	net  *Network
	id   raft.NodeID
	addr string

	h    atomic.Pointer[handlerBox]
	stop chan struct{} // closed by Close
	wg   sync.WaitGroup
	// inbound counts handler calls in progress on this transport; Close
	// waits for them.
	inbound sync.WaitGroup
	wakeRep chan struct{} // capacity 1: "pending reports added"

	mu      sync.Mutex
	closed  bool
	links   map[string]*link
	pending map[raft.NodeID]struct{} // unreachable reports to deliver
	streams map[*stream]struct{}     // snapshot transfers to abort on Close
}

type handlerBox struct{ h raft.Handler }

func newTransport(n *Network, id raft.NodeID, addr string) *Transport {
	t := &Transport{
		net:     n,
		id:      id,
		addr:    addr,
		stop:    make(chan struct{}),
		wakeRep: make(chan struct{}, 1),
		links:   make(map[string]*link),
		pending: make(map[raft.NodeID]struct{}),
		streams: make(map[*stream]struct{}),
	}
	t.wg.Add(1)
	go t.reportLoop()
	return t
}

// ID returns the node ID the transport joined with.
func (t *Transport) ID() raft.NodeID { return t.id }

// Addr returns the address the transport is reachable at.
func (t *Transport) Addr() string { return t.addr }

// Register installs h as the receiver of inbound traffic and of unreachable
// reports, replacing any earlier handler; Register(nil) stops delivery, and
// messages arriving with no handler are dropped. Handler calls already under
// way when Register returns may complete; no new call goes to the replaced
// handler.
func (t *Transport) Register(h raft.Handler) {
	if h == nil {
		t.h.Store(nil)
		return
	}
	t.h.Store(&handlerBox{h})
}

func (t *Transport) handler() raft.Handler {
	if b := t.h.Load(); b != nil {
		return b.h
	}
	return nil
}

// Send queues deep copies of msgs for delivery to the node at to.Addr (or
// to.ID when Addr is empty) and returns without blocking. Messages that cannot
// be queued are dropped, as described in the package documentation; after
// Close every message is dropped, silently. Send keeps no reference to msgs.
func (t *Transport) Send(to raft.Peer, msgs []raft.Message) {
	if len(msgs) == 0 {
		return
	}
	n := t.net
	addr := to.Addr
	if addr == "" {
		addr = string(to.ID)
	}
	peerID := to.ID

	n.mu.Lock()
	dest := n.nodes[addr]
	if dest != nil {
		peerID = dest.id
	}
	c := n.countersLocked(t.id, peerID)
	if t.isClosed() {
		n.mu.Unlock()
		c.dropped.Add(uint64(len(msgs)))
		return
	}
	if dest == nil || n.faults.blocked(t.id, dest.id) {
		n.mu.Unlock()
		c.dropped.Add(uint64(len(msgs)))
		t.reportUnreachable(reportID(to, peerID))
		n.opts.logger.Trace("dropped messages: peer unreachable", "peer", peerID, "count", len(msgs))
		return
	}
	reorder := n.faults.reorder
	now := time.Now()
	items := make([]item, 0, len(msgs))
	wrongNode := false
	for i := range msgs {
		m := &msgs[i]
		if m.From != t.id || m.To != dest.id {
			c.dropped.Add(1)
			// A different node at the address: the intended one is unreachable.
			wrongNode = wrongNode || m.To != dest.id
			n.opts.logger.Debug("dropped message with wrong endpoints",
				"from", m.From, "to", m.To, "sender", t.id, "peer", dest.id)
			continue
		}
		d := n.decideLocked(t.id, dest.id)
		if d.drop {
			c.dropped.Add(1)
			continue
		}
		items = append(items, item{at: now.Add(d.delay)})
		items[len(items)-1].m = *m // copied below, outside the lock
	}
	n.mu.Unlock()
	if wrongNode {
		t.reportUnreachable(reportID(to, peerID))
	}
	if len(items) == 0 {
		return
	}

	l := t.link(addr)
	if l == nil { // closed concurrently
		c.dropped.Add(uint64(len(items)))
		return
	}
	full := false
	for _, it := range items {
		it.m = cloneMessage(it.m)
		it.size = messageSize(&it.m)
		if !l.push(it, reorder, n.opts.queueSize) {
			c.dropped.Add(1)
			full = true
		}
	}
	if full {
		t.reportUnreachable(reportID(to, peerID))
		n.opts.logger.Trace("dropped messages: queue full", "peer", peerID)
	}
}

// reportID is the ID an unreachable report names: the caller's peer ID, or
// the resolved node when the caller gave none.
func reportID(to raft.Peer, resolved raft.NodeID) raft.NodeID {
	if to.ID != "" {
		return to.ID
	}
	return resolved
}

// link returns the link to addr, starting its goroutine on first use, or nil
// once t is closed.
func (t *Transport) link(addr string) *link {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	l := t.links[addr]
	if l == nil {
		l = newLink(t, addr)
		t.links[addr] = l
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			l.run(t.stop)
		}()
	}
	return l
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// enter registers an inbound handler call; it reports false once t is closed.
func (t *Transport) enter() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.inbound.Add(1)
	return true
}

// exit ends an inbound handler call started by a successful enter.
func (t *Transport) exit() { t.inbound.Done() }

// reportUnreachable schedules a ReportUnreachable(id) call on t's handler.
// Reports for one peer coalesce until the handler has been called.
func (t *Transport) reportUnreachable(id raft.NodeID) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.pending[id] = struct{}{}
	t.mu.Unlock()
	select {
	case t.wakeRep <- struct{}{}:
	default:
	}
}

// reportLoop calls the handler's ReportUnreachable for pending reports, so
// that Send never calls into the handler of the goroutine calling it.
func (t *Transport) reportLoop() {
	defer t.wg.Done()
	for {
		select {
		case <-t.stop:
			return
		case <-t.wakeRep:
		}
		t.mu.Lock()
		ids := make([]raft.NodeID, 0, len(t.pending))
		for id := range t.pending {
			ids = append(ids, id)
		}
		clear(t.pending)
		t.mu.Unlock()
		slices.Sort(ids)
		h := t.handler()
		if h == nil {
			continue
		}
		for _, id := range ids {
			h.ReportUnreachable(id)
		}
	}
}

// Close disconnects the transport: it stops its goroutines (queued outbound
// messages are dropped), aborts its snapshot transfers in both directions,
// frees its address, and waits for handler calls in progress on it to return.
// After Close, Send drops everything, inbound traffic is dropped, SendSnapshot
// fails with raft.ErrTransportClosed, and the handler is never called again.
// Close is idempotent and always returns nil. It must not be called from a
// Handler method of any transport of the same network (it would wait for
// itself).
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	streams := make([]*stream, 0, len(t.streams))
	for s := range t.streams {
		streams = append(streams, s)
	}
	clear(t.pending)
	t.mu.Unlock()

	t.net.leave(t)
	close(t.stop)
	for _, s := range streams {
		s.abort(closedErr(t.id))
	}
	t.wg.Wait()
	t.inbound.Wait()
	t.net.opts.logger.Debug("node closed", "peer", t.id)
	return nil
}
