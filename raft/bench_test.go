package raft_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/transport/inmem"
)

// benchSM is a minimal state machine: it counts bytes applied.
type benchSM struct{ n atomic.Int64 }

func (s *benchSM) Apply(_ uint64, cmd []byte) (int64, error) {
	return s.n.Add(int64(len(cmd))), nil
}

// BenchmarkProposeInmem measures proposals through a 3-node cluster on
// store/memory and transport/inmem, with 1 and 64 concurrent clients
// proposing 128-byte commands in a closed loop.
func BenchmarkProposeInmem(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) { benchPropose(b, clients) })
	}
}

func benchPropose(b *testing.B, clients int) {
	net := inmem.NewNetwork(1)
	var servers []raft.Server
	for i := 1; i <= 3; i++ {
		id := raft.NodeID(fmt.Sprintf("n%d", i))
		servers = append(servers, raft.Server{ID: id, Addr: string(id)})
	}
	var nodes []*raft.Raft[[]byte, int64, error]
	for _, s := range servers {
		cfg := raft.Config{ID: s.ID, TickInterval: 20 * time.Millisecond}
		tr := net.Join(s.ID)
		nd, err := raft.New(cfg, &benchSM{}, memory.New(), tr)
		if err != nil {
			b.Fatal(err)
		}
		if err := nd.Bootstrap(context.Background(), servers); err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, nd)
		defer func() {
			_ = nd.Shutdown(context.Background())
			_ = tr.Close()
		}()
	}
	var lead *raft.Raft[[]byte, int64, error]
	waitFor(b, "a leader", 10*time.Second, func() bool {
		for _, n := range nodes {
			if n.Status().State == raft.Leader {
				lead = n
				return true
			}
		}
		return false
	})
	ctx := context.Background()
	var left atomic.Int64
	left.Store(int64(b.N))
	payload := make([]byte, 128)
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if _, err := lead.Propose(ctx, payload).Wait(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
