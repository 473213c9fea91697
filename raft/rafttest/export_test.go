package rafttest

// SkipInvariants returns o with the named invariants no longer failing the
// run, so that a test can show which deeper invariant catches a bug that a
// more direct check would report first.
func SkipInvariants(o Options, names ...string) Options {
	o.skip = map[string]bool{}
	for _, n := range names {
		o.skip[n] = true
	}
	return o
}
