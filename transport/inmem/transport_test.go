package inmem_test

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/inmem"
)

func TestStatsCountMessagesBytesAndDrops(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b")
	a, b := ns[0], ns[1]
	if s := net.Stats("a", "b"); s != (inmem.LinkStats{}) {
		t.Fatalf("fresh link stats = %+v", s)
	}
	app := raft.Message{Type: raft.MsgApp, From: "a", To: "b", Index: 1,
		Entries: []raft.Entry{{Index: 2, Term: 1, Data: make([]byte, 100)}}}
	a.tr.Send(peer(b), []raft.Message{hb(a, b, 1), app, hb(a, b, 3)})
	waitFor(t, "3 messages", func() bool { return net.Stats("a", "b").Messages == 3 })
	// Heartbeats are 64 bytes; the MsgApp adds its entry's Size (100+24).
	if s := net.Stats("a", "b"); s.Bytes != 64+64+124+64 || s.Dropped != 0 {
		t.Fatalf("stats = %+v, want 316 bytes and no drops", s)
	}
	if s := net.Stats("b", "a"); s != (inmem.LinkStats{}) {
		t.Fatalf("reverse link stats = %+v", s)
	}

	// Drops: unknown peer, no handler.
	a.tr.Send(raft.Peer{ID: "nobody"}, []raft.Message{{Type: raft.MsgHeartbeat, From: "a", To: "nobody"}})
	if s := net.Stats("a", "nobody"); s.Dropped != 1 {
		t.Fatalf("stats to unknown peer = %+v", s)
	}
	b.tr.Register(nil)
	send(a, b, 4)
	waitFor(t, "drop without handler", func() bool { return net.Stats("a", "b").Dropped == 1 })
}

func TestSendCopiesMessages(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b", "c")
	a, b, c := ns[0], ns[1], ns[2]
	data := []byte("original")
	meta := &raft.SnapshotMeta{Index: 5, Term: 2, Configuration: raft.Configuration{
		Servers: []raft.Server{{ID: "a", Addr: "addr-a"}},
		Old:     []raft.Server{{ID: "b", Addr: "addr-b"}},
	}}
	b.c.onMessage = func(m raft.Message) { // b scribbles on what it got
		m.Entries[0].Data[0] = 'X'
		m.Snapshot.Configuration.Servers[0].ID = "mutated-by-b"
	}
	msgs := []raft.Message{{Type: raft.MsgApp, From: "a", To: "b", Snapshot: meta,
		Entries: []raft.Entry{{Index: 1, Term: 1, Data: data}}}}
	a.tr.Send(peer(b), msgs)
	msgs2 := []raft.Message{{Type: raft.MsgApp, From: "a", To: "c", Snapshot: meta,
		Entries: []raft.Entry{{Index: 1, Term: 1, Data: data}}}}
	a.tr.Send(peer(c), msgs2)
	// The sender scribbles after Send.
	data[1] = 'Y'
	msgs[0].Entries[0].Index = 99
	meta.Index = 99
	meta.Configuration.Old[0].ID = "mutated-by-a"

	waitFor(t, "both copies", func() bool { return b.c.count() == 1 && c.c.count() == 1 })
	got := c.c.messages()[0]
	if string(got.Entries[0].Data) != "original" || got.Entries[0].Index != 1 {
		t.Fatalf("entry changed in flight: %+v", got.Entries[0])
	}
	if got.Snapshot == meta || got.Snapshot.Index != 5 ||
		got.Snapshot.Configuration.Servers[0].ID != "a" || got.Snapshot.Configuration.Old[0].ID != "b" {
		t.Fatalf("snapshot meta shared or changed: %+v", got.Snapshot)
	}
	if string(b.c.messages()[0].Entries[0].Data) != "Xriginal" {
		t.Fatal("b's own copy was not the one it modified")
	}
}

func TestQueueFullDropsAndReports(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  inmem.Option
		size int
	}{{"size 4", inmem.WithQueueSize(4), 4}, {"default", inmem.WithQueueSize(0), inmem.DefaultQueueSize}} {
		t.Run(tc.name, func(t *testing.T) {
			net := inmem.NewNetwork(1, tc.opt, inmem.WithLogger(nil))
			ns := join(t, net, "a", "b")
			a, b := ns[0], ns[1]
			gate := make(chan struct{})
			release := sync.OnceFunc(func() { close(gate) })
			t.Cleanup(release) // runs before the transports close
			var stuck atomic.Bool
			b.c.onMessage = func(raft.Message) {
				stuck.Store(true)
				<-gate
			}
			send(a, b, 0)
			waitFor(t, "the handler to block", stuck.Load)
			n := tc.size + 10
			for i := 1; i <= n; i++ {
				send(a, b, uint64(i))
			}
			if s := net.Stats("a", "b"); s.Dropped != 10 {
				t.Fatalf("dropped %d of %d with queue %d", s.Dropped, n, tc.size)
			}
			waitFor(t, "report", func() bool { return a.c.reports("b") > 0 })
			release()
			waitFor(t, "queued messages", func() bool { return b.c.count() == tc.size+1 })
			want := make([]uint64, tc.size+1)
			for i := range want {
				want[i] = uint64(i)
			}
			if got := indexes(b.c, "a"); !slices.Equal(got, want) {
				t.Fatalf("delivered %v... want the first %d", got[:min(len(got), 8)], len(want))
			}
		})
	}
}

func TestWrongEndpointsAreDropped(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b", "c")
	a, b := ns[0], ns[1]
	a.tr.Send(peer(b), []raft.Message{
		{Type: raft.MsgHeartbeat, From: "c", To: "b", Index: 1}, // forged sender
		{Type: raft.MsgHeartbeat, From: "a", To: "c", Index: 2}, // wrong destination
	})
	fence(t, a, b, 3)
	if got := b.c.messages(); len(got) != 1 || got[0].Index < 3 {
		t.Fatalf("b got %v, want only the fence", got)
	}
	if s := net.Stats("a", "b"); s.Dropped != 2 {
		t.Fatalf("stats = %+v, want 2 dropped", s)
	}
	// A message for c sent to b's address means c is unreachable there.
	waitFor(t, "report", func() bool { return a.c.reports("b") > 0 })
}

func TestJoinAddrReplacesHolder(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a")
	a := ns[0]
	old := net.JoinAddr("b", "host:1")
	if old.ID() != "b" || old.Addr() != "host:1" {
		t.Fatalf("ID/Addr = %s/%s", old.ID(), old.Addr())
	}
	oldC := newCollector()
	old.Register(oldC)
	nw := net.JoinAddr("b", "host:1") // closes old
	t.Cleanup(func() { _ = nw.Close() })
	newC := newCollector()
	nw.Register(newC)
	to := raft.Peer{ID: "b", Addr: "host:1"}
	a.tr.Send(to, []raft.Message{{Type: raft.MsgHeartbeat, From: "a", To: "b", Index: 1}})
	waitFor(t, "delivery to the new holder", func() bool { return newC.count() == 1 })
	if oldC.count() != 0 {
		t.Fatal("replaced transport still received")
	}
	old.Send(raft.Peer{ID: "a"}, []raft.Message{{Type: raft.MsgHeartbeat, From: "b", To: "a"}})
	if s := net.Stats("b", "a"); s.Dropped != 1 {
		t.Fatalf("Send on the replaced transport: stats %+v, want it dropped", s)
	}
	if err := old.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestNoHandlerCallsAfterClose(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b")
	a, b := ns[0], ns[1]
	var closed, late atomic.Bool
	b.c.onMessage = func(raft.Message) {
		if closed.Load() {
			late.Store(true)
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			send(a, b, i)
			send(b, a, i)
		}
	}()
	waitFor(t, "traffic", func() bool { return b.c.count() > 100 })
	_ = b.tr.Close()
	closed.Store(true)
	reportsAtClose := b.c.reports("a")
	waitFor(t, "drops after close", func() bool { return net.Stats("a", "b").Dropped > 100 })
	close(stop)
	<-done
	if late.Load() {
		t.Fatal("handler called after Close returned")
	}
	if b.c.reports("a") != reportsAtClose {
		t.Fatal("ReportUnreachable called after Close returned")
	}
	waitFor(t, "a told b is gone", func() bool { return a.c.reports("b") > 0 })
}

func TestSnapshotBytesCounted(t *testing.T) {
	net := inmem.NewNetwork(1)
	ns := join(t, net, "a", "b")
	a, b := ns[0], ns[1]
	m := raft.Message{Type: raft.MsgSnap, From: "a", To: "b", Snapshot: &raft.SnapshotMeta{Index: 1}}
	if err := a.tr.SendSnapshot(t.Context(), peer(b), m, bytes.NewReader(make([]byte, 1000))); err != nil {
		t.Fatal(err)
	}
	// 64 fixed + 40 meta + 1000 data.
	if s := net.Stats("a", "b"); s.Messages != 1 || s.Bytes != 1104 {
		t.Fatalf("stats = %+v", s)
	}
}
