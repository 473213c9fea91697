// Package workload is the closed-loop load generator shared by typedraft's
// raftbench command and the hashicorp/raft runner in the nested module
// benchmarks/hashicorp, so that both systems face exactly the same clients,
// payloads, timing and accounting. It depends on the standard library only.
package workload

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Op performs one request of a closed-loop client: it proposes cmd and
// returns once the outcome is known. A non-nil error counts as a failed
// request (it is not timed); the client goes on with its next request.
// Op is called concurrently from every client; cmd belongs to the caller
// and must not be retained after Op returns.
type Op func(ctx context.Context, client int, cmd []byte) error

// Spec describes one closed-loop run.
type Spec struct {
	// Clients is the number of concurrent clients (>= 1). Each client sends
	// one request, waits for its outcome, and sends the next.
	Clients int
	// Payload is the size in bytes of every command (>= 8: the first 8
	// bytes carry a sequence number so that no two commands are equal).
	Payload int
	// Duration is how long requests are measured (> 0).
	Duration time.Duration
	// Warmup is how long clients run before measuring starts (>= 0); its
	// requests are neither timed nor counted. With no warm-up, clients
	// start when the window opens and every request completed before it
	// closes counts.
	Warmup time.Duration
	// Window, if set, is called by Run with true when the measured window
	// opens and with false when it closes (or Run returns early), each
	// exactly once and from one goroutine, so that counters outside the
	// workload (fsyncs, Saves) can be sampled over the same window: Run
	// counts the requests completed after window(true) has returned and
	// before window(false) is called, so a window timer that fires late
	// on a busy machine shifts both alike.
	Window func(open bool)
}

// Limits that Spec.Validate enforces, so that a typo cannot allocate
// gigabytes or spawn a million goroutines.
const (
	MaxClients = 100_000
	MaxPayload = 64 << 20
	MinPayload = 8
)

// Validate reports the first invalid field.
func (s Spec) Validate() error {
	switch {
	case s.Clients < 1 || s.Clients > MaxClients:
		return fmt.Errorf("workload: clients %d outside [1, %d]", s.Clients, MaxClients)
	case s.Payload < MinPayload || s.Payload > MaxPayload:
		return fmt.Errorf("workload: payload %d bytes outside [%d, %d]", s.Payload, MinPayload, MaxPayload)
	case s.Duration <= 0:
		return fmt.Errorf("workload: duration %v must be positive", s.Duration)
	case s.Warmup < 0:
		return fmt.Errorf("workload: warmup %v must not be negative", s.Warmup)
	}
	return nil
}

// Measurement is what Run observed.
type Measurement struct {
	// Ops is the number of successful requests in the measured window.
	Ops uint64
	// Errors is the number of failed requests in the measured window.
	Errors uint64
	// FirstError is the first error seen in the measured window, if any.
	FirstError error
	// Elapsed is the length of the measured window as it happened (from
	// its opening to its closing, each stamped when it took effect): about
	// Spec.Duration, more or less when a timer fired late.
	Elapsed time.Duration
	// Latency holds the latency of every successful measured request.
	Latency *Histogram
}

// OpsPerSec returns the measured throughput.
func (m Measurement) OpsPerSec() float64 {
	if m.Elapsed <= 0 {
		return 0
	}
	return float64(m.Ops) / m.Elapsed.Seconds()
}

// Run drives spec.Clients closed-loop clients calling op with fresh
// spec.Payload-byte commands for spec.Warmup and then spec.Duration, and
// returns what it measured. It returns early, with what was measured so
// far and ctx's error, if ctx ends. It returns an error without running if
// spec is invalid.
//
// Concurrency: Run blocks until every client has returned from op; op must
// return once its ctx ends.
func Run(ctx context.Context, spec Spec, op Op) (Measurement, error) {
	if err := spec.Validate(); err != nil {
		return Measurement{}, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	start := time.Now()
	measureFrom := start.Add(spec.Warmup)
	measureTo := measureFrom.Add(spec.Duration)
	window := spec.Window
	if window == nil {
		window = func(bool) {}
	}
	// The window is what the watcher stamps, not what the timers asked
	// for: opened is taken after window(true) has returned and closed
	// before window(false) is called, so that a timer that fires late on
	// a busy machine moves the counted requests with the counters that
	// window samples, and Elapsed is the window's real length.
	//
	// Without a warm-up, clients wait for openCh, so that every request
	// they send is counted.
	var opened, closed atomic.Int64
	openCh, windowDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(windowDone)
		watchWindow(runCtx, measureFrom, measureTo, func(open bool) {
			if open {
				window(true)
				opened.Store(time.Now().UnixNano())
				close(openCh)
				return
			}
			closed.Store(time.Now().UnixNano())
			window(false)
		})
	}()

	type clientResult struct {
		hist     Histogram
		ops      uint64
		errs     uint64
		firstErr error
	}
	results := make([]clientResult, spec.Clients)
	var wg sync.WaitGroup
	for c := range spec.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &results[c]
			cmd := make([]byte, spec.Payload)
			_, _ = rand.Read(cmd)
			binary.LittleEndian.PutUint32(cmd[4:], uint32(c))
			if spec.Warmup == 0 {
				<-openCh // watchWindow opens the window even when ctx ends
			}
			for seq := uint32(0); ; seq++ {
				binary.LittleEndian.PutUint32(cmd, seq)
				t0 := time.Now()
				if closed.Load() != 0 || runCtx.Err() != nil {
					return
				}
				err := op(runCtx, c, cmd)
				t1 := time.Now()
				from, to := opened.Load(), closed.Load()
				if from == 0 || t1.UnixNano() < from || to != 0 && t1.UnixNano() > to {
					// Completed during warm-up or after the window:
					// throughput counts completions inside the window.
					continue
				}
				if err != nil {
					if runCtx.Err() != nil {
						return
					}
					res.errs++
					if res.firstErr == nil {
						res.firstErr = err
					}
					continue
				}
				res.ops++
				res.hist.Record(t1.Sub(t0))
			}
		}()
	}
	wg.Wait()
	// Every client has seen the window close or ctx end; cancel only
	// stops the watcher's wait when ctx ended first.
	cancel()
	<-windowDone

	m := Measurement{Latency: &Histogram{}}
	for i := range results {
		r := &results[i]
		m.Ops += r.ops
		m.Errors += r.errs
		if m.FirstError == nil {
			m.FirstError = r.firstErr
		}
		m.Latency.Merge(&r.hist)
	}
	if from, to := opened.Load(), closed.Load(); to > from {
		m.Elapsed = time.Duration(to - from)
	}
	if err := ctx.Err(); err != nil {
		return m, fmt.Errorf("workload: interrupted: %w", err)
	}
	return m, nil
}

// watchWindow calls window(true) at from and window(false) at to, or
// window(false) early (after window(true), if it had not run) when ctx ends.
func watchWindow(ctx context.Context, from, to time.Time, window func(open bool)) {
	t := time.NewTimer(time.Until(from))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	window(true)
	t.Reset(time.Until(to))
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	window(false)
}

// ErrNoLeader is returned by cluster adapters whose Op could not find a
// leader in time; it counts as a failed request.
var ErrNoLeader = errors.New("workload: no leader")
