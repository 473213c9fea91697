package raft

import (
	"math/rand/v2"
)

// Core is the deterministic Raft state machine that every typedraft node
// runs: no goroutines, no clock, no locks and no I/O other than reading the
// durable log through a LogReader. Feed it ticks, messages and proposals and
// carry out the Ready batches it returns (see Ready for the order).
//
// Raft[C, R, E] drives a Core for applications; Core is exported for
// simulation harnesses such as raft/rafttest and for custom drivers.
//
// Concurrency: a Core is not safe for concurrent use; one goroutine owns it.
type Core struct{ c *core }

// NewCore restores a Core from durable state: the persisted hard state, the
// log (read through log) and the newest snapshot's metadata (zero if none).
// rng supplies every random choice (election timeouts). It returns an error
// if cfg is invalid or the log cannot be read.
func NewCore(cfg CoreConfig, log LogReader, hs HardState, snap SnapshotMeta, rng *rand.Rand) (*Core, error) {
	c, err := newCore(cfg, log, hs, snap, rng)
	if err != nil {
		return nil, err
	}
	return &Core{c: c}, nil
}

// Tick advances logical time by one tick.
func (n *Core) Tick() { n.c.tick() }

// Step processes one inbound message. Messages not addressed to this node,
// of unknown type or from itself are ignored.
func (n *Core) Step(m Message) {
	if m.To != "" && m.To != n.c.id {
		return
	}
	n.c.step(m)
}

// Propose appends entries to the leader's log, assigning their Index and
// Term, and returns the index of the first one and the term. It returns
// ErrNotLeader if this node is not the leader, or ErrTransferInProgress
// while it is transferring leadership.
// Ownership of ents passes to the Core.
func (n *Core) Propose(ents []Entry) (first, term uint64, err error) {
	return n.c.propose(ents)
}

// ReadIndex starts a linearizable read (thesis §6.4) identified by id,
// which the caller chooses and which must be unique among its reads in
// progress. The outcome arrives in a later Ready's ReadStates: the read
// index to wait for, or why the read was not confirmed. On the leader the
// read is confirmed by a quorum round shared with every read waiting for
// it (or, with lease, by the leader's lease when it holds one); a follower
// or learner asks its leader. Reads in progress fail when the node's term
// or role changes.
func (n *Core) ReadIndex(id uint64, lease bool) { n.c.readIndex(id, lease) }

// SyncClock tells the Core that now ticks of real time have passed since
// it was created, counting ticks the driver could not deliver on time (its
// process was paused, its loop blocked): the leader lease is measured on
// this clock, so a driver that offers lease reads must call it, with a
// monotonic clock, before every batch of ReadIndex calls and before it
// steps other input. It never moves the clock back and runs no timers
// (elections and heartbeats still follow Tick).
func (n *Core) SyncClock(now int64) { n.c.syncClock(now) }

// HasReady reports whether Ready would return work.
func (n *Core) HasReady() bool { return n.c.hasReady() }

// Ready returns the next batch of work. The Core must not be used again
// (other than HasReady) until Advance is called with it.
func (n *Core) Ready() Ready { return n.c.ready() }

// Advance records that rd was carried out.
func (n *Core) Advance(rd Ready) { n.c.advance(rd, false) }

// ReportUnreachable tells the Core that messages to id are being lost.
func (n *Core) ReportUnreachable(id NodeID) { n.c.reportUnreachable(id) }

// ReportSnapshot tells the leader's Core whether streaming a snapshot to id
// succeeded.
func (n *Core) ReportSnapshot(id NodeID, ok bool) { n.c.snapshotDone(id, 0, ok) }

// ReportSnapshotCreated tells the Core that the snapshot store holds a new
// snapshot ending at (index, term). The driver may then compact the log up
// to index; followers whose next entry is compacted are sent this snapshot.
func (n *Core) ReportSnapshotCreated(index, term uint64) { n.c.snapshotCreated(index, term) }

// Term returns the term of the log entry at index, or an error matching
// ErrCompacted or ErrUnavailable.
func (n *Core) Term(index uint64) (uint64, error) { return n.c.log.term(index) }

// Err returns the fatal condition that stopped the Core from making
// progress (a storage read error, a corrupt configuration entry, an attempt
// to overwrite a committed entry), or nil.
func (n *Core) Err() error { return n.c.err() }

// ProposeMembership appends a configuration change on the leader: servers
// is the complete new membership (voters and learners). If the voter set
// changes, the entry is the joint configuration C(old,new) and the leader
// appends C(new) by itself once the joint one commits. New voters must
// already be members whose match index is within maxLag of the leader's
// last index. It returns the entry's index, or an error: not the leader
// (ErrNotLeader), a transfer in progress (ErrTransferInProgress), another
// change not yet committed (ErrConfigChangePending), no voters left
// (ErrInvalidConfig) or a new voter behind (ErrNotCaughtUp).
func (n *Core) ProposeMembership(servers []Server, maxLag uint64) (uint64, error) {
	return n.c.proposeConfChange(servers, maxLag)
}

// TransferLeadership starts handing leadership to to (empty: the most
// up-to-date voter) and returns the chosen target; the leader accepts no
// proposals until the target takes over or an election timeout passes.
// Errors: not the leader (ErrNotLeader) or a target that cannot lead
// (ErrInvalidConfig).
func (n *Core) TransferLeadership(to NodeID) (NodeID, error) {
	return n.c.transferLeadership(to)
}

// Basic returns the Core's role, term, leader, commit index, applied index
// and last log index.
func (n *Core) Basic() (state State, term uint64, leader NodeID, commit, applied, last uint64) {
	c := n.c
	return c.state, c.term, c.lead, c.log.committed, c.log.applied, c.log.lastIndex()
}

// Configuration returns the configuration in force and the index of the
// entry that created it.
func (n *Core) Configuration() (Configuration, uint64) {
	return n.c.conf.cfg.Clone(), n.c.conf.index
}

func (c *core) err() error {
	switch {
	case c.fatal != nil:
		return c.fatal
	case c.log.err != nil:
		return c.log.err
	case c.conf.err != nil:
		return c.conf.err
	}
	return nil
}
