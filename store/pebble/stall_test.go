package pebble

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/typedraft/typedraft/raft"
)

// stallFS makes every sync of a file whose name has the suffix (the WAL's
// ".log" by default) block while armed, until release is closed: a disk that
// stops answering.
type stallFS struct {
	vfs.FS
	suffix  string
	armed   atomic.Bool
	release chan struct{}
}

func (f *stallFS) wrap(name string, file vfs.File, err error) (vfs.File, error) {
	suffix := f.suffix
	if suffix == "" {
		suffix = ".log"
	}
	if err != nil || !strings.HasSuffix(name, suffix) {
		return file, err
	}
	return &stallFile{File: file, fs: f}, nil
}

func (f *stallFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.Create(name, cat)
	return f.wrap(name, file, err)
}

func (f *stallFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.ReuseForWrite(oldname, newname, cat)
	return f.wrap(newname, file, err)
}

func (f *stallFS) Unwrap() vfs.FS { return f.FS }

type stallFile struct {
	vfs.File
	fs *stallFS
}

func (f *stallFile) wait() {
	if f.fs.armed.Load() {
		<-f.fs.release
	}
}

func (f *stallFile) Sync() error     { f.wait(); return f.File.Sync() }
func (f *stallFile) SyncData() error { f.wait(); return f.File.SyncData() }
func (f *stallFile) SyncTo(n int64) (bool, error) {
	f.wait()
	return f.File.SyncTo(n)
}

// TestSaveStallTimesOut: a commit that Pebble never finishes (the WAL sync
// hangs) makes Save return within Options.WriteTimeout with an error saying
// so, fails the store, and makes Close return after the timeout too; once
// the disk answers again the database is closed in the background and the
// directory reopens with every acknowledged entry.
func TestSaveStallTimesOut(t *testing.T) {
	fs := &stallFS{FS: vfs.NewMem(), release: make(chan struct{})}
	const timeout = 300 * time.Millisecond
	s, err := Open("/stall", &Options{FS: fs, WriteTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	hs := raft.HardState{Term: 1, Vote: "n1"}
	if err := s.Save(hs, entriesOf(1, 10, 1, 64)); err != nil {
		t.Fatal(err)
	}
	fs.armed.Store(true)
	start := time.Now()
	err = s.Save(hs, entriesOf(11, 1, 1, 64))
	d := time.Since(start)
	t.Logf("Save after %v: %v", d, err)
	if err == nil || !strings.Contains(err.Error(), "write timeout") {
		t.Fatalf("Save on a stalled disk: %v; want a write-timeout error", err)
	}
	if d < timeout || d > timeout+2*time.Second {
		t.Fatalf("Save returned after %v; want about %v", d, timeout)
	}
	select {
	case <-s.Failed():
	default:
		t.Fatal("Failed is not closed after the timeout")
	}
	start = time.Now()
	if err := s.Compact(5, 1); err == nil {
		t.Fatal("Compact after the timeout succeeded")
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("Compact after the failure took %v", d)
	}
	err = s.Close()
	t.Logf("Close: %v", err)
	if !errors.Is(err, errStuck) {
		t.Fatalf("Close with a stuck commit: %v; want errStuck", err)
	}
	close(fs.release)
	fs.armed.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err = Open("/stall", &Options{FS: fs})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the directory did not reopen after the disk answered: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // poll: the lock is released when the background close finishes
	}
	defer s.Close()
	if last, err := s.LastIndex(); err != nil || last < 10 {
		t.Fatalf("LastIndex after reopening = %d, %v; want at least the 10 acknowledged entries", last, err)
	}
}

// TestMarkStallBounded: a high-water mark write that never finishes (its
// fsync hangs) does not hold Save beyond the write timeout: the Save that
// changed the term returns (its entries are durable), the store fails for
// writes, and later writes are refused at once.
func TestMarkStallBounded(t *testing.T) {
	fs := &stallFS{FS: vfs.NewMem(), suffix: markTmpName, release: make(chan struct{})}
	const timeout = 300 * time.Millisecond
	s := openT(t, "/markstall", &Options{FS: fs, WriteTimeout: timeout})
	if err := s.Save(raft.HardState{Term: 1, Vote: "n1"}, entriesOf(1, 10, 1, 64)); err != nil {
		t.Fatal(err)
	}
	fs.armed.Store(true)
	defer close(fs.release)
	start := time.Now()
	err := s.Save(raft.HardState{Term: 2, Vote: "n2"}, entriesOf(11, 1, 2, 64))
	if d := time.Since(start); d > timeout+2*time.Second {
		t.Fatalf("Save with a new term took %v on a stalled mark write", d)
	}
	t.Logf("Save: %v; failure: %v", err, s.FailureErr())
	select {
	case <-s.Failed():
	default:
		t.Fatal("Failed is not closed after the mark write stalled")
	}
	if !strings.Contains(s.FailureErr().Error(), "high-water mark") {
		t.Fatalf("FailureErr %v does not name the high-water mark", s.FailureErr())
	}
	start = time.Now()
	if err := s.Save(raft.HardState{Term: 3, Vote: "n3"}, nil); err == nil {
		t.Fatal("Save after the failure succeeded")
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("Save after the failure took %v", d)
	}
	fs.armed.Store(false)
}
