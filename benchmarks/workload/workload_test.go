package workload

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	// Every value lies within its bucket, and buckets are contiguous.
	prevUpper := int64(-1)
	for i := 0; i < numBuckets; i++ {
		up := bucketUpper(i)
		if int64(up) <= prevUpper && i > 0 {
			t.Fatalf("bucket %d upper %d not above previous %d", i, up, prevUpper)
		}
		if bucketOf(up) != i {
			t.Fatalf("bucketOf(upper(%d)=%d) = %d", i, up, bucketOf(up))
		}
		if i > 0 && bucketOf(uint64(prevUpper+1)) != i {
			t.Fatalf("bucketOf(%d) = %d, want %d", prevUpper+1, bucketOf(uint64(prevUpper+1)), i)
		}
		prevUpper = int64(up)
		if up == 1<<63-1 {
			break
		}
	}
	if prevUpper != 1<<63-1 {
		t.Fatalf("buckets end at %d, not MaxInt64", prevUpper)
	}
}

func TestHistogramQuantilesMatchSortedSample(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var sample []time.Duration
	for range 100_000 {
		// Log-uniform between 1µs and 100ms.
		d := time.Duration(float64(time.Microsecond) * math.Pow(1e5, rng.Float64()))
		h.Record(d)
		sample = append(sample, d)
	}
	slices.Sort(sample)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := sample[int(q*float64(len(sample)))-1]
		got := h.Quantile(q)
		if got < exact || float64(got) > float64(exact)*1.04 {
			t.Errorf("q%.3f = %v, exact %v (want within +4%%)", q, got, exact)
		}
	}
	if h.Max() != sample[len(sample)-1] || h.Min() != sample[0] {
		t.Errorf("max/min %v/%v, want %v/%v", h.Max(), h.Min(), sample[len(sample)-1], sample[0])
	}
	if h.Quantile(1) != h.Max() {
		t.Errorf("q1 %v != max %v", h.Quantile(1), h.Max())
	}
	if h.Count() != uint64(len(sample)) {
		t.Errorf("count %d", h.Count())
	}
}

func TestHistogramMergeAndEmpty(t *testing.T) {
	var a, b, empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 || empty.Max() != 0 {
		t.Fatal("empty histogram reports non-zero")
	}
	a.Record(10 * time.Microsecond)
	b.Record(time.Millisecond)
	b.Record(-5) // clamps to zero
	a.Merge(&b)
	a.Merge(&empty)
	if a.Count() != 3 || a.Max() != time.Millisecond || a.Min() != 0 {
		t.Fatalf("merged: count %d max %v min %v", a.Count(), a.Max(), a.Min())
	}
	if q := a.Quantile(0.5); q < 10*time.Microsecond || q > 11*time.Microsecond {
		t.Fatalf("median %v", q)
	}
}

func TestSpecValidate(t *testing.T) {
	good := Spec{Clients: 1, Payload: 8, Duration: time.Millisecond}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []Spec{
		{Clients: 0, Payload: 8, Duration: time.Second},
		{Clients: MaxClients + 1, Payload: 8, Duration: time.Second},
		{Clients: 1, Payload: 7, Duration: time.Second},
		{Clients: 1, Payload: MaxPayload + 1, Duration: time.Second},
		{Clients: 1, Payload: 8, Duration: 0},
		{Clients: 1, Payload: 8, Duration: time.Second, Warmup: -1},
	}
	for _, s := range bad {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v: no error", s)
		}
		if _, err := Run(context.Background(), s, nil); err == nil {
			t.Errorf("Run(%+v): no error", s)
		}
	}
}

func TestRunCountsOpsErrorsAndDistinctCommands(t *testing.T) {
	var calls atomic.Uint64
	var mu sync.Mutex
	seen := map[string]bool{}
	dups := 0
	boom := errors.New("boom")
	op := func(ctx context.Context, client int, cmd []byte) error {
		n := calls.Add(1)
		if len(cmd) != 32 {
			return errors.New("wrong payload size")
		}
		mu.Lock()
		if seen[string(cmd)] {
			dups++
		}
		seen[string(cmd)] = true
		mu.Unlock()
		time.Sleep(100 * time.Microsecond) // simulated service time
		if n%10 == 0 {
			return boom
		}
		return nil
	}
	spec := Spec{Clients: 4, Payload: 32, Duration: 150 * time.Millisecond, Warmup: 20 * time.Millisecond}
	start := time.Now()
	m, err := Run(context.Background(), spec, op)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if m.Ops == 0 || m.Errors == 0 || !errors.Is(m.FirstError, boom) {
		t.Fatalf("ops %d errors %d first %v", m.Ops, m.Errors, m.FirstError)
	}
	if m.Ops+m.Errors > calls.Load() {
		t.Fatalf("counted %d requests, only %d calls", m.Ops+m.Errors, calls.Load())
	}
	if m.Latency.Count() != m.Ops {
		t.Fatalf("latency count %d != ops %d", m.Latency.Count(), m.Ops)
	}
	if m.Latency.Quantile(0.5) < 100*time.Microsecond {
		t.Fatalf("median %v below the simulated service time", m.Latency.Quantile(0.5))
	}
	// The window's real length: no more than Run took beyond the warm-up.
	if m.Elapsed <= 0 || m.Elapsed > took-spec.Warmup {
		t.Fatalf("elapsed %v for a %v window in a %v run", m.Elapsed, spec.Duration, took)
	}
	if dups != 0 {
		t.Fatalf("%d duplicate commands", dups)
	}
	if got := m.OpsPerSec(); got <= 0 {
		t.Fatalf("ops/s %v", got)
	}
}

func TestRunStopsOnContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var once sync.Once
	op := func(ctx context.Context, client int, cmd []byte) error {
		once.Do(func() { close(started) })
		<-ctx.Done() // a request that only ends with ctx
		return ctx.Err()
	}
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Spec{Clients: 3, Payload: 8, Duration: time.Hour}, op)
		done <- err
	}()
	<-started
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestResultJSONRoundTrip(t *testing.T) {
	var h Histogram
	h.Record(250 * time.Microsecond)
	m := Measurement{Ops: 1, Elapsed: time.Second, Latency: &h, FirstError: errors.New("x")}
	r := NewResult("typedraft", "pebble", "tcp", true, 3, Spec{Clients: 1, Payload: 128}, m, RSS{PeakBytes: 3 << 20, Scope: "config"})
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("\n") // blank lines are skipped
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != r {
		t.Fatalf("round trip: %+v", got)
	}
	if r.PeakRSSMiB != 3 || r.P50us < 250 || r.P50us > 255 || r.FirstError != "x" || r.OpsPerSec != 1 {
		t.Fatalf("fields: %+v", r)
	}
	if r.Key() != (Key{Op: OpWrite, Durable: true, Transport: "tcp", Nodes: 3, Clients: 1, Payload: 128}) {
		t.Fatalf("key %+v", r.Key())
	}
	for _, bad := range []string{"not json\n", "{\"ops\":1}\n"} {
		if _, err := ReadJSON(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("ReadJSON(%q) = %v, want error naming line 1", bad, err)
		}
	}
}

func TestParseVmHWM(t *testing.T) {
	v, err := parseVmHWM([]byte("Name:\tx\nVmPeak:\t  100 kB\nVmHWM:\t    2048 kB\nVmRSS: 1 kB\n"))
	if err != nil || v != 2048<<10 {
		t.Fatalf("got %d, %v", v, err)
	}
	for _, bad := range []string{"Name: x\n", "VmHWM: lots kB\n", "VmHWM: 12 MB\n", "VmHWM: 99999999999999999999 kB\n"} {
		if _, err := parseVmHWM([]byte(bad)); err == nil {
			t.Errorf("parseVmHWM(%q): no error", bad)
		}
	}
}

// Window is called once when the measured window opens (after the
// warm-up) and once when it closes, and requests counted by Run are the
// ones completed between the two calls.
func TestRunWindow(t *testing.T) {
	var mu sync.Mutex
	var calls []bool
	var opened, closed time.Time
	var inWindow atomic.Uint64
	var open atomic.Bool
	spec := Spec{Clients: 2, Payload: 8, Duration: 100 * time.Millisecond, Warmup: 50 * time.Millisecond,
		Window: func(o bool) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, o)
			open.Store(o)
			if o {
				opened = time.Now()
			} else {
				closed = time.Now()
			}
		}}
	start := time.Now()
	m, err := Run(context.Background(), spec, func(context.Context, int, []byte) error {
		time.Sleep(time.Millisecond)
		if open.Load() {
			inWindow.Add(1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 || !calls[0] || calls[1] {
		t.Fatalf("window calls %v, want [true false]", calls)
	}
	if opened.Sub(start) < spec.Warmup || closed.Sub(start) < spec.Warmup+spec.Duration {
		t.Fatalf("window opened %v and closed %v after the start", opened.Sub(start), closed.Sub(start))
	}
	// Loose: the two counts differ only by requests straddling the edges.
	if d := int64(m.Ops) - int64(inWindow.Load()); d < -4 || d > 4 {
		t.Fatalf("Run counted %d requests, %d completed inside the window", m.Ops, inWindow.Load())
	}

	// An interrupted run still closes the window.
	calls = nil
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	mu.Unlock()
	_, err = Run(ctx, Spec{Clients: 1, Payload: 8, Duration: time.Hour, Window: spec.Window},
		func(ctx context.Context, _ int, _ []byte) error { <-ctx.Done(); return ctx.Err() })
	mu.Lock()
	if err == nil || len(calls) != 2 || calls[1] {
		t.Fatalf("interrupted run: err %v, window calls %v", err, calls)
	}
}

func TestBucketQuantile(t *testing.T) {
	inf := math.Inf(1)
	bounds := []float64{1, 2, 4, inf}
	// 10 at most 1, 10 in (1,2], 0 in (2,4], 5 above 4.
	counts := []uint64{10, 20, 20, 25}
	for _, c := range []struct{ q, want float64 }{
		{0, 0}, {0.2, 0.5}, {0.4, 1}, {0.6, 1.5}, {0.8, 2}, {0.9, 4}, {1, 4},
	} {
		if got := BucketQuantile(bounds, counts, c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q%.2f = %v, want %v", c.q, got, c.want)
		}
	}
	if BucketQuantile(bounds, []uint64{0, 0, 0, 0}, 0.5) != 0 || BucketQuantile(bounds, counts[:2], 0.5) != 0 || BucketQuantile(nil, nil, 0.5) != 0 {
		t.Fatal("empty or mismatched histogram: not 0")
	}
	if got := BucketQuantile([]float64{inf}, []uint64{3}, 0.5); got != 0 {
		t.Fatalf("only +Inf: %v", got)
	}
}
