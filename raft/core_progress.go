package raft

import "fmt"

// progressState is how the leader is replicating to one follower.
type progressState uint8

const (
	// progressProbe: the leader does not know where the follower's log
	// matches; it sends one append at a time and waits for the answer.
	progressProbe progressState = iota
	// progressReplicate: the follower matches; appends are pipelined,
	// several in flight, bounded by the inflight window.
	progressReplicate
	// progressSnapshot: the follower needs a snapshot, which is in transfer.
	progressSnapshot
)

// String returns the state's name.
func (s progressState) String() string {
	switch s {
	case progressProbe:
		return "probe"
	case progressReplicate:
		return "replicate"
	case progressSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("progressState(%d)", uint8(s))
}

// progress is the leader's record of one peer (Figure 2's nextIndex and
// matchIndex, plus flow control).
type progress struct {
	match, next uint64
	state       progressState
	// probeSent: in probe state, an append is outstanding; no more until it
	// is answered or a heartbeat interval passes.
	probeSent bool
	// inflight holds the last index of each append in flight (replicate
	// state), oldest first; its length is bounded by maxInflight.
	inflight []uint64
	// inflightBytes is the payload size of the appends in flight.
	inflightBytes []uint64
	// pendingSnapshot is the index of the snapshot being sent.
	pendingSnapshot uint64
	// snapSeq numbers the snapshot sends to this follower, so that the
	// outcome of an earlier send is not taken for the current one's.
	snapSeq uint64
	// snapBackoff is how many leader ticks to wait after a failed snapshot
	// send before starting another.
	snapBackoff int
	// recentActive: heard from since the last check-quorum round.
	recentActive bool
	learner      bool
	// stalled counts leader ticks with appends outstanding and no
	// acknowledgement (a lost message leaves a pipelined follower waiting).
	stalled int
	// removed: no longer a member; replicated to until it holds the
	// configuration that removed it and reports a commit index covering
	// it (departed), so that it learns it was removed.
	removed bool
	// sentCommit is the commit index last sent in an append; ackedCommit
	// the highest commit index the peer reported in an answer.
	sentCommit  uint64
	ackedCommit uint64
	// ackSeq is the number of the latest heartbeat broadcast of this term
	// the peer acknowledged, and ackAt the tick at which it was sent
	// (core_read.go).
	ackSeq uint64
	ackAt  int64
	// lastContact is the tick (core.now) of the peer's last answer.
	lastContact int64
}

// departed reports whether a removed peer holds the configuration that
// removed it (created at confIndex) and has said it knows it is committed,
// so the leader may stop replicating to it. Having sent the commit index is
// not enough: if that message is lost, the peer would never learn it was
// removed (no one else replicates to it).
func (p *progress) departed(confIndex uint64) bool {
	return p.match >= confIndex && p.ackedCommit >= confIndex
}

func (p *progress) becomeProbe() {
	if p.state == progressSnapshot {
		p.next = max(p.match+1, p.pendingSnapshot+1)
	} else {
		p.next = p.match + 1
	}
	p.state = progressProbe
	p.probeSent = false
	p.stalled = 0
	p.pendingSnapshot = 0
	p.inflight = p.inflight[:0]
	p.inflightBytes = p.inflightBytes[:0]
}

func (p *progress) becomeReplicate() {
	p.state = progressReplicate
	p.next = p.match + 1
	p.probeSent = false
	p.inflight = p.inflight[:0]
	p.inflightBytes = p.inflightBytes[:0]
}

func (p *progress) becomeSnapshot(index uint64) {
	p.state = progressSnapshot
	p.pendingSnapshot = index
	p.snapSeq++
	p.probeSent = false
	p.inflight = p.inflight[:0]
	p.inflightBytes = p.inflightBytes[:0]
}

// maybeUpdate records that the follower matches up to n; it reports whether
// anything changed.
func (p *progress) maybeUpdate(n uint64) bool {
	updated := false
	if n > p.match {
		p.match = n
		updated = true
		p.probeSent = false
		p.stalled = 0
	}
	if p.next < n+1 {
		p.next = n + 1
	}
	// Free the inflight slots acknowledged by n.
	k := 0
	for k < len(p.inflight) && p.inflight[k] <= n {
		k++
	}
	if k > 0 {
		p.inflight = append(p.inflight[:0], p.inflight[k:]...)
		p.inflightBytes = append(p.inflightBytes[:0], p.inflightBytes[k:]...)
	}
	return updated
}

// isPaused reports whether the leader must not send another append now.
func (p *progress) isPaused(maxInflight int, maxInflightBytes uint64) bool {
	switch p.state {
	case progressProbe:
		return p.probeSent
	case progressReplicate:
		if len(p.inflight) >= maxInflight {
			return true
		}
		if maxInflightBytes > 0 {
			var b uint64
			for _, x := range p.inflightBytes {
				b += x
			}
			return b >= maxInflightBytes
		}
		return false
	default:
		return true
	}
}

// sentEntries records an append carrying entries up to last.
func (p *progress) sentEntries(last, bytes uint64) {
	switch p.state {
	case progressReplicate:
		if last >= p.next {
			p.next = last + 1
			p.inflight = append(p.inflight, last)
			p.inflightBytes = append(p.inflightBytes, bytes)
		}
	case progressProbe:
		p.probeSent = true
	}
}

// maybeDecrTo handles a rejection of an append whose prev index was
// rejected, moving next back to probe at hint+1. It reports whether the
// rejection was relevant (not stale).
func (p *progress) maybeDecrTo(rejected, hint uint64) bool {
	if p.state == progressReplicate {
		// A rejection at or below match is stale; the follower already
		// matched further.
		if rejected <= p.match {
			return false
		}
		p.next = max(p.match+1, min(rejected, hint+1))
		return true
	}
	// In probe state only the answer to the outstanding probe matters.
	if p.next-1 != rejected {
		return false
	}
	p.next = max(min(rejected, hint+1), p.match+1, 1)
	p.probeSent = false
	return true
}
