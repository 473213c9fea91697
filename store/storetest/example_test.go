package storetest_test

import (
	"testing"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/store/pebble"
	"github.com/typedraft/typedraft/store/storetest"
)

// Example shows the test a durable raft.Storage implementation adds to its
// own package to run the suite. Run needs the *testing.T of a real test, so
// this example is compiled but not run, and has no output: in your package,
// testConformance is a top-level function
//
//	func TestConformance(t *testing.T) { ... }
//
// that `go test` runs (add -race: the suite's concurrency cases are meant
// to be run under the race detector). Each case opens its own store in a
// fresh t.TempDir(); the durability cases close it and call Open again on
// the same directory. store/pebble runs the suite this way.
// Example_persister is a complete store written from scratch, with its
// conformance test.
func Example() {
	testConformance := func(t *testing.T) {
		storetest.Run(t, storetest.Factory{
			Open: func(t *testing.T, dir string) raft.Storage {
				s, err := pebble.Open(dir, nil) // your store's constructor here
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			Durable: true, // the store keeps its state across Close and Open
		})
	}
	_ = testConformance
}

// Example_volatile runs the suite against a store that keeps nothing on
// disk: Open ignores dir and Durable is false, so the reopen cases are
// skipped (the test log says so). Like Example, this is compiled but not
// run; store/memory runs the suite this way.
func Example_volatile() {
	testConformance := func(t *testing.T) {
		storetest.Run(t, storetest.Factory{
			Open: func(*testing.T, string) raft.Storage { return memory.New() },
		})
	}
	_ = testConformance
}
