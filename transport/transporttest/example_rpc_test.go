package transporttest_test

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/transporttest"
)

// This file is a complete raft.Transport over an RPC library, of the kind
// an outside team writes over MIT 6.5840's labrpc, and the test that runs
// the conformance suite on it (rpcConformance, run by TestRPCTransport).
// rpcNet stands in for the RPC library.

// rpcNet is a stand-in for an RPC library: servers by address, and
// synchronous calls that copy their arguments and replies, name the
// calling node, and fail at once when no server listens.
type rpcNet struct {
	mu      sync.Mutex
	servers map[string]*rpcTransport
}

var errNoServer = errors.New("rpcnet: no server at address")

func (n *rpcNet) call(from raft.NodeID, addr, method string, args []byte) ([]byte, error) {
	n.mu.Lock()
	s := n.servers[addr]
	n.mu.Unlock()
	if s == nil {
		return nil, errNoServer
	}
	reply, err := s.serve(from, method, bytes.Clone(args))
	return bytes.Clone(reply), err
}

// rpcTransport is one node's raft.Transport. Messages to a peer go through
// a bounded queue drained by one goroutine making one call at a time, which
// keeps them in order. A snapshot is a session of calls: begin, then chunks
// whose replies carry the receiving handler's verdict as soon as it has
// one, so the sender stops streaming at once.
type rpcTransport struct {
	net    *rpcNet
	id     raft.NodeID
	addr   string
	h      atomic.Pointer[raft.Handler]
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // outbound goroutines
	calls  sync.WaitGroup // inbound calls and snapshot handlers in progress

	mu     sync.Mutex
	closed bool
	peers  map[raft.NodeID]*rpcPeer
	snaps  map[snapKey]*inSnap
	nextID uint64
}

type rpcPeer struct {
	addr  string
	queue chan raft.Message
}

type snapKey struct {
	from raft.NodeID
	id   uint64
}

// inSnap is an inbound snapshot: the pipe the handler reads, and its
// verdict once it has returned.
type inSnap struct {
	pw      *io.PipeWriter
	verdict chan error // buffered; receives the handler's result
	idle    *time.Timer
}

type snapChunk struct {
	ID   uint64
	Data []byte
	Last bool
}

type snapReply struct {
	ID   uint64
	Done bool   // the handler has returned
	Err  string // its error, if it refused
}

const (
	queueSize  = 1024
	chunkSize  = 1 << 20
	snapIdle   = 30 * time.Second // an inbound snapshot with no chunk for this long is aborted
	reportGap  = 100 * time.Millisecond
	methodMsgs = "Raft.Messages"
)

var errHandlerDone = errors.New("rpc: snapshot handler returned")

func newRPCTransport(n *rpcNet, id raft.NodeID, addr string) *rpcTransport {
	ctx, cancel := context.WithCancel(context.Background())
	t := &rpcTransport{net: n, id: id, addr: addr, ctx: ctx, cancel: cancel,
		peers: map[raft.NodeID]*rpcPeer{}, snaps: map[snapKey]*inSnap{}}
	n.mu.Lock()
	n.servers[addr] = t // a restarted node replaces its previous incarnation
	n.mu.Unlock()
	return t
}

// Register implements raft.Transport.
func (t *rpcTransport) Register(h raft.Handler) {
	if h == nil {
		t.h.Store(nil)
		return
	}
	t.h.Store(&h)
}

func (t *rpcTransport) handler() raft.Handler {
	if h := t.h.Load(); h != nil {
		return *h
	}
	return nil
}

func (t *rpcTransport) report(id raft.NodeID) {
	if h := t.handler(); h != nil && t.ctx.Err() == nil {
		h.ReportUnreachable(id)
	}
}

// Send implements raft.Transport: it queues and never waits. A full queue
// drops the rest of msgs and reports the peer once for the whole call.
func (t *rpcTransport) Send(to raft.Peer, msgs []raft.Message) {
	if len(msgs) == 0 {
		return
	}
	if to.Addr == "" { // this transport learns no addresses
		t.report(to.ID)
		return
	}
	p := t.peer(to)
	if p == nil {
		return // closed: drop silently
	}
	for _, m := range msgs {
		select {
		case p.queue <- m: // encoded by the peer goroutine: never shared
		default:
			t.report(to.ID)
			return
		}
	}
}

func (t *rpcTransport) peer(to raft.Peer) *rpcPeer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	p := t.peers[to.ID]
	if p == nil {
		p = &rpcPeer{addr: to.Addr, queue: make(chan raft.Message, queueSize)}
		t.peers[to.ID] = p
		t.wg.Add(1)
		go t.run(to.ID, p)
	}
	return p
}

// run delivers p's queue in batches, one call at a time. A failed call
// loses its batch; the first failure after a success is reported, and then
// at most one per reportGap while calls keep failing.
func (t *rpcTransport) run(id raft.NodeID, p *rpcPeer) {
	defer t.wg.Done()
	var lastReport time.Time
	failing := false
	for {
		var batch []raft.Message
		select {
		case <-t.ctx.Done():
			return
		case m := <-p.queue:
			batch = append(batch, m)
		}
	more:
		for len(batch) < 64 {
			select {
			case m := <-p.queue:
				batch = append(batch, m)
			default:
				break more
			}
		}
		args, err := encode(batch)
		if err == nil {
			_, err = t.net.call(t.id, p.addr, methodMsgs, args)
		}
		if err == nil {
			failing = false
			continue
		}
		if !failing || time.Since(lastReport) > reportGap {
			t.report(id)
			lastReport = time.Now()
		}
		failing = true
	}
}

// SendSnapshot implements raft.Transport.
func (t *rpcTransport) SendSnapshot(ctx context.Context, to raft.Peer, m raft.Message, r io.Reader) error {
	if m.Type != raft.MsgSnap {
		return fmt.Errorf("rpc: snapshot to %s: message type %s", to.ID, m.Type)
	}
	if t.ctx.Err() != nil {
		return fmt.Errorf("rpc: snapshot to %s: %w", to.ID, raft.ErrTransportClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rpc: snapshot to %s: %w", to.ID, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(t.ctx, cancel)()
	fail := func(err error) error {
		switch {
		case t.ctx.Err() != nil:
			err = raft.ErrTransportClosed
		case ctx.Err() != nil:
			err = ctx.Err()
		case errors.Is(err, errNoServer):
			err = fmt.Errorf("%w: %v", raft.ErrPeerUnreachable, err)
		}
		return fmt.Errorf("rpc: snapshot to %s: %w", to.ID, err)
	}
	args, _ := encode(m)
	reply, err := t.callCtx(ctx, to.Addr, "Raft.SnapBegin", args)
	if err != nil {
		return fail(err)
	}
	var begun snapReply
	if err := decode(reply, &begun); err != nil {
		return fail(err)
	}
	abort := func() { // best effort: unblocks a receiver stuck in a chunk
		args, _ := encode(begun.ID)
		_, _ = t.net.call(t.id, to.Addr, "Raft.SnapAbort", args)
	}
	buf := make([]byte, chunkSize)
	for {
		n, rerr := io.ReadFull(r, buf)
		last := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
		if rerr != nil && !last {
			abort()
			return fail(fmt.Errorf("read snapshot data: %w", rerr))
		}
		args, _ := encode(snapChunk{ID: begun.ID, Data: buf[:n], Last: last})
		reply, err := t.callCtx(ctx, to.Addr, "Raft.SnapChunk", args)
		if err != nil {
			abort()
			return fail(err)
		}
		var res snapReply
		if err := decode(reply, &res); err != nil {
			abort()
			return fail(err)
		}
		if res.Done { // the handler has returned: stop streaming
			if res.Err != "" {
				return fmt.Errorf("rpc: snapshot to %s refused: %s", to.ID, res.Err)
			}
			return nil
		}
		if last {
			return fail(errors.New("no verdict after the last chunk"))
		}
	}
}

// callCtx makes a call that ctx can abandon (the call itself finishes in
// the background once the receiver lets go of it).
func (t *rpcTransport) callCtx(ctx context.Context, addr, method string, args []byte) ([]byte, error) {
	type result struct {
		reply []byte
		err   error
	}
	done := make(chan result, 1)
	t.mu.Lock() // Close waits for t.wg: no Add once it has begun
	if t.closed {
		t.mu.Unlock()
		return nil, raft.ErrTransportClosed
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		reply, err := t.net.call(t.id, addr, method, args)
		done <- result{reply, err}
	}()
	select {
	case res := <-done:
		return res.reply, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// serve answers a call from node from.
func (t *rpcTransport) serve(from raft.NodeID, method string, args []byte) ([]byte, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, errNoServer
	}
	t.calls.Add(1)
	t.mu.Unlock()
	defer t.calls.Done()
	switch method {
	case methodMsgs:
		var msgs []raft.Message
		if err := decode(args, &msgs); err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if h := t.handler(); h != nil && m.From == from && m.To == t.id {
				h.HandleMessage(m)
			}
		}
		return nil, nil
	case "Raft.SnapBegin":
		var m raft.Message
		if err := decode(args, &m); err != nil {
			return nil, err
		}
		return t.beginSnap(from, m)
	case "Raft.SnapChunk":
		var c snapChunk
		if err := decode(args, &c); err != nil {
			return nil, err
		}
		return t.snapChunk(from, c)
	case "Raft.SnapAbort":
		var id uint64
		if err := decode(args, &id); err != nil {
			return nil, err
		}
		t.endSnap(snapKey{from, id}, errors.New("rpc: snapshot aborted by the sender"))
		return nil, nil
	}
	return nil, fmt.Errorf("rpc: unknown method %s", method)
}

func (t *rpcTransport) beginSnap(from raft.NodeID, m raft.Message) ([]byte, error) {
	h := t.handler()
	switch {
	case m.From != from || m.To != t.id:
		return nil, fmt.Errorf("rpc: snapshot %s->%s on a call from %s to %s", m.From, m.To, from, t.id)
	case h == nil:
		return nil, errors.New("rpc: no handler registered")
	}
	pr, pw := io.Pipe()
	s := &inSnap{pw: pw, verdict: make(chan error, 1)}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, errNoServer
	}
	t.nextID++
	key := snapKey{from, t.nextID}
	t.snaps[key] = s
	s.idle = time.AfterFunc(snapIdle, func() { t.endSnap(key, errors.New("rpc: snapshot stream stalled")) })
	t.calls.Add(1) // the handler call, which Close waits for
	t.mu.Unlock()
	go func() {
		defer t.calls.Done()
		err := h.HandleSnapshot(m, pr)
		_ = pr.CloseWithError(errHandlerDone) // r is not used afterwards
		s.verdict <- err
	}()
	return encode(snapReply{ID: key.id})
}

// snapChunk feeds one chunk to the handler and answers with its verdict
// if it has one: at once when it returned early, after it returns for the
// last chunk.
func (t *rpcTransport) snapChunk(from raft.NodeID, c snapChunk) ([]byte, error) {
	key := snapKey{from, c.ID}
	t.mu.Lock()
	s := t.snaps[key]
	t.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("rpc: no snapshot %d from %s in progress", c.ID, from)
	}
	s.idle.Reset(snapIdle)
	_, werr := s.pw.Write(c.Data) // blocks until the handler has read it
	if werr != nil && !errors.Is(werr, errHandlerDone) {
		return nil, fmt.Errorf("rpc: snapshot %d from %s: %w", c.ID, from, werr) // aborted
	}
	if c.Last && werr == nil {
		_ = s.pw.Close()
	}
	var verdict error
	select {
	case verdict = <-s.verdict:
	default:
		if werr == nil && !c.Last {
			return encode(snapReply{ID: c.ID}) // go on
		}
		// The handler returned (or will, having got EOF or an abort):
		// wait for its verdict.
		select {
		case verdict = <-s.verdict:
		case <-t.ctx.Done():
			return nil, errNoServer
		}
	}
	t.endSnap(key, nil)
	reply := snapReply{ID: c.ID, Done: true}
	if verdict != nil {
		reply.Err = verdict.Error()
	}
	return encode(reply)
}

// endSnap forgets a session; with a reason, it aborts the handler's stream.
func (t *rpcTransport) endSnap(key snapKey, reason error) {
	t.mu.Lock()
	s := t.snaps[key]
	delete(t.snaps, key)
	t.mu.Unlock()
	if s == nil {
		return
	}
	s.idle.Stop()
	if reason != nil {
		_ = s.pw.CloseWithError(reason)
	}
}

// Close stops the transport: calls to it fail, queued messages are
// dropped, inbound snapshots are aborted, and it waits for its goroutines
// and for the handler calls in progress.
func (t *rpcTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	keys := make([]snapKey, 0, len(t.snaps))
	for k := range t.snaps {
		keys = append(keys, k)
	}
	t.mu.Unlock()
	t.net.mu.Lock()
	if t.net.servers[t.addr] == t {
		delete(t.net.servers, t.addr)
	}
	t.net.mu.Unlock()
	t.cancel()
	for _, k := range keys {
		t.endSnap(k, raft.ErrTransportClosed)
	}
	t.wg.Wait()
	t.calls.Wait()
	return nil
}

// encode and decode copy through gob, so no two nodes share memory.
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	err := gob.NewEncoder(&b).Encode(v)
	return b.Bytes(), err
}

func decode(b []byte, v any) error { return gob.NewDecoder(bytes.NewReader(b)).Decode(v) }

// rpcConformance is the test an implementer adds to their package as
//
//	func TestConformance(t *testing.T) { ... }
//
// It runs the whole suite over rpcTransports: one rpcNet per case, each
// endpoint at its own address, Restart opening a new incarnation there.
func rpcConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, ids []raft.NodeID) []transporttest.Endpoint {
		n := &rpcNet{servers: map[string]*rpcTransport{}}
		eps := make([]transporttest.Endpoint, len(ids))
		for i, id := range ids {
			addr := "rpc://" + string(id)
			cur := newRPCTransport(n, id, addr)
			eps[i] = transporttest.Endpoint{
				ID: id, Addr: addr, Transport: cur,
				Close: func() error { return cur.Close() },
				Restart: func() (raft.Transport, error) {
					cur = newRPCTransport(n, id, addr)
					return cur, nil
				},
			}
		}
		return eps
	})
}

// printer is a raft.Handler that prints what arrives.
type printer struct{ got chan string }

func (p printer) HandleMessage(m raft.Message) { p.got <- fmt.Sprintf("message %s", m) }

func (p printer) HandleSnapshot(m raft.Message, r io.Reader) error {
	p.got <- fmt.Sprintf("snapshot %d from %s, returned without reading", m.Snapshot.Index, m.From)
	return nil // stale: raft's handler returns nil without reading
}

func (p printer) ReportUnreachable(id raft.NodeID) { p.got <- fmt.Sprintf("unreachable %s", id) }

// Example_rpcTransport uses the transport above the way raft does; the
// conformance suite runs on it in TestRPCTransport, through rpcConformance.
func Example_rpcTransport() {
	n := &rpcNet{servers: map[string]*rpcTransport{}}
	a := newRPCTransport(n, "a", "rpc://a")
	b := newRPCTransport(n, "b", "rpc://b")
	defer a.Close()
	defer b.Close()
	pa, pb := printer{make(chan string, 16)}, printer{make(chan string, 16)}
	a.Register(pa)
	b.Register(pb)

	a.Send(raft.Peer{ID: "b", Addr: "rpc://b"}, []raft.Message{{Type: raft.MsgHeartbeat, From: "a", To: "b", Term: 2, Commit: 7}})
	fmt.Println(<-pb.got)

	// A stale snapshot: the handler answers at once, and the sender stops
	// reading data that never ends.
	snap := raft.Message{Type: raft.MsgSnap, From: "a", To: "b", Term: 2, Snapshot: &raft.SnapshotMeta{Index: 5, Term: 1}}
	err := a.SendSnapshot(context.Background(), raft.Peer{ID: "b", Addr: "rpc://b"}, snap, endless{})
	fmt.Println(<-pb.got)
	fmt.Println("SendSnapshot:", err)

	// A closed peer: the loss is reported.
	c := newRPCTransport(n, "c", "rpc://c")
	c.Close()
	a.Send(raft.Peer{ID: "c", Addr: "rpc://c"}, []raft.Message{{Type: raft.MsgHeartbeat, From: "a", To: "c", Term: 2}})
	fmt.Println(<-pa.got)
	// Output:
	// message Heartbeat a->b t2 i0 lt0 c7 n0 rej=false
	// snapshot 5 from a, returned without reading
	// SendSnapshot: <nil>
	// unreachable c
}

// endless is snapshot data that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }
