package raft

import "sync"

// queue is an unbounded-by-default multi-producer queue drained in batches by
// one consumer. Producers never block; the consumer waits on ready().
//
// Concurrency: push and drain may be called from any goroutine.
type queue[T any] struct {
	mu     sync.Mutex
	items  []T
	spare  []T
	limit  int // 0 = unbounded
	closed bool
	wake   chan struct{}
}

func newQueue[T any](limit int) *queue[T] {
	return &queue[T]{limit: limit, wake: make(chan struct{}, 1)}
}

// pushResult says what push did.
type pushResult uint8

const (
	pushed pushResult = iota
	pushFull
	pushClosed
)

// push appends v unless the queue is full or closed.
func (q *queue[T]) push(v T) pushResult { return q.pushAll([]T{v}) }

// pushAll appends every item of vs, or none if the queue is closed or
// they would take a bounded queue past its limit (pushFull).
func (q *queue[T]) pushAll(vs []T) pushResult {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return pushClosed
	}
	if q.limit > 0 && len(q.items)+len(vs) > q.limit {
		q.mu.Unlock()
		return pushFull
	}
	first := len(q.items) == 0
	q.items = append(q.items, vs...)
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return pushed
}

// ready returns a channel that has a value when items may be waiting.
func (q *queue[T]) ready() <-chan struct{} { return q.wake }

// drain takes every queued item. The returned slice is valid until the next
// drain, when it is reused.
func (q *queue[T]) drain() []T {
	q.mu.Lock()
	out := q.items
	clear(q.spare)
	q.items = q.spare[:0]
	q.spare = out
	q.mu.Unlock()
	return out
}

// close refuses every later push and returns the items still queued.
func (q *queue[T]) close() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	out := q.items
	q.items = nil
	return out
}
