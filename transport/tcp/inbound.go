package tcp

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// acceptLoop accepts inbound connections until the listener closes. It
// never reads and never blocks on a connection: each one is served on a
// goroutine of its own at once, or parked until a handshake slot frees
// (see pending.go), or closed when too many are parked.
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
			t.warn.warn("accept", "accept failed", "error", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-t.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		if !t.track(c) {
			_ = c.Close()
			return
		}
		ic := &inConn{raw: c, ip: sourceIP(c)}
		start, drop := t.adm.accept(ic, time.Now())
		if drop != nil {
			t.warn.warn("parking-full", "closing inbound connection: too many connections waiting for a handshake slot",
				"remote", c.RemoteAddr().String(), "max_pending", t.opts.MaxPendingConns, "max_per_ip", t.opts.MaxConnsPerIP)
			t.closeInbound(drop)
			continue
		}
		if start != nil {
			t.serve([]*inConn{start})
		}
	}
}

// serveInbound runs the listener side of the handshake on ic and then
// reads messages or one snapshot until the connection ends.
func (t *Transport) serveInbound(ic *inConn) {
	raw := ic.raw
	defer func() {
		_ = raw.Close()
		t.untrack(raw)
		t.serve(t.adm.leave(ic))
		t.wg.Done()
	}()
	remote := raw.RemoteAddr().String()
	// handshakeFailed logs why the handshake failed: at Debug when the
	// connection was evicted (the eviction was logged), else rate-limited.
	handshakeFailed := func(kind, msg string, args ...any) {
		if t.adm.gone(ic) {
			t.log.Debug("evicted pending connection closed", append([]any{"remote", remote}, args...)...)
			return
		}
		t.warn.warn(kind, msg, append([]any{"remote", remote}, args...)...)
	}
	// One deadline, from accept, covers TLS and hello (and any time the
	// connection spent parked): a slow or silent peer is cut off.
	_ = raw.SetDeadline(ic.accepted.Add(t.opts.HandshakeTimeout))
	pc := &progressConn{Conn: raw, ic: ic}
	var conn net.Conn = pc
	if t.serverTLS != nil {
		tc := tls.Server(conn, t.serverTLS)
		if err := tc.HandshakeContext(t.ctx); err != nil {
			handshakeFailed("refused-tls", "refused inbound connection: tls handshake failed", "error", err)
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
		handshakeFailed("refused-handshake", "refused inbound connection: bad handshake", "error", err)
		return
	}
	refuse := func(kind, reason string) {
		t.warn.warn("refused-"+kind, "refused inbound connection", "remote", remote, "peer", string(h.From), "reason", reason)
		_ = writeFrame(conn, frameHelloReply, encodeHelloReply(helloReply{Reason: reason}))
	}
	if kind, reason := t.checkHello(h, conn); reason != "" {
		refuse(kind, reason)
		return
	}
	kind, reason, evicted, start := t.adm.establish(ic, h.From)
	t.serve(start)
	t.closeEvicted(evicted, "closing the oldest inbound connection of a peer past its per-peer limit")
	switch {
	case kind == refusedEvicted:
		t.log.Debug("evicted pending connection closed", "remote", remote, "peer", string(h.From))
		return
	case reason != "":
		refuse(kind, reason)
		return
	}
	reply := helloReply{OK: true, ClusterID: t.opts.ClusterID, NodeID: t.opts.LocalID}
	if err := writeFrame(conn, frameHelloReply, encodeHelloReply(reply)); err != nil {
		t.warn.warn("reply", "inbound handshake failed: write reply", "remote", remote, "peer", string(h.From), "error", err)
		return
	}
	_ = raw.SetDeadline(time.Time{})
	pc.done()
	if h.Addr != "" {
		t.learnAddr(h.From, learnable(h.Addr, raw.RemoteAddr()))
	}
	t.log.Debug("accepted inbound connection", "remote", remote, "peer", string(h.From), "kind", h.Kind.String())
	switch h.Kind {
	case kindMessages:
		t.readMessages(ic, conn, br, h.From)
	case kindSnapshot:
		t.receiveSnapshot(ic, conn, br, h.From)
	}
}

// closeEvicted closes established connections evicted by the admission.
func (t *Transport) closeEvicted(evicted []*inConn, msg string) {
	for _, v := range evicted {
		t.warn.warn("evict:"+msg, msg, "peer", string(v.id), "remote", v.raw.RemoteAddr().String())
		_ = v.raw.Close()
	}
}

// checkHello returns why h must be refused (a log kind and a reason), or
// an empty reason to accept it.
func (t *Transport) checkHello(h hello, conn net.Conn) (kind, reason string) {
	switch {
	case h.ClusterID != t.opts.ClusterID:
		return "cluster", fmt.Sprintf("cluster id mismatch: peer is in cluster %q", h.ClusterID)
	case h.To != t.opts.LocalID:
		return "node", fmt.Sprintf("wrong node: peer dialed %q, this is %q", h.To, t.opts.LocalID)
	case h.From == "":
		return "empty-id", "peer sent an empty node id"
	}
	if h.Addr != "" {
		if err := checkAddr(h.Addr); err != nil {
			return "addr", fmt.Sprintf("bad advertised address: %v", err)
		}
	}
	if t.serverTLS != nil {
		cert := peerCert(conn)
		if cert == nil {
			return "cert", "peer sent no certificate"
		}
		if !CertificateHasNodeID(cert, h.From) {
			return "cert", fmt.Sprintf("certificate identity mismatch: peer claims node %q but its certificate names [%s]",
				h.From, certIdentities(cert))
		}
	}
	return "", ""
}

// closedQuietly reports whether a read error on ic is an ordinary end:
// the peer hung up, this transport is closing, or ic was evicted.
func (t *Transport) closedQuietly(ic *inConn, err error) bool {
	return errors.Is(err, io.EOF) || t.ctx.Err() != nil || t.adm.gone(ic)
}

// readMessages delivers message frames from an authenticated peer until
// the connection fails, idles past ReadTimeout, sends a malformed frame or
// cannot get memory budget for a frame before its read deadline.
func (t *Transport) readMessages(ic *inConn, conn net.Conn, br *bufio.Reader, from raft.NodeID) {
	peer, remote := string(from), conn.RemoteAddr().String()
	var deadlineSet, deadline time.Time
	for {
		// Refresh the read deadline only every quarter timeout: cheap, and
		// an idle peer is still cut off within 1.25 x ReadTimeout.
		if now := time.Now(); now.Sub(deadlineSet) > t.opts.ReadTimeout/4 {
			deadline = now.Add(t.opts.ReadTimeout)
			_ = conn.SetReadDeadline(deadline)
			deadlineSet = now
		}
		f, err := t.readBudgetedFrame(br, t.opts.MaxFrameSize, nil, nil, deadline)
		if err != nil {
			switch {
			case t.closedQuietly(ic, err):
				t.log.Debug("inbound connection closed", "peer", peer, "remote", remote, "error", err)
			case errors.Is(err, errBudgetTimeout):
				t.warn.warn("budget", "closing inbound connection: frame memory budget exhausted",
					"peer", peer, "remote", remote, "error", err)
			default:
				t.warn.warn("read", "closing inbound connection", "peer", peer, "remote", remote, "error", err)
			}
			return
		}
		if !t.deliverFrame(f, peer, remote, from) {
			return
		}
	}
}

// deliverFrame handles one frame of a message connection, returns its
// budget, and reports whether the connection may go on.
func (t *Transport) deliverFrame(f budgetedFrame, peer, remote string, from raft.NodeID) bool {
	defer t.releaseFrame(&f)
	switch f.typ {
	case frameKeepalive:
		return true
	case frameMessage:
	default:
		t.warn.warn("unexpected-frame", "closing inbound connection: unexpected frame",
			"peer", peer, "remote", remote, "frame", f.typ.String())
		return false
	}
	m, err := decodeMessage(f.body)
	if err != nil {
		t.warn.warn("malformed", "closing inbound connection: malformed message", "peer", peer, "remote", remote, "error", err)
		return false
	}
	if m.From != from {
		t.warn.warn("spoofed-from", "dropping message: from does not match the authenticated peer",
			"peer", peer, "remote", remote, "from", string(m.From), "type", m.Type.String())
		return true
	}
	if m.To != t.opts.LocalID {
		t.warn.warn("wrong-to", "dropping message addressed to another node",
			"peer", peer, "remote", remote, "to", string(m.To), "type", m.Type.String())
		return true
	}
	if h := t.currentHandler(); h != nil {
		h.HandleMessage(m)
	}
	return true
}
