package benchmarks

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/typedraft/typedraft/benchmarks/cluster"
	"github.com/typedraft/typedraft/benchmarks/workload"
)

// readOps are the reads BenchmarkRead measures, in the order it runs them.
var readOps = []string{workload.OpReadLog, workload.OpReadIndex, workload.OpReadFollower, workload.OpReadLease}

// BenchmarkRead measures reads on a 3-node in-process cluster for every
// store × transport, every read of readOps (through the log, ReadIndex on
// the leader, ReadIndex on the followers, lease on the leader; see
// cluster.OpFor) and 1, 16 and 64 closed-loop clients: the clients share
// b.N reads, each sending its next read once the last one returned, so
// ns/op is the time per read at that concurrency. Besides ns/op it reports
// reads/s, the p50 and p99 latency of one read (p50-ns, p99-ns), and the
// cluster-wide Storage.Save calls (saves/read) and, on Pebble, file syncs
// (fsyncs/read) per read while the clients ran, and the messages all
// nodes sent per read (msgs/read; heartbeats/read of them, one per
// follower per broadcast, so 2/heartbeats-per-read reads share a round on
// three nodes). One cluster per store ×
// transport serves all its sub-benchmarks; before each, every node has
// applied everything committed. Run with
//
//	go test -run '^$' -bench Read ./benchmarks
//
// raftbench -ops read-log,read-index,read-follower,read-lease measures the
// same over a fixed duration.
func BenchmarkRead(b *testing.B) {
	for _, store := range cluster.Stores {
		for _, transport := range cluster.Transports {
			b.Run(fmt.Sprintf("store=%s/transport=%s", store, transport), func(b *testing.B) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				c, err := cluster.Start(ctx, cluster.Options{Nodes: 3, Store: store, Transport: transport, Dir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				for _, op := range readOps {
					fn, err := c.OpFor(op)
					if err != nil {
						b.Fatal(err)
					}
					for _, k := range []int{1, 16, 64} {
						b.Run(fmt.Sprintf("op=%s/clients=%d", op, k), func(b *testing.B) {
							benchRead(ctx, b, c, fn, k)
						})
					}
				}
			})
		}
	}
}

// benchRead runs b.N reads of op from k closed-loop clients on c.
func benchRead(ctx context.Context, b *testing.B, c *cluster.Cluster, op workload.Op, k int) {
	if err := c.WaitSettled(ctx); err != nil {
		b.Fatal(err)
	}
	hists := make([]workload.Histogram, k)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	b.ReportAllocs()
	before, netBefore := c.StorageCounts(), c.NetCounts()
	b.ResetTimer()
	for w := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := op(ctx, w, nil); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				hists[w].Record(time.Since(t0))
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	counts, net := c.StorageCounts().Sub(before), c.NetCounts().Sub(netBefore)
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	var h workload.Histogram
	for i := range hists {
		h.Merge(&hists[i])
	}
	n := float64(b.N)
	b.ReportMetric(n/b.Elapsed().Seconds(), "reads/s")
	b.ReportMetric(float64(h.Quantile(0.50).Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(h.Quantile(0.99).Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(counts.Saves)/n, "saves/read")
	if counts.Synced {
		b.ReportMetric(float64(counts.Fsyncs)/n, "fsyncs/read")
	}
	b.ReportMetric(float64(net.Messages)/n, "msgs/read")
	b.ReportMetric(float64(net.Heartbeats)/n, "heartbeats/read")
}
