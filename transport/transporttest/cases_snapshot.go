package transporttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/typedraft/typedraft/raft"
)

const (
	// streamSize is the snapshot size of the streaming case.
	streamSize = 64 << 20
	// maxReadAhead bounds how far the transport may read the snapshot source
	// ahead of what the receiving handler has consumed: well above any sane
	// pipeline of buffers, well below streamSize.
	maxReadAhead = 32 << 20
)

// verdictLimit bounds how long SendSnapshot may take to return once the
// receiving handler has returned, whatever it has read. A variable only so
// that the suite's own tests can shorten it.
var verdictLimit = 5 * time.Second

var errRefused = errors.New("transporttest: snapshot refused by handler")

// snapMessage returns the MsgSnap announcing a snapshot of size bytes.
func snapMessage(from, to raft.NodeID, size int64) raft.Message {
	return raft.Message{
		Type: raft.MsgSnap, From: from, To: to, Term: 9, Index: 1234, LogTerm: 8,
		Snapshot: &raft.SnapshotMeta{
			Index: 1234, Term: 8, Configuration: sampleConfig(from, to), ConfigIndex: 1000, Size: size,
		},
	}
}

// sendSnapshotAsync starts SendSnapshot in a goroutine and returns the channel
// its result arrives on.
func sendSnapshotAsync(ctx context.Context, from, to *node, m raft.Message, r io.Reader) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- from.tr.SendSnapshot(ctx, to.peer(), m, r) }()
	return errc
}

// result waits for errc and fails the test if nothing arrives in time.
func (c *cluster) result(what string, errc <-chan error) error {
	c.t.Helper()
	select {
	case err := <-errc:
		return err
	case <-after(waitTimeout):
		c.t.Fatalf("%s did not return within %v", what, waitTimeout)
		return nil
	}
}

// sha256Of returns the digest of r's data.
func sha256Of(r io.Reader) []byte {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		panic(err) // the generator never fails
	}
	return h.Sum(nil)
}

// testSnapshotStream: a 64 MiB snapshot arrives intact with its meta while
// the receiver reads it in small pieces; the transport never reads far ahead
// of the receiver (it does not buffer the snapshot whole); and while the
// stream is paused mid-way, ordinary messages still reach both a third peer
// and the snapshot's receiver, and a snapshot reaches the third peer.
func testSnapshotStream(c *cluster) {
	t := c.t
	a, b, third := c.nodes[0], c.nodes[1], c.nodes[2]
	const seed = 7
	wantSum := sha256Of(newGenerator(seed, streamSize))

	var consumed, maxAhead atomic.Int64
	src := newGenerator(seed, streamSize)
	src.onRead = func(pos int64) {
		ahead := pos - consumed.Load()
		for {
			cur := maxAhead.Load()
			if ahead <= cur || maxAhead.CompareAndSwap(cur, ahead) {
				return
			}
		}
	}

	wait, release := c.gate()
	paused := make(chan struct{})
	type received struct {
		m   raft.Message
		n   int64
		sum []byte
	}
	got := make(chan received, 1)
	b.rec.setOnSnapshot(func(m raft.Message, r io.Reader) error {
		h := sha256.New()
		buf := make([]byte, 32<<10)
		var n int64
		for {
			k, err := r.Read(buf)
			h.Write(buf[:k])
			if n < 1<<20 && n+int64(k) >= 1<<20 {
				close(paused)
				<-wait
			}
			n += int64(k)
			consumed.Store(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("read snapshot after %d bytes: %w", n, err)
			}
		}
		got <- received{m: m, n: n, sum: h.Sum(nil)}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
	defer cancel()
	errc := sendSnapshotAsync(ctx, a, b, snapMessage(a.id, b.id, streamSize), src)
	select {
	case <-paused:
	case err := <-errc:
		t.Fatalf("SendSnapshot returned %v before the receiver read 1 MiB", err)
	case <-after(waitTimeout):
		t.Fatalf("receiver did not read 1 MiB of the snapshot within %v", waitTimeout)
	}

	c.send(a, third, heartbeat(a.id, third.id, 1))
	waitFor(t, "a message to a third peer during the snapshot", func() bool { return third.rec.count(a.id) >= 1 })
	c.send(a, b, heartbeat(a.id, b.id, 1))
	waitFor(t, "a message to the snapshot's receiver during the snapshot", func() bool { return b.rec.count(a.id) >= 1 })
	c.checkSnapshotAccepted("a snapshot to a third peer during the snapshot", a, third, 1<<20, 0)
	release()

	if err := c.result("SendSnapshot", errc); err != nil {
		t.Fatalf("SendSnapshot: %v", err)
	}
	var r received
	select {
	case r = <-got:
	default:
		t.Fatal("SendSnapshot returned nil but the handler did not finish reading")
	}
	if r.n != streamSize {
		t.Fatalf("receiver read %d bytes, want %d", r.n, streamSize)
	}
	if !bytes.Equal(r.sum, wantSum) {
		t.Fatalf("snapshot data corrupted: sha256 %x, want %x", r.sum, wantSum)
	}
	if d := diffMessage(r.m, snapMessage(a.id, b.id, streamSize)); d != "" {
		t.Fatalf("snapshot message: %s", d)
	}
	if ahead := maxAhead.Load(); ahead > maxReadAhead {
		t.Fatalf("transport read %d MiB of the snapshot ahead of the receiver (limit %d MiB): it buffers instead of streaming",
			ahead>>20, maxReadAhead>>20)
	}
}

// earlyVerdict streams a snapshot whose data never ends from a to b, whose
// handler is handle, and returns SendSnapshot's error. It fails the test
// unless handle is called and returns (without reading everything: it
// cannot), SendSnapshot returns within verdictLimit after it, and the
// transport reads no more data once SendSnapshot has returned.
func (c *cluster) earlyVerdict(what string, a, b *node, handle func(raft.Message, io.Reader) error) error {
	t := c.t
	t.Helper()
	var returnedAt atomic.Int64 // UnixNano when handle returned
	b.rec.setOnSnapshot(func(m raft.Message, r io.Reader) error {
		defer returnedAt.CompareAndSwap(0, time.Now().UnixNano())
		return handle(m, r)
	})
	defer b.rec.setOnSnapshot(nil)
	var pos atomic.Int64
	src := newGenerator(11, 1<<62)
	src.onRead = func(p int64) { pos.Store(p) }
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
	defer cancel()
	errc := sendSnapshotAsync(ctx, a, b, snapMessage(a.id, b.id, 0), src)
	var err error
	select {
	case err = <-errc:
	case <-after(waitTimeout + verdictLimit):
		if returnedAt.Load() == 0 {
			t.Fatalf("%s: the snapshot handler was not called, or did not return, within %v", what, waitTimeout)
		}
		t.Fatalf("%s: SendSnapshot did not return within %v of the handler returning (%d MiB read so far): once the handler returns, the transport must end the stream and report the verdict without sending the rest",
			what, verdictLimit, pos.Load()>>20)
	}
	end := time.Now()
	ra := returnedAt.Load()
	switch {
	case ra == 0:
		t.Fatalf("%s: SendSnapshot returned %v before the receiving handler returned", what, err)
	case end.Sub(time.Unix(0, ra)) > verdictLimit:
		t.Fatalf("%s: SendSnapshot returned %v after the handler returned (limit %v): the transport kept streaming data the handler did not read",
			what, end.Sub(time.Unix(0, ra)).Round(time.Millisecond), verdictLimit)
	}
	at := pos.Load()
	time.Sleep(50 * time.Millisecond) // long enough for a stray read to show; not a wait for state
	if now := pos.Load(); now != at {
		t.Fatalf("%s: the transport read %d more bytes of the snapshot after SendSnapshot returned: it must not use r after returning",
			what, now-at)
	}
	t.Logf("%s: SendSnapshot returned %v %v after the handler, having read %d KiB",
		what, err, end.Sub(time.Unix(0, ra)).Round(time.Millisecond), at>>10)
	return err
}

// checkSnapshotAccepted sends a snapshot of size bytes from a to b, whose
// handler reads it all, takes delay to "store" it and accepts it; it fails
// the test unless SendSnapshot returns nil only after the handler returned,
// and the handler got the data intact.
func (c *cluster) checkSnapshotAccepted(what string, a, b *node, size int64, delay time.Duration) {
	t := c.t
	t.Helper()
	const seed = 12
	want := sha256Of(newGenerator(seed, size))
	var returned atomic.Bool
	var sum atomic.Pointer[[]byte]
	b.rec.setOnSnapshot(func(_ raft.Message, r io.Reader) error {
		defer returned.Store(true)
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return err
		}
		s := h.Sum(nil)
		sum.Store(&s)
		time.Sleep(delay) // a slow install: the verdict waits for it
		return nil
	})
	defer b.rec.setOnSnapshot(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
	defer cancel()
	err := c.result(what, sendSnapshotAsync(ctx, a, b, snapMessage(a.id, b.id, size), newGenerator(seed, size)))
	if err != nil {
		t.Fatalf("%s: SendSnapshot: %v", what, err)
	}
	if !returned.Load() {
		t.Fatalf("%s: SendSnapshot returned nil before the receiving handler returned: the verdict is the handler's, not the end of the data", what)
	}
	if got := sum.Load(); got == nil || !bytes.Equal(*got, want) {
		t.Fatalf("%s: the handler read other data than was sent", what)
	}
}

// testSnapshotRefused: a handler that refuses, before or after reading the
// data, makes SendSnapshot fail, promptly even though the data never ends;
// afterwards messages flow both ways without loss and a snapshot to the
// same peer is accepted.
func testSnapshotRefused(c *cluster) {
	t := c.t
	a, b := c.nodes[0], c.nodes[1]
	err := c.earlyVerdict("refused unread", a, b, func(raft.Message, io.Reader) error { return errRefused })
	if err == nil {
		t.Fatal("SendSnapshot returned nil although the handler refused without reading")
	}
	if !strings.Contains(err.Error(), errRefused.Error()) {
		t.Logf("note: the error does not carry the handler's reason %q; it helps operators if it does", errRefused)
	}
	err = c.earlyVerdict("refused after reading 1 MiB", a, b, func(_ raft.Message, r io.Reader) error {
		if _, err := io.CopyN(io.Discard, r, 1<<20); err != nil {
			return err
		}
		return errRefused
	})
	if err == nil {
		t.Fatal("SendSnapshot returned nil although the handler refused after reading")
	}
	const size = 16 << 20
	b.rec.setOnSnapshot(func(_ raft.Message, r io.Reader) error {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
		return errRefused
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
	defer cancel()
	if err := c.result("refused read snapshot",
		sendSnapshotAsync(ctx, a, b, snapMessage(a.id, b.id, size), newGenerator(1, size))); err == nil {
		t.Fatal("SendSnapshot returned nil although the handler refused after reading everything")
	}
	b.rec.setOnSnapshot(nil)
	c.exchange("messages after refused snapshots", a, b, 1, 20)
	c.exchange("messages after refused snapshots", b, a, 1, 20)
	c.checkSnapshotAccepted("a snapshot after refusals", a, b, 1<<20, 0)
}

// testSnapshotEarlyAccept: a handler that returns nil without reading the
// data (as raft's does for a stale snapshot), or after reading part of it,
// makes SendSnapshot return nil promptly, though the data never ends; the
// transport keeps working for messages both ways and for later snapshots;
// and a handler that takes a while to install a snapshot is waited for.
func testSnapshotEarlyAccept(c *cluster) {
	t := c.t
	a, b := c.nodes[0], c.nodes[1]
	next, back := uint64(1), uint64(1)
	rounds := []struct {
		what string
		read int64
	}{{"accepted unread", 0}, {"accepted after reading 100 KiB", 100 << 10}, {"accepted unread again", 0}}
	for _, r := range rounds {
		err := c.earlyVerdict(r.what, a, b, func(_ raft.Message, rd io.Reader) error {
			if r.read > 0 {
				if _, err := io.CopyN(io.Discard, rd, r.read); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: SendSnapshot returned %v although the handler returned nil", r.what, err)
		}
		next = c.exchange(r.what+": messages afterwards", a, b, next, 20)
		back = c.exchange(r.what+": messages afterwards", b, a, back, 20)
	}
	c.checkSnapshotAccepted("a snapshot read to the end after early verdicts", a, b, 4<<20, 0)
	c.checkSnapshotAccepted("a snapshot whose handler takes 300ms to install it", a, b, 1<<20, 300*time.Millisecond)
	c.exchange("messages after the snapshots", a, b, next, 20)
}

// testSnapshotCancel: cancelling the context ends SendSnapshot with an error
// even while the receiver is stuck; an already cancelled context fails at
// once.
func testSnapshotCancel(c *cluster) {
	t := c.t
	a, b := c.nodes[0], c.nodes[1]
	wait, release := c.gate()
	started := make(chan struct{})
	b.rec.setOnSnapshot(func(_ raft.Message, r io.Reader) error {
		_, err := io.ReadFull(r, make([]byte, 64<<10))
		close(started)
		<-wait
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, r)
		return err
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := sendSnapshotAsync(ctx, a, b, snapMessage(a.id, b.id, streamSize), newGenerator(2, streamSize))
	select {
	case <-started:
	case err := <-errc:
		t.Fatalf("SendSnapshot returned %v before the handler started", err)
	case <-after(waitTimeout):
		t.Fatalf("snapshot handler not called within %v", waitTimeout)
	}
	cancel()
	if err := c.result("SendSnapshot after cancel", errc); err == nil {
		t.Fatal("SendSnapshot returned nil after its context was cancelled mid-stream")
	}
	release()

	b.rec.setOnSnapshot(nil)
	done, stop := context.WithCancel(context.Background())
	stop()
	if err := c.result("SendSnapshot with a cancelled context",
		sendSnapshotAsync(done, a, b, snapMessage(a.id, b.id, 1<<20), newGenerator(3, 1<<20))); err == nil {
		t.Fatal("SendSnapshot with an already cancelled context returned nil")
	}
}

// testSnapshotUnreachable: a snapshot to a closed peer fails promptly, well
// before its context expires.
func testSnapshotUnreachable(c *cluster) {
	t := c.t
	a, b := c.nodes[0], c.nodes[1]
	c.closeNode(b)
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
	defer cancel()
	start := time.Now()
	err := c.result("SendSnapshot to a closed peer",
		sendSnapshotAsync(ctx, a, b, snapMessage(a.id, b.id, 1<<20), newGenerator(4, 1<<20)))
	if err == nil {
		t.Fatal("SendSnapshot to a closed peer returned nil")
	}
	t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
}
