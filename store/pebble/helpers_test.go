package pebble

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/typedraft/typedraft/raft"
)

// countingFS wraps a vfs.FS and counts the syncs of the files it opens.
type countingFS struct {
	vfs.FS
	walSyncs   atomic.Int64 // Sync/SyncData of Pebble WAL files (*.log)
	otherSyncs atomic.Int64 // every other file or directory sync
}

func (c *countingFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, fs: c, wal: strings.HasSuffix(name, ".log")}, nil
}

func (c *countingFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := c.FS.Create(name, cat)
	return c.wrap(name, f, err)
}

func (c *countingFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := c.FS.ReuseForWrite(oldname, newname, cat)
	return c.wrap(newname, f, err)
}

func (c *countingFS) OpenReadWrite(name string, cat vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := c.FS.OpenReadWrite(name, cat, opts...)
	return c.wrap(name, f, err)
}

func (c *countingFS) OpenDir(name string) (vfs.File, error) {
	f, err := c.FS.OpenDir(name)
	return c.wrap(name, f, err)
}

func (c *countingFS) Unwrap() vfs.FS { return c.FS }

func (c *countingFS) syncs() (wal, other int64) { return c.walSyncs.Load(), c.otherSyncs.Load() }

type countingFile struct {
	vfs.File
	fs  *countingFS
	wal bool
}

func (f *countingFile) count() {
	if f.wal {
		f.fs.walSyncs.Add(1)
	} else {
		f.fs.otherSyncs.Add(1)
	}
}

func (f *countingFile) Sync() error     { f.count(); return f.File.Sync() }
func (f *countingFile) SyncData() error { f.count(); return f.File.SyncData() }
func (f *countingFile) SyncTo(n int64) (bool, error) {
	full, err := f.File.SyncTo(n)
	if full {
		f.count()
	}
	return full, err
}

// model is the reference implementation the store is compared with: the
// plain semantics of raft.LogStore over a slice.
type model struct {
	hs     raft.HardState
	ci, ct uint64
	ents   []raft.Entry // entries ci+1 ...
}

func (m *model) clone() *model {
	c := *m
	c.ents = append([]raft.Entry(nil), m.ents...)
	return &c
}

func (m *model) first() uint64 { return m.ci + 1 }
func (m *model) last() uint64  { return m.ci + uint64(len(m.ents)) }

// save applies a Save the caller knows to be valid.
func (m *model) save(hs raft.HardState, es []raft.Entry) {
	m.hs = hs
	if len(es) > 0 {
		m.ents = append(m.ents[:es[0].Index-m.first():es[0].Index-m.first()], es...)
	}
}

func (m *model) compact(index, term uint64) {
	if index <= m.ci {
		return
	}
	if index <= m.last() && m.ents[index-m.first()].Term == term {
		m.ents = append([]raft.Entry(nil), m.ents[index-m.ci:]...)
	} else {
		m.ents = nil
	}
	m.ci, m.ct = index, term
}

func (m *model) term(index uint64) (uint64, error) {
	switch {
	case index == m.ci:
		return m.ct, nil
	case index < m.ci:
		return 0, raft.ErrCompacted
	case index > m.last():
		return 0, raft.ErrUnavailable
	}
	return m.ents[index-m.first()].Term, nil
}

func (m *model) entries(lo, hi, maxBytes uint64) ([]raft.Entry, error) {
	switch {
	case lo > hi:
		return nil, errInvalid
	case lo <= m.ci:
		return nil, raft.ErrCompacted
	case hi > m.last()+1:
		return nil, raft.ErrUnavailable
	}
	var out []raft.Entry
	var size uint64
	for i := lo; i < hi; i++ {
		e := m.ents[i-m.first()]
		size += e.Size()
		if maxBytes > 0 && size > maxBytes && len(out) > 0 {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

var errInvalid = errors.New("invalid argument")

// errClass reduces an error to what the stores must agree on.
func errClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, raft.ErrCompacted):
		return "compacted"
	case errors.Is(err, raft.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, raft.ErrCorrupt):
		return "corrupt"
	case errors.Is(err, raft.ErrStorageClosed):
		return "closed"
	}
	return "error"
}

func entriesEqual(a, b []raft.Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Index != b[i].Index || a[i].Term != b[i].Term || a[i].Type != b[i].Type || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

// checkState compares every observable part of s's log with m.
func checkState(s raft.LogStore, m *model) error {
	hs, err := s.InitialState()
	if err != nil || hs != m.hs {
		return fmt.Errorf("InitialState = %+v, %v; want %+v", hs, err, m.hs)
	}
	if f, err := s.FirstIndex(); err != nil || f != m.first() {
		return fmt.Errorf("FirstIndex = %d, %v; want %d", f, err, m.first())
	}
	if l, err := s.LastIndex(); err != nil || l != m.last() {
		return fmt.Errorf("LastIndex = %d, %v; want %d", l, err, m.last())
	}
	if t, err := s.Term(m.ci); err != nil || t != m.ct {
		return fmt.Errorf("Term(%d) = %d, %v; want %d", m.ci, t, err, m.ct)
	}
	got, err := s.Entries(m.first(), m.last()+1, 0)
	if err != nil || !entriesEqual(got, m.ents) {
		return fmt.Errorf("Entries(%d, %d) = %d entries, %v; want %d entries", m.first(), m.last()+1, len(got), err, len(m.ents))
	}
	for _, e := range m.ents {
		if t, err := s.Term(e.Index); err != nil || t != e.Term {
			return fmt.Errorf("Term(%d) = %d, %v; want %d", e.Index, t, err, e.Term)
		}
	}
	return nil
}

// gen produces random valid (and occasionally invalid) operations.
type gen struct {
	r    *rand.Rand
	term uint64
}

var voters = []raft.NodeID{"", "n1", "n2", "node-with-a-longer-id"}

func (g *gen) hardState(m *model) raft.HardState {
	hs := m.hs
	if g.r.IntN(4) == 0 {
		g.term++
	}
	hs.Term = max(hs.Term, g.term)
	hs.Vote = voters[g.r.IntN(len(voters))]
	if l := m.last(); l > 0 {
		hs.Commit = g.r.Uint64N(l + 1)
	}
	return hs
}

// save returns a Save valid for m: an append, or with probability 1/3 a
// conflict truncation a few entries back with a new term; sometimes no
// entries at all.
func (g *gen) save(m *model) (raft.HardState, []raft.Entry) {
	start := m.last() + 1
	if g.r.IntN(3) == 0 && len(m.ents) > 0 {
		back := min(g.r.Uint64N(8), uint64(len(m.ents))-1)
		start = m.last() - back
		g.term++
	}
	n := g.r.IntN(9)
	if g.r.IntN(10) == 0 {
		n = 0
	}
	hs := g.hardState(m)
	es := make([]raft.Entry, n)
	for i := range es {
		es[i] = g.entry(start+uint64(i), g.term)
	}
	return hs, es
}

func (g *gen) entry(index, term uint64) raft.Entry {
	e := raft.Entry{Index: index, Term: term, Type: raft.EntryType(g.r.IntN(3))}
	if e.Type != raft.EntryNoop {
		e.Data = make([]byte, g.r.IntN(96))
		for i := range e.Data {
			e.Data[i] = byte(g.r.Uint32())
		}
	}
	return e
}

// compact returns a compaction point near the end of m's log, holding the
// entry's term (keeps the rest) or not (discards the log).
func (g *gen) compact(m *model) (uint64, uint64) {
	lo := m.ci
	if lo > 2 {
		lo -= 2
	}
	idx := lo + g.r.Uint64N(m.last()-lo+4)
	t, err := m.term(idx)
	if err != nil || g.r.IntN(5) == 0 {
		g.term++
		t = g.term
	}
	return idx, t
}

// readAllSnapshot reads s's latest snapshot.
func readAllSnapshot(s raft.SnapshotStore) (raft.SnapshotMeta, []byte, error) {
	meta, r, err := s.OpenSnapshot()
	if err != nil {
		return meta, nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	return meta, data, err
}

// openT opens a store, failing the test on error, and closes it at cleanup.
func openT(t testing.TB, dir string, o *Options) *Store {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
