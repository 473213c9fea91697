package raft

// The Core's surface for drivers: everything a driver (typedraft's own,
// the simulator, or a user's) reads from or reports to the core. The
// driver in this package uses nothing else (TestDriverUsesOnlyCoreAPI).

// CoreStatus is a Core's externally visible state.
//
// Ownership: Configuration is shared with the Core and must not be
// modified; it stays valid (unchanged) until the configuration changes, so
// a caller that keeps it past the next call into the Core clones it.
type CoreStatus struct {
	State  State
	Term   uint64
	Vote   NodeID
	Leader NodeID
	// Commit is the commit index; Applied the last index handed out for
	// applying (in Ready.Committed or an installed snapshot); LastIndex the
	// log's last index.
	Commit, Applied, LastIndex uint64
	// Configuration is the configuration in force and ConfigIndex the
	// index of the entry that created it.
	Configuration Configuration
	ConfigIndex   uint64
	// Transferee is the target of a leadership transfer in progress.
	Transferee NodeID
	// Removed: the node has a configuration and is not a member of it.
	Removed bool
	// RemovedAt is the index of the committed configuration RemovedBy
	// that left this node out after a committed one that included it (0
	// while it is a member, before it is first added, and once it is
	// added back). Every committed configuration is judged, however the
	// commit index advanced (one append covering several changes, a
	// snapshot). RemovedBy is shared like Configuration.
	RemovedAt uint64
	RemovedBy Configuration
	// OwnTermCommitted: the commit index holds an entry of the current
	// term (a new leader's first commit has happened).
	OwnTermCommitted bool
	// Strangers counts the messages dropped because their sender is not a
	// member; LastStranger is the latest of them.
	Strangers    uint64
	LastStranger Message
	// Campaigns counts the elections (and pre-vote rounds) the node
	// started.
	Campaigns uint64
}

// Status returns the Core's state. It does not allocate.
func (n *Core) Status() CoreStatus {
	c := n.c
	return CoreStatus{
		State: c.state, Term: c.term, Vote: c.vote, Leader: c.lead,
		Commit: c.log.committed, Applied: c.log.applied, LastIndex: c.log.lastIndex(),
		Configuration: c.conf.cfg, ConfigIndex: c.conf.index,
		Transferee: c.leadTransferee,
		Removed:    c.configured() && !c.conf.isMember(c.id),
		RemovedAt:  c.conf.removedAt, RemovedBy: c.conf.removedBy,
		OwnTermCommitted: c.ownTermCommitted(),
		Strangers:        c.strangers.dropped, LastStranger: c.strangers.last,
		Campaigns: c.campaigns,
	}
}

// PeerProgress is a leader's view of one peer's replication.
type PeerProgress struct {
	ID NodeID
	// Match is the highest index known to be replicated on the peer; Next
	// the next index the leader sends it.
	Match, Next uint64
	// Learner: the peer does not vote. Removed: it is no longer a member
	// and is replicated to until it holds the configuration that removed it.
	Learner, Removed bool
	// Probing: the leader does not know where the peer's log matches and
	// sends one append at a time. Snapshot: a snapshot is being sent to it
	// (SnapshotSeq numbers the send, for ReportSnapshotSent).
	Probing, Snapshot bool
	SnapshotSeq       uint64
	// ContactAgo is how many ticks ago the peer last answered (0 for the
	// leader itself).
	ContactAgo int64
}

// Progress returns, on a leader, the progress of every peer and of the
// leader itself, sorted by ID; nil on any other node. The slice is the
// caller's.
func (n *Core) Progress() []PeerProgress {
	c := n.c
	if c.state != Leader {
		return nil
	}
	out := make([]PeerProgress, 0, len(c.prs))
	add := func(id NodeID, pr *progress) {
		p := PeerProgress{ID: id, Match: pr.match, Next: pr.next, Learner: pr.learner, Removed: pr.removed,
			Probing: pr.state == progressProbe, Snapshot: pr.state == progressSnapshot}
		if p.Snapshot {
			p.SnapshotSeq = pr.snapSeq
		}
		if id != c.id {
			p.ContactAgo = c.now - pr.lastContact
		}
		out = append(out, p)
	}
	self, hasSelf := c.prs[c.id]
	added := false
	for _, id := range c.peers {
		if hasSelf && !added && c.id < id {
			add(c.id, self)
			added = true
		}
		add(id, c.prs[id])
	}
	if hasSelf && !added {
		add(c.id, self)
	}
	return out
}

// Peers returns the IDs of the peers a leader replicates to (members and
// departing nodes), sorted; nil on any other node. The slice is shared and
// must not be modified.
func (n *Core) Peers() []NodeID { return n.c.peers }

// SnapshotSend reports whether the leader is sending a snapshot to id and,
// if so, the send's number for ReportSnapshotSent.
func (n *Core) SnapshotSend(id NodeID) (seq uint64, ok bool) {
	pr := n.c.prs[id]
	if n.c.state != Leader || pr == nil || pr.state != progressSnapshot {
		return 0, false
	}
	return pr.snapSeq, true
}

// ReportSnapshotSent tells the leader's Core whether streaming snapshot
// send seq (from SnapshotSend) to id succeeded; the outcome of an earlier
// send is ignored.
func (n *Core) ReportSnapshotSent(id NodeID, seq uint64, ok bool) { n.c.snapshotDone(id, seq, ok) }

// AdvanceAsync records that rd was carried out except that its Entries
// (and HardState) were handed to a write that is still in flight (the
// leader's own log write, thesis §10.2.1, or a follower's): they count as
// durable only at WriteDone, and until then no further entries are handed
// out and no Ready carries MessagesAfter (they may acknowledge what is not
// durable yet). Any Ready without a snapshot whose Entries are not empty may
// be advanced this way; its own MessagesAfter must wait for the write. A
// Ready taken while the write is in flight that must be saved in line waits
// for the write first; WriteDone is then called after that Ready is
// advanced, never between Ready and Advance.
func (n *Core) AdvanceAsync(rd Ready) { n.c.advance(rd, true) }

// WriteDone records that the asynchronous write of entries up to index
// completed: the leader counts its own log toward a quorum from now on.
func (n *Core) WriteDone(index uint64) { n.c.writeDone(index) }

// ReportApplied tells the Core that the state machine has applied entries
// up to index. With CoreConfig.MaxApplyBacklog set, the Core hands out no
// more committed entries while that many are handed out and not applied.
func (n *Core) ReportApplied(index uint64) {
	if index > n.c.appliedReported {
		n.c.appliedReported = index
	}
}

// Entries returns the entries [lo, hi) of the Core's log, durable or not
// yet handed out (for checkers and tools: a driver needs only Ready). The
// entries are shared and must not be modified. Errors match ErrCompacted
// or ErrUnavailable.
func (n *Core) Entries(lo, hi uint64) ([]Entry, error) { return n.c.log.slice(lo, hi, 0) }
