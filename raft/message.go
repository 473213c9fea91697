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
	// (fast backtracking).
	MsgAppResp
	// MsgHeartbeat asserts leadership and carries Commit, bounded by what the
	// follower is known to match.
	MsgHeartbeat
	// MsgHeartbeatResp answers MsgHeartbeat.
	MsgHeartbeatResp
	// MsgSnap announces a snapshot (InstallSnapshot, §7). Its data travels
	// through Transport.SendSnapshot; Snapshot describes it.
	MsgSnap
	// MsgTimeoutNow tells a caught-up follower to campaign at once
	// (leadership transfer, thesis §3.10).
	MsgTimeoutNow
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
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Valid reports whether t is a known message type.
func (t MessageType) Valid() bool { return t >= MsgVote && t <= MsgTimeoutNow }

// IsResponse reports whether t answers another message.
func (t MessageType) IsResponse() bool {
	switch t {
	case MsgVoteResp, MsgPreVoteResp, MsgAppResp, MsgHeartbeatResp:
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
	Type    MessageType `msgpack:"y"`
	From    NodeID      `msgpack:"f"`
	To      NodeID      `msgpack:"o"`
	Term    uint64      `msgpack:"t"`
	LogTerm uint64      `msgpack:"lt"`
	Index   uint64      `msgpack:"i"`
	Commit  uint64      `msgpack:"c"`
	Entries []Entry     `msgpack:"e"`
	Reject  bool        `msgpack:"r"`
	// Hint is, on a rejected MsgAppResp, the index the leader should probe
	// next from the follower's point of view; HintTerm is the follower's term
	// at Hint (0 if none).
	Hint     uint64 `msgpack:"h"`
	HintTerm uint64 `msgpack:"ht"`
	// Snapshot describes the snapshot of a MsgSnap.
	Snapshot *SnapshotMeta `msgpack:"s"`
	// Transfer marks a MsgVote sent because of leadership transfer: voters
	// grant it even while they hear from a current leader.
	Transfer bool `msgpack:"x"`
}

// String renders m for logs.
func (m Message) String() string {
	return fmt.Sprintf("%s %s->%s t%d i%d lt%d c%d n%d rej=%v",
		m.Type, m.From, m.To, m.Term, m.Index, m.LogTerm, m.Commit, len(m.Entries), m.Reject)
}
