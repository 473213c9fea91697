package storetest_test

import "testing"

// TestPersisterStore runs the conformance suite on the Persister-backed
// store of Example_persister, so that the worked example of the package
// documentation is known to conform.
func TestPersisterStore(t *testing.T) { persisterConformance(t) }
