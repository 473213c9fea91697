package raft

import (
	"errors"
	"io"
)

// Storage errors. Implementations return these (possibly wrapped) so that the
// node can tell them apart with errors.Is. The node expects ErrCompacted and
// ErrUnavailable from reads outside the stored range and ErrNoSnapshot from
// an empty snapshot store, and acts on them (a leader sends a snapshot to a
// follower whose next entries are compacted). Any other error from a
// LogStore method is fatal: the node stops with it (see [Raft.Err]); one
// from a SnapshotStore method fails that snapshot operation.
var (
	// ErrCompacted: the requested index is at or below the compaction point.
	ErrCompacted = errors.New("raft: requested index is compacted")
	// ErrUnavailable: the requested index is beyond the last stored entry.
	ErrUnavailable = errors.New("raft: requested index is unavailable")
	// ErrNoSnapshot: the snapshot store holds no committed snapshot.
	ErrNoSnapshot = errors.New("raft: no snapshot")
	// ErrCorrupt: stored data failed a checksum or format check. Errors that
	// match it name what is corrupt.
	ErrCorrupt = errors.New("raft: storage corrupt")
	// ErrStorageClosed: the storage was used after Close.
	ErrStorageClosed = errors.New("raft: storage closed")
)

// Storage is everything a node persists: the log, the hard state and the
// snapshots. A node uses one Storage exclusively; raft.New does not close it
// (a store that implements io.Closer is closed by whoever opened it, after
// the node has stopped, and then returns ErrStorageClosed).
//
// The package [github.com/typedraft/typedraft/store/storetest] walks through
// writing one and checks an implementation against everything documented
// here. Optional interfaces: NodeBinder (refuse a store written by another
// node), FailureNotifier (report a failure found in the background) and
// InlineSaver (a store whose Save does not wait on a device).
type Storage interface {
	LogStore
	SnapshotStore
}

// LogStore persists the hard state and the log.
//
// Concurrency: the node calls Save and Compact from one goroutine at a time;
// the read methods may be called concurrently with each other and with Save
// and Compact, and must see either the state before or after a concurrent
// write, never a mixture (the entries one Entries call returns all come
// from one state).
//
// Ownership: Save takes the entries it is given and may keep them (the node
// does not modify them afterwards); Entries returns a slice the caller owns
// and may modify, whose entries stay valid and unchanged whatever the store
// does later (a store that decodes into a reused buffer must copy); the
// caller never modifies the entries' Data, so it may be shared with the
// store.
//
// Implementations must:
//   - make Save atomic and durable: when it returns nil, the hard state and all
//     entries are on stable storage (one fsync for the whole call); after a
//     crash during Save, either all of it or none of it is visible;
//   - in Save, delete every stored entry with index >= entries[0].Index before
//     writing entries (conflict truncation, §5.3);
//   - return ErrCompacted / ErrUnavailable (wrapped is fine) for reads outside
//     [FirstIndex-1, LastIndex] (Term) or [FirstIndex, LastIndex] (Entries);
//   - keep the term of the last compacted entry readable through Term;
//   - report corruption with an error matching ErrCorrupt that names the key
//     or index, never return garbage or panic;
//   - refuse a Save whose entries would leave a gap, start below FirstIndex
//     or are not contiguous, with an error and without changing anything.
type LogStore interface {
	// InitialState returns the persisted hard state (zero for a new store).
	InitialState() (HardState, error)

	// FirstIndex returns the index of the first entry still stored; it is
	// the compaction index + 1 (1 for a store that never compacted), even when
	// the log is empty.
	FirstIndex() (uint64, error)

	// LastIndex returns the index of the last stored entry, or the compaction
	// index when no entry is stored after it (0 for a new store).
	LastIndex() (uint64, error)

	// Term returns the term of the entry at index, for index in
	// [FirstIndex-1, LastIndex]. Term(0) is 0 on a store that never compacted.
	Term(index uint64) (uint64, error)

	// Entries returns the entries in [lo, hi), in order. If maxBytes > 0 it
	// stops before the total of Entry.Size would exceed maxBytes, but always
	// returns at least one entry when lo < hi. The returned slice belongs to
	// the caller; the entries' Data must not be modified.
	Entries(lo, hi, maxBytes uint64) ([]Entry, error)

	// Save persists hs and appends entries (which may be empty) atomically
	// with one fsync. Entries are contiguous and increasing; entries[0].Index
	// must be in [FirstIndex, LastIndex+1], and every stored entry at or after
	// it is replaced. Save takes ownership of entries; the caller does not
	// modify them afterwards.
	Save(hs HardState, entries []Entry) error

	// Compact discards the entries up to and including index and remembers
	// term as the term at index. If the log does not hold (index, term)
	// itself, the whole log is discarded and the store restarts after index
	// (this is how an installed snapshot resets a follower's log). Compacting
	// at or below the current compaction index is a no-op. Compact is durable
	// when it returns.
	Compact(index, term uint64) error
}

// SnapshotStore keeps snapshots of the state machine.
//
// Concurrency: Create, Open and Latest may be called concurrently with each
// other and with the LogStore methods; several sinks may be open at once,
// each used by one goroutine. Implementations must make Commit atomic and
// durable: an interrupted or aborted snapshot never replaces the latest
// committed one, and a committed snapshot survives a crash.
//
// Ownership: metadata passed in or returned is copied, never shared with
// the store. A reader from OpenSnapshot keeps returning the bytes of the
// snapshot it opened until it is closed, even when newer snapshots are
// committed meanwhile and older ones deleted (the leader streams a snapshot
// to a follower while the node takes the next one).
type SnapshotStore interface {
	// CreateSnapshot starts writing a snapshot described by meta.
	CreateSnapshot(meta SnapshotMeta) (SnapshotSink, error)

	// LatestSnapshot returns the metadata of the newest committed snapshot,
	// or ErrNoSnapshot.
	LatestSnapshot() (SnapshotMeta, error)

	// OpenSnapshot opens the newest committed snapshot for reading. The
	// caller closes the reader. It returns ErrNoSnapshot if there is none.
	OpenSnapshot() (SnapshotMeta, io.ReadCloser, error)
}

// SnapshotSink receives the bytes of a snapshot being written. Exactly one of
// Commit or Abort must be called; after either, the sink is unusable.
type SnapshotSink interface {
	io.Writer
	// Commit makes the snapshot durable and the newest one, then releases the
	// sink. Older snapshots may be deleted.
	Commit() error
	// Abort discards the snapshot being written.
	Abort() error
}

// ErrWrongNode: a Storage written by one node was opened for another. The
// error names both IDs. A store belongs to one node for its whole life.
var ErrWrongNode = errors.New("raft: storage belongs to another node")

// NodeBinder is an optional interface of Storage. raft.New calls BindNode
// with the node's ID before it reads anything else: the first call on a
// fresh store records id durably; every later call, in this or a later
// process, returns an error matching ErrWrongNode if the store was bound to
// another ID. Stores that do not implement it are not checked.
type NodeBinder interface {
	BindNode(id NodeID) error
}

// FailureNotifier is an optional interface of Storage for stores that can
// discover a fatal failure outside any call the node makes (corruption found
// by a background compaction, a failed background write). Failed returns a
// channel that is closed once the store has failed for good; FailureErr then
// returns an error naming the failure (matching ErrCorrupt for corruption).
// A node whose store fails stops with that error, as it does when a call
// returns one.
type FailureNotifier interface {
	Failed() <-chan struct{}
	FailureErr() error
}

// InlineSaver is an optional interface of Storage for stores whose Save
// returns without waiting on a device, such as an in-memory store. When
// SavesInline reports true (the node asks once, in raft.New), the node
// calls Save on its driver goroutine and waits for it, as it does for the
// writes that must not overlap anything (snapshots, hard-state-only
// changes), instead of handing each log write to its writer goroutine and
// stepping messages while it is in flight. Both are correct; inline saves
// spare two goroutine hand-offs per write, which is most of a write's cost
// when Save takes microseconds (memory + inmem: +10–15 % ops/s at 1 and 64
// clients, benchmarks/README.md). A store that fsyncs must not report true:
// its Save would hold up heartbeats, elections and every other proposal
// for as long as the device takes. A wrapper that adds latency to a store
// that reports true (a test that stalls Save, say) must report false.
type InlineSaver interface {
	SavesInline() bool
}
