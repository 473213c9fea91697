package raft

import "github.com/typedraft/typedraft/raft/internal/bugs"

// Ready is one batch of work the core asks its driver to carry out, in this
// order:
//
//  1. send Messages (they do not depend on this batch being durable: a
//     leader's appends go out while it writes its own log, thesis §10.2.1);
//  2. if Snapshot is set, install it: compact the log store to it and restore
//     the state machine from the snapshot store;
//  3. if MustSave, persist HardState and Entries with one LogStore.Save;
//  4. send MessagesAfter (votes and acknowledgements: only once durable);
//  5. apply Committed, in order;
//  6. stream the newest snapshot to each of SnapshotsToSend;
//  7. call Advance with this Ready.
//
// A Ready's slices belong to the driver until Advance; the entries' Data are
// shared and immutable.
type Ready struct {
	HardState HardState
	// MustSave: Entries, or a new term or vote, must be persisted.
	MustSave bool
	// Entries to append to the log store, truncating any conflicting suffix.
	Entries []Entry
	// Snapshot received from the leader and not yet installed.
	Snapshot *SnapshotMeta
	// Messages to send at once.
	Messages []Message
	// MessagesAfter to send only after this Ready is durable.
	MessagesAfter []Message
	// Committed entries to apply, in order, from the durable log.
	Committed []Entry
	// SnapshotsToSend lists followers that need the newest snapshot.
	SnapshotsToSend []NodeID
	// ReadStates are the outcomes of read requests (Core.ReadIndex): each
	// confirmed read may be served once the state machine has applied its
	// Index. They do not depend on this batch being durable.
	ReadStates []ReadState
	// State, Term and Leader are the node's role after this batch.
	State  State
	Term   uint64
	Leader NodeID
}

// holdAfter reports whether messages that wait for durability are held:
// while a write is in flight they may acknowledge entries it holds (or
// entries appended since, not yet handed out), which are not durable yet;
// they leave with the next Ready that is saved after it.
func (c *core) holdAfter() bool {
	return c.log.writing() && !(bugs.Enabled && c.cfg.bugs.AckDuringWrite)
}

// afterMessages hands out the messages that wait for durability, unless
// they are held.
func (c *core) afterMessages() []Message {
	if c.holdAfter() {
		return nil
	}
	m := c.msgsAfter
	c.msgsAfter = nil
	return m
}

// hasReady reports whether the core has work for its driver.
func (c *core) hasReady() bool {
	hs := c.hardState()
	return len(c.msgs) > 0 || (len(c.msgsAfter) > 0 && !c.holdAfter()) || len(c.log.toPersist()) > 0 ||
		c.log.snap != nil || len(c.snapshotsToSend) > 0 || len(c.ro.states) > 0 || c.roundDue() || c.forwardDue() ||
		hs != c.persisted || c.hasCommittedToApply()
}

func (c *core) hasCommittedToApply() bool {
	return !c.applyHeld() && c.log.snap == nil && c.log.applied < min(c.log.committed, c.log.offset-1)
}

// ready collects the next batch. The core must not be stepped again until
// advance is called with it.
func (c *core) ready() Ready {
	if c.roundDue() {
		c.startReadRound()
	}
	if c.forwardDue() {
		c.forwardReads()
	}
	hs := c.hardState()
	rd := Ready{
		HardState:       hs,
		Entries:         c.log.toPersist(),
		Snapshot:        c.log.snap,
		Messages:        c.msgs,
		MessagesAfter:   c.afterMessages(),
		Committed:       c.committedToApply(),
		SnapshotsToSend: c.snapshotsToSend,
		ReadStates:      c.ro.states,
		State:           c.state,
		Term:            c.term,
		Leader:          c.lead,
	}
	rd.MustSave = len(rd.Entries) > 0 || hs.Term != c.persisted.Term || hs.Vote != c.persisted.Vote
	c.msgs, c.snapshotsToSend, c.ro.states = nil, nil, nil
	return rd
}

// advance tells the core that rd has been carried out. With async, rd's
// entries were handed to a write that is still in flight: they become
// durable only at writeDone, and until then no further entries are handed
// out (the next batch accumulates and goes in one write).
func (c *core) advance(rd Ready, async bool) {
	if rd.Snapshot != nil {
		c.log.snapshotInstalled(rd.Snapshot.Index)
	}
	if n := len(rd.Entries); n > 0 {
		last := rd.Entries[n-1]
		if async {
			c.log.submitted = last.Index
			if bugs.Enabled && c.cfg.bugs.SelfAckBeforeDurable && c.state == Leader {
				if pr := c.prs[c.id]; pr != nil && pr.maybeUpdate(last.Index) && c.maybeCommit() {
					c.bcastAppend()
				}
			}
		} else {
			c.log.stableTo(last.Index, last.Term)
		}
	}
	if n := len(rd.Committed); n > 0 {
		c.log.appliedTo(rd.Committed[n-1].Index)
	}
	if rd.MustSave || rd.Snapshot != nil {
		c.persisted = rd.HardState
	} else {
		// Only the commit index changed; it need not be persisted eagerly.
		c.persisted.Commit = rd.HardState.Commit
	}
	if c.state == Leader {
		if pr := c.prs[c.id]; pr != nil {
			// The leader's own log now counts toward the quorum.
			if pr.maybeUpdate(c.durableLastIndex()) && c.maybeCommit() {
				c.bcastAppend()
			}
		}
	}
}

// writeDone records that the asynchronous write of entries up to index
// completed: the leader now counts its own log toward the quorum.
func (c *core) writeDone(index uint64) {
	c.log.writeDone(index)
	if c.state == Leader {
		if pr := c.prs[c.id]; pr != nil && pr.maybeUpdate(c.durableLastIndex()) && c.maybeCommit() {
			c.bcastAppend()
		}
	}
}

// applyHeld reports whether the apply backlog is full.
func (c *core) applyHeld() bool {
	b := c.cfg.MaxApplyBacklog
	return b > 0 && c.log.applied >= c.appliedReported+b
}

func (c *core) committedToApply() []Entry {
	if c.applyHeld() {
		return nil
	}
	return c.log.toApply(c.cfg.MaxApplyBytes)
}
