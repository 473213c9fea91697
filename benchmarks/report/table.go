// Package report renders benchmark results (workload.Result) as an
// aligned text table with the typedraft / hashicorp/raft throughput
// ratio, and as an SVG chart of throughput and p99 latency against the
// number of clients. It depends on the standard library and workload only.
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
// transport, nodes, payload and clients, typedraft before hashicorp.
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
			cmp.Compare(a.Payload, b.Payload),
			cmp.Compare(a.Clients, b.Clients),
			cmp.Compare(systemRank(a.System), systemRank(b.System)),
		)
	})
}

func systemRank(s string) int {
	if s == "typedraft" {
		return 0
	}
	return 1
}

// Ratios maps each comparison key to typedraft's throughput divided by
// hashicorp/raft's, for the keys where both systems have a result with
// non-zero throughput.
func Ratios(rs []workload.Result) map[workload.Key]float64 {
	td := map[workload.Key]float64{}
	hc := map[workload.Key]float64{}
	for _, r := range rs {
		switch r.System {
		case "typedraft":
			td[r.Key()] = r.OpsPerSec
		case "hashicorp":
			hc[r.Key()] = r.OpsPerSec
		}
	}
	out := map[workload.Key]float64{}
	for k, v := range td {
		if h, ok := hc[k]; ok && h > 0 {
			out[k] = v / h
		}
	}
	return out
}

// WriteTable writes rs (in the given order) as an aligned table. The last
// column gives, on typedraft rows, its throughput as a multiple of
// hashicorp/raft's in the comparable configuration (same durability,
// transport, nodes, clients and payload).
func WriteTable(w io.Writer, rs []workload.Result) error {
	ratios := Ratios(rs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tstore\ttransport\tnodes\tclients\tpayload\tops/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\tpeak RSS MiB\terrors\tvs hashicorp\t")
	for _, r := range rs {
		ratio := ""
		if v, ok := ratios[r.Key()]; ok && r.System == "typedraft" {
			ratio = fmt.Sprintf("%.2f×", v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%.0f\t%d\t%s\t\n",
			r.System, r.Store, r.Transport, r.Nodes, r.Clients, r.Payload,
			thousands(r.OpsPerSec), ms(r.P50us), ms(r.P90us), ms(r.P99us), ms(r.Maxus),
			r.PeakRSSMiB, r.Errors, ratio)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("report: write table: %w", err)
	}
	return nil
}

// WriteMarkdown writes rs as a Markdown table with the same columns as
// WriteTable.
func WriteMarkdown(w io.Writer, rs []workload.Result) error {
	ratios := Ratios(rs)
	var b strings.Builder
	b.WriteString("| system | store | transport | nodes | clients | payload | ops/s | p50 ms | p90 ms | p99 ms | max ms | peak RSS MiB | errors | vs hashicorp |\n")
	b.WriteString("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rs {
		ratio := ""
		if v, ok := ratios[r.Key()]; ok && r.System == "typedraft" {
			ratio = fmt.Sprintf("%.2f×", v)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %s | %s | %s | %s | %s | %.0f | %d | %s |\n",
			r.System, r.Store, r.Transport, r.Nodes, r.Clients, r.Payload,
			thousands(r.OpsPerSec), ms(r.P50us), ms(r.P90us), ms(r.P99us), ms(r.Maxus),
			r.PeakRSSMiB, r.Errors, ratio)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("report: write markdown: %w", err)
	}
	return nil
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
