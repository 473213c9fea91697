package raft

import (
	"errors"
	"fmt"

	"github.com/typedraft/typedraft/raft/internal/bugs"
	"github.com/typedraft/typedraft/raft/internal/quorum"
)

// Linearizable reads without the log (thesis §6.4). A read asks the leader
// for a read index: the leader's commit index once it has committed an
// entry of its own term, recorded when the read arrives and released only
// after a quorum has confirmed the leader's leadership in a heartbeat round
// sent after the read arrived. The caller serves the read once its state
// machine has applied the read index.
//
// Rounds are batched and pipelined: the reads that arrive between two
// Readies share one round, and up to maxReadRounds rounds are in flight at
// once (reads arriving while they all are share the next one). Every heartbeat broadcast is numbered (its
// Context), followers echo the number, and an acknowledgement of a later
// broadcast confirms earlier rounds too, so a lost round is confirmed by the
// next periodic heartbeat.
//
// Lease reads (§6.4.1) skip the round: with check-quorum on, voters refuse
// to vote for anyone else for an election timeout after they last heard
// from the leader, so while a quorum acknowledged a heartbeat sent less than
// leaseTicks ago, no other leader can exist. leaseTicks is shorter than the
// election timeout by the clock drift bound (see leaseTicks). A leader that
// has sent TimeoutNow in its term (a transfer makes voters ignore that rule)
// never uses its lease again.
//
// Followers and learners forward reads to the leader (MsgReadIndex, one
// per batch: every read that arrived between two Readies shares it) and
// serve them locally once they have applied the index it answers
// (MsgReadIndexResp). A forwarded read is dropped if the node's term or
// leader changes, or no answer comes within an election timeout.

// ReadState is the outcome of one read request (Core.ReadIndex). If Err is
// nil, the read may be served once the state machine has applied Index;
// otherwise the read was not confirmed and Err says why: it matches
// ErrNotLeader when no leader is known, and ErrNotConfirmed when leadership
// was lost, the leader changed or did not answer in time.
type ReadState struct {
	// ID is the caller's request ID, as given to Core.ReadIndex.
	ID    uint64
	Index uint64
	Err   error
}

// ErrNotConfirmed: a read (or a Validate rejection, which is a read) could
// not be confirmed by a quorum: the leader stepped down, the leader changed,
// or it did not answer within an election timeout. Nothing was changed; the
// caller may retry.
var ErrNotConfirmed = errors.New("raft: read not confirmed by a quorum")

// errNoLeaderRead is the ReadState error when no leader is known.
var errNoLeaderRead = fmt.Errorf("%w: no leader known to confirm the read", ErrNotLeader)

// readRequest is one read waiting on the leader.
type readRequest struct {
	id uint64
	// from is the node that asked (this node for a local read).
	from  NodeID
	lease bool
	// index is the commit index when the read arrived (after an entry of
	// the leader's term committed).
	index uint64
}

// forwardedRead is a read this node asked its leader for, in the batch
// numbered batch (the Context of the MsgReadIndex; 0 until it is sent).
type forwardedRead struct {
	id       uint64
	lead     NodeID
	deadline int64
	lease    bool
	batch    uint64
}

// readRound is a heartbeat round in flight and the reads it confirms.
type readRound struct {
	seq   uint64
	reads []readRequest
}

// maxReadRounds bounds the read rounds in flight.
const maxReadRounds = 4

// sentRound records when a numbered heartbeat broadcast left.
type sentRound struct {
	seq uint64
	at  int64
}

// sentRing bounds the broadcasts whose send tick the leader remembers for
// its lease (older acknowledgements are simply not used for the lease).
const sentRing = 64

// readOnly is the core's read bookkeeping.
type readOnly struct {
	// Leader side, reset with the term.
	seq     uint64 // number of the last heartbeat broadcast of this term
	sent    [sentRing]sentRound
	blocked []readRequest // waiting for an entry of this term to commit
	next    []readRequest // waiting for the next round
	rounds  []readRound   // in flight, oldest first
	// ownTerm is the term in which the leader saw an entry of its own
	// term committed (a cache of ownTermCommitted).
	ownTerm uint64
	// leaseRevoked: this leader sent TimeoutNow in its term.
	leaseRevoked bool
	// Follower side: reads forwarded (or to forward at the next Ready),
	// and the number of the last batch sent.
	forwarded []forwardedRead
	fwdSeq    uint64
	// states are the outcomes for the next Ready.
	states []ReadState
}

// leaseTicks is how many ticks after sending a heartbeat the leader may
// rely on a quorum's acknowledgement of it. A voter that heard from the
// leader refuses votes until electionTicks of its own ticks pass, which is
// at least electionTicks-1 tick intervals after it received the heartbeat
// (it may arrive just before a tick); the leader, counting in its own
// ticks from the tick count at which it sent the heartbeat, has seen less
// than (elapsed+1) intervals. With clocks whose rates differ by at most a
// factor of 1+drift, the lease is safe while
// (elapsed+1)*(1+drift) <= electionTicks-1, i.e. elapsed < leaseTicks.
func (c *core) leaseTicks() int64 {
	return int64(float64(c.cfg.ElectionTicks-1) / (1 + c.cfg.MaxClockDrift))
}

// readIndex starts a read with the caller's id; its outcome arrives in a
// later Ready's ReadStates. With lease, the leader answers from its lease
// when it holds one, and otherwise with a quorum round.
func (c *core) readIndex(id uint64, lease bool) {
	if c.state == Leader {
		c.leaderRead(readRequest{id: id, from: c.id, lease: lease})
		return
	}
	if c.lead == "" || c.lead == c.id {
		c.ro.states = append(c.ro.states, ReadState{ID: id, Err: errNoLeaderRead})
		return
	}
	// Sent at the next Ready, with every read that arrives before it.
	c.ro.forwarded = append(c.ro.forwarded, forwardedRead{id: id, lead: c.lead, deadline: c.now + int64(c.cfg.ElectionTicks), lease: lease})
}

// forwardDue reports whether forwarded reads wait to be sent.
func (c *core) forwardDue() bool {
	n := len(c.ro.forwarded)
	return n > 0 && c.ro.forwarded[n-1].batch == 0
}

// forwardReads sends the reads not yet forwarded: one MsgReadIndex for
// those that accept a lease answer and one for those that do not.
func (c *core) forwardReads() {
	for _, lease := range []bool{false, true} {
		var batch uint64
		for i := range c.ro.forwarded {
			f := &c.ro.forwarded[i]
			if f.batch != 0 || f.lease != lease {
				continue
			}
			if batch == 0 {
				c.ro.fwdSeq++
				batch = c.ro.fwdSeq
				c.send(Message{To: f.lead, Type: MsgReadIndex, Context: batch, Lease: lease}, false)
			}
			f.batch = batch
		}
	}
}

// syncClock raises the lease clock to now ticks since the core started:
// the driver's measure of real time, which counts ticks it could not
// deliver (a paused process). The clock never moves back.
func (c *core) syncClock(now int64) {
	if now > c.now {
		c.now = now
	}
}

// ownTermCommitted reports whether the leader has committed an entry of its
// own term: only then is its commit index the cluster's (§5.4.2, §6.4).
func (c *core) ownTermCommitted() bool {
	if c.ro.ownTerm == c.term {
		return true
	}
	if c.log.matchTerm(c.log.committed, c.term) {
		c.ro.ownTerm = c.term
		return true
	}
	return false
}

// leaderRead queues or answers a read on the leader.
func (c *core) leaderRead(r readRequest) {
	if !c.ownTermCommitted() {
		c.ro.blocked = append(c.ro.blocked, r)
		return
	}
	r.index = c.log.committed
	if c.selfQuorum() || (bugs.Enabled && c.cfg.bugs.ReadWithoutQuorum) || (r.lease && c.leaseValid()) {
		c.answerRead(r)
		return
	}
	// The round starts when the driver takes the next Ready, so every read
	// that arrives before then shares it.
	c.ro.next = append(c.ro.next, r)
}

// roundDue reports whether reads wait for a round and one may start.
func (c *core) roundDue() bool { return len(c.ro.next) > 0 && len(c.ro.rounds) < maxReadRounds }

// selfQuorum reports whether this leader alone is a quorum of its
// configuration (a single-voter cluster).
func (c *core) selfQuorum() bool {
	in, out := c.quorumSets()
	return quorumActive(in, out, func(id NodeID) bool { return id == c.id })
}

// startReadRound moves the reads waiting for a round into one and
// broadcasts the heartbeat that confirms it.
func (c *core) startReadRound() {
	reads := c.ro.next
	c.ro.next = nil
	c.bcastHeartbeat()
	c.ro.rounds = append(c.ro.rounds, readRound{seq: c.ro.seq, reads: reads})
}

// answerRead releases a confirmed read to whoever asked.
func (c *core) answerRead(r readRequest) {
	if r.from == c.id {
		c.ro.states = append(c.ro.states, ReadState{ID: r.id, Index: r.index})
		return
	}
	c.send(Message{To: r.from, Type: MsgReadIndexResp, Context: r.id, Index: r.index}, false)
}

// rejectRead fails a read with err (sent back if it was forwarded).
func (c *core) rejectRead(r readRequest, err error) {
	if r.from == c.id {
		c.ro.states = append(c.ro.states, ReadState{ID: r.id, Err: err})
		return
	}
	c.send(Message{To: r.from, Type: MsgReadIndexResp, Context: r.id, Reject: true}, false)
}

// noteBroadcast numbers a heartbeat broadcast and remembers when it left.
func (c *core) noteBroadcast() uint64 {
	c.ro.seq++
	c.ro.sent[c.ro.seq%sentRing] = sentRound{seq: c.ro.seq, at: c.now}
	if pr := c.prs[c.id]; pr != nil {
		pr.ackSeq, pr.ackAt = c.ro.seq, c.now
	}
	return c.ro.seq
}

// heartbeatAcked records that a follower acknowledged broadcast seq, and
// confirms the read round if a quorum now has.
func (c *core) heartbeatAcked(pr *progress, seq uint64) {
	if seq == 0 || seq > c.ro.seq || seq <= pr.ackSeq {
		return
	}
	pr.ackSeq = seq
	if s := c.ro.sent[seq%sentRing]; s.seq == seq {
		pr.ackAt = max(pr.ackAt, s.at)
	}
	c.maybeConfirmRound()
}

// maybeConfirmRound answers the reads of every round in flight that a
// quorum acknowledged (a broadcast sent at or after it).
func (c *core) maybeConfirmRound() {
	if len(c.ro.rounds) == 0 {
		return
	}
	in, out := c.quorumSets()
	acked := quorum.JointCommitted(in, out, func(id NodeID) uint64 {
		if pr := c.prs[id]; pr != nil {
			return pr.ackSeq
		}
		return 0
	})
	k := 0
	for k < len(c.ro.rounds) && c.ro.rounds[k].seq <= acked {
		for _, r := range c.ro.rounds[k].reads {
			c.answerRead(r)
		}
		k++
	}
	if k > 0 {
		c.ro.rounds = append(c.ro.rounds[:0], c.ro.rounds[k:]...)
	}
}

// leaseValid reports whether a quorum acknowledged a heartbeat sent less
// than leaseTicks ago, and this leader may rely on it (check-quorum on, no
// TimeoutNow sent in its term).
func (c *core) leaseValid() bool {
	if c.cfg.DisableCheckQuorum || c.ro.leaseRevoked {
		return false
	}
	in, out := c.quorumSets()
	lease := c.leaseTicks()
	return quorumActive(in, out, func(id NodeID) bool {
		pr := c.prs[id]
		return pr != nil && pr.ackSeq > 0 && c.now-pr.ackAt < lease
	})
}

// ownTermCommittedNow releases the reads that waited for the leader's first
// commit in its term.
func (c *core) releaseBlockedReads() {
	if len(c.ro.blocked) == 0 || !c.ownTermCommitted() {
		return
	}
	blocked := c.ro.blocked
	c.ro.blocked = nil
	for _, r := range blocked {
		c.leaderRead(r)
	}
}

// handleReadIndex is the leader receiving a follower's read request.
func (c *core) handleReadIndex(m Message) {
	c.leaderRead(readRequest{id: m.Context, from: m.From, lease: m.Lease})
}

// handleReadIndexResp is a follower receiving its leader's answer.
func (c *core) handleReadIndexResp(m Message) {
	keep := c.ro.forwarded[:0]
	for _, f := range c.ro.forwarded {
		switch {
		case f.batch != m.Context || m.Context == 0 || f.lead != m.From:
			keep = append(keep, f)
		case m.Reject:
			c.ro.states = append(c.ro.states, ReadState{ID: f.id, Err: fmt.Errorf("%w: %s is no longer leader", ErrNotConfirmed, f.lead)})
		default:
			c.ro.states = append(c.ro.states, ReadState{ID: f.id, Index: m.Index})
		}
	}
	c.ro.forwarded = keep
}

// refuseReadIndex answers a read request that reached a node that does not
// lead, so the asker fails fast instead of timing out.
func (c *core) refuseReadIndex(m Message) {
	c.send(Message{To: m.From, Type: MsgReadIndexResp, Context: m.Context, Reject: true}, false)
}

// expireForwardedReads fails forwarded reads whose leader did not answer
// within an election timeout.
func (c *core) expireForwardedReads() {
	if len(c.ro.forwarded) == 0 {
		return
	}
	keep := c.ro.forwarded[:0]
	for _, f := range c.ro.forwarded {
		if c.now >= f.deadline {
			c.ro.states = append(c.ro.states, ReadState{ID: f.id, Err: fmt.Errorf("%w: %s did not answer within an election timeout", ErrNotConfirmed, f.lead)})
			continue
		}
		keep = append(keep, f)
	}
	c.ro.forwarded = keep
}

// dropReads fails every read in progress: the node's term or role changed.
func (c *core) dropReads() {
	if c.state == Leader {
		err := fmt.Errorf("%w: %s stepped down in term %d", ErrNotConfirmed, c.id, c.term)
		for _, q := range [][]readRequest{c.ro.blocked, c.ro.next} {
			for _, r := range q {
				c.rejectRead(r, err)
			}
		}
		for _, rd := range c.ro.rounds {
			for _, r := range rd.reads {
				c.rejectRead(r, err)
			}
		}
	}
	for _, f := range c.ro.forwarded {
		c.ro.states = append(c.ro.states, ReadState{ID: f.id, Err: fmt.Errorf("%w: the leader changed from %s in term %d", ErrNotConfirmed, f.lead, c.term)})
	}
	// Numbers never repeat for the life of the core: a late or duplicated
	// answer to an earlier batch or broadcast must not match a new one
	// (the node may return to follower within one term).
	c.ro = readOnly{states: c.ro.states, seq: c.ro.seq, sent: c.ro.sent, fwdSeq: c.ro.fwdSeq}
}

// sendTimeoutNow tells to to campaign at once. Voters grant a transfer's
// vote even while they hear from this leader, so its lease is void for the
// rest of the term.
func (c *core) sendTimeoutNow(to NodeID) {
	c.ro.leaseRevoked = true
	c.send(Message{To: to, Type: MsgTimeoutNow}, false)
}
