package transporttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
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
// and the snapshot's receiver.
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

// testSnapshotRefused: a handler that refuses, before or after reading the
// data, makes SendSnapshot fail; a later snapshot to the same peer works.
func testSnapshotRefused(c *cluster) {
	t := c.t
	a, b := c.nodes[0], c.nodes[1]
	const size = 16 << 20
	run := func(what string, handle func(raft.Message, io.Reader) error) error {
		b.rec.setOnSnapshot(handle)
		ctx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
		defer cancel()
		return c.result(what, sendSnapshotAsync(ctx, a, b, snapMessage(a.id, b.id, size), newGenerator(1, size)))
	}
	if err := run("refused unread snapshot", func(raft.Message, io.Reader) error { return errRefused }); err == nil {
		t.Fatal("SendSnapshot returned nil although the handler refused without reading")
	} else {
		t.Logf("refused unread: %v", err)
	}
	err := run("refused read snapshot", func(_ raft.Message, r io.Reader) error {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
		return errRefused
	})
	if err == nil {
		t.Fatal("SendSnapshot returned nil although the handler refused after reading")
	}
	if err := run("accepted snapshot", nil); err != nil {
		t.Fatalf("SendSnapshot after refusals: %v", err)
	}
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
