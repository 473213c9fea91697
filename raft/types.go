package raft

import (
	"fmt"
	"strings"
)

// NodeID names one member of a cluster. It is chosen by the operator, must be
// unique within the cluster, must not be empty, and never changes for the life
// of a node's storage. With transport/tcp and TLS it is also the identity the
// node's certificate must carry.
type NodeID string

// EntryType says what a log Entry carries.
type EntryType uint8

const (
	// EntryCommand carries an application command encoded by the Codec.
	EntryCommand EntryType = iota
	// EntryNoop is the empty entry a new leader appends in its own term (§5.4.2).
	EntryNoop
	// EntryConfig carries an encoded Configuration (§6).
	EntryConfig
	// EntrySession carries a client session's bookkeeping: opening or
	// closing a session, or a command tagged with its session and sequence
	// number (see Session). The framework decodes it; the state machine
	// sees only the command inside.
	EntrySession
)

// String returns the entry type's name.
func (t EntryType) String() string {
	switch t {
	case EntryCommand:
		return "command"
	case EntryNoop:
		return "noop"
	case EntryConfig:
		return "config"
	case EntrySession:
		return "session"
	}
	return fmt.Sprintf("EntryType(%d)", uint8(t))
}

// Valid reports whether t is a known entry type. Transports and stores
// refuse entries of other types as malformed.
func (t EntryType) Valid() bool { return t <= EntrySession }

// Entry is one record of the replicated log. Entries are immutable once
// created: whoever receives one (storage, transport, state machine) must not
// modify its Data, and may keep a reference to it.
type Entry struct {
	Index uint64
	Term  uint64
	Type  EntryType
	Data  []byte
}

// Size returns an estimate of the entry's encoded size in bytes, used for
// byte limits on reads and appends.
func (e *Entry) Size() uint64 { return uint64(len(e.Data)) + 24 }

// HardState is the state a node must persist before it answers any message
// (Figure 2): its current term, the candidate it voted for in that term, and a
// commit index that is a lower bound of the cluster's commit index (it lets a
// restarted node apply committed entries before it hears from a leader).
type HardState struct {
	Term   uint64
	Vote   NodeID
	Commit uint64
}

// IsZero reports whether hs is the zero HardState of a fresh node.
func (hs HardState) IsZero() bool { return hs == HardState{} }

// Suffrage says whether a Server votes.
type Suffrage uint8

const (
	// Voter servers vote in elections and count toward commit quorums.
	Voter Suffrage = iota
	// Learner servers receive the log but neither vote nor count (non-voters).
	Learner
)

// String returns the suffrage's name.
func (s Suffrage) String() string {
	switch s {
	case Voter:
		return "voter"
	case Learner:
		return "learner"
	}
	return fmt.Sprintf("Suffrage(%d)", uint8(s))
}

// Server is one member of a Configuration.
type Server struct {
	ID       NodeID   `msgpack:"i"`
	Addr     string   `msgpack:"a"`
	Suffrage Suffrage `msgpack:"s"`
}

// Configuration is a cluster membership (§6). Servers is the current (or, in
// joint consensus, the incoming) configuration C(new). Old is non-empty only
// during joint consensus and holds C(old)'s voters; while it is, every
// decision needs a majority of the voters of both.
type Configuration struct {
	Servers []Server `msgpack:"s"`
	Old     []Server `msgpack:"o,omitempty"`
}

// Joint reports whether c is a joint configuration C(old,new).
func (c Configuration) Joint() bool { return len(c.Old) > 0 }

// Clone returns a deep copy of c.
func (c Configuration) Clone() Configuration {
	out := Configuration{Servers: append([]Server(nil), c.Servers...)}
	if len(c.Old) > 0 {
		out.Old = append([]Server(nil), c.Old...)
	}
	return out
}

// Voters returns the IDs of C(new)'s voters.
func (c Configuration) Voters() []NodeID { return voterIDs(c.Servers) }

// OldVoters returns the IDs of C(old)'s voters; empty unless joint.
func (c Configuration) OldVoters() []NodeID { return voterIDs(c.Old) }

// Server returns the member with the given ID from C(new), or from C(old) if
// it is only there.
func (c Configuration) Server(id NodeID) (Server, bool) {
	for _, s := range c.Servers {
		if s.ID == id {
			return s, true
		}
	}
	for _, s := range c.Old {
		if s.ID == id {
			return s, true
		}
	}
	return Server{}, false
}

// String renders c for logs, e.g. "{n1 n2 n3 learners=[n4]}".
func (c Configuration) String() string {
	var b strings.Builder
	b.WriteString("{")
	var learners []string
	first := true
	for _, s := range c.Servers {
		if s.Suffrage == Learner {
			learners = append(learners, string(s.ID))
			continue
		}
		if !first {
			b.WriteString(" ")
		}
		first = false
		b.WriteString(string(s.ID))
	}
	if len(learners) > 0 {
		fmt.Fprintf(&b, " learners=%v", learners)
	}
	if c.Joint() {
		fmt.Fprintf(&b, " old=%v", c.OldVoters())
	}
	b.WriteString("}")
	return b.String()
}

func voterIDs(servers []Server) []NodeID {
	var ids []NodeID
	for _, s := range servers {
		if s.Suffrage == Voter {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// SnapshotMeta describes a snapshot: the last log entry it covers and the
// configuration in force at that entry.
type SnapshotMeta struct {
	Index         uint64        `msgpack:"i"`
	Term          uint64        `msgpack:"t"`
	Configuration Configuration `msgpack:"c"`
	// ConfigIndex is the log index of the entry that created Configuration.
	ConfigIndex uint64 `msgpack:"ci"`
	// Size is the snapshot's length in bytes, when known (0 otherwise).
	Size int64 `msgpack:"z"`
}

// IsZero reports whether m describes no snapshot.
func (m SnapshotMeta) IsZero() bool { return m.Index == 0 }
