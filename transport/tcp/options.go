package tcp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
)

// Defaults used by Listen for zero-valued Options fields.
const (
	DefaultMaxFrameSize      = 64 << 20
	DefaultQueueSize         = 4096
	DefaultDialTimeout       = 2 * time.Second
	DefaultHandshakeTimeout  = 2 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 10 * time.Second
	DefaultWriteStallTimeout = 250 * time.Millisecond
	DefaultMaxInboundConns   = 256
	DefaultMaxPendingConns   = 128
	DefaultMaxConnsPerIP     = 64
	DefaultSnapshotChunkSize = 1 << 20
	DefaultBackoffMin        = 50 * time.Millisecond
	DefaultBackoffMax        = 5 * time.Second
)

// Hard limits that no option can raise.
const (
	// MaxFrameSizeLimit is the largest MaxFrameSize accepted (1 GiB).
	MaxFrameSizeLimit = 1 << 30
	// MinFrameSize is the smallest MaxFrameSize accepted (64 KiB).
	MinFrameSize = 64 << 10
	// MaxIDLen is the longest NodeID or ClusterID accepted, in bytes.
	MaxIDLen = 255
)

// Options configures a Transport. Only LocalID and ClusterID are required;
// every zero duration, size or count takes its Default* value. All nodes of
// a cluster should use the same MaxFrameSize, SnapshotChunkSize and
// ReadTimeout: a peer refuses frames above its own limit, and closes links
// that stay silent longer than its own ReadTimeout.
//
// Ownership: Listen copies Options (and clones TLS); the caller may reuse it.
type Options struct {
	// LocalID is this node's ID. Inbound connections must be addressed to it
	// and outbound handshakes claim it. Required; at most MaxIDLen bytes.
	LocalID raft.NodeID
	// ClusterID names the cluster; peers with a different ClusterID are
	// refused during the handshake. Required; at most MaxIDLen bytes.
	ClusterID string
	// TLS, when non-nil, turns on mutual TLS for every connection (see the
	// package documentation for how certificates carry node IDs). It must
	// hold this node's certificate (Certificates or GetCertificate) and a CA
	// pool in RootCAs (used for both directions when ClientCAs is nil).
	//
	// When nil, connections are plaintext and unauthenticated, so the
	// transport confines them to loopback: Listen refuses an address whose
	// host is not loopback (an IP in 127.0.0.0/8 or ::1, or a name such as
	// "localhost" that resolves only to those; an empty or unspecified host
	// such as ":7000" or "0.0.0.0:7000" is not loopback), and a peer at a
	// non-loopback address is never dialed (Send logs the error and reports
	// the peer unreachable; SendSnapshot returns it). Both errors wrap
	// ErrPlaintextNotLoopback. InsecurePlaintext lifts the restriction.
	TLS *tls.Config
	// InsecurePlaintext, with TLS nil, allows plaintext on non-loopback
	// addresses. Any process that can reach the port can then claim any
	// node ID, acknowledge writes it never stored and send entries that
	// make a node diverge: set it only on a network where every host is
	// trusted (an isolated test network, a private link). Ignored when TLS
	// is set.
	InsecurePlaintext bool
	// Logger receives the transport's logs; nil means silent.
	Logger hclog.Logger
	// AdvertiseAddr is the address ("host:port") that peers should dial to
	// reach this node. Every outbound handshake carries it, and the
	// receiving transport remembers it for this node's ID, so that a node
	// that does not yet know this node's address (say, a learner that has
	// not received the configuration) can still answer: Send with an empty
	// raft.Peer.Addr uses the learned address. A host that is empty or
	// unspecified (":7000", "0.0.0.0:7000", "[::]:7000") is replaced by the
	// receiver with the IP the connection came from. Default: the address
	// Listen bound (Transport.Addr). At most 1024 bytes.
	AdvertiseAddr string

	// MaxFrameSize bounds every frame read or written, in bytes, checked
	// before the frame's body is allocated. A message whose encoding exceeds
	// it is dropped. Default DefaultMaxFrameSize; range
	// [MinFrameSize, MaxFrameSizeLimit].
	MaxFrameSize int
	// QueueSize is the number of messages queued per peer before Send drops.
	QueueSize int
	// DialTimeout bounds one TCP dial.
	DialTimeout time.Duration
	// HandshakeTimeout bounds the whole handshake (TLS and hello) of an
	// inbound or outbound connection, measured from accept or dial. An
	// inbound connection that has not completed it is "pending" and counts
	// against MaxPendingConns.
	HandshakeTimeout time.Duration
	// ReadTimeout closes an inbound connection that sends nothing (not even
	// a keepalive) for this long. Outbound connections send a keepalive
	// after ReadTimeout/3 of idleness so healthy idle links stay open.
	ReadTimeout time.Duration
	// WriteTimeout bounds each buffered write as a whole (one flush of
	// coalesced messages, or one snapshot chunk).
	WriteTimeout time.Duration
	// WriteStallTimeout bounds how long a write to a peer's message
	// connection may make no progress: every 64 KiB of a flush (and every
	// keepalive) must be accepted by the connection within it, or the write
	// is abandoned, the connection closed, the rest of the batch dropped
	// and the peer reported unreachable; the next message to that peer
	// dials a new connection. So a peer that stops reading (a paused
	// process, a wedged host, a full receive queue) holds up messages to
	// itself for at most this long, and never messages to other peers,
	// which have writers of their own.
	//
	// Keep it well below the raft election timeout (Config.TickInterval x
	// Config.ElectionTicks, 500 ms with raft's defaults), so that a vote or
	// heartbeat behind a stalled write goes out on a fresh connection
	// within one election. It also sets the slowest link that stays up:
	// 64 KiB per WriteStallTimeout (256 KiB/s at the default); raise it
	// for slower links, with the election timeout. Default
	// DefaultWriteStallTimeout; at most WriteTimeout.
	WriteStallTimeout time.Duration
	// MaxInboundConns bounds the established inbound connections (messages
	// and snapshots together) that are not in a slot reserved for a
	// configured peer: until SetPeers is first called that is every
	// established connection. Once SetPeers has named the configuration,
	// connections from other node IDs are refused after the hello, and each
	// configured peer has up to 8 slots of its own (its oldest connection is
	// closed past that), so strangers can never exhaust the limit. A
	// connection beyond the limit is refused after its hello with a reason.
	MaxInboundConns int
	// MaxPendingConns bounds the inbound connections in their handshake
	// (TLS and hello, within HandshakeTimeout) at once. Connections beyond
	// it, or beyond MaxConnsPerIP from one source IP, are parked unread
	// (see the package documentation) and served in arrival order per IP;
	// while some are parked, a pending connection that keeps this side
	// waiting for its bytes (50 ms; 200 ms once it has sent a hello's
	// worth) is evicted for the next, so silent, slow or redialling sockets
	// cannot keep a real peer out. Parking holds at most 16 x MaxPendingConns
	// connections, and 8 x MaxConnsPerIP per IP; beyond that new
	// connections are closed at once.
	MaxPendingConns int
	// MaxConnsPerIP bounds, per source IP, the connections in their
	// handshake (more are parked, see MaxPendingConns) and the established
	// connections outside the slots reserved for configured peers (a new
	// one is refused after its hello, with a reason). Connections of
	// configured peers do not count: several nodes may share a host, and
	// every loopback peer shares 127.0.0.1.
	MaxConnsPerIP int
	// MaxInflightBytes bounds the memory of the frame bodies being received
	// at once, across all inbound connections. A body larger than 64 KiB
	// is read only once its size is taken from this budget, and the budget
	// is returned once the body has been decoded and delivered; a
	// connection that cannot get budget before its read deadline
	// (ReadTimeout) is closed. Requests are served in arrival order, so a
	// large frame from a peer waits at most about ReadTimeout behind
	// others. Smaller bodies need no budget; with the connection limits,
	// they and the per-connection 64 KiB read buffers bound the rest.
	// Default 2 x MaxFrameSize; at least MaxFrameSize.
	MaxInflightBytes int64
	// SnapshotChunkSize is the size of each snapshot data frame, at most
	// MaxFrameSize. Default: DefaultSnapshotChunkSize or MaxFrameSize,
	// whichever is smaller.
	SnapshotChunkSize int
	// BackoffMin and BackoffMax bound the exponential, jittered delay
	// between failed dials to one peer.
	BackoffMin time.Duration
	BackoffMax time.Duration
}

// errOptions is wrapped by every option validation error.
var errOptions = errors.New("tcp: invalid options")

// withDefaults validates o and returns a copy with defaults filled in.
func (o *Options) withDefaults() (Options, error) {
	if o == nil {
		return Options{}, fmt.Errorf("%w: nil Options (LocalID and ClusterID are required)", errOptions)
	}
	c := *o
	if c.LocalID == "" {
		return c, fmt.Errorf("%w: LocalID is empty", errOptions)
	}
	if len(c.LocalID) > MaxIDLen {
		return c, fmt.Errorf("%w: LocalID is %d bytes, limit %d", errOptions, len(c.LocalID), MaxIDLen)
	}
	if c.ClusterID == "" {
		return c, fmt.Errorf("%w: ClusterID is empty", errOptions)
	}
	if len(c.ClusterID) > MaxIDLen {
		return c, fmt.Errorf("%w: ClusterID is %d bytes, limit %d", errOptions, len(c.ClusterID), MaxIDLen)
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.AdvertiseAddr != "" {
		if err := checkAddr(c.AdvertiseAddr); err != nil {
			return c, fmt.Errorf("%w: AdvertiseAddr: %w", errOptions, err)
		}
	}
	chunkDefault := DefaultSnapshotChunkSize
	if c.MaxFrameSize > 0 {
		chunkDefault = min(chunkDefault, c.MaxFrameSize)
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxFrameSize", &c.MaxFrameSize, DefaultMaxFrameSize},
		{"QueueSize", &c.QueueSize, DefaultQueueSize},
		{"MaxInboundConns", &c.MaxInboundConns, DefaultMaxInboundConns},
		{"MaxPendingConns", &c.MaxPendingConns, DefaultMaxPendingConns},
		{"MaxConnsPerIP", &c.MaxConnsPerIP, DefaultMaxConnsPerIP},
		{"SnapshotChunkSize", &c.SnapshotChunkSize, chunkDefault},
	}
	for _, f := range ints {
		if *f.v < 0 {
			return c, fmt.Errorf("%w: %s is negative (%d)", errOptions, f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"DialTimeout", &c.DialTimeout, DefaultDialTimeout},
		{"HandshakeTimeout", &c.HandshakeTimeout, DefaultHandshakeTimeout},
		{"ReadTimeout", &c.ReadTimeout, DefaultReadTimeout},
		{"WriteTimeout", &c.WriteTimeout, DefaultWriteTimeout},
		{"BackoffMin", &c.BackoffMin, DefaultBackoffMin},
		{"BackoffMax", &c.BackoffMax, DefaultBackoffMax},
	}
	for _, f := range durs {
		if *f.v < 0 {
			return c, fmt.Errorf("%w: %s is negative (%v)", errOptions, f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	switch {
	case c.WriteStallTimeout < 0:
		return c, fmt.Errorf("%w: WriteStallTimeout is negative (%v)", errOptions, c.WriteStallTimeout)
	case c.WriteStallTimeout == 0:
		c.WriteStallTimeout = min(DefaultWriteStallTimeout, c.WriteTimeout)
	}
	if c.MaxFrameSize < MinFrameSize || c.MaxFrameSize > MaxFrameSizeLimit {
		return c, fmt.Errorf("%w: MaxFrameSize %d outside [%d, %d]", errOptions, c.MaxFrameSize, MinFrameSize, MaxFrameSizeLimit)
	}
	switch {
	case c.MaxInflightBytes < 0:
		return c, fmt.Errorf("%w: MaxInflightBytes is negative (%d)", errOptions, c.MaxInflightBytes)
	case c.MaxInflightBytes == 0:
		c.MaxInflightBytes = 2 * int64(c.MaxFrameSize)
	case c.MaxInflightBytes < int64(c.MaxFrameSize):
		return c, fmt.Errorf("%w: MaxInflightBytes %d is below MaxFrameSize %d: a maximal frame could never be read",
			errOptions, c.MaxInflightBytes, c.MaxFrameSize)
	}
	if c.WriteStallTimeout > c.WriteTimeout {
		return c, fmt.Errorf("%w: WriteStallTimeout %v exceeds WriteTimeout %v", errOptions, c.WriteStallTimeout, c.WriteTimeout)
	}
	if c.SnapshotChunkSize > c.MaxFrameSize {
		return c, fmt.Errorf("%w: SnapshotChunkSize %d exceeds MaxFrameSize %d", errOptions, c.SnapshotChunkSize, c.MaxFrameSize)
	}
	if c.BackoffMax < c.BackoffMin {
		return c, fmt.Errorf("%w: BackoffMax %v is below BackoffMin %v", errOptions, c.BackoffMax, c.BackoffMin)
	}
	if c.TLS != nil {
		cfg := c.TLS.Clone()
		if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil {
			return c, fmt.Errorf("%w: TLS has no certificate (set Certificates or GetCertificate)", errOptions)
		}
		if cfg.RootCAs == nil {
			return c, fmt.Errorf("%w: TLS.RootCAs is nil: mutual TLS needs the CA pool that signs peer certificates", errOptions)
		}
		c.TLS = cfg
	}
	return c, nil
}
