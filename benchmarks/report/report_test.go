package report

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

func sample() []workload.Result {
	mk := func(sys, store, tr string, durable bool, clients int, ops float64) workload.Result {
		return workload.Result{System: sys, Store: store, Transport: tr, Durable: durable, Nodes: 3,
			Clients: clients, Payload: 128, OpsPerSec: ops, P50us: 250, P90us: 900, P99us: 12345, Maxus: 250000, PeakRSSMiB: 42}
	}
	return []workload.Result{
		mk("hashicorp", "inmem", "inmem", false, 1, 1000),
		mk("typedraft", "memory", "inmem", false, 64, 300000),
		mk("typedraft", "pebble", "tcp", true, 1, 4000),
		mk("hashicorp", "boltdb", "tcp", true, 1, 1000),
		mk("typedraft", "memory", "inmem", false, 1, 5000),
	}
}

func TestSortAndRatios(t *testing.T) {
	rs := sample()
	Sort(rs)
	var order []string
	for _, r := range rs {
		order = append(order, r.System+"/"+r.Store)
	}
	want := "typedraft/pebble hashicorp/boltdb typedraft/memory hashicorp/inmem typedraft/memory"
	if got := strings.Join(order, " "); got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
	ratios := Ratios(rs, "hashicorp")
	if len(ratios) != 2 {
		t.Fatalf("ratios %v", ratios)
	}
	if v := ratios[workload.Key{Op: workload.OpWrite, Durable: true, Transport: "tcp", Nodes: 3, Clients: 1, Payload: 128}]; v != 4 {
		t.Fatalf("durable ratio %v, want 4", v)
	}
	if v := ratios[workload.Key{Op: workload.OpWrite, Durable: false, Transport: "inmem", Nodes: 3, Clients: 1, Payload: 128}]; v != 5 {
		t.Fatalf("memory ratio %v, want 5", v)
	}
}

func TestWriteTable(t *testing.T) {
	rs := sample()
	Sort(rs)
	var b strings.Builder
	if err := WriteTable(&b, rs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 1+len(rs) {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	for _, want := range []string{"vs hashicorp", "vs dragonboat", "300,000", "4.00×", "5.00×", "0.250", "12.35", "250.0"} {
		if !strings.Contains(out, want) {
			t.Fatalf("table lacks %q:\n%s", want, out)
		}
	}
	var md strings.Builder
	if err := WriteMarkdown(&md, rs); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(md.String(), "\n"); n != 2+len(rs) || !strings.Contains(md.String(), "| typedraft | write | pebble | tcp | 3 | 1 | 128 | 4,000 |") {
		t.Fatalf("markdown:\n%s", md.String())
	}
}

func TestWriteSVGIsWellFormed(t *testing.T) {
	var b strings.Builder
	if err := WriteSVG(&b, sample()); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(strings.NewReader(b.String()))
	polylines, texts := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("not well-formed XML: %v\n%s", err, b.String())
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "polyline":
				polylines++
			case "text":
				texts++
			}
		}
	}
	// One series has two client counts: one line in each panel; the
	// single-point series are drawn as points only.
	if polylines != 2 {
		t.Fatalf("%d polylines, want 2", polylines)
	}
	for _, want := range []string{"throughput (ops/s)", "p99 latency (ms)", "typedraft memory/inmem 3n 128B", "stroke-dasharray"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("svg lacks %q", want)
		}
	}
	if err := WriteSVG(&b, nil); err == nil {
		t.Fatal("empty results: no error")
	}
}

func TestFormatting(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1500: "-1,500"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{0: "0", 0.25: "0.25", 500: "500", 12000: "12k", 12500: "12.5k", 2e6: "2M", 1.5e6: "1.5M"} {
		if got := tick(v); got != want {
			t.Errorf("tick(%v) = %q, want %q", v, got, want)
		}
	}
	for v, wantTop := range map[float64]float64{0: 1, 7: 8, 95: 100, 123456: 150000} {
		top, step := niceScale(v)
		if top != wantTop || step <= 0 || top < v {
			t.Errorf("niceScale(%v) = %v, %v; want top %v", v, top, step, wantTop)
		}
	}
}

// Reads sort after the writes of their configuration, show their saves
// and fsyncs per request (exactly "0" when none, "-" for fsyncs of a
// store that never syncs), get their own chart lines, and are never
// compared with hashicorp/raft's writes.
func TestReadsInTableAndChart(t *testing.T) {
	rs := sample()
	idx := func(ops uint64, saves, fsyncs uint64) workload.Result {
		return workload.Result{System: "typedraft", Op: workload.OpReadIndex, Store: "pebble", Transport: "tcp", Durable: true, Nodes: 3,
			Clients: 1, Ops: ops, OpsPerSec: 9000, P50us: 100, P99us: 300, Maxus: 900,
			Storage: &workload.StorageCounts{Saves: saves, Fsyncs: fsyncs, Synced: true}}
	}
	lease := idx(1000, 0, 0)
	lease.Op, lease.Store, lease.Transport, lease.Durable, lease.Storage.Synced = workload.OpReadLease, "memory", "inmem", false, false
	rs = append(rs, idx(1000, 0, 0), lease)
	w := rs[2] // typedraft pebble/tcp write
	w.Ops, w.Storage = 4000, &workload.StorageCounts{Saves: 8000, Fsyncs: 10000, Synced: true}
	rs[2] = w
	Sort(rs)
	if rs[0].OpName() != workload.OpWrite || rs[2].Op != workload.OpReadIndex {
		t.Fatalf("order: %+v", rs[:3])
	}
	ratios := Ratios(rs, "hashicorp")
	if _, ok := ratios[rs[2].Key()]; ok {
		t.Fatal("a read was compared with hashicorp/raft")
	}
	var md strings.Builder
	if err := WriteMarkdown(&md, rs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| typedraft | write | pebble | tcp | 3 | 1 | 128 | 4,000 | 0.250 | 0.900 | 12.35 | 250.0 | 2.000 | 2.500 |",
		"| typedraft | read-index | pebble | tcp | 3 | 1 | 0 | 9,000 | 0.100 | 0.000 | 0.300 | 0.900 | 0 | 0 |",
		"| typedraft | read-lease | memory | inmem | 3 | 1 | 0 | 9,000 | 0.100 | 0.000 | 0.300 | 0.900 | 0 | - |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Fatalf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	var svg strings.Builder
	if err := WriteSVG(&svg, rs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(svg.String(), "typedraft read-index pebble/tcp 3n") {
		t.Fatalf("svg has no read-index series:\n%s", svg.String())
	}
	for v, want := range map[float64]string{0: "0", 0.004: "0.004", 0.25: "0.250", 2.5: "2.500", 12: "12.0"} {
		if got := ratio(v); got != want {
			t.Errorf("ratio(%v) = %q, want %q", v, got, want)
		}
	}
}

// Medians folds repeated runs field by field, keeps single runs as they
// are, and keeps the order of first appearance.
func TestMedians(t *testing.T) {
	run := func(op string, round int, ops uint64, opsPerSec, p99 float64, saves uint64) workload.Result {
		return workload.Result{System: "typedraft", Op: op, Store: "pebble", Transport: "tcp", Durable: true, Nodes: 3, Clients: 64,
			Round: round, Ops: ops, OpsPerSec: opsPerSec, P99us: p99, Storage: &workload.StorageCounts{Saves: saves, Synced: true}}
	}
	rs := []workload.Result{
		run(workload.OpReadIndex, 1, 100, 10, 5, 0),
		run(workload.OpReadLog, 1, 10, 1, 50, 20),
		run(workload.OpReadIndex, 2, 300, 30, 1, 3),
		run(workload.OpReadIndex, 3, 200, 20, 9, 0),
		{System: "hashicorp", Store: "boltdb", Transport: "tcp", Durable: true, Nodes: 3, Clients: 64, OpsPerSec: 7},
	}
	got := Medians(rs)
	if len(got) != 3 {
		t.Fatalf("%d results: %+v", len(got), got)
	}
	m := got[0]
	if m.Op != workload.OpReadIndex || m.Runs != 3 || m.Round != 0 || m.OpsPerSec != 20 || m.P99us != 5 || m.Ops != 200 || m.Storage.Saves != 0 {
		t.Fatalf("median %+v (storage %+v)", m, m.Storage)
	}
	if got[1].Op != workload.OpReadLog || got[1].Runs != 0 || got[1].Round != 1 || got[2].System != "hashicorp" {
		t.Fatalf("single runs changed or reordered: %+v", got[1:])
	}
	if rs[0].OpsPerSec != 10 {
		t.Fatal("input modified")
	}
}
