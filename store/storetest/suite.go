package storetest

import (
	"io"
	"testing"

	"github.com/typedraft/typedraft/raft"
)

// Factory opens the store under test.
type Factory struct {
	// Open opens the store kept in dir and returns it, calling t.Fatal if it
	// cannot. The suite gives each case a new empty directory (from
	// t.TempDir), for which Open must return an empty store; stores that keep
	// nothing on disk may ignore dir. When Durable, the suite also calls Open
	// again with the same dir after closing the previous store, and expects
	// everything that store acknowledged. Open may register cleanups with
	// t.Cleanup; the suite itself closes every store it opened (if it
	// implements io.Closer) exactly once.
	Open func(t *testing.T, dir string) raft.Storage
	// Durable says that the store keeps its state across Close and Open.
	// Durable stores must implement io.Closer. When false, the reopen cases
	// are not run (and the test log says so).
	Durable bool
}

type testCase struct {
	name string
	run  func(h *harness)
	// durable marks cases that need Factory.Durable.
	durable bool
	// closer marks cases that need a store implementing io.Closer.
	closer bool
}

var cases = []testCase{
	{name: "EmptyState", run: testEmptyState},
	{name: "AppendAndRead", run: testAppendAndRead},
	{name: "ReadBounds", run: testReadBounds},
	{name: "EntriesMaxBytes", run: testEntriesMaxBytes},
	{name: "ReturnedSliceOwnership", run: testReturnedSliceOwnership},
	{name: "ConflictTruncation", run: testConflictTruncation},
	{name: "HardState", run: testHardState},
	{name: "SaveRejectsGaps", run: testSaveRejectsGaps},
	{name: "Compact", run: testCompact},
	{name: "CompactIsNoopAtOrBelow", run: testCompactNoop},
	{name: "CompactMismatchingTerm", run: testCompactMismatchingTerm},
	{name: "CompactBeyondLast", run: testCompactBeyondLast},
	{name: "SaveAfterCompact", run: testSaveAfterCompact},
	{name: "SnapshotRoundTrip", run: testSnapshotRoundTrip},
	{name: "SnapshotAbort", run: testSnapshotAbort},
	{name: "SnapshotReplace", run: testSnapshotReplace},
	{name: "SnapshotConcurrentSinks", run: testSnapshotConcurrentSinks},
	{name: "SnapshotLarge", run: testSnapshotLarge},
	{name: "SnapshotMetaOwnership", run: testSnapshotMetaOwnership},
	{name: "SnapshotReaderOutlivesCommit", run: testSnapshotReaderOutlivesCommit},
	{name: "ConcurrentReads", run: testConcurrentReads},
	{name: "Reopen", run: testReopen, durable: true},
	{name: "ReopenAfterTruncation", run: testReopenAfterTruncation, durable: true},
	{name: "ReopenAfterDiscard", run: testReopenAfterDiscard, durable: true},
	{name: "ReopenSnapshots", run: testReopenSnapshots, durable: true},
	{name: "Close", run: testClose, closer: true},
	{name: "BindNode", run: testBindNode},
	{name: "FailureNotifier", run: testFailureNotifier},
}

// Run runs every conformance case as a subtest of t, each with a store newly
// opened by f in its own directory. Whether the store implements io.Closer
// is learned from the first case's store; the cases that need it come last.
func Run(t *testing.T, f Factory) {
	t.Helper()
	if f.Open == nil {
		t.Fatal("storetest: Factory.Open is nil")
	}
	isCloser := true
	for _, tc := range cases {
		if tc.durable && !f.Durable {
			t.Logf("storetest: Factory.Durable is false: case %s not run", tc.name)
			continue
		}
		if tc.closer && !isCloser {
			t.Logf("storetest: the store does not implement io.Closer: case %s not run", tc.name)
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, f)
			_, ok := h.s.(io.Closer)
			if f.Durable && !ok {
				t.Fatalf("storetest: Factory.Durable is set but %T does not implement io.Closer", h.s)
			}
			if tc.closer && !ok {
				t.Fatalf("storetest: %T does not implement io.Closer, but the first store did", h.s)
			}
			isCloser = ok
			tc.run(h)
		})
	}
}

// harness is the store of one case.
type harness struct {
	t   *testing.T
	f   Factory
	dir string
	s   raft.Storage
	// closed reports whether s was closed by the suite.
	closed bool
}

func newHarness(t *testing.T, f Factory) *harness {
	h := &harness{t: t, f: f, dir: t.TempDir()}
	h.s = f.Open(t, h.dir)
	if h.s == nil {
		t.Fatal("storetest: Factory.Open returned nil")
	}
	t.Cleanup(func() {
		if !h.closed {
			h.closeStore()
		}
	})
	return h
}

// closeStore closes the current store if it implements io.Closer.
func (h *harness) closeStore() {
	h.t.Helper()
	h.closed = true
	if c, ok := h.s.(io.Closer); ok {
		if err := c.Close(); err != nil {
			h.t.Fatalf("Close: %v", err)
		}
	}
}

// reopen closes the current store and opens the same directory again.
func (h *harness) reopen() {
	h.t.Helper()
	h.closeStore()
	h.s = h.f.Open(h.t, h.dir)
	if h.s == nil {
		h.t.Fatal("storetest: Factory.Open returned nil on reopen")
	}
	h.closed = false
}
