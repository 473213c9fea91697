package pebble

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
)

func entriesOf(lo, n, term uint64, size int) []raft.Entry {
	es := make([]raft.Entry, n)
	for i := range es {
		es[i] = raft.Entry{Index: lo + uint64(i), Term: term, Data: bytes.Repeat([]byte{byte(i)}, size)}
	}
	return es
}

// TestSaveSyncsOnce: a Save of 256 entries (and every Save after it, with or
// without truncation) costs exactly one WAL sync; one that changes the term
// or the vote costs two more, for the high-water mark (its file and
// directory), and every other costs no other sync; Compact costs one; a Save
// that changes nothing costs none; NoSync costs none.
func TestSaveSyncsOnce(t *testing.T) {
	fs := &countingFS{FS: vfs.NewMem()}
	s := openT(t, "/sync", &Options{FS: fs})
	s.wmu.Lock()
	s.markEvery, s.markNext = time.Hour, time.Now().Add(time.Hour) // no periodic raise of the mark's log point
	s.wmu.Unlock()
	step := func(what string, wantWAL, wantOther int64, f func() error) {
		t.Helper()
		w0, o0 := fs.syncs()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		w1, o1 := fs.syncs()
		if w1-w0 != wantWAL || o1-o0 != wantOther {
			t.Fatalf("%s: %d WAL syncs and %d other syncs, want %d and %d", what, w1-w0, o1-o0, wantWAL, wantOther)
		}
	}
	hs := raft.HardState{Term: 1, Vote: "n1"}
	step("Save of 256 entries with a new term and vote", 1, 2, func() error { return s.Save(hs, entriesOf(1, 256, 1, 128)) })
	for i := uint64(0); i < 20; i++ {
		hs.Commit = i
		step("Save of 16 entries", 1, 0, func() error { return s.Save(hs, entriesOf(257+16*i, 16, 1, 128)) })
	}
	step("Save truncating 100 entries", 1, 0, func() error { return s.Save(hs, entriesOf(500, 1, 2, 128)) })
	step("Save of the hard state alone, with a new term", 1, 2, func() error { return s.Save(raft.HardState{Term: 3}, nil) })
	step("Save changing nothing", 0, 0, func() error { return s.Save(raft.HardState{Term: 3}, nil) })
	step("Save of the commit index alone", 1, 0, func() error { return s.Save(raft.HardState{Term: 3, Commit: 9}, nil) })
	step("Compact", 1, 0, func() error { return s.Compact(300, 1) })
	step("Compact below the compaction point", 0, 0, func() error { return s.Compact(200, 1) })

	ns := openT(t, "/nosync", &Options{FS: fs, NoSync: true})
	step("NoSync Save", 0, 0, func() error { return ns.Save(hs, entriesOf(1, 256, 1, 128)) })
}

// TestSnapshotCommitSyncs: Commit fsyncs the snapshot file and the
// directory, and nothing else.
func TestSnapshotCommitSyncs(t *testing.T) {
	fs := &countingFS{FS: vfs.NewMem()}
	s := openT(t, "/snapsync", &Options{FS: fs})
	k, err := s.CreateSnapshot(raft.SnapshotMeta{Index: 3, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	w0, o0 := fs.syncs()
	if err := k.Commit(); err != nil {
		t.Fatal(err)
	}
	if w1, o1 := fs.syncs(); w1 != w0 || o1-o0 != 2 {
		t.Fatalf("Commit: %d WAL and %d other syncs, want 0 and 2 (file, directory)", w1-w0, o1-o0)
	}
}

// TestSaveRejectsInvalid: invalid Saves return an error and change nothing.
func TestSaveRejectsInvalid(t *testing.T) {
	s := openT(t, "/invalid", &Options{FS: vfs.NewMem()})
	hs := raft.HardState{Term: 2, Vote: "n1", Commit: 1}
	if err := s.Save(hs, entriesOf(1, 10, 1, 8)); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(3, 1); err != nil {
		t.Fatal(err)
	}
	m := &model{hs: hs, ci: 3, ct: 1, ents: entriesOf(4, 7, 1, 8)}
	for i := range m.ents {
		m.ents[i].Data = bytes.Repeat([]byte{byte(i + 3)}, 8)
	}
	bad := raft.HardState{Term: 9, Vote: "bad"}
	cases := map[string]struct {
		hs raft.HardState
		es []raft.Entry
	}{
		"gap after last":     {bad, entriesOf(12, 1, 2, 8)},
		"below first":        {bad, entriesOf(3, 2, 2, 8)},
		"zero index":         {bad, entriesOf(0, 1, 2, 8)},
		"not contiguous":     {bad, append(entriesOf(11, 1, 2, 8), entriesOf(13, 1, 2, 8)...)},
		"decreasing":         {bad, append(entriesOf(9, 1, 2, 8), entriesOf(8, 1, 2, 8)...)},
		"vote too long":      {raft.HardState{Term: 9, Vote: raft.NodeID(strings.Repeat("v", maxVoteLen+1))}, nil},
		"vote too long+ents": {raft.HardState{Term: 9, Vote: raft.NodeID(strings.Repeat("v", maxVoteLen+1))}, entriesOf(11, 1, 2, 8)},
	}
	for name, c := range cases {
		if err := s.Save(c.hs, c.es); err == nil {
			t.Errorf("%s: Save succeeded", name)
		}
		if err := checkState(s, m); err != nil {
			t.Fatalf("%s: state changed: %v", name, err)
		}
	}
	// The longest allowed vote round-trips.
	long := raft.HardState{Term: 9, Vote: raft.NodeID(strings.Repeat("v", maxVoteLen))}
	if err := s.Save(long, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openT(t, "/invalid", &Options{FS: s.fs})
	if got, err := s.InitialState(); err != nil || got != long {
		t.Fatalf("InitialState after reopen: %d-byte vote, %v", len(got.Vote), err)
	}
}

// TestEntriesInvalidRange: lo > hi is an error that is neither
// ErrCompacted nor ErrUnavailable.
func TestEntriesInvalidRange(t *testing.T) {
	s := openT(t, "/range", &Options{FS: vfs.NewMem()})
	if err := s.Save(raft.HardState{Term: 1}, entriesOf(1, 5, 1, 8)); err != nil {
		t.Fatal(err)
	}
	_, err := s.Entries(4, 3, 0)
	if err == nil || errors.Is(err, raft.ErrCompacted) || errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Entries(4, 3) = %v; want a plain error", err)
	}
}

// TestOpenErrors: bad options, and a directory already held by another
// Store.
func TestOpenErrors(t *testing.T) {
	fs := vfs.NewMem()
	if _, err := Open("", &Options{FS: fs}); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	if _, err := Open("/x", &Options{FS: fs, CacheSize: -1}); err == nil || !strings.Contains(err.Error(), "CacheSize") {
		t.Errorf("Open with negative CacheSize: %v", err)
	}
	openT(t, "/held", &Options{FS: fs})
	if s, err := Open("/held", &Options{FS: fs}); err == nil {
		s.Close()
		t.Error("second Open of the same directory succeeded")
	}
}

// TestCloseIdempotent: a second Close returns nil, and methods after Close
// return raft.ErrStorageClosed.
func TestCloseIdempotent(t *testing.T) {
	s, err := Open("/close", &Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Term(0); !errors.Is(err, raft.ErrStorageClosed) {
		t.Fatalf("Term after Close: %v", err)
	}
}

// TestSnapshotFiles: only the newest committed snapshot file is kept;
// interrupted temporary files are removed at Open; unknown files are left
// alone; a sink committed after Close fails and leaves nothing behind; a
// sink is unusable after Commit or Abort.
func TestSnapshotFiles(t *testing.T) {
	fs := vfs.NewMem()
	const dir = "/snapfiles"
	snapDir := fs.PathJoin(dir, snapDirName)
	s := openT(t, dir, &Options{FS: fs})
	list := func() (committed, tmp, other int) {
		t.Helper()
		names, err := fs.List(snapDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			switch _, ok := parseSnapName(n); {
			case ok:
				committed++
			case strings.HasSuffix(n, tmpSuffix):
				tmp++
			default:
				other++
			}
		}
		return
	}
	for i := uint64(1); i <= 3; i++ {
		if err := writeSnapshot(s, &snapModel{meta: raft.SnapshotMeta{Index: i, Term: 1}, data: []byte("x")}, true); err != nil {
			t.Fatal(err)
		}
		if c, tmp, _ := list(); c != 1 || tmp != 0 {
			t.Fatalf("after commit %d: %d committed and %d temporary files, want 1 and 0", i, c, tmp)
		}
	}
	k, err := s.CreateSnapshot(raft.SnapshotMeta{Index: 9, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Create(fs.PathJoin(snapDir, "README"), vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if c, tmp, other := list(); c != 1 || tmp != 1 || other != 1 {
		t.Fatalf("before reopen: %d committed, %d temporary, %d other files; want 1, 1, 1", c, tmp, other)
	}
	s.Close()
	if err := k.Commit(); !errors.Is(err, raft.ErrStorageClosed) {
		t.Fatalf("Commit after Close: %v, want ErrStorageClosed", err)
	}
	if err := k.Abort(); !errors.Is(err, ErrSinkDone) {
		t.Fatalf("Abort after Commit: %v, want ErrSinkDone", err)
	}
	if _, err := k.Write([]byte("x")); !errors.Is(err, ErrSinkDone) {
		t.Fatalf("Write after Commit: %v, want ErrSinkDone", err)
	}
	if c, tmp, _ := list(); c != 1 || tmp != 0 {
		t.Fatalf("after failed Commit: %d committed and %d temporary files, want 1 and 0", c, tmp)
	}
	s = openT(t, dir, &Options{FS: fs})
	if meta, err := s.LatestSnapshot(); err != nil || meta.Index != 3 {
		t.Fatalf("LatestSnapshot = %+v, %v; want index 3", meta, err)
	}
	if c, tmp, other := list(); c != 1 || tmp != 0 || other != 1 {
		t.Fatalf("after reopen: %d committed, %d temporary, %d other files; want 1, 0, 1", c, tmp, other)
	}
	if _, err := s.CreateSnapshot(raft.SnapshotMeta{}); err == nil {
		t.Fatal("CreateSnapshot with index 0 succeeded")
	}
}

// TestLogger: Pebble's messages reach the configured hclog logger at Debug
// level, and nothing is logged at Info level during normal operation.
func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Debug})
	s := openT(t, "/logger", &Options{FS: vfs.NewMem(), Logger: logger})
	if err := s.Save(raft.HardState{Term: 1}, entriesOf(1, 3, 1, 8)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	out := buf.String()
	if !strings.Contains(out, "component=pebble") {
		t.Fatalf("no Pebble message logged at Debug:\n%s", out)
	}
	if strings.Contains(out, "[INFO]") || strings.Contains(out, "[ERROR]") || strings.Contains(out, "[WARN]") {
		t.Fatalf("messages above Debug during normal operation:\n%s", out)
	}
}

// failingFS fails every write to a temporary snapshot file once limit
// bytes have been written to it.
type failingFS struct {
	vfs.FS
	limit int
}

var errInjected = errors.New("injected write failure")

func (f *failingFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.Create(name, cat)
	if err != nil || !strings.HasSuffix(name, tmpSuffix) {
		return file, err
	}
	return &failingFile{File: file, left: f.limit}, nil
}

type failingFile struct {
	vfs.File
	left int
}

func (f *failingFile) Write(p []byte) (int, error) {
	if len(p) > f.left {
		return 0, errInjected
	}
	f.left -= len(p)
	return f.File.Write(p)
}

// TestSnapshotWriteFailure: a failed write makes the sink fail (Write and
// Commit return the error), removes the temporary file and keeps the
// previous snapshot as the latest.
func TestSnapshotWriteFailure(t *testing.T) {
	fs := &failingFS{FS: vfs.NewMem(), limit: 1 << 30}
	s := openT(t, "/fail", &Options{FS: fs})
	good := &snapModel{meta: raft.SnapshotMeta{Index: 2, Term: 1, Size: 5}, data: []byte("state")}
	if err := writeSnapshot(s, good, true); err != nil {
		t.Fatal(err)
	}
	fs.limit = 100 << 10
	k, err := s.CreateSnapshot(raft.SnapshotMeta{Index: 5, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 10<<10)
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = k.Write(chunk)
	}
	if !errors.Is(werr, errInjected) {
		t.Fatalf("Write: %v, want the injected failure", werr)
	}
	if _, err := k.Write(chunk); !errors.Is(err, errInjected) {
		t.Fatalf("Write after a failure: %v, want the injected failure again", err)
	}
	if err := k.Commit(); !errors.Is(err, errInjected) {
		t.Fatalf("Commit after a failed Write: %v, want the injected failure", err)
	}
	names, err := fs.List(fs.PathJoin("/fail", snapDirName))
	if err != nil || len(names) != 1 {
		t.Fatalf("snapshot directory holds %v, %v; want only the good snapshot", names, err)
	}
	if err := checkDurable(s, durableState{m: &model{}, snap: good}); err != nil {
		t.Fatal(err)
	}
}

// TestSaveTooLarge: a Save whose batch would exceed 3 GiB is refused before
// anything is encoded (the entries share one 1 MiB buffer, so the test
// allocates little).
func TestSaveTooLarge(t *testing.T) {
	s := openT(t, "/large", &Options{FS: vfs.NewMem()})
	data := make([]byte, 1<<20)
	es := make([]raft.Entry, 3<<10+1)
	for i := range es {
		es[i] = raft.Entry{Index: uint64(i + 1), Term: 1, Data: data}
	}
	if err := s.Save(raft.HardState{Term: 1}, es); err == nil || !strings.Contains(err.Error(), "batch") {
		t.Fatalf("Save of 3 GiB: %v, want an error", err)
	}
	if err := checkState(s, &model{}); err != nil {
		t.Fatal(err)
	}
}
