package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

func TestRunSmoke(t *testing.T) {
	for _, c := range []struct{ store, transport string }{{"memfs", "inmem"}, {"pebble", "tcp"}} {
		var stdout, stderr bytes.Buffer
		args := []string{"-clients", "1,2", "-payload", "64", "-duration", "200ms", "-warmup", "0s",
			"-store", c.store, "-transport", c.transport, "-dir", t.TempDir()}
		if err := run(context.Background(), args, &stdout, &stderr); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stderr.String())
		}
		rs, err := workload.ReadJSON(&stdout)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 2 {
			t.Fatalf("%d results, want 2", len(rs))
		}
		for _, r := range rs {
			if r.System != "dragonboat" || r.Store != c.store || r.Transport != c.transport || r.Ops == 0 || r.Durable != (c.store == "pebble") {
				t.Fatalf("implausible result %+v", r)
			}
		}
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-store", "boltdb"}, {"-transport", "udp"}, {"-nodes", "0"}, {"-clients", "x"}, {"-payload", "2"}, {"extra"},
		{"-rtt", "500us"}, {"-heartbeat", "400ms", "-election", "500ms"}, {"-sm", "ondisk"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out, &out); err == nil {
			t.Errorf("run(%q): no error", args)
		}
	}
}
