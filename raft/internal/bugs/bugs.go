// Package bugs lists deliberately broken behaviours that the core and the
// driver can be switched into, so that the simulation harnesses
// (raft/rafttest) can show they catch each of them. It is internal:
// applications cannot reach it, and a zero Set (the only value outside this
// module) means correct Raft.
//
// The switches exist only in builds with the raftbugs tag (go test -tags
// raftbugs): every branch that reads a Set is guarded by the constant
// Enabled, which is false otherwise, so the compiler removes the branches
// from shipped code, and Inject (which the teeth use) does not exist.
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
	// ReadWithoutQuorum answers a read with the leader's commit index at
	// once, without confirming leadership with a quorum (violates §6.4).
	ReadWithoutQuorum bool
	// SelfAckBeforeDurable makes a leader count its own log toward a
	// quorum as soon as its write is submitted, before it is durable
	// (violates thesis §10.2.1).
	SelfAckBeforeDurable bool
	// AckDuringWrite hands out acknowledgements while a log write is in
	// flight, so a driver sends them before the entries they acknowledge
	// are durable.
	AckDuringWrite bool
	// AcceptStrangers makes the core act on messages from nodes outside
	// its configuration (forged or from removed nodes).
	AcceptStrangers bool
	// ReadSkipsApply makes the driver run a confirmed read at once instead
	// of waiting until the state machine has applied its read index.
	ReadSkipsApply bool
	// RejectWithoutConfirm makes the driver answer a Validate rejection
	// from the leader's current state without confirming leadership first.
	RejectWithoutConfirm bool
	// SessionsNotInSnapshot leaves the client session table out of
	// snapshots, so a node restored from one applies a retried command
	// again.
	SessionsNotInSnapshot bool
	// ForwardAnswersSwapped makes a leader that sends several answers to
	// forwarded proposals in one message give the first two each other's
	// forward IDs, so two callers on the follower get each other's results.
	ForwardAnswersSwapped bool
}

// Any reports whether any bug is switched on.
func (s Set) Any() bool { return s != Set{} }
