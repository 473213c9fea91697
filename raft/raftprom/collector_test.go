package raftprom_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/raft/raftprom"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/transport/inmem"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// counter is the test state machine: it adds each command to a total.
type counter struct{ total int }

func (c *counter) Apply(_ uint64, n int) (int, *cmdError) {
	c.total += n
	return c.total, nil
}

// cmdError is the test application's error type (never returned).
type cmdError struct{}

func (*cmdError) Error() string { return "cmd error" }

type node = raft.Raft[int, int, *cmdError]

// startCluster starts three nodes on an in-memory network and waits until
// every node knows the same leader, which it returns with the nodes.
func startCluster(t *testing.T) ([]*node, *node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	net := inmem.NewNetwork(1)
	var servers []raft.Server
	for i := 1; i <= 3; i++ {
		id := raft.NodeID(fmt.Sprintf("n%d", i))
		servers = append(servers, raft.Server{ID: id, Addr: string(id)})
	}
	var nodes []*node
	for _, s := range servers {
		tr, store := net.Join(s.ID), memory.New()
		n, err := raft.New(raft.Config{ID: s.ID, TickInterval: 10 * time.Millisecond}, &counter{}, store, tr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = n.Shutdown(ctx)
			_ = tr.Close()
			_ = store.Close()
		})
		if err := n.Bootstrap(ctx, servers); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	id, _, err := nodes[0].WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if _, err := n.WaitFor(ctx, func(s raft.Status) bool { return s.Leader == id }); err != nil {
			t.Fatalf("%s never learned the leader %s: %v", n.ID(), id, err)
		}
	}
	leader := nodes[slices.IndexFunc(nodes, func(n *node) bool { return n.ID() == id })]
	if _, err := leader.WaitFor(ctx, func(s raft.Status) bool { return s.State == raft.Leader }); err != nil {
		t.Fatal(err)
	}
	return nodes, leader
}

// gather registers c on a pedantic registry (which checks every collected
// metric against Describe) and gathers it, by family name.
func gather(t *testing.T, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// sample returns the value of family name's metric whose label (if any)
// has value v, and whether there is one.
func sample(mfs map[string]*dto.MetricFamily, name, v string) (*dto.Metric, bool) {
	mf := mfs[name]
	if mf == nil {
		return nil, false
	}
	for _, m := range mf.GetMetric() {
		match := v == ""
		for _, l := range m.GetLabel() {
			if l.GetName() != raftprom.NodeLabel && l.GetValue() == v {
				match = true
			}
		}
		if match {
			return m, true
		}
	}
	return nil, false
}

func value(t *testing.T, mfs map[string]*dto.MetricFamily, name, label string) float64 {
	t.Helper()
	m, ok := sample(mfs, name, label)
	if !ok {
		t.Fatalf("no sample %s{%s}", name, label)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("%s is neither a counter nor a gauge", name)
	return 0
}

func TestClusterScrape(t *testing.T) {
	nodes, leader := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const proposals, reads = 25, 4
	for i := range proposals {
		if _, appErr, err := leader.Apply(ctx, i); err != nil || appErr != nil {
			t.Fatalf("apply %d: %v %v", i, err, appErr)
		}
	}
	for range reads {
		if _, err := raft.Query(ctx, leader, raft.ReadLinearizable, func() int { return 0 }); err != nil {
			t.Fatal(err)
		}
	}
	commit := leader.Status().Commit
	for _, n := range nodes {
		if _, err := n.WaitFor(ctx, func(s raft.Status) bool { return s.Applied >= commit }); err != nil {
			t.Fatalf("%s did not apply %d: %v", n.ID(), commit, err)
		}
	}
	// Status.Peers is refreshed every tick: wait until the leader sees
	// every follower holding the commit index.
	if _, err := leader.WaitFor(ctx, func(s raft.Status) bool {
		return len(s.Peers) == 3 && !slices.ContainsFunc(s.Peers, func(p raft.PeerStatus) bool { return p.Match < commit })
	}); err != nil {
		t.Fatal(err)
	}

	lc := raftprom.NewCollector(leader)
	mfs := gather(t, lc)
	for name, typ := range map[string]dto.MetricType{
		"typedraft_proposals_total":           dto.MetricType_COUNTER,
		"typedraft_entries_applied_total":     dto.MetricType_COUNTER,
		"typedraft_messages_sent_total":       dto.MetricType_COUNTER,
		"typedraft_reads_total":               dto.MetricType_COUNTER,
		"typedraft_is_leader":                 dto.MetricType_GAUGE,
		"typedraft_commit_index":              dto.MetricType_GAUGE,
		"typedraft_peer_match_index":          dto.MetricType_GAUGE,
		"typedraft_peer_lag_entries":          dto.MetricType_GAUGE,
		"typedraft_peer_last_contact_seconds": dto.MetricType_GAUGE,
		"typedraft_commit_seconds":            dto.MetricType_HISTOGRAM,
		"typedraft_storage_save_seconds":      dto.MetricType_HISTOGRAM,
		"typedraft_save_batch_entries":        dto.MetricType_HISTOGRAM,
	} {
		mf := mfs[name]
		if mf == nil {
			t.Fatalf("no family %s in %v", name, slices.Sorted(mapsKeys(mfs)))
		}
		if mf.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, mf.GetType(), typ)
		}
		for _, m := range mf.GetMetric() {
			if !hasLabel(m, raftprom.NodeLabel, string(leader.ID())) {
				t.Errorf("%s lacks node=%q: %v", name, leader.ID(), m.GetLabel())
			}
		}
	}
	if got := value(t, mfs, "typedraft_proposals_total", ""); got != proposals {
		t.Errorf("proposals_total = %v, want %d", got, proposals)
	}
	if got := value(t, mfs, "typedraft_entries_applied_total", ""); got < proposals {
		t.Errorf("entries_applied_total = %v, want at least %d", got, proposals)
	}
	if got := value(t, mfs, "typedraft_reads_total", "linearizable"); got != reads {
		t.Errorf("reads_total{mode=linearizable} = %v, want %d", got, reads)
	}
	if got := value(t, mfs, "typedraft_commit_index", ""); got < float64(commit) {
		t.Errorf("commit_index = %v, want at least %d", got, commit)
	}
	if got := value(t, mfs, "typedraft_messages_sent_total", "App"); got == 0 {
		t.Errorf("messages_sent_total{type=App} = 0 after %d proposals", proposals)
	}
	for _, m := range mfs["typedraft_messages_sent_total"].GetMetric() {
		if len(m.GetLabel()) != 2 || !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == "type" }) {
			t.Errorf("messages_sent_total sample without a type label: %v", m.GetLabel())
		}
	}
	for _, n := range nodes {
		if got := value(t, mfs, "typedraft_peer_match_index", string(n.ID())); got < float64(commit) {
			t.Errorf("peer_match_index{peer=%s} = %v, want at least %d", n.ID(), got, commit)
		}
	}
	h, _ := sample(mfs, "typedraft_commit_seconds", "")
	hist := h.GetHistogram()
	// Every proposal is timed exactly once, whether its commit is seen
	// before its entry is handed to the apply goroutine or then.
	if n := hist.GetSampleCount(); n != proposals {
		t.Errorf("commit_seconds count %d, want %d (one per proposal)", n, proposals)
	}
	checkHistogram(t, "commit_seconds", hist)
	if lc.SkippedMetrics() != 0 {
		t.Errorf("%d samples of the leader were left out", lc.SkippedMetrics())
	}

	// is_leader is 1 on exactly one node (a leadership change under a
	// loaded machine could make it briefly 0 or 2: look until it settles).
	deadline := time.Now().Add(10 * time.Second)
	for {
		var leaders []raft.NodeID
		for _, n := range nodes {
			if value(t, gather(t, raftprom.NewCollector(n)), "typedraft_is_leader", "") == 1 {
				leaders = append(leaders, n.ID())
			}
		}
		if len(leaders) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("is_leader is 1 on %v", leaders)
		}
		if _, err := leader.WaitFor(ctx, func(raft.Status) bool { return true }); err != nil {
			t.Fatal(err)
		}
	}

	// A follower describes the same families (the peer ones included)
	// and exports what it has.
	f := nodes[slices.IndexFunc(nodes, func(n *node) bool { return n != leader })]
	fc := raftprom.NewCollector(f)
	if got, want := describe(fc), describe(lc); !slices.Equal(got, want) {
		t.Errorf("a follower describes %v\nthe leader %v", got, want)
	}
	fm := gather(t, fc)
	if got := value(t, fm, "typedraft_proposals_total", ""); got != 0 {
		t.Errorf("follower proposals_total = %v, want 0", got)
	}
	if got := value(t, fm, "typedraft_entries_applied_total", ""); got < proposals {
		t.Errorf("follower entries_applied_total = %v, want at least %d", got, proposals)
	}
	if _, ok := sample(fm, "typedraft_peer_match_index", string(leader.ID())); ok {
		t.Errorf("a follower exports peer samples")
	}

	for _, c := range []*raftprom.Collector{lc, fc} {
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

// checkHistogram checks that buckets are cumulative and end at the count.
func checkHistogram(t *testing.T, name string, h *dto.Histogram) {
	t.Helper()
	var prev uint64
	for _, b := range h.GetBucket() {
		if b.GetCumulativeCount() < prev {
			t.Errorf("%s: bucket le=%v has %d < %d", name, b.GetUpperBound(), b.GetCumulativeCount(), prev)
		}
		if math.IsInf(b.GetUpperBound(), 1) && b.GetCumulativeCount() != h.GetSampleCount() {
			t.Errorf("%s: +Inf bucket %d, count %d", name, b.GetCumulativeCount(), h.GetSampleCount())
		}
		prev = b.GetCumulativeCount()
	}
	if prev > h.GetSampleCount() {
		t.Errorf("%s: buckets reach %d, count %d", name, prev, h.GetSampleCount())
	}
}

func describe(c prometheus.Collector) []string {
	ch := make(chan *prometheus.Desc, 256)
	c.Describe(ch)
	close(ch)
	var out []string
	for d := range ch {
		// The node label's value differs between nodes.
		s := d.String()
		if i := strings.Index(s, "constLabels: {"); i >= 0 {
			s = s[:i]
		}
		out = append(out, s)
	}
	return out
}

func hasLabel(m *dto.Metric, name, v string) bool {
	return slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == name && l.GetValue() == v })
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
