package raft_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/transport/inmem"
)

// slowSnapKV is kvSM whose snapshots take until gate is closed to write.
type slowSnapKV struct {
	*kvSM
	gate chan struct{}
}

type slowView struct {
	raft.StateSnapshot
	gate chan struct{}
}

func (v slowView) Write(w io.Writer) error {
	<-v.gate
	return v.StateSnapshot.Write(w)
}

func (s *slowSnapKV) Snapshot(meta raft.SnapshotMeta) (raft.StateSnapshot, error) {
	v, err := s.kvSM.Snapshot(meta)
	return slowView{StateSnapshot: v, gate: s.gate}, err
}

// Snapshots are written while Apply goes on, but applying stops once a
// whole SnapshotThreshold more entries were applied during one write: the
// log then stays within TrailingLogs + 2*SnapshotThreshold (plus one apply
// batch) however slow the snapshot store is.
func TestSlowSnapshotHoldsApplyBackAfterTwoThresholds(t *testing.T) {
	const threshold = 10
	net := inmem.NewNetwork(1)
	tr := net.Join("n1")
	t.Cleanup(func() { _ = tr.Close() })
	sm := &slowSnapKV{kvSM: newKV(), gate: make(chan struct{})}
	cfg := testConfig("n1")
	cfg.SnapshotThreshold, cfg.TrailingLogs = threshold, 2
	nd, err := raft.New(cfg, sm, memory.New(), tr)
	if err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			close(sm.gate)
			released = true
		}
	}
	t.Cleanup(func() {
		release()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = nd.Shutdown(ctx)
	})
	ctx := ctxT(t)
	if err := nd.Bootstrap(ctx, []raft.Server{{ID: "n1", Addr: "n1"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n1 to lead", 5*time.Second, func() bool { return nd.Status().State == raft.Leader })
	var last uint64
	for i := range 5 * threshold {
		// Committed mode: the answer does not wait for Apply, which is held.
		res, err := nd.Propose(ctx, kvCmd{Op: "put", Key: fmt.Sprint(i), Val: "v"}, raft.Committed).Wait(ctx)
		if err != nil {
			t.Fatalf("proposal %d: %v", i, err)
		}
		last = res.Index
	}
	// Every entry is committed; the first snapshot (due at 10 applied) is
	// still being written, so applying stops at 2*threshold plus at most
	// the one apply batch in hand when the bound was reached.
	waitFor(t, "apply to reach two thresholds and the status to show the commit", 5*time.Second, func() bool {
		s := nd.Status()
		return s.Applied >= 2*threshold && s.Commit >= last
	})
	if s := nd.Status(); s.Commit < last || s.Applied >= last {
		t.Fatalf("commit %d applied %d with the snapshot write stalled; want everything committed (%d) and applying held back", s.Commit, s.Applied, last)
	}
	release()
	waitFor(t, "apply to resume", 5*time.Second, func() bool { return nd.Status().Applied >= last })
	if err := nd.Err(); err != nil {
		t.Fatal(err)
	}
}
