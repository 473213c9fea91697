package tcp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/typedraft/typedraft/raft"
)

const (
	// writeBufferSize is the bufio buffer coalescing outbound frames.
	writeBufferSize = 64 << 10
	// maxBatchBytes ends a coalesced batch: the writer flushes and renews
	// its write deadline at least this often.
	maxBatchBytes = 1 << 20
)

// peer is the outbound side of one destination: a bounded queue drained by
// one writer goroutine (run) that owns the connection.
type peer struct {
	t     *Transport
	id    raft.NodeID
	addr  atomic.Pointer[string]
	queue chan raft.Message
}

// backoff computes exponential, jittered delays between failed dials.
type backoff struct {
	min, max time.Duration
	attempt  int
}

// next returns the delay before the next attempt and counts the failure:
// the n-th consecutive failure waits a uniformly random duration in
// [d/2, d] where d = min(max, min*2^(n-1)).
func (b *backoff) next() time.Duration {
	d := b.min
	for i := 0; i < b.attempt && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	b.attempt++
	half := d / 2
	return half + rand.N(d-half+1)
}

func (b *backoff) reset() { b.attempt = 0 }

// outConn is the writer's current connection.
type outConn struct {
	conn   net.Conn // what frames are written to (TLS or raw)
	raw    net.Conn // the TCP connection: closing it never blocks
	sw     *stallWriter
	bw     *bufio.Writer // writes to sw
	broken chan struct{} // closed when the connection's reader sees it end
	why    error         // why it broke; read only after broken is closed
}

// stallChunk is the most a stallWriter hands the connection at once: each
// such piece must be accepted within WriteStallTimeout.
const stallChunk = 64 << 10

// stallWriter writes to a connection in pieces of at most stallChunk
// bytes, each under a fresh write deadline of stall from its start, never
// later than limit (the deadline of the whole flush). A peer that stops
// reading thus fails the write after stall, while a slow but moving link
// keeps going until limit.
//
// Concurrency: used by one writer goroutine.
type stallWriter struct {
	conn  net.Conn
	stall time.Duration
	limit time.Time
}

func (w *stallWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), stallChunk)
		d := time.Now().Add(w.stall)
		if d.After(w.limit) {
			d = w.limit
		}
		if err := w.conn.SetWriteDeadline(d); err != nil {
			return written, err
		}
		m, err := w.conn.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// run drains the queue until the transport closes. It dials on demand,
// coalesces everything queued into one buffered write, sends keepalives on
// idle links and reconnects with backoff.
func (p *peer) run() {
	t := p.t
	defer t.wg.Done()
	log := t.log.With("peer", string(p.id))
	var (
		cur       *outConn
		bo        = backoff{min: t.opts.BackoffMin, max: t.opts.BackoffMax}
		scratch   bytes.Buffer
		enc       = msgpack.NewEncoder(&scratch)
		bw        = bufio.NewWriterSize(nil, writeBufferSize)
		keepalive = time.NewTimer(time.Hour)
		kaEvery   = max(t.opts.ReadTimeout/3, time.Millisecond)
	)
	keepalive.Stop()
	defer keepalive.Stop()
	// drop closes the connection; quiet logs at Debug (a clean close by the
	// peer, as when it restarts), else the warning is rate-limited.
	drop := func(reason string, err error, quiet bool) {
		if cur != nil {
			_ = cur.raw.Close()
			t.untrack(cur.raw)
			cur = nil
		}
		if t.ctx.Err() == nil {
			if quiet {
				log.Debug(reason, "error", err)
			} else {
				t.warn.warn(reason+"|"+string(p.id), reason, "peer", string(p.id), "error", err)
			}
			t.reportUnreachable(p.id)
		}
	}
	defer func() {
		if cur != nil {
			_ = cur.raw.Close()
			t.untrack(cur.raw)
		}
	}()
	for {
		var m raft.Message
		if cur == nil {
			select {
			case <-t.ctx.Done():
				return
			case m = <-p.queue:
			}
			addr := t.resolveAddr(p.id, *p.addr.Load())
			conn, raw, err := t.dialPeer(t.ctx, p.id, addr, kindMessages)
			if err != nil {
				if t.ctx.Err() != nil {
					return
				}
				dropped := 1 + drainQueue(p.queue)
				delay := bo.next()
				t.warn.warn("dial failed|"+string(p.id), "dial failed", "peer", string(p.id), "addr", addr,
					"error", err, "dropped", dropped, "attempt", bo.attempt, "retry_in", delay)
				t.reportUnreachable(p.id)
				select {
				case <-time.After(delay):
				case <-t.ctx.Done():
					return
				}
				continue
			}
			if !t.track(raw) {
				_ = raw.Close()
				return
			}
			bo.reset()
			cur = &outConn{conn: conn, raw: raw, sw: &stallWriter{conn: conn, stall: t.opts.WriteStallTimeout},
				bw: bw, broken: make(chan struct{})}
			bw.Reset(cur.sw)
			t.wg.Add(1)
			go watchConn(t, cur)
			log.Debug("connected", "addr", addr)
		} else {
			select {
			case <-t.ctx.Done():
				return
			case <-cur.broken:
				drop("connection closed by peer", cur.why, errors.Is(cur.why, io.EOF))
				continue
			case <-keepalive.C:
				cur.sw.limit = time.Now().Add(t.opts.WriteTimeout)
				err := writeFrame(cur.bw, frameKeepalive, nil)
				if err == nil {
					err = cur.bw.Flush()
				}
				if err != nil {
					drop("keepalive failed", err, false)
					continue
				}
				keepalive.Reset(kaEvery)
				continue
			case m = <-p.queue:
			}
		}
		if err := p.writeBatch(cur, m, &scratch, enc); err != nil {
			drop("write failed, reconnecting", err, false)
			continue
		}
		keepalive.Reset(kaEvery)
	}
}

// writeBatch writes m and whatever else is queued (up to maxBatchBytes)
// into the buffer, then flushes once. The whole write must finish within
// WriteTimeout, and every piece of it make progress within
// WriteStallTimeout (see stallWriter).
func (p *peer) writeBatch(c *outConn, m raft.Message, scratch *bytes.Buffer, enc *msgpack.Encoder) error {
	t := p.t
	c.sw.limit = time.Now().Add(t.opts.WriteTimeout)
	written := 0
	for {
		scratch.Reset()
		if err := encodeMessage(enc, &m); err != nil {
			t.warn.error("unencodable|"+string(p.id), "dropping message that cannot be encoded", "peer", string(p.id), "error", err)
		} else if scratch.Len() > t.opts.MaxFrameSize {
			t.warn.error("oversized|"+string(p.id), "dropping message larger than the max frame size", "peer", string(p.id),
				"type", m.Type.String(), "bytes", scratch.Len(), "limit", t.opts.MaxFrameSize)
		} else {
			if err := writeFrame(c.bw, frameMessage, scratch.Bytes()); err != nil {
				return err
			}
			written += frameHdrSize + scratch.Len()
		}
		if written >= maxBatchBytes {
			break
		}
		select {
		case m = <-p.queue:
			continue
		default:
		}
		break
	}
	if scratch.Cap() > 4*writeBufferSize {
		*scratch = bytes.Buffer{} // do not pin a huge buffer after a big message
	}
	return c.bw.Flush()
}

// watchConn reads from an outbound message connection, on which the peer
// never sends after the handshake, to notice promptly when it closes; it
// records why in c.why before closing c.broken.
func watchConn(t *Transport, c *outConn) {
	defer t.wg.Done()
	defer close(c.broken)
	var b [1]byte
	_, err := c.conn.Read(b[:])
	if err == nil {
		err = errors.New("tcp: peer sent data on an outbound message connection")
	}
	c.why = err
}

// drainQueue empties q without blocking and returns how many it dropped.
func drainQueue(q chan raft.Message) int {
	n := 0
	for {
		select {
		case <-q:
			n++
		default:
			return n
		}
	}
}

// dialPeer connects to node id at addr and runs the dialer side of the
// handshake (TLS, hello, reply) within HandshakeTimeout. It returns the
// connection to use and the underlying TCP connection, which is what the
// caller tracks and closes (closing a TLS connection may block sending an
// alert). On success neither has a deadline set.
//
// In plaintext without Options.InsecurePlaintext, addr must be loopback
// (names are resolved and the checked IPs dialed); otherwise nothing is
// dialed and the error wraps ErrPlaintextNotLoopback.
//
// Errors wrap raft.ErrPeerUnreachable for dial and I/O failures and for a
// non-loopback address in plaintext, and errRefused when the peer refused
// the hello.
func (t *Transport) dialPeer(ctx context.Context, id raft.NodeID, addr string, kind connKind) (conn, raw net.Conn, err error) {
	if addr == "" {
		return nil, nil, fmt.Errorf("tcp: peer %s has no address: %w", id, raft.ErrPeerUnreachable)
	}
	dctx, cancel := context.WithTimeout(ctx, t.opts.DialTimeout)
	targets, err := t.dialTargets(dctx, addr)
	for _, target := range targets {
		if raw, err = t.dial(dctx, "tcp", target); err == nil {
			break
		}
	}
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("tcp: dial %s at %s: %w: %w", id, addr, raft.ErrPeerUnreachable, err)
	}
	conn, err = t.clientHandshake(ctx, raw, id, kind)
	if err != nil {
		_ = raw.Close()
		if errors.Is(err, errRefused) {
			return nil, nil, fmt.Errorf("tcp: handshake with %s at %s: %w", id, addr, err)
		}
		return nil, nil, fmt.Errorf("tcp: handshake with %s at %s: %w: %w", id, addr, raft.ErrPeerUnreachable, err)
	}
	return conn, raw, nil
}

func (t *Transport) clientHandshake(ctx context.Context, raw net.Conn, id raft.NodeID, kind connKind) (net.Conn, error) {
	if err := raw.SetDeadline(time.Now().Add(t.opts.HandshakeTimeout)); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	conn := raw
	if t.opts.TLS != nil {
		tc := tls.Client(raw, clientTLS(t.opts.TLS, id))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		conn = tc
	}
	h := hello{ClusterID: t.opts.ClusterID, From: t.opts.LocalID, To: id, Kind: kind, Addr: t.opts.AdvertiseAddr}
	if err := writeFrame(conn, frameHello, encodeHello(h)); err != nil {
		return nil, fmt.Errorf("write hello: %w", err)
	}
	typ, body, err := readFrame(conn, maxHandshakeFrame, nil)
	if err == nil && typ != frameHelloReply {
		err = fmt.Errorf("got %s frame, want hello-reply", typ)
	}
	if err != nil {
		return nil, fmt.Errorf("read hello reply: %w", err)
	}
	r, err := decodeHelloReply(body)
	if err != nil {
		return nil, err
	}
	if !r.OK {
		return nil, fmt.Errorf("%w: %s", errRefused, r.Reason)
	}
	if r.ClusterID != t.opts.ClusterID || r.NodeID != id {
		return nil, fmt.Errorf("%w: peer answered as node %q of cluster %q, want %q of %q",
			errRefused, r.NodeID, r.ClusterID, id, t.opts.ClusterID)
	}
	if !stop() {
		return nil, ctx.Err() // cancelled during the handshake
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return conn, nil
}
