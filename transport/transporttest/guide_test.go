package transporttest_test

import "testing"

// TestRPCTransport runs the conformance suite on the RPC transport of
// Example_rpcTransport, so that the worked example of the package
// documentation is known to conform.
func TestRPCTransport(t *testing.T) { rpcConformance(t) }
