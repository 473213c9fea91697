// Package bugs lists deliberately broken behaviours that the pure core can be
// switched into, so that the simulation harness (raft/rafttest) can show it
// catches each of them. It is internal: applications cannot reach it, and a
// zero Set (the only value outside this module) means correct Raft.
package bugs

// Set selects injected bugs. The zero value injects nothing.
type Set struct {
	// CommitOldTermByCount lets a leader commit an entry of an earlier term
	// by counting replicas (violates §5.4.2, Figure 8).
	CommitOldTermByCount bool
	// VoteNotPersisted drops the vote from the persisted hard state, so a
	// restarted node can vote twice in one term (violates Figure 2).
	VoteNotPersisted bool
	// AckBeforeDurable lets a follower acknowledge appended entries before
	// they are on stable storage.
	AckBeforeDurable bool
	// NoTruncate makes a follower keep a conflicting suffix instead of
	// truncating it (violates §5.3).
	NoTruncate bool
	// JointNewMajorityOnly makes a joint configuration decide commits and
	// elections by the new voters' majority alone, ignoring the old
	// voters' (violates §6: joint consensus needs both majorities).
	JointNewMajorityOnly bool
}

// Any reports whether any bug is switched on.
func (s Set) Any() bool { return s != Set{} }

// Inject returns a copy of cfg, a raft.CoreConfig, with s switched on. The
// raft package installs it at init; it is nil until then.
var Inject func(cfg any, s Set) any
