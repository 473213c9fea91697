package raft_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/typedraft/typedraft/codec"
	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/transport/inmem"
)

// A store written by one node is refused for another (raft.NodeBinder).
func TestStoreBelongsToOneNode(t *testing.T) {
	net := inmem.NewNetwork(1)
	store := memory.New()
	tr := net.Join("n1")
	defer tr.Close()
	n1, err := raft.New(testConfig("n1"), newKV(), store, tr)
	if err != nil {
		t.Fatal(err)
	}
	if err := n1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	tr2 := net.Join("n2")
	defer tr2.Close()
	_, err = raft.New(testConfig("n2"), newKV(), store, tr2)
	if !errors.Is(err, raft.ErrWrongNode) {
		t.Fatalf("opening n1's store as n2: %v, want ErrWrongNode", err)
	}
}

// failingStore reports a background failure (raft.FailureNotifier).
type failingStore struct {
	*memory.Store
	once   sync.Once
	failed chan struct{}
}

func (s *failingStore) Failed() <-chan struct{} { return s.failed }
func (s *failingStore) FailureErr() error {
	return fmt.Errorf("sstable 000042.sst: block checksum mismatch: %w", raft.ErrCorrupt)
}
func (s *failingStore) fail() { s.once.Do(func() { close(s.failed) }) }

// A store that finds corruption in the background stops the node cleanly,
// with the store's error.
func TestStoreBackgroundFailureStopsNode(t *testing.T) {
	net := inmem.NewNetwork(1)
	fs := &failingStore{Store: memory.New(), failed: make(chan struct{})}
	tr := net.Join("solo")
	defer tr.Close()
	nd, err := raft.New(testConfig("solo"), newKV(), fs, tr)
	if err != nil {
		t.Fatal(err)
	}
	defer nd.Shutdown(context.Background())
	fs.fail()
	select {
	case <-nd.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("node kept running on a failed store")
	}
	if err := nd.Err(); !errors.Is(err, raft.ErrCorrupt) {
		t.Fatalf("node stopped with %v, want the store's ErrCorrupt", err)
	}
}

// corruptTailStore hands out snapshots whose reader fails at the end, as a
// store that verifies a checksum at end of file does for a damaged file.
type corruptTailStore struct {
	*memory.Store
}

func (s corruptTailStore) OpenSnapshot() (raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.Store.OpenSnapshot()
	if err != nil {
		return meta, rc, err
	}
	return meta, corruptTail{rc}, nil
}

type corruptTail struct{ io.ReadCloser }

func (c corruptTail) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if err == io.EOF {
		return n, fmt.Errorf("snapshot file: checksum mismatch: %w", raft.ErrCorrupt)
	}
	return n, err
}

// prefixSM restores by reading only the snapshot's first bytes, as a
// decoder that stops before the end does.
type prefixSM struct{ *kvSM }

func (s prefixSM) Restore(_ raft.SnapshotMeta, r io.Reader) error {
	var b [4]byte
	_, err := io.ReadFull(r, b[:])
	return err
}

// A restore whose state machine stops reading early still fails when the
// rest of the snapshot does not pass the store's checks: the node is not
// left serving a state restored from corrupt data.
func TestRestoreReadsSnapshotToTheEnd(t *testing.T) {
	net := inmem.NewNetwork(1)
	store := memory.New()
	snapshotSolo(t, net, store, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr := net.Join("n1")
	defer tr.Close()
	nd, err := raft.New(testConfig("n1"), prefixSM{newKV()}, corruptTailStore{store}, tr)
	if err != nil {
		t.Fatal(err)
	}
	defer nd.Shutdown(ctx)
	// The restore runs after New returns; it fails and stops the node, and
	// the node never reports itself restored.
	select {
	case <-nd.Done():
	case <-nd.Restored():
		t.Fatal("a snapshot with a corrupt tail was restored")
	case <-time.After(5 * time.Second):
		t.Fatal("the node kept running on a corrupt snapshot")
	}
	if err := nd.Err(); !errors.Is(err, raft.ErrCorrupt) {
		t.Fatalf("restart on a snapshot with a corrupt tail: %v, want ErrCorrupt", err)
	}
}

// brokenCodec encodes what it cannot decode.
type brokenCodec struct{}

func (brokenCodec) Marshal(v any) ([]byte, error)   { return []byte{0xc1}, nil }
func (brokenCodec) Unmarshal(b []byte, v any) error { return errors.New("unreadable") }
func (brokenCodec) Name() string                    { return "broken" }

// A command whose encoding does not decode is refused on the leader,
// before it enters the log: it would stop every node that applies it.
func TestUndecodableCommandNeverEntersTheLog(t *testing.T) {
	c := newCluster(t, 3, func(cfg *raft.Config) { cfg.Codec = brokenCodec{} })
	lead := c.leader()
	before := c.nodes[lead].Status().LastIndex
	ctx := readCtx(t)
	_, _, err := c.nodes[lead].Apply(ctx, kvCmd{Op: "put", Key: "k", Val: "v"})
	if !errors.Is(err, raft.ErrEncode) || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("undecodable command: %v, want ErrEncode naming the codec", err)
	}
	if got := c.nodes[lead].Status().LastIndex; got != before {
		t.Fatalf("the log grew from %d to %d", before, got)
	}
	for _, id := range c.ids {
		if err := c.nodes[id].Err(); err != nil {
			t.Fatalf("%s stopped: %v", id, err)
		}
	}
}

// skewedCodec encodes with msgpack but cannot decode (a follower running an
// older binary, say).
type skewedCodec struct{ codec.Codec }

func (skewedCodec) Unmarshal(b []byte, v any) error { return errors.New("unknown field layout") }
func (skewedCodec) Name() string                    { return "skewed" }

// A follower that cannot decode a committed command stops with an error
// naming the index, the codec and the way out.
func TestFollowerThatCannotDecodeStopsWithTheWayOut(t *testing.T) {
	c := newCluster(t, 3, func(cfg *raft.Config) {
		if cfg.ID == "n3" {
			cfg.Codec = skewedCodec{codec.Msgpack()}
		}
	})
	if c.leader() == "n3" {
		// The scenario needs n3 to follow (as leader it refuses the
		// command it cannot decode, before the log).
		if err := c.nodes["n3"].TransferLeadership(readCtx(t), "n1"); err != nil {
			t.Fatal(err)
		}
	}
	lead := c.leader("n1", "n2")
	res, err := c.put(lead, "k", "v")
	if err != nil || res.Rejected() {
		t.Fatalf("put through %s: %v %v", lead, err, res.Err)
	}
	idx := res.Index
	select {
	case <-c.nodes["n3"].Done():
	case <-time.After(5 * time.Second):
		t.Fatal("n3 kept running with a command it cannot decode")
	}
	err = c.nodes["n3"].Err()
	if !errors.Is(err, raft.ErrDecode) || !strings.Contains(err.Error(), fmt.Sprintf("index %d", idx)) ||
		!strings.Contains(err.Error(), "skewed") || !strings.Contains(err.Error(), "snapshot") {
		t.Fatalf("n3 stopped with %v, want ErrDecode naming index %d, the codec and the way out", err, idx)
	}
}

// handoffSM hands what it restores to a consumer over an unbuffered
// channel, as an application that feeds an index or cache does.
type handoffSM struct {
	*kvSM
	out chan string
}

func (s handoffSM) Restore(meta raft.SnapshotMeta, r io.Reader) error {
	if err := s.kvSM.Restore(meta, r); err != nil {
		return err
	}
	s.out <- "restored" // blocks until the consumer runs
	return nil
}

// Restore at start-up runs on the apply goroutine after New returns, so a
// Restore that hands data to a consumer started only after New does not
// deadlock (issue 17: it used to run inside New).
func TestStartupRestoreFeedsConsumerStartedAfterNew(t *testing.T) {
	net := inmem.NewNetwork(1)
	store := memory.New()
	snapshotSolo(t, net, store, 1)
	ctx := readCtx(t)

	tr := net.Join("n1")
	defer tr.Close()
	sm := handoffSM{kvSM: newKV(), out: make(chan string)}
	newDone := make(chan *node, 1)
	go func() {
		nd, err := raft.New(testConfig("n1"), sm, store, tr)
		if err != nil {
			t.Error(err)
		}
		newDone <- nd
	}()
	var restarted *node
	select {
	case restarted = <-newDone:
	case <-time.After(5 * time.Second):
		t.Fatal("New blocked in Restore: the consumer has not started yet")
	}
	defer restarted.Shutdown(ctx)
	// Only now does the consumer start.
	select {
	case got := <-sm.out:
		if got != "restored" {
			t.Fatalf("consumer got %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Restore never ran")
	}
	select {
	case <-restarted.Restored():
	case <-time.After(5 * time.Second):
		t.Fatal("Restored not closed after the restore")
	}
	if v, _ := sm.get("0"); v != "v" {
		t.Fatalf("restored state 0=%q, want v", v)
	}
}

// HasState tells a fresh store from a used one, and Bootstrap may be called
// on every start.
func TestHasStateAndIdempotentBootstrap(t *testing.T) {
	store := memory.New()
	if has, err := raft.HasState(store); err != nil || has {
		t.Fatalf("fresh store: HasState = %v, %v", has, err)
	}
	net := inmem.NewNetwork(1)
	tr := net.Join("n1")
	defer tr.Close()
	nd, err := raft.New(testConfig("n1"), newKV(), store, tr)
	if err != nil {
		t.Fatal(err)
	}
	ctx := readCtx(t)
	servers := []raft.Server{{ID: "n1", Addr: "n1"}}
	for i := 0; i < 2; i++ {
		if err := nd.Bootstrap(ctx, servers); err != nil {
			t.Fatalf("Bootstrap #%d: %v", i+1, err)
		}
	}
	if err := nd.Bootstrap(ctx, []raft.Server{{ID: "n1", Addr: "elsewhere"}}); !errors.Is(err, raft.ErrBootstrapped) {
		t.Fatalf("Bootstrap with other servers: %v, want ErrBootstrapped", err)
	}
	if has, err := raft.HasState(store); err != nil || !has {
		t.Fatalf("bootstrapped store: HasState = %v, %v", has, err)
	}
	nd.Shutdown(ctx)
}

// snapshotSolo bootstraps a one-node cluster n1 on store, applies n puts,
// takes a snapshot and shuts the node down, leaving n1's address free on
// net for the next node.
func snapshotSolo(t *testing.T, net *inmem.Network, store *memory.Store, n int) {
	t.Helper()
	tr := net.Join("n1")
	defer tr.Close()
	nd, err := raft.New(testConfig("n1"), newKV(), store, tr)
	if err != nil {
		t.Fatal(err)
	}
	ctx := readCtx(t)
	if err := nd.Bootstrap(ctx, []raft.Server{{ID: "n1", Addr: "n1"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := nd.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, _, err := nd.Apply(ctx, kvCmd{Op: "put", Key: fmt.Sprint(i), Val: "v"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nd.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := nd.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
