package report

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

// BaseOp returns the operation op is compared with by WriteOpRatios: write
// for the other writes (write-follower, write-session), read-log for the
// other reads, and "" for write and read-log themselves.
func BaseOp(op string) string {
	switch {
	case op == "" || op == workload.OpWrite || op == workload.OpReadLog:
		return ""
	case workload.IsWrite(op):
		return workload.OpWrite
	case workload.IsRead(op):
		return workload.OpReadLog
	}
	return ""
}

// ratioHeader heads the ratio table.
var ratioHeader = []string{"system", "op", "vs", "store/transport", "nodes", "clients", "payload",
	"ops/s ×", "p50 ×", "p99 ×", "ops/s × per round"}

// ratioRows returns one row of ratioHeader per configuration of rs whose
// operation has a BaseOp that rs also ran in the same configuration: its
// throughput, p50 and p99 divided by the base operation's, from the runs
// of the same round (results with the same Round, so under the same
// machine load), as the median of the rounds' ratios (the lower middle
// for an even count), then the throughput ratio of every round.
func ratioRows(rs []workload.Result) [][]string {
	type key struct {
		c     config
		round int
	}
	byKey := map[key]workload.Result{}
	for _, r := range rs {
		byKey[key{configOf(r), r.Round}] = r
	}
	type group struct {
		first         workload.Result
		ops, p50, p99 []float64
		base          string
		perRound      []string
	}
	var order []config
	groups := map[config]*group{}
	for _, r := range rs {
		b := BaseOp(r.OpName())
		if b == "" {
			continue
		}
		bc := configOf(r)
		bc.op = b
		base, ok := byKey[key{bc, r.Round}]
		if !ok || base.OpsPerSec <= 0 || base.P50us <= 0 || base.P99us <= 0 {
			continue
		}
		c := configOf(r)
		g := groups[c]
		if g == nil {
			g = &group{first: r, base: b}
			groups[c] = g
			order = append(order, c)
		}
		v := r.OpsPerSec / base.OpsPerSec
		g.ops = append(g.ops, v)
		g.p50 = append(g.p50, r.P50us/base.P50us)
		g.p99 = append(g.p99, r.P99us/base.P99us)
		g.perRound = append(g.perRound, fmt.Sprintf("%.2f", v))
	}
	firsts := make([]workload.Result, 0, len(order))
	for _, c := range order {
		firsts = append(firsts, groups[c].first)
	}
	Sort(firsts)
	var out [][]string
	for _, r := range firsts {
		g := groups[configOf(r)]
		out = append(out, []string{systemLabel(r), r.OpName(), g.base, r.Store + "/" + r.Transport,
			fmt.Sprint(r.Nodes), fmt.Sprint(r.Clients), fmt.Sprint(r.Payload),
			fmt.Sprintf("%.2f", lowerMedian(g.ops)), fmt.Sprintf("%.2f", lowerMedian(g.p50)), fmt.Sprintf("%.2f", lowerMedian(g.p99)),
			strings.Join(g.perRound, ", ")})
	}
	return out
}

// lowerMedian returns the median of vs (the lower middle value for an
// even count), as Medians does; vs is sorted in place.
func lowerMedian(vs []float64) float64 {
	slices.Sort(vs)
	return vs[(len(vs)-1)/2]
}

// WriteOpRatios writes, for every configuration of the raw (not yet
// folded) results rs that ran an operation with a BaseOp next to its base
// operation, their ratios in the same round: throughput, p50 and p99 of
// the operation divided by the base operation's (so a p50 × above 1 is
// slower), as medians of the per-round ratios, and the throughput ratio of
// each round. It writes nothing when there are none.
func WriteOpRatios(w io.Writer, rs []workload.Result) error {
	rows := ratioRows(rs)
	if len(rows) == 0 {
		return nil
	}
	return writeRows(w, "\nratios to write (writes) and read-log (reads) in the same round (medians of the rounds' ratios):",
		"ratios", ratioHeader, rows)
}

// WriteOpRatiosMarkdown writes the table of WriteOpRatios as Markdown,
// preceded by a blank line; nothing when there are no rows.
func WriteOpRatiosMarkdown(w io.Writer, rs []workload.Result) error {
	rows := ratioRows(rs)
	if len(rows) == 0 {
		return nil
	}
	var b strings.Builder
	markdownRows(&b, ratioHeader, alignment(len(ratioHeader), 4, true), rows)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("report: write ratios: %w", err)
	}
	return nil
}
