package inmem_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/inmem"
)

func snapMsg(from, to raft.NodeID) raft.Message {
	return raft.Message{Type: raft.MsgSnap, From: from, To: to, Term: 2,
		Snapshot: &raft.SnapshotMeta{Index: 10, Term: 2, Configuration: raft.Configuration{
			Servers: []raft.Server{{ID: from}, {ID: to}}}}}
}

func TestSnapshotDeliversDataAndMeta(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b")
	a, b := ns[0], ns[1]
	var got []byte
	var gotMeta raft.Message
	b.c.onSnapshot = func(m raft.Message, r io.Reader) error {
		gotMeta = m
		var err error
		got, err = io.ReadAll(r)
		return err
	}
	data := bytes.Repeat([]byte("snapshot!"), 100_000) // spans many chunks
	m := snapMsg("a", "b")
	if err := a.tr.SendSnapshot(t.Context(), peer(b), m, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want %d equal bytes", len(got), len(data))
	}
	m.Snapshot.Configuration.Servers[0].ID = "changed" // the receiver has its own copy
	if gotMeta.Snapshot == m.Snapshot || gotMeta.Snapshot.Configuration.Servers[0].ID != "a" {
		t.Fatalf("snapshot meta shared with the sender: %+v", gotMeta.Snapshot)
	}
}

func TestSnapshotErrors(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b", "c")
	a, b, c := ns[0], ns[1], ns[2]
	data := func() io.Reader { return strings.NewReader("data") }
	ctx := t.Context()

	errRefuse := errors.New("refused: disk full")
	b.c.onSnapshot = func(raft.Message, io.Reader) error { return errRefuse }
	if err := a.tr.SendSnapshot(ctx, peer(b), snapMsg("a", "b"), data()); !errors.Is(err, errRefuse) {
		t.Errorf("refused snapshot: got %v, want the handler's error", err)
	}

	if err := a.tr.SendSnapshot(ctx, raft.Peer{ID: "ghost"}, snapMsg("a", "ghost"), data()); !errors.Is(err, raft.ErrPeerUnreachable) {
		t.Errorf("unknown peer: got %v", err)
	}
	if err := a.tr.SendSnapshot(ctx, peer(b), raft.Message{Type: raft.MsgApp, From: "a", To: "b"}, data()); err == nil {
		t.Error("a MsgApp was accepted as a snapshot")
	}
	if err := a.tr.SendSnapshot(ctx, peer(b), snapMsg("c", "b"), data()); err == nil {
		t.Error("a snapshot with a forged From was accepted")
	}
	if err := a.tr.SendSnapshot(ctx, peer(b), snapMsg("a", "b"), nil); err == nil {
		t.Error("a nil reader was accepted")
	}

	// A cut in either direction makes the peer unreachable.
	c.c.onSnapshot = nil
	net.Cut("c", "a")
	if err := a.tr.SendSnapshot(ctx, peer(c), snapMsg("a", "c"), data()); !errors.Is(err, raft.ErrPeerUnreachable) {
		t.Errorf("reverse link cut: got %v", err)
	}
	net.Heal()
	if err := net.Partition([]raft.NodeID{"a"}); err != nil {
		t.Fatal(err)
	}
	if err := a.tr.SendSnapshot(ctx, peer(c), snapMsg("a", "c"), data()); !errors.Is(err, raft.ErrPeerUnreachable) {
		t.Errorf("partitioned: got %v", err)
	}
	net.Heal()
	if err := net.SetDropRate("a", "c", 1); err != nil {
		t.Fatal(err)
	}
	if err := a.tr.SendSnapshot(ctx, peer(c), snapMsg("a", "c"), data()); !errors.Is(err, raft.ErrPeerUnreachable) {
		t.Errorf("dropped: got %v", err)
	}
	net.Heal()

	c.tr.Register(nil)
	if err := a.tr.SendSnapshot(ctx, peer(c), snapMsg("a", "c"), data()); !errors.Is(err, raft.ErrPeerUnreachable) {
		t.Errorf("no handler: got %v", err)
	}
	c.tr.Register(c.c)

	readErr := errors.New("disk read failed")
	src := io.MultiReader(strings.NewReader("part"), errReader{readErr})
	if err := a.tr.SendSnapshot(ctx, peer(c), snapMsg("a", "c"), src); !errors.Is(err, readErr) {
		t.Errorf("failing source: got %v, want the read error", err)
	}

	_ = a.tr.Close()
	if err := a.tr.SendSnapshot(ctx, peer(c), snapMsg("a", "c"), data()); !errors.Is(err, raft.ErrTransportClosed) {
		t.Errorf("after Close: got %v", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// endless yields zeros forever.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestSnapshotCutMidStream(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b")
	a, b := ns[0], ns[1]
	var once sync.Once
	started := make(chan struct{})
	b.c.onSnapshot = func(_ raft.Message, r io.Reader) error {
		buf := make([]byte, 4096)
		for {
			if _, err := r.Read(buf); err != nil {
				return err
			}
			once.Do(func() { close(started) })
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- a.tr.SendSnapshot(t.Context(), peer(b), snapMsg("a", "b"), endless{}) }()
	<-started
	net.Cut("a", "b")
	select {
	case err := <-errc:
		if !errors.Is(err, raft.ErrPeerUnreachable) {
			t.Fatalf("got %v, want ErrPeerUnreachable", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("SendSnapshot did not notice the cut")
	}
}

func TestSnapshotCancelDuringDelay(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b")
	a, b := ns[0], ns[1]
	if err := net.SetDelay("a", "b", time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	err := a.tr.SendSnapshot(ctx, peer(b), snapMsg("a", "b"), strings.NewReader("x"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's error", err)
	}
}

func TestCloseAbortsInboundSnapshot(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b")
	a, b := ns[0], ns[1]
	started := make(chan struct{})
	var once sync.Once
	b.c.onSnapshot = func(_ raft.Message, r io.Reader) error {
		buf := make([]byte, 4096)
		for {
			if _, err := r.Read(buf); err != nil {
				return err
			}
			once.Do(func() { close(started) })
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- a.tr.SendSnapshot(t.Context(), peer(b), snapMsg("a", "b"), endless{}) }()
	<-started
	if err := b.tr.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, raft.ErrTransportClosed) {
			t.Fatalf("got %v, want the receiver's ErrTransportClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("SendSnapshot did not end when the receiver closed")
	}
}
