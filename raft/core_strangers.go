package raft

import "github.com/typedraft/typedraft/raft/internal/bugs"

// Membership-checked messages. A node with a configuration acts only on
// messages from members of it (C(new) or C(old), voters and learners), from
// the leader it follows, and, on a leader, from the peers it still
// replicates to (a departing node until it holds the configuration that
// removed it). Everything else comes from a stranger: a node never added,
// one removed, or a forger. A stranger can never raise this node's term,
// make it campaign, vote, append, install a snapshot or answer a read:
//
//   - a stranger's message is dropped, except an AppendEntries or heartbeat
//     of a lower term, which is answered with this node's term (that only
//     tells a stale leader to step down, and changes nothing here);
//   - a node with no configuration yet (a new node waiting to be added)
//     accepts appends, heartbeats and snapshots from anyone, since it cannot
//     tell its future leader from a stranger; it has nothing to protect;
//   - only voters' vote requests count; TimeoutNow counts only from the
//     leader this node follows;
//   - a stranger's pre-vote is answered with a rejection naming this
//     node's leader, and changes nothing here.
//
// A follower whose configuration misses the current leader (it was cut off
// while the leader was added) does not accept that leader's messages until
// it learns of it from a member: every rejection of a vote or pre-vote
// names the responder's leader (Message.Leader), and a node that does not
// know its leader takes that name. Voters learn it from their own
// (pre-)elections; learners and removed nodes (a removed node may have been
// added back), which never campaign, send a pre-vote probe to the voters of
// their configuration once they have heard from no leader for two election
// timeouts. Members are trusted to say who leads, as they are trusted in
// everything else. A node whose configuration names none of the current
// voters cannot learn this way; it must be wiped and added again.

// strangerStats counts dropped messages from strangers, for the driver's
// rate-limited warning.
type strangerStats struct {
	dropped uint64
	last    Message
}

// known reports whether this node acts on messages from id.
func (c *core) known(id NodeID) bool {
	if id == c.lead || c.conf.isMember(id) {
		return true
	}
	return c.state == Leader && c.prs[id] != nil
}

// configured reports whether the node has a configuration.
func (c *core) configured() bool { return len(c.conf.cfg.Servers) > 0 }

// admit reports whether m may be stepped; it counts the drops.
func (c *core) admit(m Message) bool {
	if bugs.Enabled && c.cfg.bugs.AcceptStrangers {
		return true
	}
	switch {
	case c.known(m.From):
		switch m.Type {
		case MsgVote:
			// Only voters campaign (a learner's or departing node's vote
			// request would raise the term for nothing).
			if c.conf.isVoter(m.From) {
				return true
			}
		case MsgTimeoutNow:
			if m.From == c.lead && m.Term == c.term {
				return true
			}
		default:
			return true
		}
	case !c.configured():
		switch m.Type {
		case MsgApp, MsgHeartbeat, MsgSnap:
			return true
		}
	case m.Term < c.term && (m.Type == MsgApp || m.Type == MsgHeartbeat):
		return true
	case m.Type == MsgPreVote:
		// Answered with a rejection naming the leader, and nothing else:
		// how a node that was removed and added back, or missed the
		// change that added its leader, finds whom to follow.
		return true
	}
	c.strangers.dropped++
	c.strangers.last = m
	return false
}

// hintLeader is the leader a vote rejection names: the one this node
// follows, only while it hears from it (a name from hearsay, or from a
// leader silent for an election timeout, is not passed on).
func (c *core) hintLeader() NodeID {
	if c.state == Leader {
		return c.id
	}
	if c.leadHinted || c.electionElapsed >= c.cfg.ElectionTicks {
		return ""
	}
	return c.lead
}

// learnLeader takes the leader named by a member's vote rejection, if this
// node knows of none in that term.
func (c *core) learnLeader(m Message) {
	if !m.Reject || m.Leader == "" || m.Leader == c.id || m.Term != c.term || c.lead != "" {
		return
	}
	if c.state == Leader {
		return
	}
	elapsed, timeout := c.electionElapsed, c.randomizedElectionTimeout
	c.becomeFollower(c.term, m.Leader)
	// Hearing of a leader is not hearing from it: the election timer runs
	// on, so a wrong name costs at most one election timeout, and the name
	// gives no lease (the node still answers other candidates).
	c.electionElapsed, c.randomizedElectionTimeout = elapsed, timeout
	c.leadHinted = true
}

// probeForLeader is a learner (or removed node) that has heard from no
// leader for two election timeouts asking the voters who leads: a pre-vote that no one
// grants (it is not a voter) and every voter answers with its leader.
func (c *core) probeForLeader() {
	c.electionElapsed = 0
	last, lt := c.log.lastIndex(), c.log.lastTerm()
	for _, id := range c.conf.voters() {
		if id != c.id {
			c.send(Message{To: id, Type: MsgPreVote, Term: c.term + 1, Index: last, LogTerm: lt}, false)
		}
	}
}
