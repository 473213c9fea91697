// Package report renders benchmark results (workload.Result) as an
// aligned text table with typedraft's throughput ratio to each peer
// (hashicorp/raft, dragonboat), a table of typedraft's leader metrics, the
// disk floor and the latencies against it, and an SVG chart of throughput
// and p99 latency against the number of clients. It depends on the
// standard library and workload only.
package report

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

// Sort orders results for display: durable configurations first, then by
// transport, nodes, operation (in the order of workload.Ops), payload and
// clients, then system (typedraft, its metrics-off runs, hashicorp,
// dragonboat).
// It sorts rs in place and is stable.
func Sort(rs []workload.Result) {
	slices.SortStableFunc(rs, func(a, b workload.Result) int {
		if a.Durable != b.Durable {
			if a.Durable {
				return -1
			}
			return 1
		}
		return cmp.Or(
			cmp.Compare(b.Transport, a.Transport), // tcp before inmem
			cmp.Compare(a.Nodes, b.Nodes),
			cmp.Compare(opRank(a.OpName()), opRank(b.OpName())),
			cmp.Compare(a.Payload, b.Payload),
			cmp.Compare(a.Clients, b.Clients),
			cmp.Compare(systemRank(a.System), systemRank(b.System)),
			cmp.Compare(boolRank(a.MetricsOff), boolRank(b.MetricsOff)),
		)
	})
}

// Peers are the systems typedraft is compared with, in column order.
var Peers = []string{"hashicorp", "dragonboat"}

func systemRank(s string) int {
	if s == "typedraft" {
		return 0
	}
	if i := slices.Index(Peers, s); i >= 0 {
		return 1 + i
	}
	return 1 + len(Peers)
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// systemLabel is r's system as the tables show it.
func systemLabel(r workload.Result) string {
	if r.MetricsOff {
		return r.System + " (metrics off)"
	}
	return r.System
}

// opRank orders operations as workload.Ops lists them, unknown ones last.
func opRank(op string) int {
	if i := slices.Index(workload.Ops, op); i >= 0 {
		return i
	}
	return len(workload.Ops)
}

// Ratios maps each comparison key to typedraft's throughput divided by
// peer's, for the keys where both systems have a result with non-zero
// throughput. typedraft's runs with metrics off are left out.
func Ratios(rs []workload.Result, peer string) map[workload.Key]float64 {
	td := map[workload.Key]float64{}
	other := map[workload.Key]float64{}
	for _, r := range rs {
		switch {
		case r.System == "typedraft" && !r.MetricsOff:
			td[r.Key()] = r.OpsPerSec
		case r.System == peer:
			other[r.Key()] = r.OpsPerSec
		}
	}
	out := map[workload.Key]float64{}
	for k, v := range td {
		if h, ok := other[k]; ok && h > 0 {
			out[k] = v / h
		}
	}
	return out
}

// peerRatios returns, for each of Peers, the ratio cell of r: typedraft's
// throughput as a multiple of the peer's, or "" when r is not a
// typedraft row with a comparable peer result.
func peerRatios(r workload.Result, ratios []map[workload.Key]float64) []string {
	out := make([]string, len(ratios))
	for i, m := range ratios {
		if v, ok := m[r.Key()]; ok && r.System == "typedraft" && !r.MetricsOff {
			out[i] = fmt.Sprintf("%.2f×", v)
		}
	}
	return out
}

func allRatios(rs []workload.Result) []map[workload.Key]float64 {
	var out []map[workload.Key]float64
	for _, p := range Peers {
		out = append(out, Ratios(rs, p))
	}
	return out
}

func peerHeaders(sep string) string {
	var b strings.Builder
	for _, p := range Peers {
		b.WriteString("vs " + p + sep)
	}
	return b.String()
}

// WriteTable writes rs (in the given order) as an aligned table. The
// saves/op and fsyncs/op columns are the cluster-wide Storage.Save calls
// and file syncs per request during the measured window (empty when not
// counted, "-" for fsyncs of a store that never syncs). The last columns
// give, on typedraft rows, its throughput as a multiple of each peer's
// (hashicorp/raft, dragonboat) in the comparable configuration (same
// operation, durability, transport, nodes, clients and payload).
func WriteTable(w io.Writer, rs []workload.Result) error {
	ratios := allRatios(rs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\top\tstore\ttransport\tnodes\tclients\tpayload\tops/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\tsaves/op\tfsyncs/op\tpeak RSS MiB\terrors\t"+peerHeaders("\t"))
	for _, r := range rs {
		saves, fsyncs := perOp(r)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%d\t%s\t\n",
			systemLabel(r), r.OpName(), r.Store, r.Transport, r.Nodes, r.Clients, r.Payload,
			thousands(r.OpsPerSec), ms(r.P50us), ms(r.P90us), ms(r.P99us), ms(r.Maxus),
			saves, fsyncs, r.PeakRSSMiB, r.Errors, strings.Join(peerRatios(r, ratios), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("report: write table: %w", err)
	}
	return nil
}

// WriteMarkdown writes rs as a Markdown table with the same columns as
// WriteTable, followed by the leader-metrics table when there is one.
func WriteMarkdown(w io.Writer, rs []workload.Result) error {
	ratios := allRatios(rs)
	var b strings.Builder
	b.WriteString("| system | op | store | transport | nodes | clients | payload | ops/s | p50 ms | p90 ms | p99 ms | max ms | saves/op | fsyncs/op | peak RSS MiB | errors | " + strings.TrimSuffix(peerHeaders(" | "), " ") + "\n")
	b.WriteString("|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|" + strings.Repeat("--:|", len(Peers)) + "\n")
	for _, r := range rs {
		saves, fsyncs := perOp(r)
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %d | %d | %s | %s | %s | %s | %s | %s | %s | %.0f | %d | %s |\n",
			systemLabel(r), r.OpName(), r.Store, r.Transport, r.Nodes, r.Clients, r.Payload,
			thousands(r.OpsPerSec), ms(r.P50us), ms(r.P90us), ms(r.P99us), ms(r.Maxus),
			saves, fsyncs, r.PeakRSSMiB, r.Errors, strings.Join(peerRatios(r, ratios), " | "))
	}
	if rows := metricsRows(rs); len(rows) > 0 {
		markdownRows(&b, metricsHeader, alignment(len(metricsHeader), 2, false), rows)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("report: write markdown: %w", err)
	}
	return nil
}

// perOp formats r's saves and fsyncs per request: "" when not counted,
// "-" for the fsyncs of a store that never syncs, and exactly "0" when
// there were none.
func perOp(r workload.Result) (saves, fsyncs string) {
	st := r.Storage
	if st == nil {
		return "", ""
	}
	saves, fsyncs = ratio(r.PerOp(st.Saves)), "-"
	if st.Synced {
		fsyncs = ratio(r.PerOp(st.Fsyncs))
	}
	return saves, fsyncs
}

// ratio formats a per-request count: "0" for none, otherwise three
// significant digits.
func ratio(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 0.01:
		return fmt.Sprintf("%.2g", v)
	case v < 10:
		return fmt.Sprintf("%.3f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// ms formats microseconds as milliseconds with 3 significant decimals.
func ms(us float64) string {
	v := us / 1000
	switch {
	case v < 10:
		return fmt.Sprintf("%.3f", v)
	case v < 100:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// thousands formats v rounded to an integer with thousands separators.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
