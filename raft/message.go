package raft

import "fmt"

// MessageType says what a Message is. Responses are messages of their own
// type travelling the other way.
type MessageType uint8

const (
	// MsgVote asks for a vote (RequestVote, §5.2). Index/LogTerm describe the
	// candidate's last entry (§5.4.1).
	MsgVote MessageType = iota + 1
	// MsgVoteResp answers MsgVote; Reject is set when the vote is refused.
	MsgVoteResp
	// MsgPreVote asks whether a vote would be granted at Term without anyone
	// changing term (thesis §9.6). Term is the term the sender would campaign in.
	MsgPreVote
	// MsgPreVoteResp answers MsgPreVote.
	MsgPreVoteResp
	// MsgApp carries entries after (Index, LogTerm) and the leader's Commit
	// (AppendEntries, §5.3). It may carry no entries.
	MsgApp
	// MsgAppResp answers MsgApp. On success Index is the last index the
	// follower has durably stored that matches the leader. On Reject, Index is
	// the rejected prev index and Hint/HintTerm let the leader skip back
	// (fast backtracking). Commit is the follower's commit index (a leader
	// lets a removed follower go only once it reports the removal
	// committed).
	MsgAppResp
	// MsgHeartbeat asserts leadership and carries Commit, bounded by what the
	// follower is known to match.
	MsgHeartbeat
	// MsgHeartbeatResp answers MsgHeartbeat; Commit is the follower's
	// commit index, as on MsgAppResp.
	MsgHeartbeatResp
	// MsgSnap announces a snapshot (InstallSnapshot, §7). Its data travels
	// through Transport.SendSnapshot; Snapshot describes it.
	MsgSnap
	// MsgTimeoutNow tells a caught-up follower to campaign at once
	// (leadership transfer, thesis §3.10).
	MsgTimeoutNow
	// MsgReadIndex asks the leader for a read index (thesis §6.4) on behalf
	// of a follower or learner. Context is the asker's request ID; Lease
	// lets the leader answer from its lease.
	MsgReadIndex
	// MsgReadIndexResp answers MsgReadIndex: Index is the read index for
	// request Context, or Reject is set if the read was not confirmed.
	MsgReadIndexResp
	// MsgPropose forwards a proposal from a follower or learner to the
	// leader (not seen by the core): Context identifies it, Entries[0].Data
	// is the encoded command, Hint the response mode (0 Applied, 1
	// Committed). With Context 0 it carries a batch of proposals in one
	// mode, each entry's Index its ID.
	MsgPropose
	// MsgProposeResp answers MsgPropose: on success Index and LogTerm are
	// the entry's index and term and Entries hold the encoded response and,
	// if the application rejected the command, its encoded error; with
	// Reject, Hint is an error code and Entries[0].Data the error's text,
	// and Leader names the leader the responder knows. With Context 0 it
	// carries a batch of answers, one per entry (forward_batch.go).
	MsgProposeResp
)

// String returns the message type's name.
func (t MessageType) String() string {
	switch t {
	case MsgVote:
		return "Vote"
	case MsgVoteResp:
		return "VoteResp"
	case MsgPreVote:
		return "PreVote"
	case MsgPreVoteResp:
		return "PreVoteResp"
	case MsgApp:
		return "App"
	case MsgAppResp:
		return "AppResp"
	case MsgHeartbeat:
		return "Heartbeat"
	case MsgHeartbeatResp:
		return "HeartbeatResp"
	case MsgSnap:
		return "Snap"
	case MsgTimeoutNow:
		return "TimeoutNow"
	case MsgReadIndex:
		return "ReadIndex"
	case MsgReadIndexResp:
		return "ReadIndexResp"
	case MsgPropose:
		return "Propose"
	case MsgProposeResp:
		return "ProposeResp"
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Valid reports whether t is a known message type.
func (t MessageType) Valid() bool { return t >= MsgVote && t <= MsgProposeResp }

// forCore reports whether the core handles t: the proposal forwarding
// messages are the driver's.
func (t MessageType) forCore() bool {
	return t.Valid() && t != MsgPropose && t != MsgProposeResp
}

// IsResponse reports whether t answers another message.
func (t MessageType) IsResponse() bool {
	switch t {
	case MsgVoteResp, MsgPreVoteResp, MsgAppResp, MsgHeartbeatResp, MsgReadIndexResp, MsgProposeResp:
		return true
	}
	return false
}

// Message is the one message type raft nodes exchange. It is flat so that the
// core's output maps directly onto the wire; which fields matter depends on
// Type (see the MessageType constants).
//
// Ownership: once a Message is handed to a Transport, neither side modifies
// it; Entries' Data may be shared read-only.
type Message struct {
	Type    MessageType
	From    NodeID
	To      NodeID
	Term    uint64
	LogTerm uint64
	Index   uint64
	Commit  uint64
	Entries []Entry
	Reject  bool
	// Hint is, on a rejected MsgAppResp, the index the leader should probe
	// next from the follower's point of view; HintTerm is the follower's term
	// at Hint (0 if none).
	Hint     uint64
	HintTerm uint64
	// Snapshot describes the snapshot of a MsgSnap.
	Snapshot *SnapshotMeta
	// Transfer marks a MsgVote sent because of leadership transfer: voters
	// grant it even while they hear from a current leader.
	Transfer bool
	// Context numbers a MsgHeartbeat broadcast (echoed by MsgHeartbeatResp)
	// or identifies a read request (MsgReadIndex, MsgReadIndexResp).
	Context uint64
	// Lease lets the leader answer a MsgReadIndex from its lease.
	Lease bool
	// Leader is, on a rejected MsgVoteResp or MsgPreVoteResp, the leader
	// the responder follows (empty if none): a node whose configuration
	// misses its leader learns it this way.
	Leader NodeID
}

// String renders m for logs.
func (m Message) String() string {
	return fmt.Sprintf("%s %s->%s t%d i%d lt%d c%d n%d rej=%v",
		m.Type, m.From, m.To, m.Term, m.Index, m.LogTerm, m.Commit, len(m.Entries), m.Reject)
}
