package raft

import (
	"context"
	"errors"
	"io"
)

// Transport errors.
var (
	// ErrTransportClosed: the transport was used after Close.
	ErrTransportClosed = errors.New("raft: transport closed")
	// ErrPeerUnreachable: the peer could not be reached.
	ErrPeerUnreachable = errors.New("raft: peer unreachable")
)

// Peer names a destination: its ID and the address the transport dials.
// Addr is empty when the node does not know it: a learner that has not yet
// received the configuration answering its leader, for instance. A
// transport should then use an address it learned for ID (transport/tcp
// learns each dialer's advertised address from its handshake) and report
// the peer unreachable if it has none.
type Peer struct {
	ID   NodeID
	Addr string
}

// Transport carries messages between nodes. Messages are one-way; responses
// are messages going the other way. A node uses one Transport; raft.New does
// not close it. The package
// [github.com/typedraft/typedraft/transport/transporttest] walks through
// writing one and checks an implementation against everything below.
//
// Concurrency: every method may be called from any goroutine, concurrently.
//
// # Connections
//
// A connection is the span over which a transport keeps the messages from
// one sender to one receiver in order. Over streams it is one stream
// (transport/tcp: one TCP connection, replaced by a new one when it
// breaks). For a transport without connections, such as one making RPC
// calls (MIT 6.5840's labrpc, say), it is one incarnation of the sending
// transport: everything it sends from its creation to its Close (between
// two Register/Close lifetimes of the sending node). In both cases a loss
// the transport reports (below) may end the connection and start a new
// one.
//
// # Delivery
//
// For messages passed to Send by one sender for one receiver:
//   - Order: within a connection, messages reach the receiver's
//     HandleMessage in the order they were sent: in slice order within one
//     Send, and in call order across Sends from one goroutine (Sends from
//     different goroutines at once have no order between them to keep).
//     Message types share one order: no lane for votes or heartbeats may
//     overtake entries. Messages of a later connection may overtake ones
//     still in flight on an earlier one. A transport over RPC keeps the
//     order by making one call at a time per peer, or by numbering
//     messages so the receiver discards late ones.
//   - No duplicates: within one incarnation of the sending transport each
//     message is delivered at most once, even across reconnects: a
//     transport never resends a message it may have delivered (raft
//     retransmits what matters itself).
//   - Loss only when reported: a message may be lost only when the peer is
//     unreachable (a dial or call fails, a connection breaks, the peer is
//     closed or has no known address), when a queue is full, or when the
//     transport at either end is closing; and the sending transport then
//     calls its Handler.ReportUnreachable for the peer (not needed while it
//     is itself closing). On a healthy link whose queue has room, every
//     message arrives. (A receiver with no handler registered drops what
//     arrives: see Register. A message the transport cannot carry at all,
//     such as one larger than its frame limit, is dropped and logged.)
//
// Raft's safety does not depend on these rules (its simulation drops,
// duplicates and reorders messages, and transport/inmem's fault injection
// breaks them on purpose); its speed does: the leader pipelines entries to
// a follower on the assumption that they arrive in order and that a loss is
// reported.
//
// # Reporting loss
//
// Handler.ReportUnreachable(id) tells the node that messages to id are
// being lost: a leader then stops pipelining to id and probes it with one
// message at a time until it answers. Call it when messages to a peer are
// being lost: a dial or call failed, a connection broke, a queue
// overflowed, a peer has no known address. Call it once per such event (a
// failed dial, a broken connection, a Send call whose messages did not fit
// the queue), not once per lost message, and never on a healthy link:
// every report sends a replicating follower back to probing, so reporting
// each loss on a lossy link throttles replication to about one message per
// heartbeat.
//
// # Memory and identity
//
// Implementations must:
//   - never block Send on the network: queue per peer, drop when a queue is
//     full (raft retransmits) and report the peer unreachable;
//   - never let two nodes share memory through a message: encode, or copy
//     deeply (Entries, their Data, Snapshot and its Configuration), since
//     the receiver owns and may modify what it is given while the sender's
//     log still holds the original;
//   - deliver a message only to the handler registered for its To node, and
//     only if its From is the peer that sent it (authenticated where the
//     transport authenticates);
//   - stream snapshots without holding them whole in memory.
type Transport interface {
	// Register installs h as the receiver of inbound traffic and of
	// unreachable reports, replacing any earlier handler; Register(nil)
	// stops delivery. Messages arriving with no handler are dropped. Calls
	// to the old handler already in progress may finish after Register
	// returns; no new call goes to it.
	Register(h Handler)

	// Send queues msgs for delivery to peer to and returns without waiting
	// for the network. Ownership of the slice and its messages passes to
	// the transport; the Entries' Data and the Snapshot may be shared with
	// the sender's log, so the transport neither modifies them nor hands
	// them to the receiver (it encodes or copies them). Messages that
	// cannot be queued are dropped and reported as described on Transport;
	// after Close, Send drops everything silently.
	Send(to Peer, msgs []Message)

	// SendSnapshot streams the snapshot announced by m (m.Type == MsgSnap)
	// with its data from r to the receiver's Handler.HandleSnapshot, and
	// returns its verdict once it has returned: nil if it returned nil, an
	// error (carrying the handler's error text where the transport can) if
	// it returned one. When the handler returns before reading all of r,
	// SendSnapshot stops reading r and returns the verdict promptly, without
	// sending the rest. It never reads r after returning and does not close
	// it.
	//
	// It blocks for the length of the transfer and must not delay Send to
	// this or other peers, nor other SendSnapshot calls. Cancelling ctx
	// ends it promptly with an error, even when the receiver is stuck. An
	// unreachable peer gives an error wrapping ErrPeerUnreachable; a closed
	// transport one wrapping ErrTransportClosed; a stream that fails midway
	// some other error.
	//
	// The leader treats any error as a failed send: it probes the follower
	// and tries again after half an election timeout. nil means the
	// follower holds this snapshot or newer state, and replication resumes
	// after it.
	SendSnapshot(ctx context.Context, to Peer, m Message, r io.Reader) error
}

// Handler receives a node's inbound traffic from a Transport. The node
// registers its own; transporttest registers recorders.
//
// Concurrency: a transport may call the methods from any goroutine and
// several at once: HandleMessage for different connections concurrently,
// HandleSnapshot concurrently with HandleMessage and with other
// HandleSnapshot calls, ReportUnreachable at any time. Messages of one
// connection reach HandleMessage one at a time, in order.
type Handler interface {
	// HandleMessage delivers one message; the handler takes ownership of m.
	// It does not block for long (the node queues m and returns, dropping
	// it when its queue is full), so a transport may call it from the
	// goroutine that reads the connection. A transport must still cope with
	// a handler that blocks: Send keeps returning at once, and the queue
	// to this node fills and drops (and is reported) like any other.
	HandleMessage(m Message)

	// HandleSnapshot receives the snapshot announced by m, whose data is
	// read from r, and returns the verdict the transport reports to the
	// sender: nil when the node holds the snapshot or state at least as new
	// (the node returns nil without reading r at all for a stale snapshot:
	// one at or below its commit index or its newest stored snapshot, or
	// from an older term), an error when it refuses it (a sender outside
	// its configuration, a malformed announcement, one addressed to another
	// node, data that failed to arrive or to store, ErrShutdown once the
	// node stopped). The handler takes ownership of m.
	//
	// It may return before reading all of r, with either verdict. The
	// transport must then end the stream (discard the rest or close it,
	// whichever keeps its connections usable for later messages and
	// snapshots) and report the verdict to the sender at once, without
	// waiting for data the handler will not read; the sender's SendSnapshot
	// returns nil for nil and an error for an error. r is not used after
	// HandleSnapshot returns.
	//
	// It returns once the snapshot is stored and the state machine restored
	// from it, which for a large state machine takes as long as writing it
	// to disk and loading it (it may also wait for another snapshot being
	// installed first). A transport must not time the call out as a whole;
	// it may fail a stream whose data stops flowing (a stalled sender, a
	// handler that stops reading) for longer than its own timeouts: the
	// handler's Read then returns an error and the sender gets one.
	HandleSnapshot(m Message, r io.Reader) error

	// ReportUnreachable tells the node that messages to id are being lost
	// (see Transport for when to call it). It does not block: transports
	// may call it from inside Send.
	ReportUnreachable(id NodeID)
}

// PeerSetter is an optional interface of Transport. The node calls SetPeers
// with every node it acts on messages from: the members of the
// configuration in force (voters and learners of C(new) and, while joint,
// C(old)), the leader it follows (which a follower that missed a
// configuration change may not have in it) and, on a leader, the peers it
// still replicates to (a departing node, until it holds the configuration
// that removes it); the last two may come with an empty Addr. It calls
// SetPeers once it has a configuration and whenever the configuration, the
// leader or the set of replicated peers changes, from the goroutine that
// runs the node, so SetPeers must not block. The slice is the
// transport's to keep. A transport may then refuse connections and
// messages from any other node ID; until the first call the node has no
// configuration (a new node waiting to be added) and the transport accepts
// any authenticated peer.
type PeerSetter interface {
	SetPeers(peers []Peer)
}
