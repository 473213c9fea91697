package benchmarks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/typedraft/typedraft/benchmarks/cluster"
	"github.com/typedraft/typedraft/raft"
)

// BenchmarkCluster measures a 3-node in-process cluster for every store ×
// transport and 1, 16 and 64 outstanding proposals of 128 bytes: each
// iteration proposes k commands to the leader at once and waits until all
// are applied there. It reports proposals/s and ns/proposal besides the
// per-iteration ns/op. Run with
//
//	go test -run '^$' -bench Cluster ./benchmarks
//
// raftbench measures the same with independent closed-loop clients and
// latency percentiles.
func BenchmarkCluster(b *testing.B) {
	for _, store := range cluster.Stores {
		for _, transport := range cluster.Transports {
			for _, k := range []int{1, 16, 64} {
				b.Run(fmt.Sprintf("store=%s/transport=%s/inflight=%d", store, transport, k), func(b *testing.B) {
					benchCluster(b, store, transport, k)
				})
			}
		}
	}
}

func benchCluster(b *testing.B, store, transport string, k int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{Nodes: 3, Store: store, Transport: transport, Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	leader := c.Leader()
	cmd := make([]byte, 128)
	futures := make([]*raft.Future[uint64, *cluster.Error], k)
	b.ReportAllocs()
	for b.Loop() {
		for i := range futures {
			futures[i] = leader.Propose(ctx, cmd)
		}
		for _, f := range futures {
			if _, err := f.Wait(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	n := float64(b.N) * float64(k)
	b.ReportMetric(n/b.Elapsed().Seconds(), "proposals/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/proposal")
}
