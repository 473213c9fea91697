//go:build hashicorp

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

// TestCompareHashicorp builds the nested module benchmarks/hashicorp and
// runs the comparison; it needs hashicorp/raft's dependencies, so it only
// runs with the build tag:
//
//	go test -tags hashicorp -run CompareHashicorp ./benchmarks/cmd/raftbench
func TestCompareHashicorp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"-clients", "2", "-payload", "64", "-duration", "300ms", "-warmup", "0s",
		"-store", "memory,pebble", "-transport", "inmem,tcp", "-compare-hashicorp", "-json"}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	rs, err := workload.ReadJSON(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	systems := map[string]int{}
	for _, r := range rs {
		systems[r.System]++
		if r.Ops == 0 {
			t.Fatalf("no ops: %+v", r)
		}
	}
	if systems["typedraft"] != 4 || systems["hashicorp"] != 4 {
		t.Fatalf("results per system %v, want 4 each", systems)
	}
	if strings.Count(stderr.String(), "×") != 4 {
		t.Fatalf("table lacks the 4 ratios:\n%s", stderr.String())
	}
}
