package transporttest

import (
	"fmt"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/typedraft/typedraft/raft"
)

// Endpoint is one transport created by a Factory, reachable by the others at
// Addr.
type Endpoint struct {
	// ID is the node the transport speaks for; it must equal the requested ID.
	ID raft.NodeID
	// Addr is the address peers use in raft.Peer.Addr to reach this endpoint.
	Addr string
	// Transport is the endpoint's open transport, with no handler registered.
	Transport raft.Transport
	// Close closes the endpoint's current transport (the one most recently
	// returned by Restart, if any) and releases everything it holds,
	// including its goroutines, before returning. The suite calls it at most
	// once per opened transport.
	Close func() error
	// Restart, called after Close has returned, opens a new transport for ID
	// at the same Addr and returns it. Nil if the transport cannot restart;
	// the restart case is then not run (and says so in the test log).
	Restart func() (raft.Transport, error)
}

// Factory creates one connected endpoint per id, in the order given; every
// endpoint must be able to reach every other by its Addr. The suite calls it
// once per case with that case's *testing.T; anything the factory starts
// besides the endpoints must be stopped by t.Cleanup functions it registers.
type Factory func(t *testing.T, ids []raft.NodeID) []Endpoint

type testCase struct {
	name  string
	nodes int
	run   func(c *cluster)
	// needsRestart marks cases that need Endpoint.Restart.
	needsRestart bool
}

var cases = []testCase{
	{name: "FieldRoundTrip", nodes: 2, run: testFieldRoundTrip},
	{name: "PerPeerOrdering", nodes: 2, run: testPerPeerOrdering},
	{name: "LargeMessage", nodes: 2, run: testLargeMessage},
	{name: "ManyPeers", nodes: 5, run: testManyPeers},
	{name: "ConcurrentSenders", nodes: 3, run: testConcurrentSenders},
	{name: "NoSharedMemory", nodes: 3, run: testNoSharedMemory},
	{name: "RegisterReplacesHandler", nodes: 2, run: testRegisterReplaces},
	{name: "UnreachablePeer", nodes: 2, run: testUnreachablePeer},
	{name: "StuckReceiver", nodes: 3, run: testStuckReceiver},
	{name: "SnapshotStream", nodes: 3, run: testSnapshotStream},
	{name: "SnapshotRefused", nodes: 2, run: testSnapshotRefused},
	{name: "SnapshotEarlyAccept", nodes: 2, run: testSnapshotEarlyAccept},
	{name: "SnapshotCancel", nodes: 2, run: testSnapshotCancel},
	{name: "SnapshotUnreachable", nodes: 2, run: testSnapshotUnreachable},
	{name: "CloseInFlight", nodes: 2, run: testCloseInFlight},
	{name: "PeerRestart", nodes: 2, run: testPeerRestart, needsRestart: true},
}

// Run runs every conformance case as a subtest of t, each with fresh
// endpoints from f, and checks after each case, and once more at the end,
// that closing the endpoints left no goroutine behind.
func Run(t *testing.T, f Factory) {
	if f == nil {
		t.Fatal("transporttest: nil Factory")
	}
	ignore := goleak.IgnoreCurrent()
	// canRestart is learned from the first case's endpoints; cases needing
	// Restart come last and are left out (with a log line, not a pass) when
	// the factory does not provide it.
	canRestart := true
	for _, tc := range cases {
		if tc.needsRestart && !canRestart {
			t.Logf("transporttest: Endpoint.Restart is nil: case %s not run", tc.name)
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, f, tc.nodes)
			if !c.canRestart() {
				canRestart = false
				if tc.needsRestart {
					t.Fatalf("transporttest: Endpoint.Restart is nil for some endpoints but not others")
				}
			}
			tc.run(c)
		})
	}
	goleak.VerifyNone(t, ignore)
}

// cluster is the set of endpoints of one case.
type cluster struct {
	t     *testing.T
	nodes []*node
}

// node is one endpoint as the suite tracks it.
type node struct {
	id      raft.NodeID
	addr    string
	tr      raft.Transport
	close   func() error
	restart func() (raft.Transport, error)
	rec     *recorder
	closed  bool
}

func (n *node) peer() raft.Peer { return raft.Peer{ID: n.id, Addr: n.addr} }

// newCluster creates n endpoints with recorders registered, and registers
// cleanups that close them and then check for leaked goroutines.
func newCluster(t *testing.T, f Factory, n int) *cluster {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })

	ids := make([]raft.NodeID, n)
	for i := range ids {
		ids[i] = raft.NodeID(fmt.Sprintf("node-%d", i+1))
	}
	eps := f(t, ids)
	c := &cluster{t: t}
	t.Cleanup(c.closeAll)
	if len(eps) != n {
		for _, ep := range eps {
			if ep.Close != nil {
				_ = ep.Close()
			}
		}
		t.Fatalf("transporttest: factory returned %d endpoints for %d ids", len(eps), n)
	}
	for i, ep := range eps {
		nd := &node{id: ep.ID, addr: ep.Addr, tr: ep.Transport, close: ep.Close, restart: ep.Restart}
		if ep.Transport == nil || ep.Close == nil {
			nd.closed = true
		}
		c.nodes = append(c.nodes, nd)
		switch {
		case ep.ID != ids[i]:
			t.Fatalf("transporttest: endpoint %d has ID %q, want %q", i, ep.ID, ids[i])
		case ep.Transport == nil:
			t.Fatalf("transporttest: endpoint %s has no Transport", ep.ID)
		case ep.Close == nil:
			t.Fatalf("transporttest: endpoint %s has no Close func", ep.ID)
		}
	}
	for _, nd := range c.nodes {
		nd.rec = newRecorder(t, nd.id)
		nd.tr.Register(nd.rec)
	}
	return c
}

func (c *cluster) canRestart() bool {
	for _, nd := range c.nodes {
		if nd.restart == nil {
			return false
		}
	}
	return true
}

// closeNode closes nd's transport and fails the test if Close fails or does
// not return within the wait timeout.
func (c *cluster) closeNode(nd *node) {
	c.t.Helper()
	if nd.closed {
		return
	}
	nd.closed = true
	done := make(chan error, 1)
	go func() { done <- nd.close() }()
	select {
	case err := <-done:
		if err != nil {
			c.t.Errorf("close %s: %v", nd.id, err)
		}
	case <-after(waitTimeout):
		c.t.Fatalf("close %s did not return within %v", nd.id, waitTimeout)
	}
}

func (c *cluster) closeAll() {
	for _, nd := range c.nodes {
		c.closeNode(nd)
	}
}

// gate returns a channel that the test closes with release; a cleanup closes
// it too (before the endpoints close), so blocked handlers never outlive the
// case.
func (c *cluster) gate() (wait <-chan struct{}, release func()) {
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	c.t.Cleanup(release)
	return ch, release
}
