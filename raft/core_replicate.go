package raft

import (
	"github.com/typedraft/typedraft/raft/internal/bugs"
	"github.com/typedraft/typedraft/raft/internal/quorum"
)

// propose appends entries (whose Index and Term it assigns) to the leader's
// log and starts replicating them. It returns the index of the first entry
// and the term.
func (c *core) propose(ents []Entry) (first, term uint64, err error) {
	if c.state != Leader {
		return 0, 0, ErrNotLeader
	}
	if c.leadTransferee != "" {
		return 0, 0, ErrTransferInProgress
	}
	first = c.log.lastIndex() + 1
	c.appendEntries(ents)
	c.bcastAppend()
	return first, c.term, nil
}

// appendEntries assigns indexes and the current term to ents and appends
// them to the leader's own log. The leader counts itself toward a quorum
// only once they are durable (advance).
func (c *core) appendEntries(ents []Entry) {
	last := c.log.lastIndex()
	for i := range ents {
		ents[i].Index = last + 1 + uint64(i)
		ents[i].Term = c.term
	}
	c.log.append(ents)
	for i := range ents {
		if ents[i].Type == EntryConfig {
			c.conf.appended(ents[i:])
			c.syncProgress()
			break
		}
	}
}

// bcastAppend sends pending entries (or the new commit index) to every peer.
func (c *core) bcastAppend() {
	for _, id := range c.peers {
		c.sendAppend(id, false)
	}
}

func (c *core) bcastHeartbeat() {
	seq := c.noteBroadcast()
	for _, id := range c.peers {
		pr := c.prs[id]
		c.send(Message{To: id, Type: MsgHeartbeat, Commit: min(pr.match, c.log.committed), Context: seq}, false)
		if pr.state == progressProbe {
			// Let the next heartbeat response retry a lost probe.
			pr.probeSent = false
		}
	}
}

// sendAppend sends the next batch of entries to id if flow control allows;
// with force it sends even an empty append (to carry the commit index or
// probe). It sends repeatedly while entries remain and the window is open.
func (c *core) sendAppend(id NodeID, force bool) {
	pr := c.prs[id]
	if pr == nil {
		return
	}
	for {
		if pr.isPaused(c.cfg.MaxInflight, c.cfg.MaxInflightBytes) {
			return
		}
		last := c.log.lastIndex()
		if pr.next > last && !force && pr.sentCommit >= c.log.committed {
			return
		}
		prev := pr.next - 1
		prevTerm, errT := c.log.term(prev)
		var ents []Entry
		var errE error
		if errT == nil && pr.next <= last {
			hi := min(last+1, pr.next+uint64(c.cfg.MaxMsgEntries))
			ents, errE = c.log.slice(pr.next, hi, c.cfg.MaxMsgBytes)
		}
		if errT != nil || errE != nil {
			// The entries are compacted: the follower needs a snapshot.
			c.sendSnapshot(id, pr)
			return
		}
		var bytes uint64
		for i := range ents {
			bytes += ents[i].Size()
		}
		c.send(Message{To: id, Type: MsgApp, Index: prev, LogTerm: prevTerm, Entries: ents, Commit: c.log.committed}, false)
		pr.sentCommit = c.log.committed
		if n := len(ents); n > 0 {
			pr.sentEntries(ents[n-1].Index, bytes)
		} else {
			pr.sentEntries(prev, 0)
		}
		if len(ents) == 0 || pr.state != progressReplicate {
			return
		}
		force = false
	}
}

// sendSnapshot marks id as needing the newest snapshot; the driver streams
// it and reports back through snapshotDone.
func (c *core) sendSnapshot(id NodeID, pr *progress) {
	if c.snapIndex == 0 || pr.state == progressSnapshot || pr.snapBackoff > 0 {
		return
	}
	pr.becomeSnapshot(c.snapIndex)
	c.snapshotsToSend = append(c.snapshotsToSend, id)
}

// snapshotCreated records that the snapshot store now holds a snapshot up
// to (index, term), the one to send to followers behind compaction.
func (c *core) snapshotCreated(index, term uint64) {
	if index > c.snapIndex {
		c.snapIndex, c.snapTerm = index, term
	}
}

// snapshotDone reports the outcome of streaming a snapshot to id.
//
// seq is the send's number (progress.snapSeq when it started); the outcome
// of an earlier send is ignored, or a follower that already moved on to a
// newer snapshot would be probed again and sent a third one while the
// second is still streaming. seq 0 skips the check.
func (c *core) snapshotDone(id NodeID, seq uint64, ok bool) {
	pr := c.prs[id]
	if c.state != Leader || pr == nil || pr.state != progressSnapshot || (seq != 0 && seq != pr.snapSeq) {
		return
	}
	if !ok {
		pr.pendingSnapshot = 0
		// Do not restart a multi-megabyte stream on every append to a peer
		// that cannot take it; retry after half an election timeout.
		pr.snapBackoff = max(c.cfg.ElectionTicks/2, 1)
	}
	// Probe from just after the snapshot; the follower's response to the
	// MsgSnap (or the next probe) moves it on.
	pr.becomeProbe()
	pr.probeSent = ok
}

func (c *core) stepLeader(m Message) {
	pr := c.prs[m.From]
	if pr == nil {
		return
	}
	pr.lastContact = c.now
	if (m.Type == MsgAppResp && !m.Reject) || m.Type == MsgHeartbeatResp {
		pr.ackedCommit = max(pr.ackedCommit, m.Commit)
	}
	switch m.Type {
	case MsgReadIndex:
		c.handleReadIndex(m)
	case MsgAppResp:
		pr.recentActive = true
		if m.Reject {
			next := c.rejectHint(m)
			if pr.maybeDecrTo(m.Index, next) {
				if pr.state == progressReplicate {
					pr.becomeProbe()
					pr.next = max(pr.match+1, min(m.Index, next+1))
				}
				c.sendAppend(m.From, true)
			}
			return
		}
		old := pr.match
		if pr.maybeUpdate(m.Index) || (pr.state == progressSnapshot && m.Index >= pr.pendingSnapshot) {
			switch {
			case pr.state == progressProbe:
				pr.becomeReplicate()
			case pr.state == progressSnapshot && pr.match >= pr.pendingSnapshot:
				pr.becomeProbe()
				pr.becomeReplicate()
			}
			if pr.match > old && c.maybeCommit() {
				c.bcastAppend()
			} else {
				c.sendAppend(m.From, false)
			}
			if m.From == c.leadTransferee && pr.match == c.log.lastIndex() {
				c.sendTimeoutNow(m.From)
			}
		}
	case MsgHeartbeatResp:
		pr.recentActive = true
		pr.probeSent = false
		c.heartbeatAcked(pr, m.Context)
		if pr.match < c.log.lastIndex() || pr.match < c.log.committed {
			// A probe is re-sent even if nothing new was appended: the last
			// one may have been lost (a new learner's first probe, at
			// next = last+1, would otherwise wait for the next proposal).
			c.sendAppend(m.From, pr.state == progressProbe)
		}
		if m.From == c.leadTransferee && pr.match == c.log.lastIndex() {
			// The TimeoutNow may have been lost, or dropped by a target
			// that had not yet heard from this leader in its term (just
			// restarted): one answering a heartbeat knows its leader, so
			// it is told again.
			c.sendTimeoutNow(m.From)
		}
	}
	// A departing peer is let go once it holds the configuration that
	// removed it and knows it is committed, whichever answer shows that
	// (not only one that raises its match index).
	if pr.removed && pr.departed(c.conf.index) && c.prs[m.From] == pr {
		delete(c.prs, m.From)
		c.refreshPeers()
	}
}

// rejectHint turns a follower's (Hint, HintTerm) into the highest index at
// which the leader's log might match it: the last leader entry at or before
// Hint whose term is at most HintTerm.
func (c *core) rejectHint(m Message) uint64 {
	idx := m.Hint
	if m.HintTerm == 0 {
		return idx
	}
	for idx > 0 {
		t, err := c.log.term(idx)
		if err != nil || t <= m.HintTerm {
			break
		}
		idx--
	}
	return idx
}

// maybeCommit advances the commit index to the highest index stored by a
// quorum, but only if that entry is of the current term (§5.4.2).
func (c *core) maybeCommit() bool {
	in, out := c.quorumSets()
	mci := quorum.JointCommitted(in, out, func(id NodeID) uint64 {
		if pr := c.prs[id]; pr != nil {
			return pr.match
		}
		return 0
	})
	if mci <= c.log.committed {
		return false
	}
	if !(bugs.Enabled && c.cfg.bugs.CommitOldTermByCount) && !c.log.matchTerm(mci, c.term) {
		return false
	}
	c.log.commitTo(mci)
	c.conf.committed(c.log.committed)
	c.releaseBlockedReads()
	c.afterCommitLeader()
	return true
}

// checkStalled falls back to probing a pipelined follower that has
// acknowledged nothing for half an election timeout while appends are
// outstanding: one of them was lost (a transport may drop messages without
// reporting it), and the optimistic next index skipped past it.
func (c *core) checkStalled() {
	limit := max(c.cfg.ElectionTicks/2, 2)
	for _, id := range c.peers {
		pr := c.prs[id]
		if pr.state != progressReplicate || pr.next <= pr.match+1 {
			continue
		}
		pr.stalled++
		if pr.stalled >= limit {
			pr.becomeProbe()
			c.sendAppend(id, true)
		}
	}
}

// reportUnreachable is the driver telling the core that messages to id are
// being lost: stop pipelining and probe.
func (c *core) reportUnreachable(id NodeID) {
	if c.state != Leader {
		return
	}
	if pr := c.prs[id]; pr != nil && pr.state == progressReplicate {
		pr.becomeProbe()
	}
}

func quorumActive(in, out []NodeID, active func(NodeID) bool) bool {
	return quorum.Active(in, out, active)
}
