//go:build !raftbugs

package bugs

// Enabled is false in builds without the raftbugs tag: every branch that
// reads a Set is compiled out.
const Enabled = false
