package memory

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/typedraft/typedraft/raft"
)

// errSinkDone is wrapped by the errors of a sink used after Commit or Abort.
var errSinkDone = errors.New("memory: snapshot sink already committed or aborted")

// errReaderClosed is returned by a snapshot reader used after Close.
var errReaderClosed = errors.New("memory: snapshot reader closed")

// snapshot is a committed snapshot; neither field changes after commit, and
// data is not shared with any sink or reader.
type snapshot struct {
	meta raft.SnapshotMeta
	data []byte
}

// CreateSnapshot starts a snapshot described by meta and returns a sink that
// buffers its bytes in memory; nothing is visible until the sink commits.
// meta is copied (including its Configuration), so the caller may reuse it.
// It returns an error if meta.Index is 0 and raft.ErrStorageClosed after
// Close. Any number of sinks may be open at once.
func (s *Store) CreateSnapshot(meta raft.SnapshotMeta) (raft.SnapshotSink, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed(fmt.Sprintf("create snapshot at %d", meta.Index))
	}
	if meta.Index == 0 {
		return nil, errors.New("memory: create snapshot: index 0 describes no snapshot")
	}
	meta.Configuration = meta.Configuration.Clone()
	return &sink{store: s, meta: meta}, nil
}

// LatestSnapshot returns the metadata of the most recently committed snapshot,
// with Size set to its length, or an error matching raft.ErrNoSnapshot if none
// was committed. The result is a copy the caller owns. It returns
// raft.ErrStorageClosed after Close.
func (s *Store) LatestSnapshot() (raft.SnapshotMeta, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return raft.SnapshotMeta{}, errClosed("latest snapshot")
	}
	if s.snap == nil {
		return raft.SnapshotMeta{}, fmt.Errorf("memory: latest snapshot: %w", raft.ErrNoSnapshot)
	}
	return cloneMeta(s.snap.meta), nil
}

// OpenSnapshot returns the metadata of the most recently committed snapshot
// and a reader of its bytes, or an error matching raft.ErrNoSnapshot if none
// was committed. The reader only copies bytes out (it offers no access to
// the store's slice, such as io.WriterTo), so no reader can change the
// snapshot. The reader keeps returning that snapshot's bytes even if a
// newer snapshot is committed or the store is closed meanwhile; reading after
// the reader's Close returns an error. It returns raft.ErrStorageClosed after
// Close.
func (s *Store) OpenSnapshot() (raft.SnapshotMeta, io.ReadCloser, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return raft.SnapshotMeta{}, nil, errClosed("open snapshot")
	}
	if s.snap == nil {
		return raft.SnapshotMeta{}, nil, fmt.Errorf("memory: open snapshot: %w", raft.ErrNoSnapshot)
	}
	return cloneMeta(s.snap.meta), &reader{r: bytes.NewReader(s.snap.data)}, nil
}

// cloneMeta returns a deep copy of m.
func cloneMeta(m raft.SnapshotMeta) raft.SnapshotMeta {
	m.Configuration = m.Configuration.Clone()
	return m
}

// sink buffers one snapshot until Commit. It is used by one goroutine.
type sink struct {
	store *Store
	meta  raft.SnapshotMeta
	buf   bytes.Buffer
	// done is set by Commit or Abort; the sink is unusable afterwards.
	done bool
}

// Write appends p to the snapshot (p is copied). It fails after Commit or
// Abort.
func (k *sink) Write(p []byte) (int, error) {
	if k.done {
		return 0, fmt.Errorf("memory: write snapshot %d: %w", k.meta.Index, errSinkDone)
	}
	return k.buf.Write(p)
}

// Commit makes the snapshot the latest one, replacing the previous latest
// whatever its index, and releases the sink. The committed bytes are a
// private copy (copy-on-commit): nothing the sink's writer, a reader or a
// later sink does can change them. It fails if the sink was already
// committed or aborted (changing nothing) and with raft.ErrStorageClosed if
// the store was closed.
func (k *sink) Commit() error {
	if k.done {
		return fmt.Errorf("memory: commit snapshot %d: %w", k.meta.Index, errSinkDone)
	}
	k.done = true
	data := bytes.Clone(k.buf.Bytes())
	k.buf = bytes.Buffer{}
	k.meta.Size = int64(len(data))
	s := k.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed(fmt.Sprintf("commit snapshot %d", k.meta.Index))
	}
	s.snap = &snapshot{meta: k.meta, data: data}
	return nil
}

// Abort discards the snapshot. It returns nil, also when called again or after
// Commit (so it can be deferred); an aborted sink never changes the store.
func (k *sink) Abort() error {
	k.done = true
	k.buf = bytes.Buffer{}
	return nil
}

// reader reads a committed snapshot's bytes; it is used by one goroutine.
type reader struct {
	r *bytes.Reader
}

// Read reads from the snapshot; it fails after Close.
func (r *reader) Read(p []byte) (int, error) {
	if r.r == nil {
		return 0, errReaderClosed
	}
	return r.r.Read(p)
}

// Close releases the reader; it returns nil, also when called again.
func (r *reader) Close() error {
	r.r = nil
	return nil
}
