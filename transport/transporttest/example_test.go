package transporttest_test

import (
	"testing"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/inmem"
	"github.com/typedraft/typedraft/transport/transporttest"
)

// Example shows the test a raft.Transport implementation adds to its own
// package to run the suite. Run needs the *testing.T of a real test, so
// this example is compiled but not run, and has no output: in your package,
// testConformance is a top-level function
//
//	func TestConformance(t *testing.T) { ... }
//
// that `go test` runs. The factory is called once per case with the IDs
// the case needs; it returns one open transport per ID, all able to reach
// each other by Addr. Restart is optional (nil skips the restart case); it
// must reopen the transport for the same ID at the same Addr. Anything the
// factory starts besides the endpoints is stopped with t.Cleanup. Here the
// transports are transport/inmem's; transport/tcp's own test listens on
// 127.0.0.1:0 instead and reopens the same port on Restart.
// Example_rpcTransport is a complete transport written from scratch, with
// its conformance test.
func Example() {
	testConformance := func(t *testing.T) {
		transporttest.Run(t, func(t *testing.T, ids []raft.NodeID) []transporttest.Endpoint {
			net := inmem.NewNetwork(1) // one network per case: cases do not interfere
			eps := make([]transporttest.Endpoint, len(ids))
			for i, id := range ids {
				addr := "inmem://" + string(id)
				cur := net.JoinAddr(id, addr) // your transport's constructor here
				eps[i] = transporttest.Endpoint{
					ID:        id,
					Addr:      addr,
					Transport: cur,
					Close:     func() error { return cur.Close() }, // closes the newest one
					Restart: func() (raft.Transport, error) {
						cur = net.JoinAddr(id, addr)
						return cur, nil
					},
				}
			}
			return eps
		})
	}
	_ = testConformance
}
