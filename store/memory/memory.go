// Package memory implements raft.Storage in memory. It is meant for tests,
// examples and benchmarks: nothing survives the process, and "durable" in the
// raft.Storage contract means "visible to every later read".
//
// A Store is safe for the concurrency raft.Storage documents: Save and Compact
// from one goroutine at a time, reads and snapshot operations from any number
// of goroutines concurrently with them. Every write is applied under a lock,
// so a read sees the state either before or after a write, never a mixture.
package memory

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/typedraft/typedraft/raft"
)

// errInvalidSave is wrapped by the errors Save returns for entries that do not
// fit the log (a gap, an index below FirstIndex, non-contiguous indexes).
var errInvalidSave = errors.New("memory: invalid save")

// errInvalidRange is wrapped by the errors Entries returns for lo > hi.
var errInvalidRange = errors.New("memory: invalid range")

// Store is an in-memory raft.Storage. Create one with New. Its methods are
// safe for concurrent use as documented on raft.LogStore and
// raft.SnapshotStore; after Close they return errors matching
// raft.ErrStorageClosed.
//
// Ownership: Save keeps the entries it is given (their Data is never copied
// or modified); Entries returns a fresh []raft.Entry the caller owns, whose
// Data is shared with the store and must not be modified. Snapshots are
// copied when committed and never change afterwards.
//
// It also implements raft.NodeBinder, in memory, and raft.InlineSaver: a
// node saves to it on its driver goroutine (SetSavesInline(false) makes
// the node use its writer goroutine, as it does with a store that fsyncs).
type Store struct {
	// writerSaves is SetSavesInline's negation, so that the zero Store
	// saves inline.
	writerSaves atomic.Bool

	mu     sync.RWMutex
	closed bool
	hs     raft.HardState

	// The log. buf[off:] holds the entries FirstIndex..LastIndex in order;
	// buf[:off] are released slots kept only until the next reallocation, so
	// that compaction costs amortized O(1) per discarded entry.
	buf []raft.Entry
	off int
	// compactIndex and compactTerm describe the last discarded entry:
	// FirstIndex is compactIndex+1 and Term(compactIndex) is compactTerm.
	compactIndex uint64
	compactTerm  uint64

	// snap is the newest committed snapshot, nil if none.
	snap *snapshot

	// node is the node the store is bound to ("" if none), see BindNode.
	node raft.NodeID
}

// New returns an empty Store: FirstIndex 1, LastIndex 0, a zero hard state and
// no snapshot.
func New() *Store { return &Store{} }

// SavesInline reports whether a node should call Save on its driver
// goroutine (raft.InlineSaver): true unless SetSavesInline(false) was
// called. Save never waits on a device, so that is the faster choice.
// Safe for concurrent use.
func (s *Store) SavesInline() bool { return !s.writerSaves.Load() }

// SetSavesInline sets what SavesInline reports. raft.New asks once, so
// call it before. Tests that want a node to run its writer goroutine with
// an in-memory store (the path a node on a durable store takes), or that
// wrap the store to slow Save down, set false. Safe for concurrent use.
func (s *Store) SetSavesInline(inline bool) { s.writerSaves.Store(!inline) }

// Close releases the store's contents. Afterwards every method returns an
// error matching raft.ErrStorageClosed; readers of snapshots opened before
// Close keep working. Close is idempotent and always returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.buf, s.off, s.snap = nil, 0, nil
	return nil
}

// errClosed returns the error for an operation op on a closed store.
func errClosed(op string) error {
	return fmt.Errorf("memory: %s: %w", op, raft.ErrStorageClosed)
}

// InitialState returns the hard state given to the last successful Save (zero
// for a new store). It fails only with raft.ErrStorageClosed.
func (s *Store) InitialState() (raft.HardState, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return raft.HardState{}, errClosed("initial state")
	}
	return s.hs, nil
}

// FirstIndex returns the compaction index + 1. It fails only with
// raft.ErrStorageClosed.
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, errClosed("first index")
	}
	return s.compactIndex + 1, nil
}

// LastIndex returns the index of the last entry, or the compaction index if
// the log is empty. It fails only with raft.ErrStorageClosed.
func (s *Store) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, errClosed("last index")
	}
	return s.lastIndex(), nil
}

// lastIndex is LastIndex with s.mu held.
func (s *Store) lastIndex() uint64 { return s.compactIndex + uint64(len(s.buf)-s.off) }

// log returns the stored entries with s.mu held; the slice aliases s.buf.
func (s *Store) log() []raft.Entry { return s.buf[s.off:] }

// Term returns the term of the entry at index. It returns an error matching
// raft.ErrCompacted for index < FirstIndex-1, raft.ErrUnavailable for index >
// LastIndex, and raft.ErrStorageClosed after Close.
func (s *Store) Term(index uint64) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, errClosed(fmt.Sprintf("term %d", index))
	}
	switch {
	case index == s.compactIndex:
		return s.compactTerm, nil
	case index < s.compactIndex:
		return 0, fmt.Errorf("memory: term %d (first index %d): %w", index, s.compactIndex+1, raft.ErrCompacted)
	case index > s.lastIndex():
		return 0, fmt.Errorf("memory: term %d (last index %d): %w", index, s.lastIndex(), raft.ErrUnavailable)
	}
	return s.log()[index-s.compactIndex-1].Term, nil
}

// Entries returns the entries in [lo, hi), stopping before their total
// Entry.Size would exceed maxBytes when maxBytes > 0, but returning at least
// one entry when lo < hi. lo == hi within bounds returns no entries and no
// error. It returns an error matching raft.ErrCompacted if lo < FirstIndex,
// raft.ErrUnavailable if hi > LastIndex+1, raft.ErrStorageClosed after Close,
// and a plain error if lo > hi. The slice is new and belongs to the caller;
// the entries' Data is shared and must not be modified.
func (s *Store) Entries(lo, hi, maxBytes uint64) ([]raft.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed(fmt.Sprintf("entries [%d,%d)", lo, hi))
	}
	if lo > hi {
		return nil, fmt.Errorf("memory: entries [%d,%d): %w: lo > hi", lo, hi, errInvalidRange)
	}
	if lo <= s.compactIndex {
		return nil, fmt.Errorf("memory: entries [%d,%d) (first index %d): %w", lo, hi, s.compactIndex+1, raft.ErrCompacted)
	}
	if last := s.lastIndex(); hi > last+1 {
		return nil, fmt.Errorf("memory: entries [%d,%d) (last index %d): %w", lo, hi, last, raft.ErrUnavailable)
	}
	src := s.log()[lo-s.compactIndex-1 : hi-s.compactIndex-1]
	if maxBytes > 0 && len(src) > 0 {
		n, total := 1, src[0].Size()
		for n < len(src) {
			total += src[n].Size()
			if total > maxBytes {
				break
			}
			n++
		}
		src = src[:n]
	}
	out := make([]raft.Entry, len(src))
	copy(out, src)
	return out, nil
}

// Save stores hs and appends entries, first deleting every stored entry at or
// after entries[0].Index. It takes ownership of entries. It validates before
// changing anything, so a failed Save leaves the store as it was: the entries
// must be contiguous (each Index one more than the previous) and
// entries[0].Index must be in [FirstIndex, LastIndex+1]. It returns
// raft.ErrStorageClosed after Close.
func (s *Store) Save(hs raft.HardState, entries []raft.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed("save")
	}
	if len(entries) > 0 {
		first, last := s.compactIndex+1, s.lastIndex()
		start := entries[0].Index
		if start < first || start > last+1 {
			return fmt.Errorf("memory: save entries [%d,%d]: %w: first entry must be in [%d,%d] (first index, last index + 1)",
				start, entries[len(entries)-1].Index, errInvalidSave, first, last+1)
		}
		for i := 1; i < len(entries); i++ {
			if entries[i].Index != entries[i-1].Index+1 || entries[i].Index == 0 {
				return fmt.Errorf("memory: save entries from %d: %w: entry %d of the batch has index %d after %d, want contiguous indexes",
					start, errInvalidSave, i, entries[i].Index, entries[i-1].Index)
			}
		}
		keep := s.off + int(start-first)
		switch need := keep + len(entries); {
		case need < len(s.buf):
			// Release the Data of replaced entries that the copy below
			// does not overwrite.
			clear(s.buf[need:])
		case need > cap(s.buf) && s.off > 0:
			// Growing anyway: leave the released front slots behind
			// instead of copying them.
			live := keep - s.off
			nb := make([]raft.Entry, live, 2*(live+len(entries)))
			copy(nb, s.buf[s.off:keep])
			s.buf, s.off, keep = nb, 0, live
		}
		s.buf = append(s.buf[:keep], entries...)
	}
	s.hs = hs
	return nil
}

// Compact discards the entries up to and including index and records term as
// the term at index. If the log does not hold an entry (index, term) — index
// is beyond LastIndex, or the entry there has another term — the whole log is
// discarded and the log restarts after index. Compacting at or below the
// current compaction index does nothing. The memory of discarded entries is
// released (amortized: the backing array shrinks once at least half of it is
// discarded). It returns raft.ErrStorageClosed after Close.
func (s *Store) Compact(index, term uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed(fmt.Sprintf("compact to %d", index))
	}
	if index <= s.compactIndex {
		return nil
	}
	n := len(s.buf) - s.off // stored entries
	drop := n
	if index <= s.lastIndex() && s.log()[index-s.compactIndex-1].Term == term {
		drop = int(index - s.compactIndex)
	}
	clear(s.buf[s.off : s.off+drop])
	s.off += drop
	s.compactIndex, s.compactTerm = index, term
	if live := len(s.buf) - s.off; live == 0 {
		s.buf, s.off = nil, 0
	} else if s.off >= live {
		nb := make([]raft.Entry, live, 2*live)
		copy(nb, s.buf[s.off:])
		s.buf, s.off = nb, 0
	}
	return nil
}

// BindNode implements raft.NodeBinder for the life of the Store (nothing is
// durable): the first call records id; later calls return nil for the same
// id and an error matching raft.ErrWrongNode, naming both IDs, for another.
// An empty id is an error. Safe for concurrent use. After Close it returns
// raft.ErrStorageClosed.
func (s *Store) BindNode(id raft.NodeID) error {
	if id == "" {
		return errors.New("memory: bind node: empty node ID")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed("bind node")
	}
	switch s.node {
	case "":
		s.node = id
	case id:
	default:
		return fmt.Errorf("memory: the store belongs to node %q, not %q: %w", s.node, id, raft.ErrWrongNode)
	}
	return nil
}
