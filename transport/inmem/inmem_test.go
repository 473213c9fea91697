package inmem_test

import (
	"testing"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/inmem"
	"github.com/typedraft/typedraft/transport/transporttest"
)

// TestConformance runs the transport conformance suite over one network per
// case, with a small queue so that overflow shows quickly.
func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, ids []raft.NodeID) []transporttest.Endpoint {
		net := inmem.NewNetwork(1)
		eps := make([]transporttest.Endpoint, len(ids))
		for i, id := range ids {
			addr := "inmem://" + string(id)
			cur := net.JoinAddr(id, addr)
			eps[i] = transporttest.Endpoint{
				ID:        id,
				Addr:      addr,
				Transport: cur,
				Close:     func() error { return cur.Close() },
				Restart: func() (raft.Transport, error) {
					cur = net.JoinAddr(id, addr)
					return cur, nil
				},
			}
		}
		return eps
	})
}
