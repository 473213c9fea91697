package report

import (
	"strings"
	"testing"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

func TestBaseOp(t *testing.T) {
	for op, want := range map[string]string{
		"": "", workload.OpWrite: "", workload.OpReadLog: "",
		workload.OpWriteFollower: workload.OpWrite, workload.OpWriteSession: workload.OpWrite,
		workload.OpReadIndex: workload.OpReadLog, workload.OpReadFollower: workload.OpReadLog, workload.OpReadLease: workload.OpReadLog,
		"scan": "",
	} {
		if got := BaseOp(op); got != want {
			t.Errorf("BaseOp(%q) = %q, want %q", op, got, want)
		}
	}
}

// The ratios pair each run with its base operation's run of the same
// round and configuration, and table the medians of the rounds' ratios.
func TestOpRatios(t *testing.T) {
	run := func(op string, round, clients int, opsPerSec, p50, p99 float64) workload.Result {
		return workload.Result{System: "typedraft", Op: op, Store: "memory", Transport: "inmem", Nodes: 3, Clients: clients,
			Payload: 128, Round: round, OpsPerSec: opsPerSec, P50us: p50, P99us: p99}
	}
	rs := []workload.Result{
		run(workload.OpWrite, 1, 16, 1000, 100, 1000),
		run(workload.OpWriteFollower, 1, 16, 500, 200, 1500),
		run(workload.OpWrite, 2, 16, 2000, 100, 1000),
		run(workload.OpWriteFollower, 2, 16, 1800, 120, 3000),
		run(workload.OpWrite, 3, 16, 1000, 100, 1000),
		run(workload.OpWriteFollower, 3, 16, 700, 150, 1000),
		// No write at 64 clients in this round: not paired.
		run(workload.OpWriteSession, 1, 64, 900, 100, 100),
		// A write op without rounds next to its base.
		run(workload.OpWrite, 0, 1, 100, 10, 20),
		run(workload.OpWriteSession, 0, 1, 50, 20, 20),
		// Another store: not the base of the others.
		{System: "typedraft", Op: workload.OpWrite, Store: "pebble", Transport: "inmem", Durable: true, Nodes: 3, Clients: 16, Payload: 128, Round: 1, OpsPerSec: 1},
	}
	rows := ratioRows(rs)
	if len(rows) != 2 {
		t.Fatalf("rows %q", rows)
	}
	want := [][]string{
		{"typedraft", "write-follower", "write", "memory/inmem", "3", "16", "128", "0.70", "1.50", "1.50", "0.50, 0.90, 0.70"},
		{"typedraft", "write-session", "write", "memory/inmem", "3", "1", "128", "0.50", "2.00", "1.00", "0.50"},
	}
	// Sort puts 16 clients after 1 within an operation, and write-follower
	// before write-session.
	for i, w := range want {
		if strings.Join(rows[i], "|") != strings.Join(w, "|") {
			t.Errorf("row %d = %q, want %q", i, rows[i], w)
		}
	}
	var b strings.Builder
	if err := WriteOpRatios(&b, rs); err != nil || !strings.Contains(b.String(), "ratios to write") || !strings.Contains(b.String(), "0.50, 0.90, 0.70") {
		t.Fatalf("%v:\n%s", err, b.String())
	}
	b.Reset()
	if err := WriteOpRatiosMarkdown(&b, rs); err != nil || strings.Count(b.String(), "\n") != 5 || !strings.Contains(b.String(), "| typedraft | write-follower | write | memory/inmem | 3 | 16 | 128 | 0.70 |") {
		t.Fatalf("%v:\n%s", err, b.String())
	}
	b.Reset()
	if err := WriteOpRatios(&b, rs[:1]); err != nil || b.Len() != 0 {
		t.Fatalf("no pairs: %v %q", err, b.String())
	}
}
