package inmem

import (
	"math/rand"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
)

// DefaultQueueSize is the number of messages a link queues, by default, before
// it drops.
const DefaultQueueSize = 4096

// Option configures a Network.
type Option func(*options)

type options struct {
	queueSize int
	logger    hclog.Logger
}

// WithQueueSize sets the number of messages each link (one sender, one
// destination address) may hold before Send drops; n < 1 means
// DefaultQueueSize.
func WithQueueSize(n int) Option {
	return func(o *options) {
		if n < 1 {
			n = DefaultQueueSize
		}
		o.queueSize = n
	}
}

// WithLogger sets the logger the network reports drops and faults to; nil
// means silent (the default).
func WithLogger(l hclog.Logger) Option {
	return func(o *options) {
		if l == nil {
			l = hclog.NewNullLogger()
		}
		o.logger = l
	}
}

// Network is a simulated network connecting the Transports that joined it.
// It owns no goroutines itself: each Transport owns the goroutines that
// deliver the messages it sends, and stops them on Close.
//
// Concurrency: all methods are safe for concurrent use, including while
// messages are in flight; fault changes apply to messages sent afterwards
// and, for cuts and partitions, also to queued messages not yet delivered.
type Network struct {
	opts options

	mu     sync.Mutex
	rng    *rand.Rand
	nodes  map[string]*Transport // open transports by address
	faults faults
	stats  map[linkKey]*linkCounters
}

// NewNetwork returns an empty network whose random fault decisions come from
// a generator seeded with seed.
func NewNetwork(seed int64, opts ...Option) *Network {
	o := options{queueSize: DefaultQueueSize, logger: hclog.NewNullLogger()}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return &Network{
		opts:   o,
		rng:    rand.New(rand.NewSource(seed)),
		nodes:  make(map[string]*Transport),
		faults: newFaults(),
		stats:  make(map[linkKey]*linkCounters),
	}
}

// Join connects node id to the network at address string(id) and returns its
// transport; see JoinAddr.
func (n *Network) Join(id raft.NodeID) *Transport {
	return n.JoinAddr(id, string(id))
}

// JoinAddr connects node id to the network at address addr (string(id) when
// addr is empty) and returns its transport, with no handler registered yet.
//
// If another open transport already holds addr, it is closed first, as if
// that process had stopped: this is how a test restarts a node at the same
// address. The network does not validate id; raft does.
func (n *Network) JoinAddr(id raft.NodeID, addr string) *Transport {
	if addr == "" {
		addr = string(id)
	}
	t := newTransport(n, id, addr)
	for {
		n.mu.Lock()
		old := n.nodes[addr]
		if old == nil {
			n.nodes[addr] = t
			n.mu.Unlock()
			break
		}
		n.mu.Unlock()
		_ = old.Close() // removes old from n.nodes
	}
	n.opts.logger.Debug("node joined", "peer", id, "addr", addr)
	return t
}

// leave removes t from the address table if it still holds its address.
func (n *Network) leave(t *Transport) {
	n.mu.Lock()
	if n.nodes[t.addr] == t {
		delete(n.nodes, t.addr)
	}
	n.mu.Unlock()
}

// LinkStats counts the traffic of one directed link between two nodes.
type LinkStats struct {
	// Messages is the number of messages handed to the destination's handler,
	// counted as the call starts (a snapshot counts as one message once
	// accepted).
	Messages uint64
	// Bytes is the estimated size of those messages, plus the data bytes of
	// accepted snapshots.
	Bytes uint64
	// Dropped is the number of messages lost for any reason: unknown or closed
	// destination, cut link, random drop, full queue, no handler registered,
	// mismatched From/To, or the sender closing with the message queued.
	Dropped uint64
}

type linkCounters struct {
	messages atomic.Uint64
	bytes    atomic.Uint64
	dropped  atomic.Uint64
}

// Stats returns the counters of the link from -> to, by node ID. Counters
// start at zero and are never reset; concurrent traffic may make the three
// fields come from slightly different instants.
func (n *Network) Stats(from, to raft.NodeID) LinkStats {
	n.mu.Lock()
	c := n.stats[linkKey{from, to}]
	n.mu.Unlock()
	if c == nil {
		return LinkStats{}
	}
	return LinkStats{
		Messages: c.messages.Load(),
		Bytes:    c.bytes.Load(),
		Dropped:  c.dropped.Load(),
	}
}

// countersLocked returns the counters of from -> to; n.mu must be held.
func (n *Network) countersLocked(from, to raft.NodeID) *linkCounters {
	k := linkKey{from, to}
	c := n.stats[k]
	if c == nil {
		c = new(linkCounters)
		n.stats[k] = c
	}
	return c
}

// counters returns the counters of from -> to.
func (n *Network) counters(from, to raft.NodeID) *linkCounters {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.countersLocked(from, to)
}
