package tcp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/typedraft/typedraft/raft"
)

// ErrSnapshotRefused is wrapped by SendSnapshot's error when the receiving
// node's handler refused the snapshot (or had no handler registered); the
// error text carries the receiver's reason.
var ErrSnapshotRefused = errors.New("tcp: snapshot refused by peer")

// errHandlerDone unblocks the stream once the handler has returned.
var errHandlerDone = errors.New("tcp: snapshot handler returned before the stream ended")

// SendSnapshot streams the snapshot announced by m (m.Type must be
// raft.MsgSnap) with its data read from r, over a connection of its own,
// in chunks of SnapshotChunkSize, and returns the receiver handler's
// verdict: nil once it accepted the snapshot, an error wrapping
// ErrSnapshotRefused if it refused. Other errors: raft.ErrTransportClosed,
// raft.ErrPeerUnreachable (dial or handshake failed), the error from r,
// ctx's error, or the connection's error. It holds one chunk in memory at a
// time; TCP flow control paces it to the receiver. It never delays Send.
//
// Each chunk must be written within WriteTimeout (so the receiving handler
// must keep reading) and reach the receiver within its ReadTimeout (so r
// must keep producing). Cancelling ctx, or Close, aborts the transfer; give
// ctx a deadline, since the wait for the receiver's verdict after the last
// chunk is bounded only by ctx (and TCP keepalives).
//
// An empty to.Addr uses the address learned from to.ID's handshakes (see
// Send); with none known the error wraps raft.ErrPeerUnreachable.
//
// Concurrency: any number of SendSnapshot calls may run at once, each on
// its own connection.
func (t *Transport) SendSnapshot(ctx context.Context, to raft.Peer, m raft.Message, r io.Reader) error {
	if m.Type != raft.MsgSnap {
		return fmt.Errorf("tcp: send snapshot to %s: message type is %s, want %s", to.ID, m.Type, raft.MsgSnap)
	}
	var header bytes.Buffer
	if err := encodeMessage(msgpack.NewEncoder(&header), &m); err != nil {
		return fmt.Errorf("tcp: send snapshot to %s: %w", to.ID, err)
	}
	if header.Len() > t.opts.MaxFrameSize {
		return fmt.Errorf("tcp: send snapshot to %s: header of %d bytes exceeds max frame size", to.ID, header.Len())
	}
	if t.ctx.Err() != nil {
		return fmt.Errorf("tcp: send snapshot to %s: %w", to.ID, raft.ErrTransportClosed)
	}
	// Close cancels the transfer too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopClose := context.AfterFunc(t.ctx, cancel)
	defer stopClose()

	conn, raw, err := t.dialPeer(ctx, to.ID, t.resolveAddr(to.ID, to.Addr), kindSnapshot)
	if err != nil {
		return t.snapErr(ctx, to.ID, err)
	}
	if !t.track(raw) {
		_ = raw.Close()
		return fmt.Errorf("tcp: send snapshot to %s: %w", to.ID, raft.ErrTransportClosed)
	}
	defer t.untrack(raw)
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	// The receiver may answer early (its handler returned before the end):
	// read the ack concurrently so the sender stops streaming at once.
	ackCh := make(chan ackResult, 1)
	go func() {
		typ, body, err := readFrame(conn, maxHandshakeFrame, nil)
		ackCh <- ackResult{typ: typ, body: body, err: err}
	}()
	defer func() {
		_ = raw.Close()
	}()

	sent, err := t.streamSnapshot(ctx, conn, header.Bytes(), r, ackCh)
	if err != nil {
		_ = raw.Close()
		<-ackCh
		return t.snapErr(ctx, to.ID, err)
	}
	res := <-ackCh
	if res.err == nil && res.typ != frameSnapAck {
		res.err = fmt.Errorf("tcp: got %s frame, want snap-ack", res.typ)
	}
	var ack snapAck
	if res.err == nil {
		ack, res.err = decodeSnapAck(res.body)
	}
	if res.err != nil {
		return t.snapErr(ctx, to.ID, fmt.Errorf("read ack after %d bytes: %w", sent, res.err))
	}
	if !ack.OK {
		t.log.Warn("snapshot refused", "peer", string(to.ID), "reason", ack.Reason)
		return fmt.Errorf("tcp: send snapshot to %s: %w: %s", to.ID, ErrSnapshotRefused, ack.Reason)
	}
	t.log.Debug("snapshot sent", "peer", string(to.ID), "bytes", sent, "index", snapIndex(&m))
	return nil
}

func snapIndex(m *raft.Message) uint64 {
	if m.Snapshot == nil {
		return 0
	}
	return m.Snapshot.Index
}

type ackResult struct {
	typ  frameType
	body []byte
	err  error
}

// snapErr wraps err, preferring the cancellation cause when there is one.
func (t *Transport) snapErr(ctx context.Context, id raft.NodeID, err error) error {
	switch {
	case t.ctx.Err() != nil:
		return fmt.Errorf("tcp: send snapshot to %s: %w", id, raft.ErrTransportClosed)
	case ctx.Err() != nil:
		return fmt.Errorf("tcp: send snapshot to %s: %w", id, ctx.Err())
	}
	return fmt.Errorf("tcp: send snapshot to %s: %w", id, err)
}

// streamSnapshot writes the header, the chunks and the end frame. It stops
// early (without error) if the receiver's ack arrives first, leaving the ack
// in ackCh.
func (t *Transport) streamSnapshot(ctx context.Context, conn net.Conn, header []byte, r io.Reader, ackCh chan ackResult) (uint64, error) {
	bw := bufio.NewWriterSize(conn, writeBufferSize)
	deadline := func() error {
		// Checked first so renewing the deadline never undoes a
		// cancellation (which sets a deadline in the past).
		if err := ctx.Err(); err != nil {
			return err
		}
		return conn.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout))
	}
	if err := deadline(); err != nil {
		return 0, err
	}
	if err := writeFrame(bw, frameSnapHeader, header); err != nil {
		return 0, fmt.Errorf("write header: %w", err)
	}
	buf := make([]byte, t.opts.SnapshotChunkSize)
	var sent uint64
	for {
		select {
		case res := <-ackCh:
			ackCh <- res // answered early; the caller reads it
			return sent, nil
		default:
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := deadline(); err != nil {
				return sent, err
			}
			if err := writeFrame(bw, frameSnapChunk, buf[:n]); err != nil {
				return sent, fmt.Errorf("write chunk at byte %d: %w", sent, err)
			}
			sent += uint64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return sent, fmt.Errorf("read snapshot data at byte %d: %w", sent, rerr)
		}
	}
	if err := deadline(); err != nil {
		return sent, err
	}
	if err := writeFrame(bw, frameSnapEnd, encodeSnapEnd(sent)); err != nil {
		return sent, fmt.Errorf("write end: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return sent, fmt.Errorf("write end: %w", err)
	}
	return sent, nil
}

// receiveSnapshot reads one snapshot stream from an authenticated peer,
// feeds its data to Handler.HandleSnapshot through a pipe (so at most one
// chunk is buffered) and answers with the handler's verdict. The header's
// body and the chunk buffer are held under the memory budget.
func (t *Transport) receiveSnapshot(ic *inConn, conn net.Conn, br *bufio.Reader, from raft.NodeID) {
	log := t.log.With("peer", string(from), "remote", conn.RemoteAddr().String())
	warn := func(kind, msg string, args ...any) {
		t.warn.warn("snapshot-"+kind, msg, append([]any{"peer", string(from), "remote", conn.RemoteAddr().String()}, args...)...)
	}
	refuse := func(reason string) {
		warn("refuse", "refusing snapshot", "reason", reason)
		_ = conn.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout))
		_ = writeFrame(conn, frameSnapAck, encodeSnapAck(snapAck{Reason: reason}))
	}
	deadline := time.Now().Add(t.opts.ReadTimeout)
	_ = conn.SetReadDeadline(deadline)
	f, err := t.readBudgetedFrame(br, t.opts.MaxFrameSize, nil, nil, deadline)
	if err == nil && f.typ != frameSnapHeader {
		err = fmt.Errorf("tcp: got %s frame, want snap-header", f.typ)
	}
	var m raft.Message
	if err == nil {
		m, err = decodeMessage(f.body)
	}
	t.releaseFrame(&f)
	if err != nil {
		if t.closedQuietly(ic, err) {
			log.Debug("snapshot connection closed before its header", "error", err)
			return
		}
		warn("header", "closing snapshot connection: bad header", "error", err)
		return
	}
	switch {
	case m.Type != raft.MsgSnap:
		refuse(fmt.Sprintf("header is a %s message, want %s", m.Type, raft.MsgSnap))
		return
	case m.From != from:
		refuse(fmt.Sprintf("from %q does not match the authenticated peer %q", m.From, from))
		return
	case m.To != t.opts.LocalID:
		refuse(fmt.Sprintf("addressed to %q, this is %q", m.To, t.opts.LocalID))
		return
	}
	h := t.currentHandler()
	if h == nil {
		refuse("no handler registered")
		return
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := h.HandleSnapshot(m, pr)
		_ = pr.CloseWithError(errHandlerDone)
		done <- err
	}()
	received, verdict, streamErr := t.pumpSnapshot(conn, br, pw, done)
	if streamErr != nil {
		_ = pw.CloseWithError(streamErr)
		<-done
		warn("stream", "snapshot stream failed", "bytes", received, "error", streamErr)
		return
	}
	ack := snapAck{OK: verdict == nil}
	if verdict != nil {
		ack.Reason = verdict.Error()
		warn("handler", "snapshot handler refused the snapshot", "bytes", received, "error", verdict)
	} else {
		log.Info("snapshot received", "bytes", received, "index", snapIndex(&m))
	}
	_ = conn.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout))
	if err := writeFrame(conn, frameSnapAck, encodeSnapAck(ack)); err != nil {
		warn("ack", "could not send snapshot ack", "error", err)
		return
	}
	// If the handler finished early, the sender may still be streaming:
	// discard until it sees the ack and hangs up, so closing here does not
	// reset the connection before the ack is read.
	_ = conn.SetReadDeadline(time.Now().Add(t.opts.ReadTimeout))
	_, _ = io.Copy(io.Discard, br)
}

// pumpSnapshot copies chunk frames into pw until the end frame, then
// returns the handler's verdict. A non-nil streamErr means the stream broke
// (the handler has not returned yet in that case). The chunk buffer is
// reused; while it is larger than smallFrameBody its size is held in the
// memory budget, until the stream ends.
func (t *Transport) pumpSnapshot(conn net.Conn, br *bufio.Reader, pw *io.PipeWriter, done chan error) (received uint64, verdict, streamErr error) {
	var (
		buf  []byte
		held budgetedFrame // the budget held for buf
	)
	defer t.releaseFrame(&held)
	for {
		deadline := time.Now().Add(t.opts.ReadTimeout)
		_ = conn.SetReadDeadline(deadline)
		f, err := t.readBudgetedFrame(br, t.opts.MaxFrameSize, buf, &held, deadline)
		if err != nil {
			return received, nil, fmt.Errorf("tcp: read snapshot at byte %d: %w", received, err)
		}
		if f.held > 0 { // a new, larger buffer (held was released): it replaces buf
			held = f
		}
		switch f.typ {
		case frameSnapChunk:
			buf = f.body[:0] // reuse: pw.Write returns once the handler consumed it
			received += uint64(len(f.body))
			if _, err := pw.Write(f.body); err != nil {
				// The handler returned before reading everything.
				return received, <-done, nil
			}
		case frameSnapEnd:
			total, err := decodeSnapEnd(f.body)
			if err != nil {
				return received, nil, err
			}
			if total != received {
				return received, nil, fmt.Errorf("tcp: snapshot length mismatch: sender says %d bytes, received %d", total, received)
			}
			_ = pw.Close()
			return received, <-done, nil
		default:
			return received, nil, fmt.Errorf("tcp: unexpected %s frame in snapshot stream", f.typ)
		}
	}
}
