package raft

import (
	"context"
	"fmt"
	"io"
)

// Snapshotter is implemented by state machines that support snapshots. With
// it the node compacts its log and brings lagging or new nodes up to date by
// streaming a snapshot; without it the log grows without bound.
//
// Concurrency: Snapshot and Restore are called on the apply goroutine, never
// concurrently with Apply or each other. The StateSnapshot that Snapshot
// returns is written out on another goroutine while Apply goes on, so it must
// be a point-in-time view that later Apply calls do not change (a copy, or an
// immutable / copy-on-write structure).
//
// Both calls get the snapshot's SnapshotMeta: Index and Term are those of
// the last entry it covers, Configuration and ConfigIndex the membership in
// force there (Size is 0 when Snapshot is called: it is known only once
// the data is written). An application that keeps its own numbering, or
// the configuration, takes them from meta instead of counting itself.
type Snapshotter interface {
	// Snapshot returns a view of the state as of meta.Index, the last
	// applied entry. It should return quickly; the expensive work belongs
	// in StateSnapshot.Write.
	Snapshot(meta SnapshotMeta) (StateSnapshot, error)
	// Restore replaces the whole state with the one read from r, as written
	// by the StateSnapshot of a Snapshot(meta) on some node. Afterwards the
	// state machine is at meta.Index: the next Apply it sees is for a later
	// index. Restore need not read r to the end (the node reads and checks
	// the rest). It runs on the apply goroutine, at start-up after New
	// returns (see Raft.Restored) and whenever a snapshot from the leader
	// is installed. An error stops the node.
	Restore(meta SnapshotMeta, r io.Reader) error
}

// StateSnapshot is a point-in-time view of a state machine.
type StateSnapshot interface {
	// Write writes the state to w. It runs on its own goroutine,
	// concurrently with Apply and with a Restore of a snapshot received
	// from the leader, but never with another Write of the same node.
	Write(w io.Writer) error
	// Release is called once the snapshot is written (or abandoned).
	Release()
}

// Snapshot takes a snapshot of the state machine now (at the last applied
// entry), stores it durably and returns its metadata. The log is compacted
// behind it (keeping TrailingLogs entries) by the node's driver shortly
// after; Snapshot does not wait for that. It returns an error if the state machine does not implement
// Snapshotter, if nothing was applied since the last snapshot
// (ErrNothingToSnapshot), or the storage failed.
func (r *Raft[C, R, E]) Snapshot(ctx context.Context) (SnapshotMeta, error) {
	if r.a.snapshotter == nil {
		return SnapshotMeta{}, fmt.Errorf("%w: the state machine does not implement Snapshotter", ErrInvalidConfig)
	}
	req := snapshotReq{done: make(chan snapshotOutcome, 1)}
	switch r.a.snapReqs.push(req) {
	case pushClosed, pushFull:
		return SnapshotMeta{}, ErrShutdown
	}
	select {
	case out := <-req.done:
		return out.meta, out.err
	case <-ctx.Done():
		return SnapshotMeta{}, ctx.Err()
	}
}
