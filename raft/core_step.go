package raft

import (
	"fmt"

	"github.com/typedraft/typedraft/raft/internal/bugs"
	"github.com/typedraft/typedraft/raft/internal/quorum"
)

// step processes one inbound message (§5.1: any message with a higher term
// makes the receiver adopt it; a lower term is stale).
func (c *core) step(m Message) {
	if !m.Type.forCore() || m.From == "" || m.From == c.id {
		return
	}
	if !c.admit(m) {
		return
	}
	switch {
	case m.Term > c.term:
		if m.Type == MsgVote || m.Type == MsgPreVote {
			// A voter that hears from a current leader ignores vote requests
			// (thesis §4.2.3) unless the leader itself asked for the election
			// (leadership transfer). This keeps removed or partitioned nodes
			// from disrupting the cluster.
			if c.inLease() && !m.Transfer && c.conf.isVoter(m.From) {
				return
			}
		}
		switch {
		case m.Type == MsgPreVote:
			// Pre-vote never changes the receiver's term.
		case m.Type == MsgPreVoteResp && !m.Reject:
			// A granted pre-vote is answered at the future term.
		case m.Type == MsgApp || m.Type == MsgHeartbeat || m.Type == MsgSnap:
			c.becomeFollower(m.Term, m.From)
		case m.Type == MsgVote && c.state != Leader:
			// Figure 2: the election timer restarts when the node hears from
			// a current leader or grants a vote, not when a vote request
			// merely carries a higher term. Restarting it here would let
			// candidates that cannot win (their logs are behind) keep the
			// nodes that can win from ever timing out, each request pushing
			// the others' timeouts back: a livelock without pre-vote.
			elapsed, timeout := c.electionElapsed, c.randomizedElectionTimeout
			c.becomeFollower(m.Term, "")
			c.electionElapsed, c.randomizedElectionTimeout = elapsed, timeout
		default:
			c.becomeFollower(m.Term, "")
		}
	case m.Term < c.term:
		switch m.Type {
		case MsgApp, MsgHeartbeat:
			// A stale leader: tell it our term so that it steps down. With
			// pre-vote and check-quorum a node whose term ran ahead would
			// otherwise never rejoin.
			c.send(Message{To: m.From, Type: MsgAppResp}, false)
		case MsgPreVote:
			c.send(Message{To: m.From, Type: MsgPreVoteResp, Reject: true, Leader: c.hintLeader()}, false)
		case MsgReadIndex:
			c.refuseReadIndex(m)
		}
		return
	}

	switch m.Type {
	case MsgVote, MsgPreVote:
		c.handleVoteRequest(m)
		return
	case MsgVoteResp, MsgPreVoteResp:
		c.learnLeader(m)
	}
	switch c.state {
	case Leader:
		c.stepLeader(m)
	case Candidate, PreCandidate:
		c.stepCandidate(m)
	default:
		c.stepFollower(m)
	}
}

// inLease reports whether this node heard from a leader within the minimum
// election timeout (or is the leader), with check-quorum on.
func (c *core) inLease() bool {
	return !c.cfg.DisableCheckQuorum && ((c.lead != "" && !c.leadHinted) || c.startLease) && c.electionElapsed < c.cfg.ElectionTicks
}

func (c *core) handleVoteRequest(m Message) {
	respType := MsgVoteResp
	if m.Type == MsgPreVote {
		respType = MsgPreVoteResp
	}
	// §5.2: one vote per term, first come first served; a pre-vote is
	// granted for a future term if we would vote then.
	canVote := c.vote == m.From ||
		(c.vote == "" && c.lead == "") ||
		(m.Type == MsgPreVote && m.Term > c.term)
	// §5.4.1: only for a candidate whose log is at least as up to date;
	// and only voters campaign (a learner's pre-vote asks who leads).
	if canVote && c.log.isUpToDate(m.Index, m.LogTerm) && c.conf.isVoter(m.From) {
		if m.Type == MsgVote {
			c.electionElapsed = 0
			c.vote = m.From
		}
		// The grant leaves only after the vote is durable.
		c.send(Message{To: m.From, Type: respType, Term: m.Term}, !(bugs.Enabled && c.cfg.bugs.VoteNotPersisted))
		return
	}
	// A rejection names this node's leader, so that a node that missed
	// the configuration adding it learns whom to follow.
	c.send(Message{To: m.From, Type: respType, Reject: true, Leader: c.hintLeader()}, true)
}

func (c *core) stepFollower(m Message) {
	switch m.Type {
	case MsgApp:
		c.electionElapsed = 0
		c.lead, c.leadHinted = m.From, false
		c.handleAppend(m)
	case MsgHeartbeat:
		c.electionElapsed = 0
		c.lead, c.leadHinted = m.From, false
		c.log.commitTo(min(m.Commit, c.log.lastIndex()))
		// Context numbers the leader's broadcast; echoing it confirms the
		// leader's reads and lease (core_read.go).
		c.send(Message{To: m.From, Type: MsgHeartbeatResp, Context: m.Context, Commit: c.log.committed}, false)
	case MsgSnap:
		c.electionElapsed = 0
		c.lead, c.leadHinted = m.From, false
		c.handleSnapshot(m)
	case MsgTimeoutNow:
		if c.promotable() {
			// Leadership transfer: campaign at once, skipping pre-vote.
			c.campaignNow(true)
		}
	case MsgReadIndex:
		c.refuseReadIndex(m)
	case MsgReadIndexResp:
		c.handleReadIndexResp(m)
	}
}

func (c *core) stepCandidate(m Message) {
	switch m.Type {
	case MsgApp, MsgHeartbeat, MsgSnap:
		// A leader of our term exists (§5.2): return to follower.
		c.becomeFollower(m.Term, m.From)
		c.stepFollower(m)
	case MsgReadIndex:
		c.refuseReadIndex(m)
	case MsgVoteResp, MsgPreVoteResp:
		if (m.Type == MsgVoteResp) != (c.state == Candidate) {
			return
		}
		if c.state == PreCandidate && m.Term != c.term+1 {
			return
		}
		c.votes[m.From] = !m.Reject
		in, out := c.quorumSets()
		switch quorum.JointVote(in, out, c.votes) {
		case quorum.Won:
			if c.state == PreCandidate {
				c.campaignNow(false)
			} else {
				c.becomeLeader()
			}
		case quorum.Lost:
			c.becomeFollower(c.term, "")
		}
	}
}

// campaign starts an election, with a pre-vote round first unless disabled.
func (c *core) campaign(transfer bool) {
	c.campaigns++
	if !c.cfg.DisablePreVote && !transfer {
		c.becomePreCandidate()
		c.requestVotes(MsgPreVote, c.term+1, false)
		return
	}
	c.campaignNow(transfer)
}

// campaignNow becomes a candidate in a new term and asks for votes.
func (c *core) campaignNow(transfer bool) {
	c.becomeCandidate()
	c.requestVotes(MsgVote, c.term, transfer)
}

func (c *core) requestVotes(t MessageType, term uint64, transfer bool) {
	if c.conf.isVoter(c.id) {
		c.votes[c.id] = true
	}
	in, out := c.quorumSets()
	if quorum.JointVote(in, out, c.votes) == quorum.Won {
		// A single-voter cluster wins at once.
		if t == MsgPreVote {
			c.campaignNow(transfer)
		} else {
			c.becomeLeader()
		}
		return
	}
	last := c.log.lastIndex()
	lt := c.log.lastTerm()
	for _, id := range c.conf.voters() {
		if id == c.id {
			continue
		}
		// Requests leave after our new term and self-vote are durable.
		c.send(Message{To: id, Type: t, Term: term, Index: last, LogTerm: lt, Transfer: transfer}, true)
	}
}

// handleAppend is a follower receiving AppendEntries (§5.3).
func (c *core) handleAppend(m Message) {
	ackAfterPersist := !(bugs.Enabled && c.cfg.bugs.AckBeforeDurable)
	if m.Index < c.log.committed {
		c.send(Message{To: m.From, Type: MsgAppResp, Index: c.log.committed, Commit: c.log.committed}, ackAfterPersist)
		return
	}
	if !c.log.matchTerm(m.Index, m.LogTerm) {
		hint := min(m.Index, c.log.lastIndex())
		// Skip back over every entry whose term is greater than the
		// leader's term at the probed index: none of them can match.
		for hint > c.log.committed {
			t, err := c.log.term(hint)
			if err != nil || t <= m.LogTerm {
				break
			}
			hint--
		}
		ht, _ := c.log.term(hint)
		c.send(Message{To: m.From, Type: MsgAppResp, Index: m.Index, Reject: true, Hint: hint, HintTerm: ht}, true)
		return
	}
	lastNew := m.Index + uint64(len(m.Entries))
	if ci := c.log.findConflict(m.Entries); ci != 0 {
		if ci <= c.log.committed {
			c.fatal = fmt.Errorf("raft: entry %d conflicts with committed entry (commit %d)", ci, c.log.committed)
			return
		}
		if bugs.Enabled && c.cfg.bugs.NoTruncate && ci <= c.log.lastIndex() {
			// Injected bug: keep the conflicting suffix, only add new entries.
			ci = c.log.lastIndex() + 1
		}
		if ci <= lastNew {
			ents := m.Entries[ci-m.Index-1:]
			if ci <= c.log.lastIndex() {
				c.conf.truncate(ci)
			}
			c.log.append(ents)
			c.conf.appended(ents)
		}
	}
	c.log.commitTo(min(m.Commit, lastNew))
	c.conf.committed(c.log.committed)
	c.send(Message{To: m.From, Type: MsgAppResp, Index: lastNew, Commit: c.log.committed}, ackAfterPersist)
}

// handleSnapshot is a follower receiving InstallSnapshot (§7). The data is
// already in the snapshot store (Handler.HandleSnapshot put it there).
func (c *core) handleSnapshot(m Message) {
	if m.Snapshot == nil {
		return
	}
	s := *m.Snapshot
	if s.Index <= c.log.committed {
		// Older than what we have committed: ignore, report our commit.
		c.send(Message{To: m.From, Type: MsgAppResp, Index: c.log.committed, Commit: c.log.committed}, true)
		return
	}
	if c.log.matchTerm(s.Index, s.Term) {
		// We already hold the entry the snapshot ends at: keep the log after
		// it and fast-forward commit.
		c.log.commitTo(s.Index)
		c.conf.committed(c.log.committed)
		c.send(Message{To: m.From, Type: MsgAppResp, Index: c.log.lastIndex(), Commit: c.log.committed}, true)
		return
	}
	c.log.restore(s)
	c.conf.reset(s.Configuration, s.ConfigIndex)
	c.snapIndex, c.snapTerm = s.Index, s.Term
	c.send(Message{To: m.From, Type: MsgAppResp, Index: s.Index, Commit: c.log.committed}, true)
}
