package inmem_test

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/inmem"
)

func TestPartitionSymmetric(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b", "c")
	a, b, c := ns[0], ns[1], ns[2]
	if err := net.Partition([]raft.NodeID{"a"}, []raft.NodeID{"b", "c"}); err != nil {
		t.Fatal(err)
	}
	send(a, b, 1)
	send(b, a, 1)
	send(a, c, 1)
	fence(t, b, c, 1) // b and c are on the same side
	fence(t, c, b, 1)
	waitFor(t, "a told b is unreachable", func() bool { return a.c.reports("b") > 0 })
	waitFor(t, "b told a is unreachable", func() bool { return b.c.reports("a") > 0 })
	if got := len(indexes(b.c, "a")) + len(indexes(a.c, "b")) + len(indexes(c.c, "a")); got != 0 {
		t.Fatalf("%d messages crossed the partition", got)
	}
	if s := net.Stats("a", "b"); s.Dropped != 1 || s.Messages != 0 {
		t.Fatalf("stats a->b = %+v, want 1 dropped", s)
	}

	net.Heal()
	fence(t, a, b, 10)
	fence(t, b, a, 10)
}

func TestPartitionUnlistedNodesFormOneGroup(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b", "c")
	a, b, c := ns[0], ns[1], ns[2]
	if err := net.Partition([]raft.NodeID{"a"}); err != nil {
		t.Fatal(err)
	}
	send(a, b, 1)
	send(c, a, 1)
	fence(t, b, c, 1)
	fence(t, c, b, 1)
	waitFor(t, "reports", func() bool { return a.c.reports("b") > 0 && c.c.reports("a") > 0 })
	if len(a.c.messages())+len(indexes(b.c, "a")) != 0 {
		t.Fatal("a isolated by the partition still exchanged messages")
	}
	// Partition() removes the partition.
	if err := net.Partition(); err != nil {
		t.Fatal(err)
	}
	fence(t, a, b, 10)
}

func TestPartitionRejectsDuplicates(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b")
	if err := net.Partition([]raft.NodeID{"a", "b"}, []raft.NodeID{"b"}); err == nil {
		t.Fatal("Partition accepted a node in two groups")
	}
	fence(t, ns[0], ns[1], 1) // nothing changed
}

func TestCutIsOneWay(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b")
	a, b := ns[0], ns[1]
	net.Cut("a", "b")
	send(a, b, 1)
	fence(t, b, a, 1)
	waitFor(t, "a told b is unreachable", func() bool { return a.c.reports("b") > 0 })
	if len(b.c.messages()) != 0 {
		t.Fatal("message crossed a cut link")
	}
	net.Heal()
	fence(t, a, b, 2)
}

func TestCutDropsQueuedMessages(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b")
	a, b := ns[0], ns[1]
	if err := net.SetDelay("a", "b", 200*time.Millisecond, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	send(a, b, 1) // queued for 200ms
	net.Cut("a", "b")
	waitFor(t, "the delayed message to be dropped", func() bool { return net.Stats("a", "b").Dropped == 1 })
	if len(b.c.messages()) != 0 {
		t.Fatal("a message queued before the cut was delivered")
	}
}

func TestIsolate(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b", "c")
	a, b, c := ns[0], ns[1], ns[2]
	net.Isolate("a")
	send(a, b, 1)
	send(c, a, 1)
	fence(t, b, c, 1)
	waitFor(t, "reports", func() bool { return a.c.reports("b") > 0 && c.c.reports("a") > 0 })
	if len(a.c.messages())+len(indexes(b.c, "a")) != 0 {
		t.Fatal("isolated node exchanged messages")
	}
	// Removing partitions keeps isolations.
	if err := net.Partition(); err != nil {
		t.Fatal(err)
	}
	send(a, b, 2)
	if s := net.Stats("a", "b"); s.Dropped != 2 {
		t.Fatalf("Partition() lifted the isolation: %+v", s)
	}
	net.Heal()
	fence(t, a, b, 10)
	fence(t, c, a, 10)
}

// dropRun sends n messages a->b over a network seeded with seed and a drop
// rate p, and returns the indexes delivered.
func dropRun(t *testing.T, seed int64, p float64, n int) ([]uint64, inmem.LinkStats) {
	t.Helper()
	net := inmem.NewNetwork(seed, inmem.WithQueueSize(n+1))
	ns := join(t, net, "a", "b")
	a, b := ns[0], ns[1]
	if err := net.SetDropRate("a", "b", p); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		send(a, b, uint64(i))
	}
	waitFor(t, "every message delivered or dropped", func() bool {
		s := net.Stats("a", "b")
		return s.Messages+s.Dropped == uint64(n)
	})
	reportFence(t, a)
	if r := a.c.reports("b"); r != 0 {
		t.Fatalf("random drops reported b unreachable %d times", r)
	}
	return indexes(b.c, "a"), net.Stats("a", "b")
}

func TestDropRateIsSeededAndStatistical(t *testing.T) {
	const n, p = 4000, 0.3
	got1, s := dropRun(t, 42, p, n)
	rate := float64(s.Dropped) / n
	// 1200 expected, standard deviation ~29 (0.0072): allow 5.5 deviations.
	if math.Abs(rate-p) > 0.04 {
		t.Fatalf("dropped %d of %d (%.3f), want about %.2f", s.Dropped, n, rate, p)
	}
	if uint64(len(got1)) != s.Messages {
		t.Fatalf("collector got %d, stats say %d delivered", len(got1), s.Messages)
	}
	if !slices.IsSorted(got1) {
		t.Fatal("drops reordered the link")
	}
	got2, _ := dropRun(t, 42, p, n)
	if !slices.Equal(got1, got2) {
		t.Fatal("same seed dropped different messages")
	}
}

func TestDropRateAllAndOverride(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b", "c")
	a, b, c := ns[0], ns[1], ns[2]
	if err := net.SetDropRateAll(1); err != nil {
		t.Fatal(err)
	}
	if err := net.SetDropRate("a", "c", 0); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 50; i++ {
		send(a, b, i)
	}
	fence(t, a, c, 1) // the override lets a->c through
	if s := net.Stats("a", "b"); s.Dropped != 50 || s.Messages != 0 {
		t.Fatalf("a->b with rate 1: %+v", s)
	}
	// SetDropRateAll replaces per-link rates.
	if err := net.SetDropRateAll(1); err != nil {
		t.Fatal(err)
	}
	before := net.Stats("a", "c").Dropped
	send(a, c, 100)
	if got := net.Stats("a", "c").Dropped; got != before+1 {
		t.Fatalf("a->c override survived SetDropRateAll: dropped %d, want %d", got, before+1)
	}
	if err := net.SetDropRateAll(0); err != nil {
		t.Fatal(err)
	}
	fence(t, a, b, 100)
}

func TestFaultSettersRejectBadInput(t *testing.T) {
	net := inmem.NewNetwork(1)
	for _, p := range []float64{-0.1, 1.5, math.NaN(), math.Inf(1)} {
		if err := net.SetDropRate("a", "b", p); err == nil {
			t.Errorf("SetDropRate(%v) accepted", p)
		}
		if err := net.SetDropRateAll(p); err == nil {
			t.Errorf("SetDropRateAll(%v) accepted", p)
		}
	}
	bad := [][2]time.Duration{{-time.Millisecond, time.Millisecond}, {2 * time.Millisecond, time.Millisecond}}
	for _, d := range bad {
		if err := net.SetDelay("a", "b", d[0], d[1]); err == nil {
			t.Errorf("SetDelay(%v, %v) accepted", d[0], d[1])
		}
		if err := net.SetDelayAll(d[0], d[1]); err == nil {
			t.Errorf("SetDelayAll(%v, %v) accepted", d[0], d[1])
		}
	}
}

func TestDelayHoldsMessages(t *testing.T) {
	net := inmem.NewNetwork(3)
	ns := join(t, net, "a", "b")
	a, b := ns[0], ns[1]
	const min, max = 20 * time.Millisecond, 40 * time.Millisecond
	if err := net.SetDelay("a", "b", min, max); err != nil {
		t.Fatal(err)
	}
	var sent []time.Time
	for i := uint64(1); i <= 20; i++ {
		sent = append(sent, time.Now())
		send(a, b, i)
	}
	waitFor(t, "delayed messages", func() bool { return b.c.count() == 20 })
	at := b.c.arrivals()
	for i, m := range b.c.messages() {
		if m.Index != uint64(i+1) {
			t.Fatalf("message %d has index %d: delays reordered a FIFO link", i, m.Index)
		}
		if d := at[i].Sub(sent[i]); d < min {
			t.Fatalf("message %d arrived after %v, before the minimum delay %v", i, d, min)
		}
	}
	// SetDelayAll applies to other links, and replaces per-link delays.
	if err := net.SetDelay("a", "b", time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := net.SetDelayAll(min, min); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	send(b, a, 1)
	waitFor(t, "b->a", func() bool { return a.c.count() == 1 })
	if d := a.c.arrivals()[0].Sub(start); d < min {
		t.Fatalf("b->a arrived after %v, before %v", d, min)
	}
	send(a, b, 21) // would wait an hour if the per-link delay survived
	waitFor(t, "a->b after SetDelayAll", func() bool { return b.c.count() == 21 })
}

// TestReorder: a message with a long delay followed by one with none arrives
// second only when reordering is on.
func TestReorder(t *testing.T) {
	for _, reorder := range []bool{false, true} {
		net := inmem.NewNetwork(1)
		ns := join(t, net, "a", "b")
		a, b := ns[0], ns[1]
		net.SetReorder(reorder)
		if err := net.SetDelay("a", "b", 100*time.Millisecond, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		send(a, b, 1)
		if err := net.SetDelay("a", "b", 0, 0); err != nil {
			t.Fatal(err)
		}
		send(a, b, 2)
		waitFor(t, "both messages", func() bool { return b.c.count() == 2 })
		want := []uint64{1, 2}
		if reorder {
			want = []uint64{2, 1}
		}
		if got := indexes(b.c, "a"); !slices.Equal(got, want) {
			t.Fatalf("reorder=%v: got %v, want %v", reorder, got, want)
		}
	}
}

func TestReorderWithJitter(t *testing.T) {
	net := inmem.NewNetwork(5)
	ns := join(t, net, "a", "b")
	a, b := ns[0], ns[1]
	net.SetReorder(true)
	if err := net.SetDelay("a", "b", 0, 30*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := uint64(1); i <= n; i++ {
		send(a, b, i)
	}
	waitFor(t, "all messages", func() bool { return b.c.count() == n })
	got := indexes(b.c, "a")
	if slices.IsSorted(got) {
		t.Fatal("200 messages with 0-30ms jitter arrived in send order despite SetReorder(true)")
	}
	slices.Sort(got)
	for i, idx := range got {
		if idx != uint64(i+1) {
			t.Fatalf("message %d lost or duplicated", i+1)
		}
	}
}

func TestHealClearsEverything(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b", "c")
	a, b := ns[0], ns[1]
	if err := net.Partition([]raft.NodeID{"a"}); err != nil {
		t.Fatal(err)
	}
	net.Cut("b", "a")
	net.Isolate("c")
	if err := net.SetDropRateAll(1); err != nil {
		t.Fatal(err)
	}
	if err := net.SetDelayAll(time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	net.SetReorder(true)
	net.Heal()
	fence(t, a, b, 1)
	fence(t, b, a, 1)
	fence(t, ns[2], a, 1)
}
