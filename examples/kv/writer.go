package main

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"
)

// writer is the tour's client: it writes w0000, w0001, ... one at a time
// to whichever node leads, and remembers which writes were acknowledged.
// A write that fails is not acknowledged (it may or may not have
// happened); the writer moves on to the next key.
//
// Concurrency: its methods are safe for concurrent use with its goroutine.
type writer struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	acked  map[string]string
	failed int
	grew   chan struct{} // closed and replaced whenever acked grows
}

func startWriter(ctx context.Context, tc *tourCluster) *writer {
	ctx, cancel := context.WithCancel(ctx)
	w := &writer{cancel: cancel, done: make(chan struct{}), acked: map[string]string{}, grew: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ctx.Err() == nil; i++ {
			key, val := fmt.Sprintf("w%04d", i), fmt.Sprintf("v%d", i)
			changed := tc.changes() // before looking: no event is missed
			n := tc.leader()
			if n == nil {
				// Woken by the next event of any node (a new leader's
				// state-changed among them).
				select {
				case <-ctx.Done():
				case <-changed:
				}
				i-- // no attempt was made; keep the key
				continue
			}
			opCtx, opCancel := context.WithTimeout(ctx, 2*time.Second)
			_, appErr, err := n.raft.Apply(opCtx, Command{Op: OpPut, Key: key, Value: val})
			opCancel()
			w.mu.Lock()
			if err == nil && appErr == nil {
				w.acked[key] = val
				close(w.grew)
				w.grew = make(chan struct{})
			} else if ctx.Err() == nil {
				w.failed++
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// ackedCount returns the number of acknowledged writes so far.
func (w *writer) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// waitAcked waits until at least n writes are acknowledged.
func (w *writer) waitAcked(ctx context.Context, n int) error {
	for {
		w.mu.Lock()
		got, grew := len(w.acked), w.grew
		w.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-grew:
		case <-ctx.Done():
			return fmt.Errorf("only %d of %d writes acknowledged: %w", got, n, ctx.Err())
		}
	}
}

// stop stops the writer and returns the acknowledged writes and the
// number of failed ones.
func (w *writer) stop() (map[string]string, int) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.acked), w.failed
}
