//go:build raftbugs

package bugs

// Enabled is true in builds with the raftbugs tag: the switches of a Set
// take effect.
const Enabled = true

// Inject returns a copy of cfg (a raft.CoreConfig or a raft.Config) with s
// switched on. The raft package installs it at init.
var Inject func(cfg any, s Set) any
