package raft_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkProposeInmem measures proposals per second through a 3-node
// cluster on store/memory and transport/inmem with 64 concurrent clients.
func BenchmarkProposeInmem(b *testing.B) {
	b.Run("clients=1", func(b *testing.B) { benchPropose(b, 1) })
	b.Run("clients=64", func(b *testing.B) { benchPropose(b, 64) })
}

func benchPropose(b *testing.B, clients int) {
	c := newBenchCluster(b)
	lead := c.leader()
	ctx := context.Background()
	var n atomic.Int64
	n.Store(int64(b.N))
	payload := string(make([]byte, 128))
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n.Add(-1) >= 0 {
				if _, err := c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: "k", Val: payload}).Wait(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
