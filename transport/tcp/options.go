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
	DefaultHandshakeTimeout  = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 10 * time.Second
	DefaultMaxInboundConns   = 256
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
	// When nil, connections are plaintext: use that only on loopback.
	TLS *tls.Config
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
	// inbound or outbound connection, measured from accept or dial.
	HandshakeTimeout time.Duration
	// ReadTimeout closes an inbound connection that sends nothing (not even
	// a keepalive) for this long. Outbound connections send a keepalive
	// after ReadTimeout/3 of idleness so healthy idle links stay open.
	ReadTimeout time.Duration
	// WriteTimeout bounds each buffered write (one flush of coalesced
	// messages, or one snapshot chunk).
	WriteTimeout time.Duration
	// MaxInboundConns bounds concurrently open inbound connections
	// (messages and snapshots together); extra connections are closed at
	// once.
	MaxInboundConns int
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
	if c.MaxFrameSize < MinFrameSize || c.MaxFrameSize > MaxFrameSizeLimit {
		return c, fmt.Errorf("%w: MaxFrameSize %d outside [%d, %d]", errOptions, c.MaxFrameSize, MinFrameSize, MaxFrameSizeLimit)
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
