package raft_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
)

// Regression: a snapshot install racing with a backlog of entries still
// being applied. The install must wait its turn: the follower ends with
// exactly the leader's history, nothing applied twice or skipped.
func TestSnapshotInstallRacesApply(t *testing.T) {
	c := newCluster(t, 3, smallSnapshots(20, 5))
	lead := c.leader()
	var slow raft.NodeID
	for _, id := range c.ids {
		if id != lead {
			slow = id
			break
		}
	}
	c.sms[slow].mu.Lock()
	c.sms[slow].applyDelay = 2 * time.Millisecond
	c.sms[slow].mu.Unlock()
	for i := 0; i < 60; i++ {
		c.mustPut(fmt.Sprintf("a%d", i), "1")
	}
	c.net.Isolate(slow)
	var last uint64
	for i := 0; i < 150; i++ {
		last = c.mustPut(fmt.Sprintf("b%d", i), "2")
	}
	c.net.Heal()
	c.waitApplied(last, slow)
	lead = c.leader()
	c.waitApplied(last, lead)
	want, got := c.sms[lead].log(), c.sms[slow].log()
	n := min(len(want), len(got))
	if n == 0 || !slices.Equal(want[:n], got[:n]) {
		t.Fatalf("slow follower's history differs from the leader's:\n%v\n%v", got, want)
	}
	if c.sms[slow].restores == 0 {
		t.Fatal("the slow follower never installed a snapshot; the race was not exercised")
	}
}

// Regression: the newest stored snapshot never moves backwards, even when
// an older snapshot arrives after a newer one was installed — here from a
// node that is no member, which is refused outright (older snapshots from
// members are covered by TestSnapshotFromDeposedLeaderNotStored).
func TestSnapshotIndexNeverMovesBackwards(t *testing.T) {
	c := newCluster(t, 3, smallSnapshots(20, 5))
	var last uint64
	for i := 0; i < 80; i++ {
		last = c.mustPut(fmt.Sprintf("k%d", i), "v")
	}
	c.waitApplied(last)
	target := c.ids[1]
	waitFor(t, "a snapshot on "+string(target), 5*time.Second, func() bool {
		m, err := c.stores[target].LatestSnapshot()
		return err == nil && m.Index >= 40
	})
	before, _ := c.stores[target].LatestSnapshot()
	restores := c.sms[target].restores
	old := raft.SnapshotMeta{Index: 5, Term: before.Term, Configuration: before.Configuration, ConfigIndex: before.ConfigIndex}
	data, _ := json.Marshal(map[string]any{"d": map[string]string{"stale": "yes"}})
	// An extra endpoint plays a confused old leader.
	tr := c.net.Join("ghost")
	defer tr.Close()
	m := raft.Message{Type: raft.MsgSnap, From: "ghost", To: target, Term: c.nodes[target].Status().Term, Snapshot: &old}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := tr.SendSnapshot(ctx, raft.Peer{ID: target, Addr: string(target)}, m, bytes.NewReader(data))
	if err == nil || !strings.Contains(err.Error(), "not a member") {
		t.Fatalf("snapshot from a non-member: %v, want it refused as not a member", err)
	}
	after, _ := c.stores[target].LatestSnapshot()
	if after.Index < before.Index {
		t.Fatalf("newest snapshot moved back from %d to %d", before.Index, after.Index)
	}
	if c.sms[target].restores != restores {
		t.Fatal("a stale snapshot was restored into the state machine")
	}
	if _, ok := c.sms[target].get("stale"); ok {
		t.Fatal("stale snapshot data reached the state machine")
	}
	c.mustPut("after", "ghost")
}

// Regression: a follower that crashed after storing a snapshot but before
// resetting its log resumes from the snapshot at restart.
func TestSnapshotCrashMidInstallResumes(t *testing.T) {
	store := memory.New()
	defer store.Close()
	servers := []raft.Server{{ID: "n1", Addr: "n1"}, {ID: "n2", Addr: "n2"}}
	boot := raft.Entry{Index: 1, Term: 1, Type: raft.EntryConfig, Data: raft.EncodeConfiguration(raft.Configuration{Servers: servers})}
	stale := raft.Entry{Index: 2, Term: 1, Type: raft.EntryCommand, Data: []byte("divergent")}
	if err := store.Save(raft.HardState{Term: 3}, []raft.Entry{boot, stale}); err != nil {
		t.Fatal(err)
	}
	meta := raft.SnapshotMeta{Index: 50, Term: 3, Configuration: raft.Configuration{Servers: servers}, ConfigIndex: 1}
	sink, err := store.CreateSnapshot(meta)
	if err != nil {
		t.Fatal(err)
	}
	state, _ := json.Marshal(map[string]any{"d": map[string]string{"from": "snapshot"}, "a": []string{"50:put:from=snapshot"}})
	if _, err := sink.Write(state); err != nil {
		t.Fatal(err)
	}
	if err := sink.Commit(); err != nil {
		t.Fatal(err)
	}
	// Crash here: the log was never reset to the snapshot.
	c := newCluster(t, 1)
	tr := c.net.Join("n2")
	sm := newKV()
	nd, err := raft.New(testConfig("n2"), sm, store, tr)
	if err != nil {
		t.Fatalf("restart after interrupted install: %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = nd.Shutdown(ctx)
		_ = tr.Close()
	}()
	select {
	case <-nd.Restored():
	case <-time.After(5 * time.Second):
		t.Fatal("the startup restore did not finish")
	}
	if s := nd.Status(); s.Applied != 50 || s.Commit < 50 {
		t.Fatalf("applied %d commit %d after restart, want 50", s.Applied, s.Commit)
	}
	if v, _ := sm.get("from"); v != "snapshot" {
		t.Fatalf("state machine not restored from the snapshot (from=%q)", v)
	}
	if first, _ := store.FirstIndex(); first != 51 {
		t.Fatalf("log starts at %d, want 51: the divergent entry must be gone", first)
	}
}
