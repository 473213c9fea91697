package report

import (
	"cmp"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

// series is one line of the chart: one system, store, transport, node
// count and payload, with a point per client count.
type series struct {
	label  string
	system string
	color  string
	group  int                     // index of the comparable configuration
	points map[int]workload.Result // by clients
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

const (
	panelW  = 460
	panelH  = 300
	marginL = 70
	marginT = 40
	gap     = 90
)

// WriteSVG writes a self-contained SVG chart with two panels, throughput
// (ops/s) and p99 latency (ms) against the number of clients, with one
// line per system × operation × store × transport × nodes × payload: solid for
// typedraft, dashed for hashicorp/raft, dotted for dragonboat. It returns an error if rs is
// empty or w fails.
func WriteSVG(w io.Writer, rs []workload.Result) error {
	if len(rs) == 0 {
		return fmt.Errorf("report: svg: no results")
	}
	var clients []int
	byLabel := map[string]*series{}
	// Comparable configurations share a color; the system sets the dash.
	colors := map[string]string{}
	var order []*series
	for _, r := range rs {
		if !slices.Contains(clients, r.Clients) {
			clients = append(clients, r.Clients)
		}
		label := fmt.Sprintf("%s %s/%s %dn %dB", systemLabel(r), r.Store, r.Transport, r.Nodes, r.Payload)
		if op := r.OpName(); op != workload.OpWrite {
			label = fmt.Sprintf("%s %s %s/%s %dn", systemLabel(r), op, r.Store, r.Transport, r.Nodes)
		}
		s := byLabel[label]
		if s == nil {
			ck := fmt.Sprintf("%s/%v/%s/%d/%d", r.OpName(), r.Durable, r.Transport, r.Nodes, r.Payload)
			if _, ok := colors[ck]; !ok {
				colors[ck] = palette[len(colors)%len(palette)]
			}
			s = &series{label: label, system: r.System, color: colors[ck], group: slices.Index(palette, colors[ck]), points: map[int]workload.Result{}}
			byLabel[label] = s
			order = append(order, s)
		}
		s.points[r.Clients] = r
	}
	slices.Sort(clients)
	slices.SortStableFunc(order, func(a, b *series) int {
		return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(systemRank(a.system), systemRank(b.system)), cmp.Compare(a.label, b.label))
	})

	legendRows := (len(order) + 1) / 2
	width := marginL + 2*panelW + gap + 30
	height := marginT + panelH + 60 + legendRows*18 + 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)

	panel(&b, marginL, "throughput (ops/s)", clients, order, func(r workload.Result) float64 { return r.OpsPerSec })
	panel(&b, marginL+panelW+gap, "p99 latency (ms)", clients, order, func(r workload.Result) float64 { return r.P99us / 1000 })

	// Legend.
	ly := marginT + panelH + 50
	for i, s := range order {
		x := marginL + (i%2)*(panelW+gap)
		y := ly + (i/2)*18
		color := s.color
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", x, y-4, x+28, y-4, color, dash(s.system))
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", x+34, y, html.EscapeString(s.label))
	}
	b.WriteString("</svg>\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("report: write svg: %w", err)
	}
	return nil
}

// dash is the line style of system: solid for typedraft, dashed for
// hashicorp/raft, dotted for dragonboat.
func dash(system string) string {
	switch system {
	case "typedraft":
		return ""
	case "dragonboat":
		return ` stroke-dasharray="2 3"`
	}
	return ` stroke-dasharray="6 4"`
}

// panel draws one chart at x offset left: axes, grid, ticks and a
// polyline per series of value(result) against clients (categorical).
func panel(b *strings.Builder, left int, title string, clients []int, order []*series, value func(workload.Result) float64) {
	top := marginT
	maxV := 0.0
	for _, s := range order {
		for _, r := range s.points {
			maxV = max(maxV, value(r))
		}
	}
	yMax, step := niceScale(maxV)
	xOf := func(i int) float64 {
		if len(clients) == 1 {
			return float64(left) + panelW/2
		}
		return float64(left) + 20 + float64(i)*float64(panelW-40)/float64(len(clients)-1)
	}
	yOf := func(v float64) float64 { return float64(top+panelH) - v/yMax*panelH }

	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", left, top-15, html.EscapeString(title))
	for v := 0.0; v <= yMax*1.0001; v += step {
		y := yOf(v)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, left+panelW, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, tick(v))
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, top, left, top+panelH)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, top+panelH, left+panelW, top+panelH)
	for i, c := range clients {
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", xOf(i), top+panelH+16, c)
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">clients</text>`+"\n", left+panelW/2, top+panelH+34)

	for _, s := range order {
		color := s.color
		var pts []string
		for i, c := range clients {
			r, ok := s.points[c]
			if !ok {
				continue
			}
			x, y := xOf(i), yOf(value(r))
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s, %d clients: %s</title></circle>`+"\n",
				x, y, color, html.EscapeString(s.label), c, tick(value(r)))
		}
		if len(pts) > 1 {
			fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), color, dash(s.system))
		}
	}
}

// niceScale returns an axis maximum >= v and a tick step: 1, 2 or 5 times
// a power of ten, about five ticks.
func niceScale(v float64) (top, step float64) {
	if !(v > 0) || math.IsInf(v, 0) {
		return 1, 0.2
	}
	raw := v / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		step = m * mag
		if step >= raw {
			break
		}
	}
	return math.Ceil(v/step) * step, step
}

// tick formats an axis value compactly (12k, 1.5M, 0.25).
func tick(v float64) string {
	switch {
	case v >= 1e6:
		return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.2f", v/1e6), "0"), ".0") + "M"
	case v >= 1e3:
		return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.1f", v/1e3), "0"), ".") + "k"
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	default:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
	}
}
