// Package tcp is a raft.Transport over TCP, optionally with mutual TLS,
// whose frames carry msgpack-encoded messages.
//
// # Use
//
//	tr, err := tcp.Listen("127.0.0.1:0", &tcp.Options{LocalID: "n1", ClusterID: "demo"})
//	...
//	defer tr.Close()
//	// give tr.Addr() to the other nodes; pass tr to raft.New.
//
// Each Transport listens for its peers and dials them on demand: node A
// sends to B over a connection A dialed, and B answers over one it dialed.
// Messages to one peer go through a bounded queue (Options.QueueSize)
// drained by one writer goroutine that coalesces everything queued into one
// buffered write; Send never blocks, and drops (calling
// Handler.ReportUnreachable) when the queue is full. Failed dials are
// retried with exponential backoff and jitter (Options.BackoffMin/Max).
// Snapshots stream over a connection of their own, so a large transfer to
// one peer never delays messages to any peer.
//
// # Security
//
// Without Options.TLS, connections are plaintext and unauthenticated: any
// process that can reach the port can claim any node ID, so it can
// acknowledge writes it never stored (making the leader commit what a
// majority does not hold) or send entries that make a node diverge.
// Plaintext is therefore confined to loopback: Listen refuses an address
// whose host is not loopback (an IP in 127.0.0.0/8 or ::1, or a name such
// as "localhost" that resolves only to such IPs; ":7000" and
// "0.0.0.0:7000" listen on every interface and are refused), checked
// before anything is bound, and the transport never dials a peer whose
// address is not loopback (it resolves a name first and dials the loopback
// IPs it checked): Send logs the error (rate-limited) and reports the peer
// unreachable, SendSnapshot returns it. Both errors wrap
// ErrPlaintextNotLoopback and name Options.InsecurePlaintext, the explicit
// opt-in for a network where every host is trusted.
//
// To turn TLS on, set Options.TLS to a *tls.Config holding this node's
// certificate (Certificates) and the CA pool that signs every node's
// certificate (RootCAs; ClientCAs too if it differs). Both sides then
// authenticate: the listener requires and verifies a client certificate,
// the dialer verifies the listener's. Certificates are bound to node IDs,
// not host names: a certificate proves node ID X when it carries the URI
// SAN typedraft://node/X (see NodeURI) or the DNS SAN X
// (CertificateHasNodeID). The listener refuses a dialer whose certificate
// does not prove the node ID claimed in its handshake, and the dialer
// refuses a listener whose certificate does not prove the ID it dialed.
// Node certificates need both the serverAuth and clientAuth extended key
// usages (or none). TLS 1.3 is the default minimum version.
//
// Every connection starts with a handshake, checked before any message is
// delivered: the dialer names the cluster ID, its own node ID, the node ID
// it expects to reach, the connection kind (messages or snapshot) and its
// advertised address. The listener refuses a wrong cluster ID, a wrong
// destination, an advertised address that is not host:port or (under TLS)
// an unproven identity with a reason frame, logs why, and closes. Inbound
// messages whose From is not the handshake's node ID, or whose To is not
// Options.LocalID, are dropped and logged.
//
// # Address learning
//
// A node that joins a running cluster starts with no configuration, so it
// does not know where the leader listens until the configuration entries
// reach it; yet it must answer the leader's first messages. Each outbound
// handshake therefore carries the dialer's Options.AdvertiseAddr (default:
// the bound address), and the listener remembers it for the node ID the
// handshake authenticated (the newest accepted handshake wins; an empty or
// unspecified host such as "0.0.0.0:7000" is replaced by the connection's
// source IP). Send and SendSnapshot with an empty raft.Peer.Addr use that
// learned address; with none known, Send drops the messages and calls
// Handler.ReportUnreachable, and SendSnapshot fails with
// raft.ErrPeerUnreachable. A non-empty Peer.Addr always wins. Under TLS a
// learned address is only a hint: the dialer still requires the listener
// there to prove the node ID. At most 1024 learned addresses are kept.
//
// # Hostile and failing peers
//
// A flood of connections, frames or failures must not keep real peers out,
// exhaust memory, delay elections or fill the log. The guarantees:
//
//   - Handshakes. An inbound connection that has not completed its
//     handshake (TLS and hello, within Options.HandshakeTimeout) is
//     pending: at most Options.MaxPendingConns overall and
//     Options.MaxConnsPerIP per source IP. The accept loop never reads or
//     blocks; connections beyond those limits are parked (a file
//     descriptor each, up to 16 x MaxPendingConns overall and
//     8 x MaxConnsPerIP per IP; beyond that they are closed at once) and
//     served in arrival order per IP, fairly across IPs. While connections
//     are parked, a pending connection that has kept this side waiting for
//     its bytes for 50 ms (200 ms once it has sent a hello's worth) is
//     evicted, the one that sent the fewest bytes first, so silent, slow or
//     redialling sockets delay a real peer by its place in the queue, not
//     by a handshake timeout: 300 sockets redialling from the peer's own IP
//     delay its first message by about 0.2 s (plaintext or TLS).
//   - Membership. Transport implements raft.PeerSetter. Once SetPeers has
//     named the configuration, a hello from any other node ID (under TLS,
//     proven by its certificate) is refused with a reason, connections from
//     IDs that left the configuration are closed, and each configured peer
//     has slots of its own (up to 8 connections; its oldest is closed past
//     that, so a restarted peer always gets in) that strangers cannot take.
//     Before the first SetPeers every authenticated peer shares
//     Options.MaxInboundConns established slots, at most MaxConnsPerIP per
//     source IP.
//   - Memory. Every frame is checked against Options.MaxFrameSize before
//     its body is allocated; every msgpack length is checked against the
//     bytes remaining in its frame before decoding. Bodies larger than
//     64 KiB are read only under a byte budget shared by all inbound
//     connections (Options.MaxInflightBytes, default 2 x MaxFrameSize),
//     served in arrival order and returned once the body is decoded and
//     delivered; a connection that cannot get budget before its read
//     deadline is closed. So the frame bodies held at once never exceed the
//     budget plus 64 KiB per connection, however many connections send
//     maximal frames. Measured with 24 connections each sending a 64 MiB
//     frame to the last byte: the live heap grows by the 128 MiB budget
//     (by 1.4 GiB without it), and the heap with the garbage Go's default
//     GOGC lets accumulate by about 320 MiB; set GOMEMLIMIT to cap that
//     headroom too.
//   - Stalls. A write to a peer's message connection must make progress
//     within Options.WriteStallTimeout (keep it below the raft election
//     timeout), or the connection is closed and the next message (a vote,
//     say) goes out on a new one; messages to other peers never wait for
//     it, since every peer has its own writer.
//   - Timeouts. Idle inbound connections close after Options.ReadTimeout;
//     outbound ones send keepalives. A malformed frame closes its
//     connection.
//   - Logs. Warnings caused by remote input or by a peer that stays down
//     (refused handshakes, evictions, malformed frames, failed dials) are
//     rate-limited per kind: the first is logged in full, then one summary
//     line per 10 s carries the count (key "repeated") and the latest
//     fields. A peer that closes its connection cleanly (it is restarting)
//     is logged at Debug.
//
// # Wire format (version 1)
//
// Every frame is [magic "TD"][version 1][type 1B][length uint32 BE][body].
// Frame types: hello and hello-reply (handshake), message (one
// raft.Message), keepalive (empty), and snap-header, snap-chunk, snap-end,
// snap-ack (snapshot stream). Bodies are msgpack arrays with fixed field
// positions (see codec.go); Go field names never reach the wire. A peer
// speaking another version is refused at its first frame.
//
// The hello body is [ClusterID, From, To, Kind, Addr]. Address learning
// added Addr without a version bump: a listener also accepts the earlier
// 4-field hello (and learns no address from it), so newer nodes accept
// connections from older ones; an older listener refuses the 5-field hello
// as malformed, so in a mixed cluster older nodes cannot receive from
// newer ones until they are upgraded.
package tcp
