package raftprom_test

import (
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/raft/raftprom"
)

// fake is a Source whose metrics the test sets.
type fake struct {
	mu      sync.Mutex
	id      raft.NodeID
	metrics []raft.Metric
}

func (f *fake) ID() raft.NodeID { return f.id }

func (f *fake) Metrics() []raft.Metric {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]raft.Metric(nil), f.metrics...)
}

func (f *fake) set(ms ...raft.Metric) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.metrics = ms
}

func TestExposition(t *testing.T) {
	f := &fake{id: "n7"}
	f.set(
		raft.Metric{Name: "proposals_total", Help: "Commands proposed.", Kind: raft.MetricCounter, Value: 3},
		raft.Metric{Name: "term", Help: "Current term.", Kind: raft.MetricGauge, Value: 2},
		raft.Metric{Name: "reads_total", Help: "Reads.", Kind: raft.MetricCounter, Label: "mode", LabelValue: "lease", Value: 5},
		// A unit the name lacks is appended (before _total).
		raft.Metric{Name: "bytes_sent_total", Help: "Bytes.", Kind: raft.MetricCounter, Unit: "bytes", Value: 9},
		raft.Metric{Name: "wait", Help: "Waits.", Kind: raft.MetricHistogram, Unit: "seconds", Value: 0.75,
			Count: 3, Buckets: []float64{0.1, 1, math.Inf(1)}, Counts: []uint64{1, 3, 3}},
	)
	c := raftprom.NewCollector(f, raftprom.WithConstLabels(prometheus.Labels{"cluster": "c1"}))
	want := `
# HELP typedraft_bytes_sent_bytes_total Bytes.
# TYPE typedraft_bytes_sent_bytes_total counter
typedraft_bytes_sent_bytes_total{cluster="c1",node="n7"} 9
# HELP typedraft_peer_lag_entries On the leader: how far the peer's log is behind.
# TYPE typedraft_peer_lag_entries gauge
# HELP typedraft_proposals_total Commands proposed.
# TYPE typedraft_proposals_total counter
typedraft_proposals_total{cluster="c1",node="n7"} 3
# HELP typedraft_reads_total Reads.
# TYPE typedraft_reads_total counter
typedraft_reads_total{cluster="c1",mode="lease",node="n7"} 5
# HELP typedraft_term Current term.
# TYPE typedraft_term gauge
typedraft_term{cluster="c1",node="n7"} 2
# HELP typedraft_wait_seconds Waits.
# TYPE typedraft_wait_seconds histogram
typedraft_wait_seconds_bucket{cluster="c1",node="n7",le="0.1"} 1
typedraft_wait_seconds_bucket{cluster="c1",node="n7",le="1"} 3
typedraft_wait_seconds_bucket{cluster="c1",node="n7",le="+Inf"} 3
typedraft_wait_seconds_sum{cluster="c1",node="n7"} 0.75
typedraft_wait_seconds_count{cluster="c1",node="n7"} 3
`
	names := []string{"typedraft_bytes_sent_bytes_total", "typedraft_peer_lag_entries", "typedraft_proposals_total",
		"typedraft_reads_total", "typedraft_term", "typedraft_wait_seconds"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c); n != 5 {
		t.Errorf("collected %d metrics, want 5", n)
	}
	if c.SkippedMetrics() != 0 {
		t.Errorf("skipped %d", c.SkippedMetrics())
	}
}

// Samples that do not fit what was described are left out, counted, and
// never fail the scrape.
func TestSkipped(t *testing.T) {
	f := &fake{id: "n1"}
	good := raft.Metric{Name: "term", Help: "Current term.", Kind: raft.MetricGauge, Value: 2}
	f.set(good,
		raft.Metric{Name: "Bad-Name", Kind: raft.MetricGauge},                                          // invalid: never described
		raft.Metric{Name: "clash", Kind: raft.MetricGauge, Label: raftprom.NodeLabel, LabelValue: "x"}, // label clash
		raft.Metric{Name: "hist", Kind: raft.MetricHistogram, Buckets: []float64{1, math.Inf(1)}, Counts: []uint64{1, 1}, Count: 1},
	)
	c := raftprom.NewCollector(f, raftprom.WithNamespace("x"))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	f.set(good, good, // a repeat
		raft.Metric{Name: "term", Kind: raft.MetricCounter},                                       // another kind
		raft.Metric{Name: "new_total", Kind: raft.MetricCounter},                                  // not described
		raft.Metric{Name: "hist", Kind: raft.MetricHistogram, Buckets: []float64{1}, Counts: nil}, // malformed
		raft.Metric{Name: "Bad-Name", Kind: raft.MetricGauge},
		raft.Metric{Name: "clash", Kind: raft.MetricGauge, Label: raftprom.NodeLabel, LabelValue: "x"},
	)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		if len(mf.GetMetric()) > 0 {
			names = append(names, mf.GetName())
		}
	}
	if len(names) != 1 || names[0] != "x_term" {
		t.Errorf("gathered %v, want only x_term", names)
	}
	if got := c.SkippedMetrics(); got != 6 {
		t.Errorf("skipped %d, want 6", got)
	}
}
