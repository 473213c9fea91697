package raft

// Status is a snapshot of a node's state, published by the driver after
// every batch of work and read without locks.
//
// Ownership: a Status and its slices (Configuration, Peers) are the
// caller's: every call returns fresh copies.
type Status struct {
	ID     NodeID
	State  State
	Term   uint64
	Leader NodeID
	// LeaderAddr is the leader's address from the configuration.
	LeaderAddr string
	// Commit is the highest log index known to be committed.
	Commit uint64
	// Applied is the highest index applied to the state machine.
	Applied uint64
	// LastIndex is the index of the last entry in the node's log.
	LastIndex uint64
	// Configuration is the membership in force (it takes effect when
	// appended, before it commits); ConfigIndex is the entry that created it.
	Configuration Configuration
	ConfigIndex   uint64
	// Transferee is the target of a leadership transfer in progress.
	Transferee NodeID
	// Removed: the node holds a configuration it is not a member of (it was
	// removed, or not added yet after a restart on an old store).
	Removed bool
	// Peers is, on the leader, each member's replication progress (the
	// leader included), refreshed every tick; nil on other nodes.
	Peers []PeerStatus
}

// Joint reports whether the node is in a joint configuration C(old,new).
func (s Status) Joint() bool { return s.Configuration.Joint() }

// Role returns id's suffrage in the configuration and whether it is a
// member at all.
func (s Status) Role(id NodeID) (Suffrage, bool) {
	srv, ok := s.Configuration.Server(id)
	return srv.Suffrage, ok
}
