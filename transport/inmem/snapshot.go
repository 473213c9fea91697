package inmem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// snapshotChunk is the size of the pieces a snapshot is copied in.
const snapshotChunk = 64 << 10

// errHandlerDone closes the pipe's read side once the handler has returned,
// so the copy stops.
var errHandlerDone = errors.New("inmem: snapshot handler returned")

func closedErr(id raft.NodeID) error {
	return fmt.Errorf("inmem: node %s: %w", id, raft.ErrTransportClosed)
}

func unreachableErr(id raft.NodeID, why string) error {
	return fmt.Errorf("inmem: snapshot to %s: %s: %w", id, why, raft.ErrPeerUnreachable)
}

// stream is one snapshot transfer in progress.
type stream struct {
	pr *io.PipeReader
	pw *io.PipeWriter

	mu     sync.Mutex
	reason error // why the transfer was aborted, if it was
}

// abort ends the transfer with err on both sides; the first reason wins.
func (s *stream) abort(err error) {
	s.mu.Lock()
	if s.reason == nil {
		s.reason = err
	}
	s.mu.Unlock()
	s.pr.CloseWithError(err)
	s.pw.CloseWithError(err)
}

func (s *stream) aborted() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

// track adds s to t's transfers; it reports false once t is closed.
func (t *Transport) track(s *stream) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.streams[s] = struct{}{}
	return true
}

func (t *Transport) untrack(s *stream) {
	t.mu.Lock()
	delete(t.streams, s)
	t.mu.Unlock()
}

// SendSnapshot streams the snapshot announced by m, with its data read from
// r, to the handler of the node at to.Addr (or to.ID), and returns that
// handler's verdict. The data travels through an io.Pipe in 64 KiB chunks,
// so it is never held whole in memory. It blocks for the transfer and does
// not delay Send.
//
// Errors: a wrapped raft.ErrPeerUnreachable if the destination is unknown,
// closed, has no handler, or the link is cut in either direction (before or
// during the transfer) or drops it at random (SetDropRate); a wrapped
// raft.ErrTransportClosed if t is or gets closed; ctx's error if ctx ends
// first; an error wrapping the handler's error if it refuses the snapshot; the
// error from r if reading the data fails; and an error naming the problem if
// m is not a MsgSnap from t's node to the destination node. The caller keeps
// ownership of r; SendSnapshot does not close it, and does not read from it
// after returning.
func (t *Transport) SendSnapshot(ctx context.Context, to raft.Peer, m raft.Message, r io.Reader) error {
	if r == nil {
		return fmt.Errorf("inmem: snapshot to %s: nil reader", to.ID)
	}
	if m.Type != raft.MsgSnap {
		return fmt.Errorf("inmem: snapshot to %s: message type %s, want %s", to.ID, m.Type, raft.MsgSnap)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("inmem: snapshot to %s: %w", to.ID, err)
	}
	n := t.net
	addr := to.Addr
	if addr == "" {
		addr = string(to.ID)
	}
	peerID := to.ID

	n.mu.Lock()
	dest := n.nodes[addr]
	if dest != nil {
		peerID = dest.id
	}
	c := n.countersLocked(t.id, peerID)
	var err error
	var d decision
	switch {
	case t.isClosed():
		err = closedErr(t.id)
	case dest == nil:
		err = unreachableErr(peerID, "no node at "+addr)
	case m.From != t.id || m.To != dest.id:
		err = fmt.Errorf("inmem: snapshot on link %s->%s carries message %s->%s", t.id, dest.id, m.From, m.To)
	case n.faults.blocked(t.id, dest.id) || n.faults.blocked(dest.id, t.id):
		err = unreachableErr(peerID, "link cut")
	default:
		if d = n.decideLocked(t.id, dest.id); d.drop {
			err = unreachableErr(peerID, "dropped")
		}
	}
	n.mu.Unlock()
	if err != nil {
		c.dropped.Add(1)
		return err
	}
	if d.delay > 0 {
		if err := t.sleep(ctx, d.delay); err != nil {
			c.dropped.Add(1)
			return fmt.Errorf("inmem: snapshot to %s: %w", peerID, err)
		}
	}

	written, err := t.stream(ctx, dest, cloneMessage(m), r)
	if err != nil {
		c.dropped.Add(1)
		return err
	}
	c.messages.Add(1)
	c.bytes.Add(messageSize(&m) + uint64(written))
	return nil
}

// sleep waits for d, ctx or t's Close, whichever comes first.
func (t *Transport) sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.stop:
		return closedErr(t.id)
	}
}

// stream runs one transfer to dest and returns the bytes copied.
func (t *Transport) stream(ctx context.Context, dest *Transport, m raft.Message, r io.Reader) (int64, error) {
	if !dest.enter() {
		return 0, unreachableErr(dest.id, "node closed")
	}
	h := dest.handler()
	if h == nil {
		dest.exit()
		return 0, unreachableErr(dest.id, "no handler registered")
	}
	pr, pw := io.Pipe()
	s := &stream{pr: pr, pw: pw}
	if !t.track(s) {
		dest.exit()
		return 0, closedErr(t.id)
	}
	defer t.untrack(s)
	if !dest.track(s) {
		dest.exit()
		return 0, unreachableErr(dest.id, "node closed")
	}
	defer dest.untrack(s)

	verdict := make(chan error, 1)
	go func() {
		defer dest.exit()
		err := h.HandleSnapshot(m, pr)
		pr.CloseWithError(errHandlerDone)
		verdict <- err
	}()
	stopWatch := context.AfterFunc(ctx, func() { s.abort(ctx.Err()) })
	defer stopWatch()

	written, copyErr := t.copyChunks(pw, r, dest.id, s)
	if copyErr != nil {
		pw.CloseWithError(copyErr)
	} else {
		pw.Close()
	}

	var herr error
	select {
	case herr = <-verdict:
	case <-ctx.Done():
		s.abort(ctx.Err())
	case <-t.stop:
		s.abort(closedErr(t.id))
	}
	if reason := s.aborted(); reason != nil {
		return written, fmt.Errorf("inmem: snapshot to %s: %w", dest.id, reason)
	}
	if herr != nil {
		return written, fmt.Errorf("inmem: snapshot to %s refused: %w", dest.id, herr)
	}
	if copyErr != nil && !errors.Is(copyErr, errHandlerDone) {
		return written, fmt.Errorf("inmem: snapshot to %s: %w", dest.id, copyErr)
	}
	return written, nil
}

// copyChunks copies r into pw chunk by chunk, aborting s if the link is cut.
// Errors from r are returned as they are; a failed write returns the reason
// the pipe was closed.
func (t *Transport) copyChunks(pw *io.PipeWriter, r io.Reader, to raft.NodeID, s *stream) (int64, error) {
	buf := make([]byte, snapshotChunk)
	var written int64
	for {
		nr, rerr := r.Read(buf)
		if nr > 0 {
			if t.net.blocked(t.id, to) || t.net.blocked(to, t.id) {
				err := unreachableErr(to, "link cut during transfer")
				s.abort(err)
				return written, err
			}
			nw, werr := pw.Write(buf[:nr])
			written += int64(nw)
			if werr != nil {
				return written, werr
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, fmt.Errorf("read snapshot data: %w", rerr)
		}
	}
}
