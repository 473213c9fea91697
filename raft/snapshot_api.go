package raft

import "io"

// Snapshotter is implemented by state machines that support snapshots. With
// it the node compacts its log and brings lagging or new nodes up to date by
// streaming a snapshot; without it the log grows without bound.
//
// Concurrency: Snapshot and Restore are called on the apply goroutine, never
// concurrently with Apply or each other. The StateSnapshot that Snapshot
// returns is written out on another goroutine while Apply goes on, so it must
// be a point-in-time view that later Apply calls do not change (a copy, or an
// immutable / copy-on-write structure).
type Snapshotter interface {
	// Snapshot returns a view of the state as of the last applied entry. It
	// should return quickly; the expensive work belongs in StateSnapshot.Write.
	Snapshot() (StateSnapshot, error)
	// Restore replaces the whole state with the one read from r (as written
	// by StateSnapshot.Write). An error stops the node.
	Restore(r io.Reader) error
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
