package pebble

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/typedraft/typedraft/raft"
)

const sstEntries = 2000

// sstLog returns the entries of sstFixture: 1..2000, term 1, 100 random
// (incompressible) bytes each.
func sstLog() []raft.Entry {
	r := rand.New(rand.NewPCG(1, 2))
	es := make([]raft.Entry, sstEntries)
	for i := range es {
		es[i] = raft.Entry{Index: uint64(i + 1), Term: 1, Type: raft.EntryCommand, Data: make([]byte, 100)}
		for j := range es[i].Data {
			es[i].Data[j] = byte(r.Uint32())
		}
	}
	return es
}

// sstFixture returns the files of a closed store in corruptDir whose
// entries 1..2000 (term 1, 100 bytes each) were flushed and compacted into
// sstables, and the path of the largest sstable.
func sstFixture(t *testing.T) (map[string][]byte, string) {
	t.Helper()
	fs := vfs.NewMem()
	s, err := Open(corruptDir, &Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	es := sstLog()
	for lo := 0; lo < sstEntries; lo += 100 {
		if err := s.Save(raft.HardState{Term: 1, Commit: uint64(lo)}, es[lo:lo+100]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Compact(context.Background(), allLower, allUpper, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files := treeFiles(t, fs, corruptDir)
	var sst string
	for p, b := range files {
		if strings.HasSuffix(p, ".sst") && (sst == "" || len(b) > len(files[sst])) {
			sst = p
		}
	}
	if sst == "" || len(files[sst]) < 100<<10 {
		t.Fatalf("no large sstable among %d files", len(files))
	}
	return files, sst
}

// memFSWith returns a new MemFS holding files.
func memFSWith(t *testing.T, files map[string][]byte) vfs.FS {
	t.Helper()
	fs := vfs.NewMem()
	for p, b := range files {
		if err := fs.MkdirAll(fs.PathDir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := fs.Create(p, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(bytes.Clone(b)); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return fs
}

// flipped returns a copy of files with bit mask flipped in byte off of path.
func flipped(files map[string][]byte, path string, off int, mask byte) map[string][]byte {
	out := make(map[string][]byte, len(files))
	for p, b := range files {
		out[p] = b
	}
	b := bytes.Clone(files[path])
	b[off] ^= mask
	out[path] = b
	return out
}

// wantPebbleCorrupt fails unless err matches raft.ErrCorrupt and is a
// CorruptError naming the sstable at path.
func wantPebbleCorrupt(t *testing.T, op string, err error, path string) {
	t.Helper()
	var ce *CorruptError
	if !errors.Is(err, raft.ErrCorrupt) || !errors.As(err, &ce) || ce.What != "file "+path {
		t.Fatalf("%s: %v; want a CorruptError naming file %s", op, err, path)
	}
	if strings.Contains(err.Error(), "goroutine ") || strings.Contains(err.Error(), ".go:") {
		t.Fatalf("%s: the error carries a stack trace: %v", op, err)
	}
}

// TestCorruptSSTableBlock: one flipped byte in an sstable data block makes
// the read that reaches it return an error matching raft.ErrCorrupt naming
// the file — not a panic through Pebble's Fatalf — and fails the store:
// Failed is closed, FailureErr names the file, and every later call
// returns the failure.
func TestCorruptSSTableBlock(t *testing.T) {
	files, sst := sstFixture(t)
	fs := memFSWith(t, flipped(files, sst, len(files[sst])/3, 0x10))
	s := openT(t, corruptDir, &Options{FS: fs})
	select {
	case <-s.Failed():
		t.Fatalf("the store failed before the corrupt block was read: %v", s.FailureErr())
	default:
	}
	_, err := s.Entries(1, sstEntries+1, 0)
	wantPebbleCorrupt(t, "Entries", err, sst)
	select {
	case <-s.Failed():
	default:
		t.Fatal("Failed is not closed after a corrupt block")
	}
	wantPebbleCorrupt(t, "FailureErr", s.FailureErr(), sst)
	calls := map[string]func() error{
		"InitialState": func() error { _, err := s.InitialState(); return err },
		"FirstIndex":   func() error { _, err := s.FirstIndex(); return err },
		"LastIndex":    func() error { _, err := s.LastIndex(); return err },
		"Term":         func() error { _, err := s.Term(1); return err },
		"Entries":      func() error { _, err := s.Entries(1, 2, 0); return err },
		"Save": func() error {
			return s.Save(raft.HardState{Term: 2}, entriesOf(sstEntries+1, 1, 2, 8))
		},
		"Compact":        func() error { return s.Compact(5, 1) },
		"BindNode":       func() error { return s.BindNode("n1") },
		"LatestSnapshot": func() error { _, err := s.LatestSnapshot(); return err },
		"OpenSnapshot":   func() error { _, _, err := s.OpenSnapshot(); return err },
		"CreateSnapshot": func() error { _, err := s.CreateSnapshot(raft.SnapshotMeta{Index: 3, Term: 1}); return err },
	}
	for name, call := range calls {
		wantPebbleCorrupt(t, name+" after the failure", call(), sst)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after corruption: %v", err)
	}
}

// TestCorruptSSTableSweep flips one byte at positions spread over the whole
// sstable (data blocks, index, properties, footer): Open and a read of every
// entry either fail with an error matching raft.ErrCorrupt or return
// exactly the stored entries. Nothing panics, nothing hangs.
func TestCorruptSSTableSweep(t *testing.T) {
	files, sst := sstFixture(t)
	size := len(files[sst])
	var offs []int
	for i := 0; i < 40; i++ {
		offs = append(offs, i*size/40)
	}
	for i := 1; i <= 60; i += 3 {
		offs = append(offs, size-i) // footer and metaindex
	}
	sort.Ints(offs)
	want := sstLog()
	var outcomes = map[string]int{}
	for _, off := range offs {
		fs := memFSWith(t, flipped(files, sst, off, 0x04))
		outcome := func() string {
			s, err := Open(corruptDir, &Options{FS: fs})
			if err != nil {
				if !errors.Is(err, raft.ErrCorrupt) {
					t.Errorf("offset %d/%d: Open: %v; want an error matching raft.ErrCorrupt", off, size, err)
				}
				return "open refused"
			}
			defer func() {
				if err := s.Close(); err != nil {
					t.Errorf("offset %d: Close: %v", off, err)
				}
			}()
			got, err := s.Entries(1, sstEntries+1, 0)
			if err != nil {
				if !errors.Is(err, raft.ErrCorrupt) {
					t.Errorf("offset %d/%d: Entries: %v; want an error matching raft.ErrCorrupt", off, size, err)
				}
				return "read refused"
			}
			if !entriesEqual(got, want) {
				t.Errorf("offset %d/%d: Entries returned %d entries that differ from the stored ones", off, size, len(got))
			}
			return "unaffected"
		}()
		outcomes[outcome]++
	}
	t.Logf("%d flips: %v", len(offs), outcomes)
}

// TestCorruptionFoundByBackgroundCompaction: a corrupt sstable read by one
// of Pebble's compactions (on Pebble's goroutine, not in any call) fails
// the store: Failed is closed with an error matching raft.ErrCorrupt naming
// the file, later calls return it, and Close works.
func TestCorruptionFoundByBackgroundCompaction(t *testing.T) {
	files, sst := sstFixture(t)
	fs := memFSWith(t, flipped(files, sst, len(files[sst])/2, 0x01))
	s := openT(t, corruptDir, &Options{FS: fs})
	// Rewrite the whole log (the same entries) into new L0 files until
	// Pebble compacts them with the corrupt sstable below them. No call
	// reads the corrupt block.
	all := sstLog()
	failed := false
	for round := 0; round < 20 && !failed; round++ {
		if err := s.Save(raft.HardState{Term: 1, Commit: uint64(round)}, all); err != nil {
			if !errors.Is(err, raft.ErrCorrupt) {
				t.Fatalf("Save: %v", err)
			}
			break
		}
		done, err := s.db.AsyncFlush()
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-s.Failed():
			failed = true
		case <-time.After(10 * time.Second):
			t.Fatal("flush not done within 10 s")
		}
	}
	select {
	case <-s.Failed():
	case <-time.After(20 * time.Second):
		t.Fatal("no compaction found the corrupt sstable within 20 s")
	}
	err := s.FailureErr()
	t.Logf("failure: %v", err)
	wantPebbleCorrupt(t, "FailureErr", err, sst)
	_, err = s.InitialState()
	wantPebbleCorrupt(t, "InitialState after the failure", err, sst)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
