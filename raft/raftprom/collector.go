package raftprom

import (
	"math"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/typedraft/typedraft/raft"
)

// Source is what a Collector reads: a node's metrics and its ID. Every
// *raft.Raft[C, R, E] is one.
type Source interface {
	Metrics() []raft.Metric
	ID() raft.NodeID
}

// DefaultNamespace prefixes every metric name (typedraft_proposals_total).
const DefaultNamespace = "typedraft"

// NodeLabel is the constant label that carries the node's ID.
const NodeLabel = "node"

// Option configures a Collector.
type Option func(*options)

type options struct {
	namespace   string
	constLabels prometheus.Labels
}

// WithNamespace replaces the "typedraft" prefix of metric names (a valid
// metric name prefix; empty: no prefix).
func WithNamespace(ns string) Option {
	return func(o *options) { o.namespace = ns }
}

// WithConstLabels adds constant labels to every metric, e.g. a cluster
// name. They must not be named node, peer, type or mode. The map is copied.
func WithConstLabels(l prometheus.Labels) Option {
	return func(o *options) {
		for k, v := range l {
			o.constLabels[k] = v
		}
	}
}

// peerFamilies are the families raft reports only on a leader (one sample
// per member), described on every node so that Describe does not depend
// on the node's role when the collector was made.
var peerFamilies = []raft.Metric{
	{Name: "peer_match_index", Help: "On the leader: the highest index known to be on the peer.", Kind: raft.MetricGauge, Label: "peer"},
	{Name: "peer_lag_entries", Help: "On the leader: how far the peer's log is behind.", Kind: raft.MetricGauge, Unit: "entries", Label: "peer"},
	{Name: "peer_last_contact_seconds", Help: "On the leader: time since the peer last answered.", Kind: raft.MetricGauge, Unit: "seconds", Label: "peer"},
}

// family is one described metric family.
type family struct {
	desc  *prometheus.Desc
	kind  raft.MetricKind
	label string // the variable label's name, or ""
}

// Collector is a prometheus.Collector of one node's metrics (see the
// package doc for names, labels and what Describe describes).
//
// Concurrency: safe for concurrent use; Collect may run while the node
// works, and after it stopped (it then exports the final values).
type Collector struct {
	src     Source
	order   []string // raft names, sorted: the order of Describe
	fams    map[string]family
	skipped atomic.Uint64
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector of src's metrics, reading them once to
// learn the families it describes. Families whose name or label is not
// valid for Prometheus, or whose label clashes with a constant label, are
// left out (and their samples counted by SkippedMetrics).
func NewCollector(src Source, opts ...Option) *Collector {
	o := options{namespace: DefaultNamespace, constLabels: prometheus.Labels{}}
	for _, opt := range opts {
		opt(&o)
	}
	o.constLabels[NodeLabel] = string(src.ID())
	c := &Collector{src: src, fams: map[string]family{}}
	add := func(m raft.Metric) {
		if _, dup := c.fams[m.Name]; dup {
			return
		}
		name := promName(o.namespace, m)
		if !model.IsValidMetricName(model.LabelValue(name)) || !validKind(m.Kind) {
			return
		}
		var labels []string
		if m.Label != "" {
			if _, clash := o.constLabels[m.Label]; clash || !model.LabelName(m.Label).IsValid() || strings.HasPrefix(m.Label, "__") {
				return
			}
			labels = []string{m.Label}
		}
		c.fams[m.Name] = family{desc: prometheus.NewDesc(name, m.Help, labels, o.constLabels), kind: m.Kind, label: m.Label}
		c.order = append(c.order, m.Name)
	}
	for _, m := range src.Metrics() {
		add(m)
	}
	for _, m := range peerFamilies {
		add(m)
	}
	// Sorted, so that every node describes its families in one order
	// whatever its role when the collector was made.
	slices.Sort(c.order)
	return c
}

// promName returns the Prometheus name of m: namespace_name, with m's unit
// appended (before a counter's _total) when the name does not end in it.
func promName(ns string, m raft.Metric) string {
	name := m.Name
	if m.Unit != "" {
		base, total := strings.CutSuffix(name, "_total")
		if !strings.HasSuffix(base, "_"+m.Unit) {
			name = base + "_" + m.Unit
			if total {
				name += "_total"
			}
		}
	}
	if ns == "" {
		return name
	}
	return ns + "_" + name
}

func validKind(k raft.MetricKind) bool {
	return k == raft.MetricCounter || k == raft.MetricGauge || k == raft.MetricHistogram
}

// Describe sends the descriptor of every family, the same on every call.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, name := range c.order {
		ch <- c.fams[name].desc
	}
}

// Collect reads the node's metrics once and sends them. A sample that
// does not fit its described family (unknown name, another kind or label,
// a malformed histogram, or a repeat of a sample already sent) is left out
// and counted by SkippedMetrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ name, value string }
	seen := map[key]bool{}
	for _, m := range c.src.Metrics() {
		f, ok := c.fams[m.Name]
		k := key{m.Name, m.LabelValue}
		if !ok || f.kind != m.Kind || f.label != m.Label || seen[k] {
			c.skipped.Add(1)
			continue
		}
		var labels []string
		if f.label != "" {
			labels = []string{m.LabelValue}
		}
		pm, err := convert(f, m, labels)
		if err != nil {
			c.skipped.Add(1)
			continue
		}
		seen[k] = true
		ch <- pm
	}
}

// SkippedMetrics returns how many samples Collect has left out so far.
// It stays zero while raft reports only the families it described.
func (c *Collector) SkippedMetrics() uint64 { return c.skipped.Load() }

// errHistogram marks a histogram sample whose buckets and counts disagree.
type errHistogram struct{}

func (errHistogram) Error() string { return "raftprom: histogram buckets and counts differ in length" }

// convert turns one raft sample into a constant Prometheus metric.
func convert(f family, m raft.Metric, labels []string) (prometheus.Metric, error) {
	switch m.Kind {
	case raft.MetricCounter:
		return prometheus.NewConstMetric(f.desc, prometheus.CounterValue, m.Value, labels...)
	case raft.MetricGauge:
		return prometheus.NewConstMetric(f.desc, prometheus.GaugeValue, m.Value, labels...)
	default:
		if len(m.Buckets) != len(m.Counts) {
			return nil, errHistogram{}
		}
		buckets := make(map[float64]uint64, len(m.Buckets))
		count := m.Count
		for i, b := range m.Buckets {
			if math.IsInf(b, 1) {
				// The +Inf bucket is implied: it is the count. raft reads
				// its buckets before its count, so an observation that
				// lands in between would make them disagree; the buckets
				// win, so that _count equals le="+Inf".
				count = m.Counts[i]
				continue
			}
			buckets[b] = m.Counts[i]
		}
		return prometheus.NewConstHistogram(f.desc, count, m.Value, buckets, labels...)
	}
}
