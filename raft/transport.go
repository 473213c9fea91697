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
// not close it.
//
// Concurrency: every method may be called from any goroutine.
//
// Implementations must:
//   - never block Send on the network: queue per peer, drop when a queue is
//     full (raft retransmits) and call Handler.ReportUnreachable;
//   - deliver messages from one sender to one receiver in the order sent, or
//     drop them, never duplicate them within one connection;
//   - never let two nodes share memory through a message: encode or copy;
//   - deliver a message only to the handler registered for its To node, and
//     only if its From is the peer that sent it (authenticated where the
//     transport authenticates);
//   - stream snapshots without holding them whole in memory.
type Transport interface {
	// Register installs h as the receiver of inbound traffic, replacing any
	// earlier handler; Register(nil) stops delivery. Messages arriving with no
	// handler are dropped. Calls to the old handler already in progress may
	// finish after Register returns.
	Register(h Handler)

	// Send queues msgs for delivery to peer to. Ownership of msgs passes to
	// the transport. It never blocks on the network.
	Send(to Peer, msgs []Message)

	// SendSnapshot streams a snapshot announced by m (m.Type == MsgSnap) with
	// its data from r, and returns once the receiver's handler has accepted
	// it (nil) or refused it, or the stream failed. It blocks for the length
	// of the transfer and must not delay Send to this or other peers. An
	// unreachable peer gives an error wrapping ErrPeerUnreachable; a closed
	// transport one wrapping ErrTransportClosed.
	SendSnapshot(ctx context.Context, to Peer, m Message, r io.Reader) error
}

// Handler receives a node's inbound traffic from a Transport.
//
// Concurrency: methods may be called from many goroutines at once.
type Handler interface {
	// HandleMessage delivers one message. It must not block for long; the
	// handler takes ownership of m.
	HandleMessage(m Message)

	// HandleSnapshot receives a snapshot announced by m whose data is read
	// from r. It returns once the snapshot is stored (nil) or refused; the
	// transport reports that outcome to the sender.
	HandleSnapshot(m Message, r io.Reader) error

	// ReportUnreachable tells the node that messages to id are being lost.
	// It must not block: transports may call it from inside Send.
	ReportUnreachable(id NodeID)
}
