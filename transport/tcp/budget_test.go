package tcp

import (
	"fmt"
	"net"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// frameFlood is one frame-body flood: conns connections each complete a
// hello and send one maximal frame (header and body, slowly, all but the
// last byte, then the last byte once every flood connection has got that
// far or a while has passed), while a real peer keeps sending heartbeats.
type frameFlood struct {
	frame       int           // the receiver's MaxFrameSize and each flood frame's size
	conns       int           // flood connections
	readTimeout time.Duration // the receiver's ReadTimeout (0: default)
	piece       int           // flood write size
	pause       time.Duration // between flood writes
	release     time.Duration // when the last bytes go at the latest
}

// heapSampler records the peaks of runtime.MemStats.HeapAlloc (everything
// allocated and not yet freed, garbage included) and of the live heap the
// collector last marked (runtime/metrics /gc/heap/live:bytes).
type heapSampler struct {
	peak, livePeak uint64 // written by the sampler, read after done
	stop, done     chan struct{}
}

func sampleHeap(every time.Duration) *heapSampler {
	s := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		var ms runtime.MemStats
		live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		for {
			runtime.ReadMemStats(&ms)
			s.peak = max(s.peak, ms.HeapAlloc)
			metrics.Read(live)
			if live[0].Value.Kind() == metrics.KindUint64 {
				s.livePeak = max(s.livePeak, live[0].Value.Uint64())
			}
			select {
			case <-s.stop:
				return
			case <-time.After(every):
			}
		}
	}()
	return s
}

// finish stops the sampler and returns its peaks.
func (s *heapSampler) finish() (heap, live uint64) {
	close(s.stop)
	<-s.done
	return s.peak, s.livePeak
}

type heapFigures struct{ heap, live uint64 }

// heapNow collects garbage and returns the heap figures the sampler reads.
func heapNow() heapFigures {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(live)
	f := heapFigures{heap: ms.HeapAlloc}
	if live[0].Value.Kind() == metrics.KindUint64 {
		f.live = live[0].Value.Uint64()
	}
	return f
}

func (ff frameFlood) run(t *testing.T) {
	bo := testOptions("b")
	bo.MaxFrameSize = ff.frame
	bo.ReadTimeout = ff.readTimeout
	b, hb, logs := loggedNode(t, bo)
	a := listen(t, testOptions("a"))
	budget := b.opts.MaxInflightBytes

	// The flood's connections, handshaken before anything is measured.
	conns := make([]net.Conn, ff.conns)
	for i := range conns {
		c, r, err := rawHello("", b.Addr(), raft.NodeID(fmt.Sprintf("f%d", i)), "b")
		if err != nil || !r.OK {
			t.Fatalf("flood hello %d: %+v %v", i, r, err)
		}
		conns[i] = c
		defer c.Close()
	}
	body := make([]byte, ff.frame) // zeros: a malformed message, refused once read
	base := heapNow()
	heap := sampleHeap(2 * time.Millisecond)

	var wg sync.WaitGroup
	var nearlyDone atomic.Int64
	lastByte := make(chan struct{}) // closed once: the flood sends its last bytes
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetWriteDeadline(time.Now().Add(time.Minute))
			if _, err := c.Write(header(frameMessage, uint32(ff.frame))); err != nil {
				return
			}
			for off := 0; off < len(body)-1; off += ff.piece {
				if _, err := c.Write(body[off:min(off+ff.piece, len(body)-1)]); err != nil {
					return
				}
				if ff.pause > 0 {
					time.Sleep(ff.pause) // the flood's pace, not a wait for state
				}
			}
			nearlyDone.Add(1)
			<-lastByte
			if _, err := c.Write(body[len(body)-1:]); err != nil {
				return
			}
			var buf [64]byte
			_ = c.SetReadDeadline(time.Now().Add(time.Minute))
			for { // until the receiver closes it
				if _, err := c.Read(buf[:]); err != nil {
					return
				}
			}
		}()
	}
	floodDone := make(chan struct{})
	go func() { wg.Wait(); close(floodDone) }()

	// Heartbeats from the real peer all through the flood; the last bytes
	// are released once every flood connection sent the rest, or after a
	// while (without the budget, all of them get there).
	release := time.Now().Add(ff.release)
	end := time.Now().Add(time.Minute)
	var worst time.Duration
	beats, released := 0, false
	for done := false; !done; {
		if !released && (nearlyDone.Load() == int64(ff.conns) || time.Now().After(release)) {
			t.Logf("%d of %d flood connections sent all but their last byte", nearlyDone.Load(), ff.conns)
			close(lastByte)
			released = true
		}
		worst = max(worst, deliveryTimes(t, a, peerOf(b), hb, 1, floodBound)[0])
		beats++
		select {
		case <-floodDone:
			done = released
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(end) {
			t.Fatal("the flood did not end within a minute")
		}
	}
	peak, livePeak := heap.finish()
	used, held := b.budget.stats()
	grew, liveGrew := int64(peak)-int64(base.heap), int64(livePeak)-int64(base.live)
	// The frame bodies alive at once are within the budget; besides them
	// the connections' read buffers and some slack. The heap figure also
	// counts the garbage the collector has not reclaimed yet (Go's default
	// GOGC lets it reach the live heap again, more while the collector
	// trails allocation on a busy machine), hence its generous bound.
	other := int64(ff.conns)*(256<<10) + 16<<20
	liveBound, bound := budget+budget/2+other, 6*budget+other
	t.Logf("%d connections x %d MiB frames, budget %d MiB (peak held %d MiB): live heap grew by %d MiB (bound %d MiB), "+
		"heap with garbage by %d MiB (bound %d MiB); %d heartbeats, slowest %v",
		ff.conns, ff.frame>>20, budget>>20, held>>20, liveGrew>>20, liveBound>>20, grew>>20, bound>>20, beats, worst)
	if used != 0 || held > budget {
		t.Fatalf("budget: %d bytes still held, peak %d of %d", used, held, budget)
	}
	if liveGrew > liveBound {
		t.Fatalf("the live heap grew by %d MiB under the frame flood, bound %d MiB (budget %d MiB)", liveGrew>>20, liveBound>>20, budget>>20)
	}
	if grew > bound {
		t.Fatalf("the heap grew by %d MiB under the frame flood, bound %d MiB (budget %d MiB)", grew>>20, bound>>20, budget>>20)
	}
	logs.waitLog(t, "closing inbound connection", "malformed")
}

// TestFrameFloodHeapBounded: 24 connections each send a maximal (4 MiB)
// frame slowly, to the last byte. Without a budget every body is held at
// once (96 MiB and more); with it the heap stays within a few budgets
// (8 MiB), and a real peer's heartbeats keep arriving.
func TestFrameFloodHeapBounded(t *testing.T) {
	frameFlood{frame: 4 << 20, conns: 24, readTimeout: 3 * time.Second, piece: 64 << 10, pause: 2 * time.Millisecond,
		release: time.Second}.run(t)
}

// TestFrameFloodHeapBoundedDefaults is the reported case at the default
// limits: 24 connections each send a 64 MiB frame to the last byte
// (1.5 GiB without a budget: out of memory in a 1 GiB cgroup).
func TestFrameFloodHeapBoundedDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 1.5 GiB; TestFrameFloodHeapBounded is the short variant")
	}
	frameFlood{frame: DefaultMaxFrameSize, conns: 24, piece: 1 << 20, release: 2 * time.Second}.run(t)
}

// TestLargeFrameWaitsForBudget: a real peer's large message waits for
// budget behind connections holding all of it, and arrives once their
// bodies are cut off at their read deadline; a frame that cannot get
// budget before its own connection's read deadline closes that connection
// with a clear log line.
func TestLargeFrameWaitsForBudget(t *testing.T) {
	bo := testOptions("b")
	bo.MaxFrameSize = 1 << 20
	bo.ReadTimeout = time.Second
	b, hb, logs := loggedNode(t, bo)
	a := listen(t, testOptions("a"))
	hello := func(id raft.NodeID) net.Conn {
		c, r, err := rawHello("", b.Addr(), id, "b")
		if err != nil || !r.OK {
			t.Fatalf("hello as %s: %+v %v", id, r, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	// w's read deadline comes first: it is established first, and its
	// frame will wait behind the two holders established later.
	w := hello("w")
	time.Sleep(200 * time.Millisecond) // spaces the read deadlines; not a wait for state
	for _, id := range []raft.NodeID{"h1", "h2"} {
		if _, err := hello(id).Write(header(frameMessage, 1<<20)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two connections to hold the whole budget", func() bool { used, _ := b.budget.stats(); return used == 2<<20 })
	if _, err := w.Write(header(frameMessage, 1<<20)); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, w, waitTimeout)
	logs.waitLog(t, "closing inbound connection: frame memory budget exhausted", "peer=w")

	big := raft.Message{Type: raft.MsgApp, From: "a", To: "b", Index: 7, Entries: []raft.Entry{{Index: 8, Data: make([]byte, 512<<10)}}}
	start := time.Now()
	for i := 0; !hasIndex(hb, 7); i++ {
		if i%50 == 0 { // re-send as raft would: a connection cut while waiting loses it
			a.Send(peerOf(b), []raft.Message{big})
		}
		if time.Since(start) > 3*bo.ReadTimeout+2*time.Second {
			t.Fatalf("the large message did not arrive within %v", time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("a 512 KiB message waited %v behind two connections holding the budget (ReadTimeout %v)", time.Since(start), bo.ReadTimeout)
}

func TestByteBudgetFIFO(t *testing.T) {
	b := newByteBudget(10)
	far := time.Now().Add(time.Minute)
	if err := b.acquire(8, far, nil); err != nil {
		t.Fatal(err)
	}
	got := make(chan int64, 2)
	go func() { _ = b.acquire(5, far, nil); got <- 5 }()
	waitFor(t, "the first waiter", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiters) == 1 })
	go func() { _ = b.acquire(2, far, nil); got <- 2 }() // would fit (8+2), but must queue behind 5
	waitFor(t, "the second waiter", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiters) == 2 })
	b.release(3) // 5 free: the head (5) is granted; 2 would fit after it but not now
	if first := <-got; first != 5 {
		t.Fatalf("granted %d first, want 5 (arrival order)", first)
	}
	select {
	case n := <-got:
		t.Fatalf("granted %d while only %d bytes were free", n, 0)
	case <-time.After(20 * time.Millisecond):
	}
	b.release(5)
	if second := <-got; second != 2 {
		t.Fatalf("granted %d second, want 2", second)
	}
	if err := b.acquire(9, time.Now().Add(20*time.Millisecond), nil); err != errBudgetTimeout {
		t.Fatalf("acquire past the deadline: %v, want errBudgetTimeout", err)
	}
	b.release(7)
	if used, peak := b.stats(); used != 0 || peak != 10 {
		t.Fatalf("used %d, peak %d; want 0 and 10", used, peak)
	}
}
