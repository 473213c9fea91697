package raft_test

import (
	"context"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// metric finds one sample of name (with labelValue when the family is
// labelled) in ms.
func metric(ms []raft.Metric, name, labelValue string) (raft.Metric, bool) {
	for _, m := range ms {
		if m.Name == name && m.LabelValue == labelValue {
			return m, true
		}
	}
	return raft.Metric{}, false
}

// The leader's counters and histograms count what happened, once each: a
// proposal answered at commit and one answered at apply are both timed
// in commit_seconds exactly once, whichever path saw their commit first.
func TestMetricsCountEveryProposalOnce(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	const n = 40
	for i := range n {
		mode := raft.Applied
		if i%2 == 0 {
			mode = raft.Committed
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: "k", Val: "v"}, mode).Wait(ctx)
		cancel()
		if err != nil || res.Rejected() {
			t.Fatalf("proposal %d: %v %v", i, err, res.Err)
		}
	}
	if s := c.nodes[lead].Status(); s.Leader != lead {
		t.Fatalf("leadership moved from %s to %q in a healthy in-process cluster", lead, s.Leader)
	}
	ms := c.nodes[lead].Metrics()
	if m, ok := metric(ms, "proposals_total", ""); !ok || m.Value != n {
		t.Errorf("proposals_total = %v (found %v), want %d", m.Value, ok, n)
	}
	commit, ok := metric(ms, "commit_seconds", "")
	if !ok || commit.Kind != raft.MetricHistogram {
		t.Fatalf("commit_seconds missing or not a histogram: %+v", commit)
	}
	if last := commit.Counts[len(commit.Counts)-1]; last != commit.Count {
		t.Errorf("commit_seconds +Inf bucket %d, count %d", last, commit.Count)
	}
	if commit.Count != n {
		t.Errorf("commit_seconds count %d, want %d (one per proposal)", commit.Count, n)
	}
	if commit.Value <= 0 {
		t.Errorf("commit_seconds sum %v, want > 0", commit.Value)
	}
	if m, ok := metric(ms, "is_leader", ""); !ok || m.Value != 1 {
		t.Errorf("is_leader on the leader = %v", m.Value)
	}
	c.waitApplied(c.nodes[lead].Status().Commit)
	for _, id := range c.ids {
		if id == lead {
			continue
		}
		fm := c.nodes[id].Metrics()
		if m, _ := metric(fm, "proposals_total", ""); m.Value != 0 {
			t.Errorf("%s proposals_total = %v, want 0", id, m.Value)
		}
		if m, _ := metric(fm, "entries_applied_total", ""); m.Value < n {
			t.Errorf("%s entries_applied_total = %v, want >= %d", id, m.Value, n)
		}
		if m, _ := metric(fm, "commit_seconds", ""); m.Count != 0 {
			t.Errorf("%s (a follower) timed %d commits", id, m.Count)
		}
	}
}

// DisableMetrics turns the counters off: nothing is counted, and the
// gauges read from Status still tell the truth.
func TestDisableMetrics(t *testing.T) {
	c := newCluster(t, 1, func(cfg *raft.Config) { cfg.DisableMetrics = true })
	lead := c.leader()
	idx := c.mustPut("k", "v")
	ms := c.nodes[lead].Metrics()
	if m, _ := metric(ms, "proposals_total", ""); m.Value != 0 {
		t.Errorf("proposals_total = %v with metrics off", m.Value)
	}
	if m, _ := metric(ms, "commit_seconds", ""); m.Count != 0 {
		t.Errorf("commit_seconds counted %d with metrics off", m.Count)
	}
	if m, ok := metric(ms, "commit_index", ""); !ok || m.Value < float64(idx) {
		t.Errorf("commit_index = %v, want >= %d", m.Value, idx)
	}
}
