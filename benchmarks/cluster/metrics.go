package cluster

import (
	"github.com/typedraft/typedraft/benchmarks/workload"
	"github.com/typedraft/typedraft/raft"
)

// The Raft.Metrics histograms a run records.
const (
	metricCommit    = "commit_seconds"
	metricSave      = "storage_save_seconds"
	metricSaveBatch = "save_batch_entries"
	// Counters.
	metricForwarded = "proposals_forwarded_total"
	metricServed    = "forwarded_served_total"
)

// histReading is one reading of a raft histogram: bucket bounds,
// cumulative counts and the sum.
type histReading struct {
	bounds []float64
	counts []uint64
	sum    float64
}

// readHists returns n's histograms among names.
func readHists(n *Node, names ...string) map[string]histReading {
	out := map[string]histReading{}
	for _, m := range n.Metrics() {
		if m.Kind != raft.MetricHistogram {
			continue
		}
		for _, name := range names {
			if m.Name == name {
				out[name] = histReading{bounds: m.Buckets, counts: m.Counts, sum: m.Value}
			}
		}
	}
	return out
}

// readCounter returns n's counter name (0 if n has none).
func readCounter(n *Node, name string) uint64 {
	for _, m := range n.Metrics() {
		if m.Kind == raft.MetricCounter && m.Name == name && m.Label == "" {
			return uint64(m.Value)
		}
	}
	return 0
}

// sub returns h minus an earlier reading e of the same histogram (e may
// be empty).
func (h histReading) sub(e histReading) histReading {
	out := histReading{bounds: h.bounds, counts: append([]uint64(nil), h.counts...), sum: h.sum - e.sum}
	if len(e.counts) == len(h.counts) {
		for i := range out.counts {
			out.counts[i] -= e.counts[i]
		}
	}
	return out
}

// add returns h plus o (the same buckets); an empty h takes o's.
func (h histReading) add(o histReading) histReading {
	if len(h.counts) == 0 {
		return histReading{bounds: o.bounds, counts: append([]uint64(nil), o.counts...), sum: o.sum}
	}
	if len(o.counts) == len(h.counts) {
		for i := range h.counts {
			h.counts[i] += o.counts[i]
		}
		h.sum += o.sum
	}
	return h
}

func (h histReading) count() uint64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// quantileUS returns h's q-quantile, in seconds in h, as microseconds.
func (h histReading) quantileUS(q float64) float64 {
	return workload.BucketQuantile(h.bounds, h.counts, q) * 1e6
}

// MetricsWindow returns a workload.Spec.Window function that records, into
// *out, the commit and save latency histograms and the entries per save of
// the node leading when the window opens, and the followers' save
// latencies, over the measured window (from the nodes' Raft.Metrics), and
// the proposals the followers forwarded and the leader served. It leaves
// *out untouched if no leader is known when the window opens.
func (c *Cluster) MetricsWindow(out *workload.RaftMetrics) func(open bool) {
	var lead *Node
	var lead0 map[string]histReading
	var fol0 []histReading
	var served0, fwd0 uint64
	followers := func() []*Node {
		var fs []*Node
		for _, n := range c.Nodes {
			if n != lead {
				fs = append(fs, n)
			}
		}
		return fs
	}
	return func(open bool) {
		if open {
			if lead = c.leader.Load(); lead == nil {
				return
			}
			lead0 = readHists(lead, metricCommit, metricSave, metricSaveBatch)
			fol0, fwd0 = nil, 0
			served0 = readCounter(lead, metricServed)
			for _, f := range followers() {
				fol0 = append(fol0, readHists(f, metricSave)[metricSave])
				fwd0 += readCounter(f, metricForwarded)
			}
			return
		}
		if lead == nil {
			return
		}
		now := readHists(lead, metricCommit, metricSave, metricSaveBatch)
		commit := now[metricCommit].sub(lead0[metricCommit])
		save := now[metricSave].sub(lead0[metricSave])
		batch := now[metricSaveBatch].sub(lead0[metricSaveBatch])
		var fsave histReading
		var fwd uint64
		for i, f := range followers() {
			fsave = fsave.add(readHists(f, metricSave)[metricSave].sub(fol0[i]))
			fwd += readCounter(f, metricForwarded)
		}
		*out = workload.RaftMetrics{
			Leader:  string(lead.ID()),
			Commits: commit.count(), CommitP50us: commit.quantileUS(0.5), CommitP99us: commit.quantileUS(0.99),
			Saves: save.count(), SaveP50us: save.quantileUS(0.5), SaveP99us: save.quantileUS(0.99),
			FollowerSaves: fsave.count(), FollowerSaveP50us: fsave.quantileUS(0.5), FollowerSaveP99us: fsave.quantileUS(0.99),
			Forwarded: fwd - fwd0, ForwardedServed: readCounter(lead, metricServed) - served0,
		}
		if n := batch.count(); n > 0 {
			out.SaveBatchMean = batch.sum / float64(n)
		}
	}
}
