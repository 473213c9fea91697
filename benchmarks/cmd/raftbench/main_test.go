package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

func TestRunSmoke(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	svg, md := filepath.Join(dir, "chart.svg"), filepath.Join(dir, "table.md")
	var stdout, stderr bytes.Buffer
	args := []string{"-nodes", "3", "-clients", "1,4", "-payload", "64", "-duration", "150ms", "-warmup", "0s",
		"-store", "memory,pebble", "-transport", "inmem", "-json", "-svg", svg, "-markdown", md, "-dir", dir, "-floor-samples", "50"}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	rs, err := workload.ReadJSON(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 4 {
		t.Fatalf("%d results, want 4", len(rs))
	}
	for _, r := range rs {
		if r.System != "typedraft" || r.Ops == 0 || r.OpsPerSec <= 0 || r.P50us <= 0 || r.P99us < r.P50us || r.Maxus < r.P99us || r.Nodes != 3 || r.Payload != 64 {
			t.Fatalf("implausible result %+v", r)
		}
		if r.Durable != (r.Store == "pebble") {
			t.Fatalf("durable flag wrong: %+v", r)
		}
		if r.PeakRSSMiB <= 0 || r.PeakRSSScope != "config" {
			t.Fatalf("peak RSS not measured: %+v", r)
		}
		if f := r.DiskFloor; f == nil || f.Samples != 50 || f.AppendP50us <= 0 || f.AppendP99us < f.AppendP50us || f.OverwriteP50us <= 0 || f.Dir != dir {
			t.Fatalf("disk floor not recorded: %+v", r.DiskFloor)
		}
		if m := r.RaftMetrics; m == nil || m.Commits == 0 || m.Saves == 0 || m.SaveP50us <= 0 || m.CommitP50us <= 0 || m.SaveBatchMean < 1 {
			t.Fatalf("leader metrics not recorded: %+v", r.RaftMetrics)
		}
	}
	for _, want := range []string{"append+fdatasync p50", "overwrite+fdatasync", "1-client p50, typedraft pebble/inmem", "the append floor",
		"typedraft leader metrics", "commit p50 ms", "entries/save"} {
		if !strings.Contains(stderr.String(), want) {
			t.Fatalf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if !strings.Contains(stderr.String(), "ops/s") || !strings.Contains(stderr.String(), "vs hashicorp") || !strings.Contains(stderr.String(), "vs dragonboat") {
		t.Fatalf("no table on stderr:\n%s", stderr.String())
	}
	for _, f := range []string{svg, md} {
		b, err := os.ReadFile(f)
		if err != nil || len(b) == 0 {
			t.Fatalf("%s: %v (%d bytes)", f, err, len(b))
		}
	}
	// The per-configuration directories are removed.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			t.Fatalf("left behind %s", e.Name())
		}
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-nodes", "0"},
		{"-nodes", "100"},
		{"-clients", "0"},
		{"-clients", "1,x"},
		{"-payload", "4"},
		{"-payload", "999999999999"},
		{"-store", "rocks"},
		{"-transport", "udp"},
		{"-duration", "0s"},
		{"-warmup", "-1s"},
		{"extra"},
		{"-pairs", "pebble"},
		{"-pairs", "pebble/udp"},
		{"-pairs", "memory/tcp,rocks/tcp"},
		{"-ops", "scan"},
		{"-ops", "write,"},
		{"-repeat", "0"},
		{"-repeat", "1000"},
		{"-nodes", "1", "-ops", "read-follower"},
		{"-nodes", "1", "-ops", "write,write-follower"},
		{"-compare-hashicorp", "-ops", "read-index"},
		{"-dragonboat-only", "-ops", "read-lease"},
		{"-metrics", "maybe"},
		{"-floor-samples", "-1"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out, &out); err == nil {
			t.Errorf("run(%q): no error", args)
		}
	}
}

// Reads run once per store/transport × clients (payload 0, whatever
// -payload says) with their log writes counted; -repeat runs every
// configuration in each round and tables the medians.
func TestRunReadsSmoke(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"-ops", "write,read-log,read-index,read-follower,read-lease", "-clients", "2", "-payload", "64,128",
		"-duration", "150ms", "-warmup", "50ms", "-pairs", "memory/inmem", "-json", "-dir", dir}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	rs, err := workload.ReadJSON(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	// Two writes (two payloads) and four reads.
	if len(rs) != 6 {
		t.Fatalf("%d results, want 6", len(rs))
	}
	seen := map[string]int{}
	for _, r := range rs {
		seen[r.OpName()]++
		if r.Ops == 0 || r.Errors != 0 || r.Storage == nil || r.Storage.Synced || r.Round != 0 {
			t.Fatalf("implausible result %+v", r)
		}
		if workload.IsRead(r.Op) != (r.Payload == 0) {
			t.Fatalf("payload %d for %s", r.Payload, r.Op)
		}
		if (r.Op == workload.OpWrite || r.Op == workload.OpReadLog) && r.Storage.SaveEntries < r.Ops {
			t.Fatalf("%s: %d entries saved for %d requests", r.Op, r.Storage.SaveEntries, r.Ops)
		}
	}
	if seen[workload.OpWrite] != 2 || seen[workload.OpReadIndex] != 1 || seen[workload.OpReadFollower] != 1 {
		t.Fatalf("runs per op %v", seen)
	}
	for _, want := range []string{"read-follower", "saves/op", "fsyncs/op"} {
		if !strings.Contains(stderr.String(), want) {
			t.Fatalf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}

	stdout.Reset()
	stderr.Reset()
	args = []string{"-ops", "read-lease", "-clients", "2", "-duration", "100ms", "-warmup", "0s",
		"-pairs", "pebble/inmem", "-repeat", "2", "-json", "-dir", dir, "-floor-samples", "0"}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if rs, err = workload.ReadJSON(&stdout); err != nil || len(rs) != 2 || rs[0].Round != 1 || rs[1].Round != 2 || !rs[0].Storage.Synced {
		t.Fatalf("repeated runs %+v, %v", rs, err)
	}
	if !strings.Contains(stderr.String(), "medians of 2 runs") {
		t.Fatalf("no medians:\n%s", stderr.String())
	}
}

// The writes through a follower and in a session run like writes (with
// -payload), forward every follower write (counted on the transport and
// in the leader's metrics), and are tabled against the writes of the same
// round.
func TestRunWritesSmoke(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	md := filepath.Join(dir, "table.md")
	args := []string{"-ops", "write,write-follower,write-session", "-clients", "3", "-payload", "64",
		"-duration", "150ms", "-warmup", "50ms", "-pairs", "memory/inmem", "-repeat", "2", "-json", "-dir", dir, "-markdown", md}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	rs, err := workload.ReadJSON(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 6 {
		t.Fatalf("%d results, want 6", len(rs))
	}
	for i, r := range rs {
		op := []string{workload.OpWrite, workload.OpWriteFollower, workload.OpWriteSession}[i%3]
		if r.Op != op || r.Round != 1+i/3 || r.Payload != 64 || r.Ops == 0 || r.Errors != 0 || r.Storage.SaveEntries < r.Ops {
			t.Fatalf("run %d: implausible result %+v", i, r)
		}
		m := r.RaftMetrics
		if m == nil || m.Commits == 0 {
			t.Fatalf("%s: no leader metrics", op)
		}
		// Every follower write is forwarded, several to a MsgPropose when
		// they queue up together. The counters are read before the
		// clients' window opens and after it closes, so only the requests
		// already forwarded when it opened (one per client at most) can
		// be counted as requests and not as forwarded.
		fwd := op == workload.OpWriteFollower
		all := func(v uint64) bool { return fwd && v+3 >= r.Ops || !fwd && v == 0 }
		wire := fwd && r.Net.Proposals > 0 && 10*r.Net.Proposals <= 11*r.Ops || !fwd && r.Net.Proposals == 0
		if !wire || !all(m.ForwardedServed) || !all(m.Forwarded) {
			t.Fatalf("%s: %d forwards on the wire, %d forwarded, %d served for %d requests", op, r.Net.Proposals, m.Forwarded, m.ForwardedServed, r.Ops)
		}
	}
	for _, want := range []string{"write-follower", "write-session", "forwarded/op", "served/op", "ratios to write", "ops/s × per round", " forwards "} {
		if !strings.Contains(stderr.String(), want) {
			t.Fatalf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if b, err := os.ReadFile(md); err != nil || !strings.Contains(string(b), "| typedraft | write-session | write | memory/inmem | 3 | 3 | 64 |") {
		t.Fatalf("markdown %v:\n%s", err, b)
	}
}

// -metrics on,off runs every configuration with metrics on and off; the
// runs with metrics off record no leader metrics and are tabled apart.
func TestMetricsOnOff(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	args := []string{"-clients", "2", "-duration", "100ms", "-warmup", "0s", "-pairs", "memory/inmem", "-metrics", "on,off", "-json"}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	rs, err := workload.ReadJSON(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].MetricsOff || !rs[1].MetricsOff || rs[0].RaftMetrics == nil || rs[1].RaftMetrics != nil || rs[0].DiskFloor != nil {
		t.Fatalf("results %+v", rs)
	}
	if !strings.Contains(stderr.String(), "typedraft (metrics off)") {
		t.Fatalf("no metrics-off row:\n%s", stderr.String())
	}
}

func TestFindNestedDirs(t *testing.T) {
	for _, p := range peers {
		dir, err := findNestedDir(p.module)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
			t.Fatalf("found %s without go.mod: %v", dir, err)
		}
		if isRootModule(filepath.Join(dir, "go.mod")) {
			t.Fatalf("the nested module %s was taken for the root module", p.module)
		}
	}
	wd, _ := os.Getwd()
	t.Chdir(os.TempDir())
	if _, err := findNestedDir("hashicorp"); err == nil {
		t.Fatalf("found benchmarks/hashicorp outside the repository (from %s)", wd)
	}
}

func TestRenderFromFile(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var buf bytes.Buffer
	for _, sys := range []string{"typedraft", "hashicorp"} {
		r := workload.Result{System: sys, Store: "x", Transport: "tcp", Durable: true, Nodes: 3, Clients: 8, Payload: 128, OpsPerSec: 1000}
		if sys == "typedraft" {
			r.OpsPerSec = 3000
		}
		if err := workload.WriteJSON(&buf, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(in, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	svg := filepath.Join(dir, "c.svg")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-from", in, "-svg", svg}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "3.00×") {
		t.Fatalf("table:\n%s", out.String())
	}
	if _, err := os.Stat(svg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"-from", in}, &out, &out); err == nil {
		t.Fatal("garbage input: no error")
	}
}
