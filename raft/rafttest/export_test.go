package rafttest

// WithReadSkipsApply returns o with the simulated driver serving confirmed
// reads without waiting for their read index to be applied (a tooth).
func WithReadSkipsApply(o Options) Options { o.readSkipsApply = true; return o }

// WithoutClockSync returns o with the simulated driver never telling a
// core the time it did not see, such as a pause (a tooth).
func WithoutClockSync(o Options) Options { o.noClockSync = true; return o }

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
