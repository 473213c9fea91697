package inmem_test

import (
	"runtime"
	"testing"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/inmem"
)

// BenchmarkSendDeliver measures one heartbeat from Send to HandleMessage.
func BenchmarkSendDeliver(b *testing.B) {
	net := inmem.NewNetwork(1, inmem.WithQueueSize(1<<20))
	a, dst := net.Join("a"), net.Join("b")
	defer a.Close()
	defer dst.Close()
	dst.Register(newCollector())
	m := []raft.Message{{Type: raft.MsgHeartbeat, From: "a", To: "b"}}
	to := raft.Peer{ID: "b"}
	n := uint64(0)
	for b.Loop() {
		a.Send(to, m)
		n++
	}
	for net.Stats("a", "b").Messages < n {
		runtime.Gosched()
	}
}
