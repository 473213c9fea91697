package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

// metricsHeader heads the leader-metrics table.
var metricsHeader = []string{"op", "store/transport", "clients", "ops/s", "client p50 ms", "client p99 ms",
	"commit p50 ms", "commit p99 ms", "commits/op", "save p50 ms", "save p99 ms", "entries/save",
	"follower save p50 ms", "follower save p99 ms", "forwarded/op", "served/op"}

// metricsRows returns a row of metricsHeader per result with RaftMetrics.
func metricsRows(rs []workload.Result) [][]string {
	var out [][]string
	for _, r := range rs {
		m := r.RaftMetrics
		if m == nil {
			continue
		}
		out = append(out, []string{r.OpName(), r.Store + "/" + r.Transport, fmt.Sprint(r.Clients), thousands(r.OpsPerSec),
			ms(r.P50us), ms(r.P99us), ms(m.CommitP50us), ms(m.CommitP99us), ratio(r.PerOp(m.Commits)),
			ms(m.SaveP50us), ms(m.SaveP99us), fmt.Sprintf("%.1f", m.SaveBatchMean),
			ms(m.FollowerSaveP50us), ms(m.FollowerSaveP99us), ratio(r.PerOp(m.Forwarded)), ratio(r.PerOp(m.ForwardedServed))})
	}
	return out
}

// WriteRaftMetrics writes, for the typedraft results that carry them, the
// leader's Raft.Metrics over the measured window next to the client-side
// latencies: commit_seconds and storage_save_seconds quantiles (estimated
// from the histograms' buckets), commit observations per request,
// save_batch_entries' mean, the followers' save quantiles, and the
// proposals the followers forwarded (proposals_forwarded_total) and the
// leader served (forwarded_served_total) per request. It writes nothing
// when no result has them.
func WriteRaftMetrics(w io.Writer, rs []workload.Result) error {
	rows := metricsRows(rs)
	if len(rows) == 0 {
		return nil
	}
	return writeRows(w, "\ntypedraft leader metrics over the measured window (Raft.Metrics; quantiles interpolated in the histogram buckets):",
		"metrics", metricsHeader, rows)
}

// WriteFloor writes every distinct disk floor the results carry, then,
// for each durable 1-client write result with a floor, its p50 as a
// multiple of that floor's append p50. It writes nothing when no result
// carries a floor.
func WriteFloor(w io.Writer, rs []workload.Result) error {
	var floors []workload.DiskFloor
	for _, r := range rs {
		if f := r.DiskFloor; f != nil && !containsFloor(floors, *f) {
			floors = append(floors, *f)
		}
	}
	if len(floors) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("\n")
	for _, f := range floors {
		fmt.Fprintf(&b, "disk floor in %s (%d × %d B, one at a time): append+fdatasync p50 %s ms p99 %s ms; overwrite+fdatasync p50 %s ms p99 %s ms\n",
			f.Dir, f.Samples, f.Block, ms(f.AppendP50us), ms(f.AppendP99us), ms(f.OverwriteP50us), ms(f.OverwriteP99us))
	}
	for _, r := range rs {
		f := r.DiskFloor
		if f == nil || !r.Durable || r.Clients != 1 || r.OpName() != workload.OpWrite || f.AppendP50us <= 0 {
			continue
		}
		fmt.Fprintf(&b, "1-client p50, %s %s/%s: %s ms = %.2f× the append floor\n",
			systemLabel(r), r.Store, r.Transport, ms(r.P50us), r.P50us/f.AppendP50us)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("report: write floor: %w", err)
	}
	return nil
}

func containsFloor(fs []workload.DiskFloor, f workload.DiskFloor) bool {
	for _, g := range fs {
		if g == f {
			return true
		}
	}
	return false
}
