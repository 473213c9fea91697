package tcp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

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
	ln        net.Listener
	serverTLS *tls.Config
	handler   atomic.Pointer[handlerBox]

	// dial opens raw TCP connections; tests replace it before first use.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
	inbound   chan struct{} // semaphore of MaxInboundConns

	mu     sync.RWMutex
	closed bool
	peers  map[raft.NodeID]*peer
	conns  map[net.Conn]struct{} // every open connection, closed by Close

	addrMu  sync.Mutex
	learned map[raft.NodeID]string // addresses from inbound handshakes (addrs.go)
}

type handlerBox struct{ h raft.Handler }

var _ raft.Transport = (*Transport)(nil)

// Listen validates opts, binds addr (e.g. "127.0.0.1:0") and starts
// accepting peers. The caller must call Close.
//
// Errors: an invalid option (the error names it), or the listen error.
func Listen(addr string, opts *Options) (*Transport, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp: listen on %q: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		opts:    o,
		log:     o.Logger.With("node", string(o.LocalID)),
		ln:      ln,
		ctx:     ctx,
		cancel:  cancel,
		inbound: make(chan struct{}, o.MaxInboundConns),
		peers:   make(map[raft.NodeID]*peer),
		conns:   make(map[net.Conn]struct{}),
		learned: make(map[raft.NodeID]string),
	}
	if t.opts.AdvertiseAddr == "" {
		t.opts.AdvertiseAddr = ln.Addr().String()
	}
	d := &net.Dialer{Timeout: o.DialTimeout}
	t.dial = d.DialContext
	if o.TLS != nil {
		t.serverTLS = serverTLS(o.TLS)
	}
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
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

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off briefly.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn("accept failed", "error", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-t.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		select {
		case t.inbound <- struct{}{}:
		default:
			t.log.Warn("inbound connection limit reached, closing connection",
				"remote", c.RemoteAddr().String(), "limit", t.opts.MaxInboundConns)
			_ = c.Close()
			continue
		}
		if !t.track(c) {
			_ = c.Close()
			<-t.inbound
			return
		}
		t.wg.Add(1)
		go t.serveInbound(c)
	}
}

// serveInbound runs the listener side of the handshake on raw and then
// reads messages or one snapshot until the connection ends.
func (t *Transport) serveInbound(raw net.Conn) {
	defer func() {
		_ = raw.Close()
		t.untrack(raw)
		<-t.inbound
		t.wg.Done()
	}()
	remote := raw.RemoteAddr().String()
	// One deadline covers TLS and hello: a slow or silent peer is cut off.
	_ = raw.SetDeadline(time.Now().Add(t.opts.HandshakeTimeout))
	conn := raw
	if t.serverTLS != nil {
		tc := tls.Server(raw, t.serverTLS)
		if err := tc.HandshakeContext(t.ctx); err != nil {
			t.log.Warn("refused inbound connection: tls handshake failed", "remote", remote, "error", err)
			return
		}
		conn = tc
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	typ, body, err := readFrame(br, maxHandshakeFrame, nil)
	if err == nil && typ != frameHello {
		err = fmt.Errorf("tcp: first frame is %s, want hello", typ)
	}
	var h hello
	if err == nil {
		h, err = decodeHello(body)
	}
	if err != nil {
		t.log.Warn("refused inbound connection: bad handshake", "remote", remote, "error", err)
		return
	}
	if reason := t.checkHello(h, conn); reason != "" {
		t.log.Warn("refused inbound connection", "remote", remote, "peer", string(h.From), "reason", reason)
		_ = writeFrame(conn, frameHelloReply, encodeHelloReply(helloReply{Reason: reason}))
		return
	}
	reply := helloReply{OK: true, ClusterID: t.opts.ClusterID, NodeID: t.opts.LocalID}
	if err := writeFrame(conn, frameHelloReply, encodeHelloReply(reply)); err != nil {
		t.log.Warn("inbound handshake failed: write reply", "remote", remote, "peer", string(h.From), "error", err)
		return
	}
	_ = raw.SetDeadline(time.Time{})
	if h.Addr != "" {
		t.learnAddr(h.From, learnable(h.Addr, raw.RemoteAddr()))
	}
	t.log.Debug("accepted inbound connection", "remote", remote, "peer", string(h.From), "kind", h.Kind.String())
	switch h.Kind {
	case kindMessages:
		t.readMessages(conn, br, h.From)
	case kindSnapshot:
		t.receiveSnapshot(conn, br, h.From)
	}
}

// checkHello returns why h must be refused, or "" to accept it.
func (t *Transport) checkHello(h hello, conn net.Conn) string {
	switch {
	case h.ClusterID != t.opts.ClusterID:
		return fmt.Sprintf("cluster id mismatch: peer is in cluster %q", h.ClusterID)
	case h.To != t.opts.LocalID:
		return fmt.Sprintf("wrong node: peer dialed %q, this is %q", h.To, t.opts.LocalID)
	case h.From == "":
		return "peer sent an empty node id"
	}
	if h.Addr != "" {
		if err := checkAddr(h.Addr); err != nil {
			return fmt.Sprintf("bad advertised address: %v", err)
		}
	}
	if t.serverTLS != nil {
		cert := peerCert(conn)
		if cert == nil {
			return "peer sent no certificate"
		}
		if !CertificateHasNodeID(cert, h.From) {
			return fmt.Sprintf("certificate identity mismatch: peer claims node %q but its certificate names [%s]",
				h.From, certIdentities(cert))
		}
	}
	return ""
}

// readMessages delivers message frames from an authenticated peer until
// the connection fails, idles past ReadTimeout or sends a malformed frame.
func (t *Transport) readMessages(conn net.Conn, br *bufio.Reader, from raft.NodeID) {
	log := t.log.With("peer", string(from), "remote", conn.RemoteAddr().String())
	var deadlineSet time.Time
	for {
		// Refresh the read deadline only every quarter timeout: cheap, and
		// an idle peer is still cut off within 1.25 x ReadTimeout.
		if now := time.Now(); now.Sub(deadlineSet) > t.opts.ReadTimeout/4 {
			_ = conn.SetReadDeadline(now.Add(t.opts.ReadTimeout))
			deadlineSet = now
		}
		typ, body, err := readFrame(br, t.opts.MaxFrameSize, nil)
		if err != nil {
			if errors.Is(err, io.EOF) || t.ctx.Err() != nil {
				log.Debug("inbound connection closed")
			} else {
				log.Warn("closing inbound connection", "error", err)
			}
			return
		}
		switch typ {
		case frameKeepalive:
			continue
		case frameMessage:
		default:
			log.Warn("closing inbound connection: unexpected frame", "frame", typ.String())
			return
		}
		m, err := decodeMessage(body)
		if err != nil {
			log.Warn("closing inbound connection: malformed message", "error", err)
			return
		}
		if m.From != from {
			log.Warn("dropping message: from does not match the authenticated peer",
				"from", string(m.From), "type", m.Type.String())
			continue
		}
		if m.To != t.opts.LocalID {
			log.Warn("dropping message addressed to another node", "to", string(m.To), "type", m.Type.String())
			continue
		}
		if h := t.currentHandler(); h != nil {
			h.HandleMessage(m)
		}
	}
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
