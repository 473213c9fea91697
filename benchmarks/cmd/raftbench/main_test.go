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
	dir := t.TempDir()
	svg, md := filepath.Join(dir, "chart.svg"), filepath.Join(dir, "table.md")
	var stdout, stderr bytes.Buffer
	args := []string{"-nodes", "3", "-clients", "1,4", "-payload", "64", "-duration", "150ms", "-warmup", "0s",
		"-store", "memory,pebble", "-transport", "inmem", "-json", "-svg", svg, "-markdown", md, "-dir", dir}
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
	}
	if !strings.Contains(stderr.String(), "ops/s") || !strings.Contains(stderr.String(), "vs hashicorp") {
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
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out, &out); err == nil {
			t.Errorf("run(%q): no error", args)
		}
	}
}

func TestFindHashicorpDir(t *testing.T) {
	dir, err := findHashicorpDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("found %s without go.mod: %v", dir, err)
	}
	if isRootModule(filepath.Join(dir, "go.mod")) {
		t.Fatal("the nested module was taken for the root module")
	}
	wd, _ := os.Getwd()
	t.Chdir(os.TempDir())
	if _, err := findHashicorpDir(); err == nil {
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
