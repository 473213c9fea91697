//go:build hashicorp || dragonboat

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

// TestComparePeers builds the nested modules benchmarks/hashicorp and
// benchmarks/dragonboat and runs the comparison; it needs their
// dependencies (the module proxy, the first time), so it only runs with a
// build tag:
//
//	go test -tags hashicorp,dragonboat -run ComparePeers ./benchmarks/cmd/raftbench
func TestComparePeers(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"-clients", "2", "-payload", "64", "-duration", "300ms", "-warmup", "0s",
		"-store", "memory,pebble", "-transport", "inmem,tcp", "-compare-hashicorp", "-compare-dragonboat", "-json", "-floor-samples", "20"}
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
		if r.Ops == 0 || r.DiskFloor == nil {
			t.Fatalf("no ops or no floor: %+v", r)
		}
	}
	if systems["typedraft"] != 4 || systems["hashicorp"] != 4 || systems["dragonboat"] != 4 {
		t.Fatalf("results per system %v, want 4 each", systems)
	}
	// Four typedraft rows, each with a ratio to both peers.
	if n := strings.Count(stderr.String(), "×") - strings.Count(stderr.String(), "× the append floor") - strings.Count(stderr.String(), " × 4096 B"); n != 8 {
		t.Fatalf("table has %d ratios, want 8:\n%s", n, stderr.String())
	}
}
