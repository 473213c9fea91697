package tcp

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
)

// Transport is a raft.Transport over TCP (optionally mutual TLS) with
// msgpack-encoded, length-prefixed frames. Create one with Listen.
//
// Concurrency: every method may be called from any goroutine. Handler
// methods are called from the transport's goroutines (one per inbound
// connection), except that Send calls Handler.ReportUnreachable on the
// caller's goroutine when it drops messages; a Handler must therefore not
// block in ReportUnreachable.
type Transport struct {
	opts      Options
	log       hclog.Logger
	warn      *logLimiter // rate-limited warnings (ratelog.go)
	ln        net.Listener
	serverTLS *tls.Config
	handler   atomic.Pointer[handlerBox]
	adm       *admission  // inbound connection limits (admission.go)
	budget    *byteBudget // memory of inbound frame bodies (budget.go)

	// dial opens raw TCP connections and lookupIP resolves host names for
	// the loopback check; tests replace them before first use.
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	lookupIP lookupFunc

	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup

	mu     sync.RWMutex
	closed bool
	peers  map[raft.NodeID]*peer
	conns  map[net.Conn]struct{} // every open connection, closed by Close

	addrMu  sync.Mutex
	learned map[raft.NodeID]string // addresses from inbound handshakes (addrs.go)
}

type handlerBox struct{ h raft.Handler }

var (
	_ raft.Transport  = (*Transport)(nil)
	_ raft.PeerSetter = (*Transport)(nil)
)

// Listen validates opts, binds addr (e.g. "127.0.0.1:0") and starts
// accepting peers. The caller must call Close.
//
// Without Options.TLS, addr's host must be loopback (see Options.TLS)
// unless Options.InsecurePlaintext is set; the check happens before
// anything is bound.
//
// Errors: an invalid option (the error names it), an error wrapping
// ErrPlaintextNotLoopback, or the listen error.
func Listen(addr string, opts *Options) (*Transport, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.DialTimeout)
	err = checkListenAddr(ctx, addr, &o)
	cancel()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp: listen on %q: %w", addr, err)
	}
	if err := checkBound(addr, ln.Addr(), &o); err != nil {
		_ = ln.Close()
		return nil, err
	}
	ctx, cancel = context.WithCancel(context.Background())
	log := o.Logger.With("node", string(o.LocalID))
	t := &Transport{
		opts:     o,
		log:      log,
		warn:     newLogLimiter(log, logSummaryInterval),
		ln:       ln,
		adm:      newAdmission(&o),
		budget:   newByteBudget(o.MaxInflightBytes),
		lookupIP: net.DefaultResolver.LookupIPAddr,
		ctx:      ctx,
		cancel:   cancel,
		peers:    make(map[raft.NodeID]*peer),
		conns:    make(map[net.Conn]struct{}),
		learned:  make(map[raft.NodeID]string),
	}
	if t.opts.AdvertiseAddr == "" {
		t.opts.AdvertiseAddr = ln.Addr().String()
	}
	d := &net.Dialer{Timeout: o.DialTimeout}
	t.dial = d.DialContext
	if o.TLS != nil {
		t.serverTLS = serverTLS(o.TLS)
	}
	t.wg.Add(3)
	go t.acceptLoop()
	go t.sweepLoop()
	go t.summarize()
	return t, nil
}

// SetPeers implements raft.PeerSetter: peers are the members of the node's
// configuration (this node among them, or not). From the first call on,
// an inbound connection is admitted only if its hello claims (and under
// TLS its certificate proves) the ID of one of peers other than this
// node's own, and it then takes a slot reserved for that peer, outside
// MaxInboundConns and MaxConnsPerIP (see Options.MaxInboundConns); every
// other connection is refused after its hello with a reason, and
// established connections from IDs no longer in peers are closed. Before
// the first call any authenticated peer is admitted, within the shared
// limits. Addresses in peers are not used (Send takes them per call).
//
// Concurrency: safe to call from any goroutine at any time; it never
// blocks on the network. It does not retain peers.
func (t *Transport) SetPeers(peers []raft.Peer) {
	evicted := t.adm.setPeers(peers)
	for _, c := range evicted {
		t.log.Debug("closing inbound connection from a node outside the configuration",
			"peer", string(c.id), "remote", c.raw.RemoteAddr().String())
		_ = c.raw.Close()
	}
	if len(evicted) > 0 {
		t.log.Info("closed inbound connections from nodes outside the configuration", "count", len(evicted))
	}
}

// Addr returns the address the transport listens on, with the actual port
// when Listen was given port 0. It is safe to call after Close.
func (t *Transport) Addr() string { return t.ln.Addr().String() }

// Register installs h as the receiver of inbound traffic, replacing any
// earlier handler; Register(nil) stops delivery (inbound messages are then
// dropped and inbound snapshots refused).
func (t *Transport) Register(h raft.Handler) {
	if h == nil {
		t.handler.Store(nil)
		return
	}
	t.handler.Store(&handlerBox{h: h})
}

func (t *Transport) currentHandler() raft.Handler {
	if b := t.handler.Load(); b != nil {
		return b.h
	}
	return nil
}

func (t *Transport) reportUnreachable(id raft.NodeID) {
	if h := t.currentHandler(); h != nil {
		h.ReportUnreachable(id)
	}
}

// Close stops accepting, closes every connection, aborts snapshot streams,
// stops every peer goroutine and waits for them, including handler calls
// in progress (a handler blocked forever blocks Close); after it returns no
// handler method is called. Queued messages are dropped. It returns the
// listener's close error, if any; calls after the first return nil.
func (t *Transport) Close() error {
	first := false
	t.closeOnce.Do(func() {
		first = true
		t.mu.Lock()
		t.closed = true
		conns := make([]net.Conn, 0, len(t.conns))
		for c := range t.conns {
			conns = append(conns, c)
		}
		t.mu.Unlock()
		t.cancel()
		if err := t.ln.Close(); err != nil {
			t.closeErr = fmt.Errorf("tcp: close listener: %w", err)
		}
		for _, c := range conns {
			_ = c.Close()
		}
	})
	t.wg.Wait()
	if first {
		return t.closeErr
	}
	return nil
}

// track registers c so Close closes it; it reports false (and the caller
// must close c) once the transport is closed.
func (t *Transport) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *Transport) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// Send queues msgs for to and returns at once. Messages that do not fit in
// the peer's queue are dropped and Handler.ReportUnreachable(to.ID) is
// called on this goroutine. After Close, Send drops everything silently.
// Ownership of msgs passes to the transport (they are encoded, never
// shared with the receiver).
//
// An empty to.Addr means "wherever to.ID said it listens": the address
// to.ID advertised in its latest accepted handshake with this transport
// (see Options.AdvertiseAddr). If no address is known for to.ID, msgs are
// dropped and Handler.ReportUnreachable(to.ID) is called on this goroutine.
// A non-empty to.Addr always takes precedence over a learned one.
func (t *Transport) Send(to raft.Peer, msgs []raft.Message) {
	if len(msgs) == 0 {
		return
	}
	if to.Addr == "" && t.learnedAddr(to.ID) == "" {
		if t.ctx.Err() == nil {
			t.log.Debug("no address known for peer, dropping messages", "peer", string(to.ID), "dropped", len(msgs))
			t.reportUnreachable(to.ID)
		}
		return
	}
	p := t.peer(to)
	if p == nil {
		return
	}
	for i := range msgs {
		select {
		case p.queue <- msgs[i]:
		default:
			t.log.Debug("peer queue full, dropping messages", "peer", string(to.ID), "dropped", len(msgs)-i)
			t.reportUnreachable(to.ID)
			return
		}
	}
}

// peer returns the outbound state for to, starting its writer on first
// use and updating its address. It returns nil after Close.
func (t *Transport) peer(to raft.Peer) *peer {
	t.mu.RLock()
	p, ok := t.peers[to.ID]
	closed := t.closed
	t.mu.RUnlock()
	if closed {
		return nil
	}
	if ok {
		if a := p.addr.Load(); *a != to.Addr {
			addr := to.Addr
			p.addr.Store(&addr)
		}
		return p
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	if p, ok := t.peers[to.ID]; ok {
		return p
	}
	p = &peer{t: t, id: to.ID, queue: make(chan raft.Message, t.opts.QueueSize)}
	addr := to.Addr
	p.addr.Store(&addr)
	t.peers[to.ID] = p
	t.wg.Add(1)
	go p.run()
	return p
}
