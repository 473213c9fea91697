// Package transporttest is the conformance suite for raft.Transport
// implementations, and the guide to writing one.
//
// # Writing a Transport
//
// A raft.Transport has three methods; raft.Handler is what it delivers to.
// The contract is documented on raft.Transport and raft.Handler; this is
// the walk-through. The file example_rpc_test.go (Example_rpcTransport) is
// a complete transport over an RPC library like MIT 6.5840's labrpc, in a
// few hundred lines, that passes the suite (TestRPCTransport runs it).
//
// Who calls what. The node calls Register(h) when it starts and
// Register(nil) when it stops; it never calls Close (whoever opened the
// transport closes it, after the node has stopped). It calls Send from
// several goroutines (its main loop, its log writer after a Save, request
// forwarding), and SendSnapshot from one goroutine per follower that needs
// a snapshot, concurrently with Send and with each other, with a context
// the node cancels when it stops. Every method may thus be called from any
// goroutine at once.
//
// Send. Queue the messages per peer and return: Send never waits for the
// network, a peer or a snapshot in progress. Ownership of the slice passes
// to the transport, but the entries' Data and the Snapshot meta may be
// shared with the sender's log: never modify them, and never hand them to
// the receiver; encode them (or copy them deeply) before they leave. When
// a queue is full, drop and call Handler.ReportUnreachable for the peer,
// once for the Send call. After Close, drop silently.
//
// Delivery. Per sender→receiver pair, within a connection (one stream;
// for a transport without connections, one incarnation of the sending
// transport, from its creation to its Close): deliver in the order sent
// (one order for all message types), at most once (never resend a message
// that may have arrived, even after a reconnect), and lose messages only
// when the peer is unreachable, a queue is full or an end is closing, and
// then report it. An RPC-based transport keeps the order by making one
// call at a time per peer, from one goroutine per peer draining its queue.
// On the receiving side, check that From is the peer that sent the message
// and To is this node, and call Handler.HandleMessage for one connection's
// messages one at a time, in order.
//
// Reporting loss. Call Handler.ReportUnreachable(id) when messages to id
// are being lost: a dial or call failed, a connection broke, a queue
// overflowed, the peer has no known address. Once per event, not once per
// lost message, and never on a healthy link: each report sends a leader's
// replicating follower back to probing, one message per heartbeat.
//
// Snapshots. SendSnapshot streams m's data from r to the receiver's
// Handler.HandleSnapshot in chunks (never the whole snapshot in memory)
// and returns the handler's verdict: nil for nil, an error for an error
// (carry the handler's text where you can). The handler may return before
// reading everything, with either verdict; raft's returns nil without
// reading a byte for a stale snapshot, and an error for one it refuses
// (from a non-member, say). The transport must then end the stream
// (discard the rest or close it, keeping its connections usable) and tell
// the sender at once, whose SendSnapshot returns without sending the rest
// and never reads r again. The handler may take a long time to return (it
// stores the snapshot and restores the state machine from it): do not
// time it out as a whole, though a stream whose data stops flowing may
// fail. Cancelling ctx ends SendSnapshot promptly even when the receiver
// is stuck; a transfer must never delay Send, to this or any other peer.
// The leader treats any error as a failed send and retries after half an
// election timeout.
//
// Errors. SendSnapshot's errors wrap raft.ErrPeerUnreachable when the peer
// cannot be reached and raft.ErrTransportClosed after Close; a refusal,
// a cancelled ctx or a broken stream give other errors. Send returns
// nothing: its failures are the reports above.
//
// Close. A transport's Close (not part of the interface) stops its
// goroutines and waits for them and for handler calls in progress, aborts
// snapshot transfers in both directions, and makes the address reusable by
// a new incarnation. Afterwards the handler is never called again.
//
// Optional: raft.PeerSetter. A transport that can refuse connections
// implements SetPeers(peers). The node calls it once it has a configuration
// and whenever the configuration, its leader or the peers it replicates to
// change, from its main goroutine, so it must not block; peers lists every
// node the node acts on messages from (the members of the configuration in
// force, C(old) too while joint, the leader it follows, and on a leader
// the departing peers it still replicates to, the last two possibly with
// an empty Addr). The transport may then refuse any other node ID; before
// the first call it must accept any authenticated peer (a new node waiting
// to be added has no configuration). transport/tcp implements it.
//
// # Running the suite
//
// A transport's own tests call Run with a Factory that creates connected
// endpoints, once per case:
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, func(t *testing.T, ids []raft.NodeID) []transporttest.Endpoint {
//			// one open transport per id, all able to reach each other by Addr,
//			// with Close (and, optionally, Restart at the same Addr)
//		})
//	}
//
// Run it with and without -race. It must not run in parallel with other
// tests of the same process, since it checks for leaked goroutines. It
// takes one to two seconds for an in-process transport; the snapshot cases
// move about 100 MiB.
//
// # What the suite checks
//
// Each case below names the mistakes it catches; the suite's own tests
// check that it catches each of them (suite_test.go wraps transport/inmem
// with one defect at a time):
//
//   - FieldRoundTrip: every field of every message type arrives unchanged
//     (including fields added to raft.Message after the transport was
//     written), batched or alone, and nobody is reported unreachable.
//     Catches a dropped or mangled field, a Send that blocks, and
//     ReportUnreachable on a healthy link.
//   - PerPeerOrdering: 400 paced messages of mixed types all arrive in
//     order; of a 3000-message burst, what arrives is in order without
//     duplicates, and any loss was reported. Catches reordering (a lane of
//     its own for some message types, deliveries on goroutines of their
//     own), duplicate delivery, silent loss on a healthy link, and a queue
//     that overflows silently.
//   - LargeMessage: a 4 MiB MsgApp arrives intact.
//   - ManyPeers, ConcurrentSenders: five endpoints at once; eight
//     goroutines sharing one transport; all messages arrive, in order per
//     sender goroutine.
//   - NoSharedMemory: a handler that overwrites the messages it was given
//     changes neither another receiver's copy nor the sender's entries.
//     Catches a transport sharing message memory between nodes.
//   - RegisterReplacesHandler: after Register(nil) or Register(h2) the old
//     handler gets nothing more.
//   - UnreachablePeer: Send to a closed peer is reported. Catches a
//     transport that never reports.
//   - StuckReceiver: a handler that blocks makes the sender's queue
//     overflow; Send keeps returning, the loss is reported but not once per
//     message, other peers are unaffected, and once unblocked the link
//     recovers without loss. Catches unbounded queues, reporting per lost
//     message, and one peer's stall delaying another.
//   - SnapshotStream: 64 MiB arrive intact while the receiver reads slowly,
//     without the transport reading far ahead; meanwhile messages reach
//     both peers and a snapshot reaches a third. Catches buffering a
//     snapshot whole, and a SendSnapshot that blocks other peers' sends.
//   - SnapshotRefused: a handler's error, before or after reading, fails
//     SendSnapshot promptly though the data never ends; messages and
//     snapshots work afterwards. Catches a sender that ignores the verdict.
//   - SnapshotEarlyAccept: a handler that returns nil without reading all
//     the data (a stale snapshot) makes SendSnapshot return nil promptly,
//     and the transport keeps working for messages and snapshots; a handler
//     that takes 300 ms to install is waited for. Catches streaming the rest
//     after the verdict, reading r after returning, and returning nil once
//     the data is sent instead of when the handler returns.
//   - SnapshotCancel, SnapshotUnreachable: a cancelled context ends a stuck
//     transfer; a closed peer fails promptly. Catches ignoring ctx.
//   - CloseInFlight: Close with messages and a snapshot in flight neither
//     panics nor deadlocks; afterwards Send returns, SendSnapshot fails.
//   - PeerRestart (when Endpoint.Restart is set): a peer reopened at the
//     same address gets messages, sends, receives a snapshot, and never
//     gets again a message its previous incarnation received. Catches
//     resending after a reconnect.
//   - After every case: no goroutine outlives Close. Catches leaks.
//
// The suite assumes nothing about the transport beyond the interface:
// every wait polls with a deadline, and cases that send fast only assert
// the order of what arrived and that losses were reported.
package transporttest
