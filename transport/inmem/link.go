package inmem

import (
	"container/heap"
	"sync"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// item is one queued message and the time it becomes deliverable.
type item struct {
	m    raft.Message
	at   time.Time
	seq  uint64
	size uint64
}

// itemHeap orders items by delivery time, then by send order.
type itemHeap []item

func (h itemHeap) Len() int { return len(h) }
func (h itemHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h itemHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)   { *h = append(*h, x.(item)) }
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = item{}
	*h = old[:len(old)-1]
	return it
}

// link is the queue of messages from one transport to one address, drained by
// one goroutine (run) owned by the sending transport.
type link struct {
	from *Transport
	addr string
	wake chan struct{} // capacity 1: "the queue changed"

	mu   sync.Mutex
	q    itemHeap
	seq  uint64
	last time.Time // latest delivery time queued, for FIFO links
}

func newLink(from *Transport, addr string) *link {
	return &link{from: from, addr: addr, wake: make(chan struct{}, 1)}
}

// push queues it unless the queue holds limit items already. Without reorder
// the delivery time is raised to that of the previous message, so the link
// stays FIFO.
func (l *link) push(it item, reorder bool, limit int) bool {
	l.mu.Lock()
	if len(l.q) >= limit {
		l.mu.Unlock()
		return false
	}
	if !reorder && it.at.Before(l.last) {
		it.at = l.last
	}
	if it.at.After(l.last) {
		l.last = it.at
	}
	it.seq = l.seq
	l.seq++
	heap.Push(&l.q, it)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return true
}

// run delivers queued messages as they fall due until stop is closed; it
// drops (and counts) whatever is still queued then.
func (l *link) run(stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		l.mu.Lock()
		if len(l.q) == 0 {
			l.mu.Unlock()
			select {
			case <-l.wake:
				continue
			case <-stop:
				return
			}
		}
		if wait := time.Until(l.q[0].at); wait > 0 {
			l.mu.Unlock()
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-l.wake: // an earlier message may have been queued
				timer.Stop()
			case <-stop:
				l.dropQueued()
				return
			}
			continue
		}
		it := heap.Pop(&l.q).(item)
		l.mu.Unlock()
		select {
		case <-stop:
			l.mu.Lock()
			heap.Push(&l.q, it)
			l.mu.Unlock()
			l.dropQueued()
			return
		default:
		}
		l.deliver(it)
	}
}

// dropQueued counts every queued message as dropped and empties the queue.
func (l *link) dropQueued() {
	l.mu.Lock()
	q := l.q
	l.q = nil
	l.mu.Unlock()
	n := l.from.net
	for _, it := range q {
		n.counters(it.m.From, it.m.To).dropped.Add(1)
	}
}

// deliver hands it to the transport now holding l.addr, if the link is open,
// the destination is the message's To node and it has a handler.
func (l *link) deliver(it item) {
	n := l.from.net
	n.mu.Lock()
	dest := n.nodes[l.addr]
	blocked := dest != nil && n.faults.blocked(l.from.id, dest.id)
	c := n.countersLocked(it.m.From, it.m.To)
	n.mu.Unlock()

	switch {
	case dest == nil:
		c.dropped.Add(1)
		l.from.reportUnreachable(it.m.To)
		return
	case blocked:
		c.dropped.Add(1)
		l.from.reportUnreachable(it.m.To)
		return
	case dest.id != it.m.To:
		c.dropped.Add(1)
		n.opts.logger.Debug("dropped message for another node", "peer", dest.id, "to", it.m.To)
		return
	}
	if !dest.enter() {
		c.dropped.Add(1)
		l.from.reportUnreachable(it.m.To)
		return
	}
	defer dest.exit()
	h := dest.handler()
	if h == nil {
		c.dropped.Add(1)
		return
	}
	c.messages.Add(1)
	c.bytes.Add(it.size)
	h.HandleMessage(it.m)
}
