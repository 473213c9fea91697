package tcp

import (
	"testing"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/transporttest"
)

// factory returns a conformance factory; with secure set, every endpoint
// uses mutual TLS with certificates from one test CA.
func factory(secure bool) transporttest.Factory {
	return func(t *testing.T, ids []raft.NodeID) []transporttest.Endpoint {
		var ca *testCA
		if secure {
			ca = newCA(t, "conformance-ca")
		}
		eps := make([]transporttest.Endpoint, 0, len(ids))
		for _, id := range ids {
			opts := testOptions(id)
			if secure {
				opts.TLS = nodeTLS(t, ca, ca, id)
			}
			tr, err := Listen("127.0.0.1:0", opts)
			if err != nil {
				t.Fatalf("listen %s: %v", id, err)
			}
			addr := tr.Addr()
			cur := tr
			t.Cleanup(func() { _ = cur.Close() })
			eps = append(eps, transporttest.Endpoint{
				ID:        id,
				Addr:      addr,
				Transport: tr,
				Close:     func() error { return cur.Close() },
				Restart: func() (raft.Transport, error) {
					nt, err := Listen(addr, opts)
					if err != nil {
						return nil, err
					}
					cur = nt
					return nt, nil
				},
			})
		}
		return eps
	}
}

// TestConformance runs the shared raft.Transport suite over loopback TCP.
func TestConformance(t *testing.T) { transporttest.Run(t, factory(false)) }

// TestConformanceTLS runs the suite again with mutual TLS on every link.
func TestConformanceTLS(t *testing.T) { transporttest.Run(t, factory(true)) }
