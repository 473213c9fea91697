package raft

import (
	"math"
	"sync/atomic"
	"time"
)

// Metrics, without a dependency: the driver counts into atomic counters
// and fixed-bucket histograms (a few atomic additions per batch, none per
// message beyond one per message sent), and Raft.Metrics reads them. An
// adapter exports them to a monitoring system; raft/raftprom is the one for
// Prometheus.

// MetricKind says how a Metric behaves.
type MetricKind uint8

const (
	// MetricCounter only goes up.
	MetricCounter MetricKind = iota + 1
	// MetricGauge is a current value.
	MetricGauge
	// MetricHistogram is a distribution of observed values.
	MetricHistogram
)

// Metric is one sample of Raft.Metrics. Labels are bounded: at most a peer
// ID (the members of the configuration) or a message type.
type Metric struct {
	// Name is stable and snake_case, e.g. "proposals_total"; Unit the
	// unit of values ("seconds", "entries", "bytes" or "").
	Name, Help, Unit string
	Kind             MetricKind
	// Label names the label of this sample ("peer", "type", "mode") and
	// LabelValue its value; both empty for unlabelled metrics.
	Label, LabelValue string
	// Value is the counter's or gauge's value, or the histogram's sum.
	Value float64
	// Count, Buckets and Counts describe a histogram: Counts[i] values
	// were at most Buckets[i] (cumulative; the last bucket is +Inf).
	Count   uint64
	Buckets []float64
	Counts  []uint64
}

// histogram is a fixed-bucket histogram of durations or sizes.
type histogram struct {
	bounds []float64
	counts []atomic.Uint64 // len(bounds)+1, not cumulative
	sum    atomic.Uint64   // float64 bits
	n      atomic.Uint64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// observe records v.
func (h *histogram) observe(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.n.Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

func (h *histogram) sample(m Metric) Metric {
	m.Kind = MetricHistogram
	m.Buckets = append(append([]float64(nil), h.bounds...), math.Inf(1))
	m.Counts = make([]uint64, len(h.counts))
	var c uint64
	for i := range h.counts {
		c += h.counts[i].Load()
		m.Counts[i] = c
	}
	m.Count = h.n.Load()
	m.Value = math.Float64frombits(h.sum.Load())
	return m
}

// Bucket bounds: latencies from 20 µs to 10 s; sizes from 1 to 16384.
var (
	latencyBuckets = []float64{20e-6, 50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 100e-3, 200e-3, 500e-3, 1, 2, 5, 10}
	sizeBuckets    = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384}
)

// metrics is a node's counters; a nil *metrics (DisableMetrics) counts
// nothing. Safe for concurrent use.
type metrics struct {
	on                                 bool
	proposals, proposalsFailed         atomic.Uint64
	rejections                         atomic.Uint64
	committed, applied                 atomic.Uint64
	leaderChanges, elections           atomic.Uint64
	inboxDropped                       atomic.Uint64
	snapshotsTaken, snapshotsInstalled atomic.Uint64
	snapshotsSent, snapshotSendFailed  atomic.Uint64
	snapshotBytes                      atomic.Uint64
	reads                              [ReadStale + 1]atomic.Uint64
	readsFailed                        atomic.Uint64
	readSamples                        atomic.Uint64
	forwarded, forwardedServed         atomic.Uint64
	sessionDuplicates, sessionRefused  atomic.Uint64
	// sessions is the session table's size (a gauge, kept even with
	// metrics off: it is stored, not added).
	sessions atomic.Uint64
	sent     [MsgProposeResp + 1]atomic.Uint64

	save, apply, commit, snapshotWrite, read *histogram
	batch                                    *histogram
}

func newMetrics(on bool) *metrics {
	return &metrics{on: on,
		save: newHistogram(latencyBuckets), apply: newHistogram(latencyBuckets),
		commit: newHistogram(latencyBuckets), snapshotWrite: newHistogram(latencyBuckets),
		read: newHistogram(latencyBuckets), batch: newHistogram(sizeBuckets)}
}

// add adds n to c if metrics are on.
func (m *metrics) add(c *atomic.Uint64, n uint64) {
	if m.on {
		c.Add(n)
	}
}

// since records the time since t in h if metrics are on.
func (m *metrics) since(h *histogram, t time.Time) {
	if m.on {
		h.observe(time.Since(t).Seconds())
	}
}

// observe records v in h if metrics are on.
func (m *metrics) observe(h *histogram, v float64) {
	if m.on {
		h.observe(v)
	}
}

// Metrics returns the node's metrics: counters since the node started,
// current gauges (term, commit, applied, role, and on the leader each
// peer's match index and lag) and latency and size histograms. It takes no
// lock the driver waits for and is safe to call at any time (a scrape).
func (r *Raft[C, R, E]) Metrics() []Metric {
	m := r.d.metrics
	ctr := func(name, help string, c *atomic.Uint64) Metric {
		return Metric{Name: name, Help: help, Kind: MetricCounter, Value: float64(c.Load())}
	}
	s := r.Status()
	g := func(name, help string, v float64) Metric {
		return Metric{Name: name, Help: help, Kind: MetricGauge, Value: v}
	}
	isLeader := 0.0
	if s.State == Leader {
		isLeader = 1
	}
	out := []Metric{
		ctr("proposals_total", "Commands proposed to the driver.", &m.proposals),
		ctr("proposals_failed_total", "Proposals that failed before entering the log (not leader, queue full, shut down).", &m.proposalsFailed),
		ctr("validate_rejections_total", "Commands rejected by Validate (answered after confirmation).", &m.rejections),
		ctr("entries_committed_total", "Log entries this node saw committed.", &m.committed),
		ctr("entries_applied_total", "Log entries applied to the state machine.", &m.applied),
		ctr("leader_changes_total", "Times this node became leader.", &m.leaderChanges),
		ctr("elections_total", "Elections (and pre-vote rounds) this node started.", &m.elections),
		ctr("messages_dropped_total", "Inbound messages dropped (inbox full, or from a non-member).", &m.inboxDropped),
		ctr("snapshots_taken_total", "Local snapshots stored.", &m.snapshotsTaken),
		ctr("snapshots_installed_total", "Snapshots installed from the leader.", &m.snapshotsInstalled),
		ctr("snapshots_sent_total", "Snapshots streamed to followers.", &m.snapshotsSent),
		ctr("snapshot_send_failures_total", "Snapshot streams that failed.", &m.snapshotSendFailed),
		ctr("snapshot_bytes_total", "Bytes of local snapshots written.", &m.snapshotBytes),
		ctr("reads_failed_total", "Reads that could not be confirmed or timed out.", &m.readsFailed),
		ctr("proposals_forwarded_total", "Proposals this node forwarded to the leader.", &m.forwarded),
		ctr("forwarded_served_total", "Forwarded proposals this node received as the leader.", &m.forwardedServed),
		ctr("session_duplicates_total", "Session commands answered with the kept result of an earlier attempt instead of being applied again.", &m.sessionDuplicates),
		ctr("session_refused_total", "Session commands refused at apply (unknown or expired session, or an old sequence number).", &m.sessionRefused),
		g("sessions", "Client sessions in the table (expired ones not yet swept included).", float64(m.sessions.Load())),
		g("term", "Current term.", float64(s.Term)),
		g("commit_index", "Commit index.", float64(s.Commit)),
		g("applied_index", "Last index applied to the state machine.", float64(s.Applied)),
		g("last_index", "Last index of the log.", float64(s.LastIndex)),
		g("is_leader", "1 while this node is the leader.", isLeader),
		g("state", "Role: 0 follower, 1 pre-candidate, 2 candidate, 3 leader, 4 shut down.", float64(s.State)),
		g("removed", "1 if the node holds a configuration it is not a member of.", boolFloat(s.Removed)),
	}
	for mode := ReadLinearizable; mode <= ReadStale; mode++ {
		out = append(out, Metric{Name: "reads_total", Help: "Reads served, by consistency mode.", Kind: MetricCounter,
			Label: "mode", LabelValue: mode.String(), Value: float64(m.reads[mode].Load())})
	}
	for t := MsgVote; t <= MsgProposeResp; t++ {
		out = append(out, Metric{Name: "messages_sent_total", Help: "Messages handed to the transport, by type.", Kind: MetricCounter,
			Label: "type", LabelValue: t.String(), Value: float64(m.sent[t].Load())})
	}
	for _, p := range s.Peers {
		out = append(out,
			Metric{Name: "peer_match_index", Help: "On the leader: the highest index known to be on the peer.", Kind: MetricGauge, Label: "peer", LabelValue: string(p.ID), Value: float64(p.Match)},
			Metric{Name: "peer_lag_entries", Help: "On the leader: how far the peer's log is behind.", Kind: MetricGauge, Unit: "entries", Label: "peer", LabelValue: string(p.ID), Value: float64(p.Lag)},
			Metric{Name: "peer_last_contact_seconds", Help: "On the leader: time since the peer last answered.", Kind: MetricGauge, Unit: "seconds", Label: "peer", LabelValue: string(p.ID), Value: p.LastContact.Seconds()})
	}
	out = append(out,
		m.save.sample(Metric{Name: "storage_save_seconds", Help: "LogStore.Save latency (one write and one fsync).", Unit: "seconds"}),
		m.batch.sample(Metric{Name: "save_batch_entries", Help: "Entries per Save.", Unit: "entries"}),
		m.commit.sample(Metric{Name: "commit_seconds", Help: "On the leader: time from proposal to commit.", Unit: "seconds"}),
		m.apply.sample(Metric{Name: "apply_batch_seconds", Help: "Time to apply one batch of committed entries.", Unit: "seconds"}),
		m.read.sample(Metric{Name: "read_seconds", Help: "Time from a read request to its answer (one read in eight is timed).", Unit: "seconds"}),
		m.snapshotWrite.sample(Metric{Name: "snapshot_write_seconds", Help: "Time to write and store a local snapshot.", Unit: "seconds"}),
	)
	return out
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// sampleRead reports whether this read is timed for the read latency
// histogram: one in eight (reading the clock is not free in a VM).
func (m *metrics) sampleRead() bool { return m.on && m.readSamples.Add(1)&7 == 0 }

// readDone counts a read of mode that ended with *err; start is zero
// unless the read was sampled for its latency.
func (m *metrics) readDone(mode ReadMode, start time.Time, err *error) {
	if !m.on {
		return
	}
	if *err != nil {
		m.readsFailed.Add(1)
		return
	}
	if int(mode) < len(m.reads) {
		m.reads[mode].Add(1)
	}
	if !start.IsZero() {
		m.read.observe(time.Since(start).Seconds())
	}
}
