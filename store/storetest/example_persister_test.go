package storetest_test

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/storetest"
)

// This file is a complete raft.Storage over a Persister like MIT 6.5840's,
// which keeps one "raft state" blob and one snapshot blob and replaces both
// together, and the test that runs the conformance suite on it
// (persisterConformance, run by TestPersisterStore).

// Persister is a stand-in for 6.5840's Persister: Save replaces the state
// and the snapshot together, atomically and durably.
type Persister struct {
	mu              sync.Mutex
	state, snapshot []byte
}

func (p *Persister) Save(state, snapshot []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state, p.snapshot = bytes.Clone(state), bytes.Clone(snapshot)
}

func (p *Persister) ReadRaftState() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.state)
}

func (p *Persister) ReadSnapshot() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.snapshot)
}

// persisted is what the store encodes into the raft-state blob: the hard
// state, the compaction point, the log after it and the snapshot's meta.
type persisted struct {
	HS           raft.HardState
	CompactIndex uint64
	CompactTerm  uint64
	Log          []raft.Entry // CompactIndex+1 ...
	Snap         raft.SnapshotMeta
}

// persistStore keeps a decoded copy of the state in memory for reads and
// writes all of it through the Persister on every change: simple, and
// atomic, as each change is one Persister.Save. Reads and writes exclude
// each other with a RWMutex, so a read sees one state, never a mixture.
// The snapshot's bytes are replaced on commit, never modified, so a reader
// opened earlier keeps its snapshot.
type persistStore struct {
	p      *Persister
	mu     sync.RWMutex
	closed bool
	st     persisted
	snap   []byte
}

var errInvalid = errors.New("persist: invalid save")

func openPersistStore(p *Persister) (*persistStore, error) {
	s := &persistStore{p: p, snap: p.ReadSnapshot()}
	if b := p.ReadRaftState(); len(b) > 0 {
		if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&s.st); err != nil {
			return nil, fmt.Errorf("persist: decode state: %w: %v", raft.ErrCorrupt, err)
		}
	}
	return s, nil
}

// persist writes st and snap; the caller holds s.mu for writing and
// adopts st only once it is written.
func (s *persistStore) persist(st persisted, snap []byte) error {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(st); err != nil {
		return fmt.Errorf("persist: encode state: %w", err)
	}
	s.p.Save(b.Bytes(), snap)
	s.st, s.snap = st, snap
	return nil
}

func (s *persistStore) last() uint64 { return s.st.CompactIndex + uint64(len(s.st.Log)) }

func closedErr(op string) error { return fmt.Errorf("persist: %s: %w", op, raft.ErrStorageClosed) }

func (s *persistStore) InitialState() (raft.HardState, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return raft.HardState{}, closedErr("initial state")
	}
	return s.st.HS, nil
}

func (s *persistStore) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, closedErr("first index")
	}
	return s.st.CompactIndex + 1, nil
}

func (s *persistStore) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, closedErr("last index")
	}
	return s.last(), nil
}

// Term answers for [FirstIndex-1, LastIndex]: the compaction point keeps
// its term.
func (s *persistStore) Term(i uint64) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case s.closed:
		return 0, closedErr("term")
	case i < s.st.CompactIndex:
		return 0, fmt.Errorf("persist: term %d: %w", i, raft.ErrCompacted)
	case i == s.st.CompactIndex:
		return s.st.CompactTerm, nil
	case i > s.last():
		return 0, fmt.Errorf("persist: term %d: %w", i, raft.ErrUnavailable)
	}
	return s.st.Log[i-s.st.CompactIndex-1].Term, nil
}

// Entries returns a new slice (the caller owns it); the entries' Data is
// shared, which is allowed since nobody modifies it.
func (s *persistStore) Entries(lo, hi, maxBytes uint64) ([]raft.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case s.closed:
		return nil, closedErr("entries")
	case lo > hi:
		return nil, fmt.Errorf("persist: entries [%d,%d): lo > hi", lo, hi)
	case lo <= s.st.CompactIndex:
		return nil, fmt.Errorf("persist: entries [%d,%d): %w", lo, hi, raft.ErrCompacted)
	case hi > s.last()+1:
		return nil, fmt.Errorf("persist: entries [%d,%d): %w", lo, hi, raft.ErrUnavailable)
	}
	src := s.st.Log[lo-s.st.CompactIndex-1 : hi-s.st.CompactIndex-1]
	n, total := 0, uint64(0)
	for n < len(src) {
		total += src[n].Size()
		if maxBytes > 0 && n > 0 && total > maxBytes {
			break
		}
		n++
	}
	return slices.Clone(src[:n]), nil
}

// Save validates first, so a refused Save changes nothing, then replaces
// every entry from entries[0].Index on (conflict truncation) and writes the
// hard state with them in one Persister.Save.
func (s *persistStore) Save(hs raft.HardState, entries []raft.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return closedErr("save")
	}
	st := s.st
	st.HS = hs
	if len(entries) > 0 {
		first := entries[0].Index
		if first <= s.st.CompactIndex || first > s.last()+1 {
			return fmt.Errorf("persist: save from %d outside [%d, %d]: %w", first, s.st.CompactIndex+1, s.last()+1, errInvalid)
		}
		for i, e := range entries {
			if e.Index != first+uint64(i) {
				return fmt.Errorf("persist: save: entry %d has index %d, want %d: %w", i, e.Index, first+uint64(i), errInvalid)
			}
		}
		// A new array: readers' slices and the old state stay untouched.
		st.Log = append(slices.Clip(s.st.Log[:first-s.st.CompactIndex-1]), entries...)
	}
	return s.persist(st, s.snap)
}

// Compact keeps the term at index; if the log does not hold (index, term)
// it discards the whole log.
func (s *persistStore) Compact(index, term uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return closedErr("compact")
	}
	if index <= s.st.CompactIndex {
		return nil
	}
	st := s.st
	if index <= s.last() && s.st.Log[index-s.st.CompactIndex-1].Term == term {
		st.Log = slices.Clone(s.st.Log[index-s.st.CompactIndex:])
	} else {
		st.Log = nil
	}
	st.CompactIndex, st.CompactTerm = index, term
	return s.persist(st, s.snap)
}

func (s *persistStore) CreateSnapshot(meta raft.SnapshotMeta) (raft.SnapshotSink, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, closedErr("create snapshot")
	}
	meta.Configuration = meta.Configuration.Clone() // never share the caller's
	return &persistSink{s: s, meta: meta}, nil
}

func (s *persistStore) LatestSnapshot() (raft.SnapshotMeta, error) {
	meta, _, err := s.OpenSnapshot()
	return meta, err
}

// OpenSnapshot reads the meta and the bytes under one lock: apart, a
// commit in between would pair one snapshot's meta with another's data.
func (s *persistStore) OpenSnapshot() (raft.SnapshotMeta, io.ReadCloser, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return raft.SnapshotMeta{}, nil, closedErr("snapshot")
	}
	if s.st.Snap.Index == 0 {
		return raft.SnapshotMeta{}, nil, fmt.Errorf("persist: %w", raft.ErrNoSnapshot)
	}
	meta := s.st.Snap
	meta.Configuration = meta.Configuration.Clone()
	return meta, io.NopCloser(bytes.NewReader(s.snap)), nil
}

// Close makes every later call fail with raft.ErrStorageClosed; the state
// stays in the Persister.
func (s *persistStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// persistSink buffers a snapshot (a Persister holds it whole anyway) and
// commits it with the state in one Persister.Save.
type persistSink struct {
	s    *persistStore
	meta raft.SnapshotMeta
	buf  bytes.Buffer
	done bool
}

var errSinkDone = errors.New("persist: snapshot sink already committed or aborted")

func (k *persistSink) Write(p []byte) (int, error) {
	if k.done {
		return 0, errSinkDone
	}
	return k.buf.Write(p)
}

func (k *persistSink) Commit() error {
	if k.done {
		return errSinkDone
	}
	k.done = true
	s := k.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return closedErr("commit snapshot")
	}
	st := s.st
	st.Snap = k.meta
	st.Snap.Size = int64(k.buf.Len())
	return s.persist(st, k.buf.Bytes())
}

func (k *persistSink) Abort() error {
	k.done = true
	return nil
}

// persisterConformance is the test an implementer adds to their package as
//
//	func TestConformance(t *testing.T) { ... }
//
// The store is durable: Open on a directory it has seen reopens the same
// Persister, as a restarted server would.
func persisterConformance(t *testing.T) {
	var mu sync.Mutex
	persisters := map[string]*Persister{}
	storetest.Run(t, storetest.Factory{
		Open: func(t *testing.T, dir string) raft.Storage {
			mu.Lock()
			p := persisters[dir]
			if p == nil {
				p = &Persister{}
				persisters[dir] = p
			}
			mu.Unlock()
			s, err := openPersistStore(p)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Durable: true,
	})
}

// Example_persister uses the store above the way raft does; the
// conformance suite runs on it in TestPersisterStore, through
// persisterConformance.
func Example_persister() {
	p := &Persister{}
	s, _ := openPersistStore(p)
	e := func(index, term uint64) raft.Entry { return raft.Entry{Index: index, Term: term} }
	_ = s.Save(raft.HardState{Term: 1, Vote: "n1"}, []raft.Entry{e(1, 1), e(2, 1), e(3, 1)})
	// A new leader's entry conflicts at index 2: 2 and 3 are replaced.
	_ = s.Save(raft.HardState{Term: 2}, []raft.Entry{e(2, 2)})
	last, _ := s.LastIndex()
	fmt.Println("last index after the conflict:", last)

	// A snapshot at 2, then compaction: the term at 2 stays readable.
	sink, _ := s.CreateSnapshot(raft.SnapshotMeta{Index: 2, Term: 2})
	_, _ = sink.Write([]byte("state machine"))
	_ = sink.Commit()
	_ = s.Compact(2, 2)
	term, _ := s.Term(2)
	_, err := s.Entries(2, 3, 0)
	fmt.Println("term at the compaction point:", term, "entries below it:", errors.Is(err, raft.ErrCompacted))

	// Everything survives a restart.
	_ = s.Close()
	s, _ = openPersistStore(p)
	hs, _ := s.InitialState()
	first, _ := s.FirstIndex()
	meta, r, _ := s.OpenSnapshot()
	data, _ := io.ReadAll(r)
	fmt.Printf("after reopening: term %d, first index %d, snapshot %d %q\n", hs.Term, first, meta.Index, data)
	// Output:
	// last index after the conflict: 2
	// term at the compaction point: 2 entries below it: true
	// after reopening: term 2, first index 3, snapshot 2 "state machine"
}
