package raft

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
)

// The apply goroutine's half of the read path: reads wait, ordered by read
// index, until the state machine has applied their index, and then run on
// this goroutine, between two Apply calls.

// readTask is a read (or a WaitApplied) for the apply goroutine.
type readTask struct {
	ctx   context.Context
	index uint64
	// fn reads the state; nil for a wait.
	fn func() error
	// done receives the outcome; then, when set, is called with it
	// instead.
	done chan error
	then func(error)
	// req is the task's request to the driver (one allocation for both).
	req readReq
}

// readTasks recycles the tasks of Read calls that received their outcome
// (and so are referenced by nobody else), with their channels.
var readTasks = sync.Pool{New: func() any { return &readTask{done: make(chan error, 1)} }}

// newReadTask returns a pooled task for Read.
func newReadTask(ctx context.Context, fn func() error) *readTask {
	t := readTasks.Get().(*readTask)
	t.ctx, t.fn = ctx, fn
	return t
}

// recycle returns a task whose outcome was received to the pool.
func (t *readTask) recycle() {
	done := t.done
	*t = readTask{done: done}
	readTasks.Put(t)
}

func (t *readTask) finish(err error) {
	if t.then != nil {
		t.then(err)
		return
	}
	select {
	case t.done <- err:
	default:
	}
}

// readHeap orders waiting reads by index.
type readHeap []*readTask

func (h readHeap) Len() int           { return len(h) }
func (h readHeap) Less(i, j int) bool { return h[i].index < h[j].index }
func (h readHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *readHeap) Push(x any)        { *h = append(*h, x.(*readTask)) }
func (h *readHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}

// takeReads queues reads handed to the apply goroutine and runs those
// whose index is applied.
func (a *applier) takeReads(ts []*readTask) {
	for _, t := range ts {
		heap.Push(&a.waitingReads, t)
	}
	a.serveReads()
}

// serveReads runs every waiting read whose index is applied.
func (a *applier) serveReads() {
	applied := a.applied.Load()
	for len(a.waitingReads) > 0 && a.waitingReads[0].index <= applied {
		t := heap.Pop(&a.waitingReads).(*readTask)
		if t.ctx != nil && t.ctx.Err() != nil {
			t.finish(t.ctx.Err())
			continue
		}
		t.finish(runRead(t.fn))
	}
}

// runRead calls fn, turning a panic into ErrReadPanic.
func runRead(fn func() error) (err error) {
	if fn == nil {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrReadPanic, p)
		}
	}()
	return fn()
}

// failReads fails the reads still waiting as the node stops.
func (a *applier) failReads() {
	for _, t := range a.readq.close() {
		t.finish(ErrShutdown)
	}
	for _, t := range a.waitingReads {
		t.finish(ErrShutdown)
	}
	a.waitingReads = nil
}
