package cluster

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/typedraft/typedraft/raft"
)

// Error is the benchmark state machine's error type E. The benchmark
// state machine never rejects a command, so it is never returned.
type Error struct{ Reason string }

// Error returns the reason.
func (e *Error) Error() string { return "cluster: " + e.Reason }

// FSM is the benchmark state machine: it counts applied commands and
// their bytes, which is the least work a real state machine does. It
// implements raft.Snapshotter (as real state machines do) so that the log
// is compacted under the node's default snapshot policy, exactly as in
// production.
//
// Concurrency: the node calls Apply, Snapshot and Restore from its apply
// goroutine only; FSM is not safe for other concurrent use.
type FSM struct {
	count uint64
	bytes uint64
}

// Apply counts cmd and returns the number of commands applied so far. An
// empty cmd is a read through the log (ReadCommand): it changes nothing
// and returns the count.
func (f *FSM) Apply(_ uint64, cmd []byte) (uint64, *Error) {
	if len(cmd) == 0 {
		return f.count, nil
	}
	f.count++
	f.bytes += uint64(len(cmd))
	return f.count, nil
}

// Count returns the number of commands applied: what a read reads. Call
// it only on the apply goroutine (from raft.Read or raft.Query).
func (f *FSM) Count() uint64 { return f.count }

// Snapshot returns a copy of the counters.
func (f *FSM) Snapshot(raft.SnapshotMeta) (raft.StateSnapshot, error) {
	return fsmSnapshot{count: f.count, bytes: f.bytes}, nil
}

// Restore replaces the counters with the 16 bytes written by a snapshot.
func (f *FSM) Restore(_ raft.SnapshotMeta, r io.Reader) error {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return fmt.Errorf("cluster: restore counters: %w", err)
	}
	f.count = binary.LittleEndian.Uint64(b[:8])
	f.bytes = binary.LittleEndian.Uint64(b[8:])
	return nil
}

type fsmSnapshot struct{ count, bytes uint64 }

func (s fsmSnapshot) Write(w io.Writer) error {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], s.count)
	binary.LittleEndian.PutUint64(b[8:], s.bytes)
	_, err := w.Write(b[:])
	return err
}

func (fsmSnapshot) Release() {}
