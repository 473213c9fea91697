package raft

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/typedraft/typedraft/raft/internal/bugs"
)

// CoreConfig configures a Core. Times are in ticks; zero fields take the
// defaults noted.
type CoreConfig struct {
	// ID is this node's ID (required).
	ID NodeID
	// ElectionTicks is the minimum election timeout; each follower waits a
	// random timeout in [ElectionTicks, 2*ElectionTicks) (default 10).
	ElectionTicks int
	// HeartbeatTicks is the leader's heartbeat interval (default 1).
	HeartbeatTicks int
	// DisablePreVote turns pre-vote (thesis §9.6) off; it is on by default.
	DisablePreVote bool
	// DisableCheckQuorum turns check-quorum and the election lease (thesis
	// §6.2, §4.2.3) off; they are on by default.
	DisableCheckQuorum bool
	// MaxInflight bounds the appends in flight to one follower (default 256).
	MaxInflight int
	// MaxInflightBytes bounds their payload (default 64 MiB).
	MaxInflightBytes uint64
	// MaxMsgEntries and MaxMsgBytes bound one append (defaults 4096, 1 MiB).
	MaxMsgEntries int
	MaxMsgBytes   uint64
	// MaxApplyBytes bounds the committed entries of one Ready (default 64 MiB).
	MaxApplyBytes uint64

	// bugs injects known Raft bugs (tests of the simulation harness only).
	bugs bugs.Set
}

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
	c, err := newCore(coreConfig{
		id:                 cfg.ID,
		electionTicks:      cfg.ElectionTicks,
		heartbeatTicks:     cfg.HeartbeatTicks,
		disablePreVote:     cfg.DisablePreVote,
		disableCheckQuorum: cfg.DisableCheckQuorum,
		maxInflight:        cfg.MaxInflight,
		maxInflightBytes:   cfg.MaxInflightBytes,
		maxMsgEntries:      cfg.MaxMsgEntries,
		maxMsgBytes:        cfg.MaxMsgBytes,
		maxApplyBytes:      cfg.MaxApplyBytes,
		bugs:               cfg.bugs,
	}, log, hs, snap, rng)
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
// Term, and returns the index of the first one and the term. It returns an
// error if this node is not the leader or is transferring leadership.
// Ownership of ents passes to the Core.
func (n *Core) Propose(ents []Entry) (first, term uint64, err error) {
	return n.c.propose(ents)
}

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
	idx, err := n.c.proposeConfChange(servers, maxLag)
	return idx, exportCoreErr(err)
}

// TransferLeadership starts handing leadership to to (empty: the most
// up-to-date voter) and returns the chosen target; the leader accepts no
// proposals until the target takes over or an election timeout passes.
// Errors: not the leader (ErrNotLeader) or a target that cannot lead
// (ErrInvalidConfig).
func (n *Core) TransferLeadership(to NodeID) (NodeID, error) {
	id, err := n.c.transferLeadership(to)
	return id, exportCoreErr(err)
}

// exportCoreErr maps the core's internal sentinels to the exported errors
// (the driver uses it too, after turning not-leader into a NotLeaderError
// with the leader's address).
func exportCoreErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errNotLeaderCore):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	case errors.Is(err, errTransferring):
		return ErrTransferInProgress
	case errors.Is(err, errConfChangePending):
		return ErrConfigChangePending
	case errors.Is(err, errNotCaughtUp):
		return fmt.Errorf("%w: %w", ErrNotCaughtUp, err)
	case errors.Is(err, errTransferTarget):
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return err
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
