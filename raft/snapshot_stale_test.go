package raft_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
)

// handlerTransport sends nothing and hands the test the node's Handler, so
// a test can play the part of several leaders at once.
type handlerTransport struct {
	mu sync.Mutex
	h  raft.Handler
}

func (c *handlerTransport) Register(h raft.Handler)        { c.mu.Lock(); c.h = h; c.mu.Unlock() }
func (c *handlerTransport) Send(raft.Peer, []raft.Message) {}
func (c *handlerTransport) SendSnapshot(context.Context, raft.Peer, raft.Message, io.Reader) error {
	return nil
}

func (c *handlerTransport) handler() raft.Handler { c.mu.Lock(); defer c.mu.Unlock(); return c.h }

// staleSnapshotNode starts follower n2 of {n1,n2,n3} and makes it follow n3
// in term 2.
func staleSnapshotNode(t *testing.T) (*node, *kvSM, *memory.Store, raft.Handler, raft.Configuration) {
	t.Helper()
	tr := &handlerTransport{}
	cfg := testConfig("n2")
	cfg.TickInterval = time.Hour // never campaigns: the test drives it
	sm, store := newKV(), memory.New()
	nd, err := raft.New(cfg, sm, store, tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nd.Shutdown(context.Background()) })
	servers := []raft.Server{{ID: "n1", Addr: "n1"}, {ID: "n2", Addr: "n2"}, {ID: "n3", Addr: "n3"}}
	if err := nd.Bootstrap(ctxT(t), servers); err != nil {
		t.Fatal(err)
	}
	h := tr.handler()
	h.HandleMessage(raft.Message{Type: raft.MsgHeartbeat, From: "n3", To: "n2", Term: 2})
	waitFor(t, "n2 to follow n3 in term 2", 5*time.Second, func() bool {
		s := nd.Status()
		return s.Term == 2 && s.Leader == "n3"
	})
	return nd, sm, store, h, raft.Configuration{Servers: servers}
}

func snapshotOf(t *testing.T, v string) []byte {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(kvView{Data: map[string]string{"k": v}}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func snapMsg(from raft.NodeID, term, index uint64, conf raft.Configuration, data []byte) raft.Message {
	return raft.Message{Type: raft.MsgSnap, From: from, To: "n2", Term: term,
		Snapshot: &raft.SnapshotMeta{Index: index, Term: 1, Configuration: conf, ConfigIndex: 1, Size: int64(len(data))}}
}

// Regression: a deposed leader streams a newer snapshot than the current
// leader. The core ignores the deposed leader's message, so its snapshot
// must not be stored either: if it were, the store's newest snapshot (50)
// would disagree with the one the core installs next (30), and the restore
// would fail and stop the node.
func TestSnapshotFromDeposedLeaderNotStored(t *testing.T) {
	nd, sm, store, h, conf := staleSnapshotNode(t)
	fifty := snapshotOf(t, "fifty")
	if err := h.HandleSnapshot(snapMsg("n1", 1, 50, conf, fifty), bytes.NewReader(fifty)); err != nil {
		t.Fatalf("deposed leader's snapshot: %v", err)
	}
	if meta, err := store.LatestSnapshot(); !errors.Is(err, raft.ErrNoSnapshot) {
		t.Fatalf("deposed leader's snapshot was stored: %+v, %v", meta, err)
	}
	thirty := snapshotOf(t, "thirty")
	if err := h.HandleSnapshot(snapMsg("n3", 2, 30, conf, thirty), bytes.NewReader(thirty)); err != nil {
		t.Fatalf("current leader's snapshot: %v", err)
	}
	waitFor(t, "snapshot 30 to be restored", 5*time.Second, func() bool {
		v, _ := sm.get("k")
		return v == "thirty"
	})
	if err := nd.Err(); err != nil {
		t.Fatalf("node stopped: %v", err)
	}
	if s := nd.Status(); s.Commit != 30 {
		t.Fatalf("commit %d after installing snapshot 30", s.Commit)
	}
}

// Regression: the store already holds a newer snapshot than the one being
// announced (the term moved between the receiver's checks). The core is
// told about the stored one, so store and state machine agree.
func TestSnapshotInstallsNewestStored(t *testing.T) {
	nd, sm, store, h, conf := staleSnapshotNode(t)
	fifty := snapshotOf(t, "fifty")
	sink, err := store.CreateSnapshot(raft.SnapshotMeta{Index: 50, Term: 1, Configuration: conf, ConfigIndex: 1, Size: int64(len(fifty))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(fifty); err != nil {
		t.Fatal(err)
	}
	if err := sink.Commit(); err != nil {
		t.Fatal(err)
	}
	thirty := snapshotOf(t, "thirty")
	if err := h.HandleSnapshot(snapMsg("n3", 2, 30, conf, thirty), bytes.NewReader(thirty)); err != nil {
		t.Fatalf("current leader's snapshot: %v", err)
	}
	waitFor(t, "the stored snapshot 50 to be restored", 5*time.Second, func() bool {
		v, _ := sm.get("k")
		return v == "fifty"
	})
	if err := nd.Err(); err != nil {
		t.Fatalf("node stopped: %v", err)
	}
	if s := nd.Status(); s.Commit != 50 {
		t.Fatalf("commit %d, want 50", s.Commit)
	}
}
