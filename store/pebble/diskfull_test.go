package pebble

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
)

// logCapture is an hclog output that keeps the lines written to it.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *logCapture) count(substr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Count(c.buf.String(), substr)
}

// enospcWhere returns a toggled injector failing with ENOSPC every write
// (and sync, create, preallocation) of a file for which match is true.
func enospcWhere(match func(path string) bool) *errorfs.Toggle {
	return &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite && op.Kind != errorfs.OpRemove && match(op.Path) {
			return syscall.ENOSPC
		}
		return nil
	})}
}

// wantDiskFull fails unless err matches syscall.ENOSPC and says so.
func wantDiskFull(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "disk is full") {
		t.Fatalf("%s: %v; want an error matching syscall.ENOSPC that says the disk is full", op, err)
	}
}

// fillDisk saves one entry of size bytes per Save until Save fails (turning
// full on before Save number after, if full is not nil). It returns the
// model of what was acknowledged, the model with the failed Save applied
// too (whose outcome is indeterminate), and the failure. Every Save must
// return within bound.
func fillDisk(t *testing.T, s *Store, full *errorfs.Toggle, after, size int, bound time.Duration) (acked, maybe *model, err error) {
	t.Helper()
	m := &model{}
	for i := 1; i < 100_000; i++ {
		if i == after && full != nil {
			full.On()
		}
		hs := raft.HardState{Term: 2, Vote: "n1", Commit: uint64(i / 2)}
		es := []raft.Entry{{Index: uint64(i), Term: 2, Type: raft.EntryCommand, Data: bytes.Repeat([]byte{byte(i)}, size)}}
		start := time.Now()
		err := s.Save(hs, append([]raft.Entry(nil), es...))
		if d := time.Since(start); d > bound {
			t.Fatalf("Save %d took %v, more than %v", i, d, bound)
		}
		if err != nil {
			maybe := m.clone()
			maybe.save(hs, es)
			return m, maybe, err
		}
		m.save(hs, es)
	}
	t.Fatal("the disk never filled up")
	return nil, nil, nil
}

// reopenHolds closes s, takes a crash clone of mem (dropping everything not
// synced), reopens it and requires it to hold one of the candidates:
// everything acknowledged, and possibly the write that failed.
func reopenHolds(t *testing.T, s *Store, mem *vfs.MemFS, candidates ...*model) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Logf("Close after the failure: %v", err)
	}
	clone := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	var states []durableState
	for _, m := range candidates {
		states = append(states, durableState{m: m})
	}
	if err := verifyClone(clone, "/full", states); err != nil {
		t.Fatalf("after space returned: %v", err)
	}
}

// TestDiskFullWAL: when the WAL cannot be written (ENOSPC on every write
// and sync), Save returns at once with an error matching syscall.ENOSPC
// that says the disk is full, the store fails (writes refused, reads still
// served), and once space returns a reopened store holds every entry whose
// Save returned nil. (The entries are small so that Pebble does not switch
// memtables while the disk is full: see TestDiskFullGuard.)
func TestDiskFullWAL(t *testing.T) {
	mem := vfs.NewCrashableMem()
	full := enospcWhere(func(string) bool { return true })
	s, err := Open("/full", &Options{FS: errorfs.Wrap(mem, full), WriteTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m, maybe, err := fillDisk(t, s, full, 50, 1<<10, 2*time.Second)
	t.Logf("Save %d: %v", m.last()+1, err)
	wantDiskFull(t, "Save", err)
	select {
	case <-s.Failed():
	default:
		t.Fatal("Failed is not closed")
	}
	wantDiskFull(t, "FailureErr", s.FailureErr())
	if err := s.Save(m.hs, entriesOf(m.last()+1, 1, 2, 8)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a Save after the failure: %v", err)
	}
	if err := checkState(s, m); err != nil {
		t.Fatalf("reads after the failure: %v", err)
	}
	full.Off()
	reopenHolds(t, s, mem, m, maybe)
}

// TestDiskFullFlush reproduces the reported hang: the WAL still takes
// writes but flushes cannot create sstables (ENOSPC), which Pebble retries
// in a tight loop while writes pile up in memtables until they stall. Save
// must fail within the bound with an error matching syscall.ENOSPC, the
// repeated background error must be logged a few times only (not once per
// retry), and nothing acknowledged may be lost.
func TestDiskFullFlush(t *testing.T) {
	mem := vfs.NewCrashableMem()
	full := enospcWhere(func(p string) bool { return strings.HasSuffix(p, ".sst") })
	logs := &logCapture{}
	logger := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})
	s, err := Open("/full", &Options{FS: errorfs.Wrap(mem, full), Logger: logger, WriteTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m, maybe, err := fillDisk(t, s, full, 1, 10<<10, 6*time.Second)
	t.Logf("Save %d: %v", m.last()+1, err)
	wantDiskFull(t, "Save", err)
	if n := logs.count("background error"); n == 0 || n > 5 {
		t.Fatalf("%d background error lines logged, want one (rate-limited)", n)
	}
	full.Off()
	reopenHolds(t, s, mem, m, maybe)
}

// TestDiskFullRandom fills the disk (ENOSPC on writes of any file but
// Pebble's MANIFEST, whose failure abandons the database; see
// TestFatalOnPebbleGoroutine) at a random moment of a random workload of
// Saves, Compacts and snapshots: the WAL, the high-water mark or a snapshot
// is the first to fail. Every operation returns within its bound; once one
// fails, the reopened store holds the state before it or after it. (The
// workload stays within Pebble's first memtable: see TestDiskFullGuard.)
func TestDiskFullRandom(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { diskFullRun(t, seed) })
	}
}

func diskFullRun(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 99))
	mem := vfs.NewCrashableMem()
	var armed atomic.Bool
	full := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite && op.Kind != errorfs.OpRemove &&
			!strings.Contains(op.Path, "MANIFEST") && !strings.Contains(op.Path, "marker.") {
			armed.Store(true)
			return syscall.ENOSPC
		}
		return nil
	})}
	const bound = 3 * time.Second
	s, err := Open("/full", &Options{FS: errorfs.Wrap(mem, full), WriteTimeout: bound})
	if err != nil {
		t.Fatal(err)
	}
	g := &gen{r: r}
	cur := durableState{m: &model{}}
	failAt := 5 + r.IntN(60)
	for step := 0; ; step++ {
		if step == failAt {
			full.On()
		}
		next := durableState{m: cur.m.clone(), snap: cur.snap}
		var op func() error
		switch p := r.IntN(10); {
		case p < 7:
			hs, es := g.save(next.m)
			next.m.save(hs, es)
			op = func() error { return s.Save(hs, es) }
		case p < 9:
			idx, term := g.compact(next.m)
			next.m.compact(idx, term)
			op = func() error { return s.Compact(idx, term) }
		default:
			sm := randomSnapshot(r, next.m)
			next.snap = sm
			op = func() error { return writeSnapshot(s, sm, true) }
		}
		start := time.Now()
		err := op()
		if d := time.Since(start); d > bound+time.Second {
			t.Fatalf("step %d took %v", step, d)
		}
		if err == nil {
			cur = next
			if step > failAt+200 {
				t.Fatal("200 operations succeeded on a full disk")
			}
			continue
		}
		if !armed.Load() || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("step %d: %v; want an error matching syscall.ENOSPC", step, err)
		}
		ferr := err
		full.Off()
		if err := s.Close(); err != nil {
			t.Logf("Close: %v", err)
		}
		clone := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: r.IntN(101), RNG: r})
		if err := verifyClone(clone, "/full", []durableState{cur, next}); err != nil {
			t.Fatalf("step %d failed (%v); after space returned: %v", step, ferr, err)
		}
		return
	}
}

// TestDiskFullGuard: while the file system reports less free space than
// Options.MinFreeSpace, Save of entries and snapshot writes fail with an
// error matching syscall.ENOSPC that says the disk is full, before Pebble
// gets to write anything (Pebble panics beyond recovery if its WAL cannot
// be switched); the store does not fail, and writes succeed again once
// space is freed.
func TestDiskFullGuard(t *testing.T) {
	mem := vfs.NewMem()
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 1 << 30, TotalBytes: 2 << 30})
	s := openT(t, "/guard", &Options{FS: mem, MinFreeSpace: 32 << 20})
	s.space.every = 0 // check at every write
	hs := raft.HardState{Term: 1, Vote: "n1"}
	if err := s.Save(hs, entriesOf(1, 10, 1, 100)); err != nil {
		t.Fatal(err)
	}
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 31 << 20, TotalBytes: 2 << 30})
	wantDiskFull(t, "Save", s.Save(hs, entriesOf(11, 1, 1, 100)))
	_, err := s.CreateSnapshot(raft.SnapshotMeta{Index: 5, Term: 1})
	wantDiskFull(t, "CreateSnapshot", err)
	if err := s.Compact(3, 1); err != nil {
		t.Fatalf("Compact on a full disk (it frees space): %v", err)
	}
	select {
	case <-s.Failed():
		t.Fatalf("the store failed: %v", s.FailureErr())
	default:
	}
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 1 << 30, TotalBytes: 2 << 30})
	if err := s.Save(hs, entriesOf(11, 1, 1, 100)); err != nil {
		t.Fatalf("Save after space was freed: %v", err)
	}
	if err := writeSnapshot(s, &snapModel{meta: raft.SnapshotMeta{Index: 5, Term: 1}, data: make([]byte, 200<<10)}, true); err != nil {
		t.Fatalf("snapshot after space was freed: %v", err)
	}
	// A snapshot that fills the disk while it is written fails too.
	k, err := s.CreateSnapshot(raft.SnapshotMeta{Index: 8, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 1 << 20, TotalBytes: 2 << 30})
	_, err = k.Write(make([]byte, 1<<20))
	wantDiskFull(t, "snapshot Write", err)
	if err := k.Commit(); err == nil {
		t.Fatal("Commit of a snapshot whose write failed succeeded")
	}
	if m, err := s.LatestSnapshot(); err != nil || m.Index != 5 {
		t.Fatalf("LatestSnapshot = %+v, %v; want the snapshot at 5", m, err)
	}
}
