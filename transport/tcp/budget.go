package tcp

import (
	"bufio"
	"errors"
	"fmt"
	"sync"
	"time"
)

// smallFrameBody is the largest frame body read without taking memory
// budget: every connection may hold one such body (plus its 64 KiB read
// buffer) regardless of the others, which the connection limits bound.
const smallFrameBody = 64 << 10

// errBudgetTimeout: a frame body waited for memory budget until its
// connection's read deadline.
var errBudgetTimeout = errors.New("tcp: no memory budget for the frame body before the read deadline (MaxInflightBytes)")

// byteBudget is a FIFO weighted semaphore of bytes: it bounds the memory of
// the frame bodies being received across all inbound connections. Requests
// are granted in arrival order, so a large body is never starved by a
// stream of smaller ones, and a waiter gives up at its deadline.
//
// Concurrency: safe for concurrent use.
type byteBudget struct {
	size int64

	mu      sync.Mutex
	used    int64
	peak    int64
	waiters []*budgetWaiter // FIFO
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed when granted
}

func newByteBudget(size int64) *byteBudget { return &byteBudget{size: size} }

// acquire takes n bytes (n <= size), waiting until deadline or done. It
// returns errBudgetTimeout at the deadline and errTransportDone when done
// closes; the budget is then not held.
func (b *byteBudget) acquire(n int64, deadline time.Time, done <-chan struct{}) error {
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.size {
		b.takeLocked(n)
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()

	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var err error
	select {
	case <-w.ready:
		return nil
	case <-timer.C:
		err = errBudgetTimeout
	case <-done:
		err = errTransportDone
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile: give it back
		b.used -= n
	default:
		for i, x := range b.waiters {
			if x == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
	}
	b.grantLocked() // w may have blocked smaller requests behind it
	return err
}

// release returns n bytes taken by acquire.
func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.grantLocked()
	b.mu.Unlock()
}

func (b *byteBudget) takeLocked(n int64) {
	b.used += n
	b.peak = max(b.peak, b.used)
}

func (b *byteBudget) grantLocked() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.size {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.takeLocked(w.n)
		close(w.ready)
	}
}

// stats returns the bytes held now and the most ever held at once.
func (b *byteBudget) stats() (used, peak int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.peak
}

// errTransportDone: the transport closed while a read waited for budget.
var errTransportDone = errors.New("tcp: transport closed")

// budgetedFrame is a frame body read under the memory budget; release
// returns the budget (once; the body must not be used afterwards by the
// transport, though a handler that took ownership may keep it).
type budgetedFrame struct {
	typ  frameType
	body []byte
	held int64
}

// readBudgetedFrame reads one frame of at most max bytes from br. A body
// larger than smallFrameBody is read only once its size has been taken
// from the transport's memory budget, waiting at most until deadline (the
// connection's read deadline). The body is read into buf when it fits
// (buf's memory must then already be accounted for by the caller), else
// into a new slice: allocated whole once budgeted (a lying length thus
// costs budget, bounded, for as long as its connection's read deadline
// allows), grown as the bytes arrive when small. In the first case the budget of
// prev (the frame that owns buf, if any) is released before the new
// budget is taken, so a reader never holds budget while waiting for more.
// The caller must call t.releaseFrame(&f) once done with the body.
//
// Errors: those of readFrame, errBudgetTimeout, or errTransportDone.
func (t *Transport) readBudgetedFrame(br *bufio.Reader, max int, buf []byte, prev *budgetedFrame, deadline time.Time) (budgetedFrame, error) {
	typ, n, err := readFrameHeader(br, max)
	if err != nil {
		return budgetedFrame{}, err
	}
	var f budgetedFrame
	f.typ = typ
	if n > smallFrameBody && n > cap(buf) {
		if prev != nil {
			t.releaseFrame(prev)
		}
		buf = nil
		if err := t.budget.acquire(int64(n), deadline, t.ctx.Done()); err != nil {
			return budgetedFrame{}, fmt.Errorf("%w: %s frame of %d bytes, budget %d", err, typ, n, t.budget.size)
		}
		f.held = int64(n)
	}
	if f.held > 0 {
		// The budget covers the whole body: allocate it at once rather than
		// grow it (growing would leave as much again behind as garbage).
		buf = make([]byte, n)
	}
	f.body, err = readBody(br, n, buf)
	if err != nil {
		t.releaseFrame(&f)
		return budgetedFrame{}, fmt.Errorf("tcp: read %s frame body (%d bytes): %w", typ, n, err)
	}
	return f, nil
}

// releaseFrame returns f's budget; it is idempotent.
func (t *Transport) releaseFrame(f *budgetedFrame) {
	if f.held > 0 {
		t.budget.release(f.held)
		f.held = 0
	}
}
