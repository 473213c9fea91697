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
// process that can reach the port can claim any node ID. Plaintext is meant
// for loopback demos and tests only.
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
// Resource limits: every frame is checked against Options.MaxFrameSize
// before its body is allocated; every msgpack length is checked against the
// bytes remaining in its frame before decoding; a handshake must finish
// within Options.HandshakeTimeout; at most Options.MaxInboundConns inbound
// connections are open at once; idle inbound connections close after
// Options.ReadTimeout. A malformed frame closes its connection with a log
// line.
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
