package memory_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"weak"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Factory{
		Open: func(t *testing.T, dir string) raft.Storage { return memory.New() },
	})
}

// The Store satisfies the interfaces it documents.
var (
	_ raft.Storage = (*memory.Store)(nil)
	_ io.Closer    = (*memory.Store)(nil)
)

func mustSave(t *testing.T, s *memory.Store, es []raft.Entry) {
	t.Helper()
	if err := s.Save(raft.HardState{}, es); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

func run(lo, hi, term uint64, size int) []raft.Entry {
	var es []raft.Entry
	for i := lo; i < hi; i++ {
		es = append(es, raft.Entry{Index: i, Term: term, Data: make([]byte, size)})
	}
	return es
}

// TestSaveErrorsNameTheProblem: Save's validation errors say which indexes
// were wrong and what was expected.
func TestSaveErrorsNameTheProblem(t *testing.T) {
	s := memory.New()
	mustSave(t, s, run(1, 6, 1, 0))
	for _, tc := range []struct {
		es   []raft.Entry
		want []string
	}{
		{run(8, 9, 1, 0), []string{"[8,8]", "[1,6]"}},
		{append(run(3, 5, 1, 0), run(9, 10, 1, 0)...), []string{"index 9 after 4", "contiguous"}},
	} {
		err := s.Save(raft.HardState{}, tc.es)
		if err == nil {
			t.Fatalf("Save(%v) succeeded", tc.es)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Save error %q does not mention %q", err, w)
			}
		}
	}
}

// TestCreateSnapshotRejectsIndexZero: a snapshot must cover some entry.
func TestCreateSnapshotRejectsIndexZero(t *testing.T) {
	if _, err := memory.New().CreateSnapshot(raft.SnapshotMeta{}); err == nil {
		t.Fatal("CreateSnapshot with index 0 succeeded")
	}
}

func commit(t *testing.T, s *memory.Store, index uint64, data string) raft.SnapshotSink {
	t.Helper()
	sink, err := s.CreateSnapshot(raft.SnapshotMeta{Index: index, Term: 1})
	if err != nil {
		t.Fatalf("CreateSnapshot: %v", err)
	}
	if _, err := io.WriteString(sink, data); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := sink.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return sink
}

// TestSnapshotReaderOutlivesReplacementAndClose: a reader keeps reading the
// snapshot it opened after a newer commit and after the store's Close; it
// fails after its own Close. Size is set to the committed length.
func TestSnapshotReaderOutlivesReplacementAndClose(t *testing.T) {
	s := memory.New()
	sink := commit(t, s, 5, "first snapshot")
	if err := sink.Abort(); err != nil {
		t.Fatalf("Abort after Commit: %v, want nil", err)
	}
	meta, r, err := s.OpenSnapshot()
	if err != nil {
		t.Fatalf("OpenSnapshot: %v", err)
	}
	if meta.Size != int64(len("first snapshot")) {
		t.Fatalf("Size = %d, want %d", meta.Size, len("first snapshot"))
	}
	commit(t, s, 9, "second")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v, want nil", err)
	}
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "first snapshot" {
		t.Fatalf("read %q, %v; want the first snapshot", b, err)
	}
	r.Close()
	if _, err := r.Read(make([]byte, 1)); err == nil {
		t.Fatal("Read after the reader's Close succeeded")
	}
}

// TestCommitAfterClose: a sink created before Close cannot commit after it.
func TestCommitAfterClose(t *testing.T) {
	s := memory.New()
	sink, err := s.CreateSnapshot(raft.SnapshotMeta{Index: 3})
	if err != nil {
		t.Fatalf("CreateSnapshot: %v", err)
	}
	s.Close()
	if err := sink.Commit(); !errors.Is(err, raft.ErrStorageClosed) {
		t.Fatalf("Commit after Close: %v, want ErrStorageClosed", err)
	}
	if err := sink.Commit(); err == nil {
		t.Fatal("second Commit succeeded")
	}
}

// TestEntriesShareData: Entries copies the slice but not the Data, as
// documented (the entries are immutable).
func TestEntriesShareData(t *testing.T) {
	s := memory.New()
	data := []byte("payload")
	mustSave(t, s, []raft.Entry{{Index: 1, Term: 1, Data: data}})
	es, err := s.Entries(1, 2, 0)
	if err != nil {
		t.Fatalf("Entries: %v", err)
	}
	if &es[0].Data[0] != &data[0] {
		t.Fatal("Entries copied Data")
	}
}

// TestReleasesDiscardedData: the Data of entries removed by compaction
// (keeping part of the log or discarding all of it) and by conflict
// truncation becomes garbage.
func TestReleasesDiscardedData(t *testing.T) {
	s := memory.New()
	const n = 1000
	ptrs := make([]weak.Pointer[byte], n+1)
	for i := uint64(1); i <= n; i++ {
		d := bytes.Repeat([]byte{byte(i)}, 64)
		ptrs[i] = weak.Make(&d[0])
		mustSave(t, s, []raft.Entry{{Index: i, Term: 1, Data: d}})
	}
	alive := func(lo, hi uint64) (count int) {
		runtime.GC()
		for i := lo; i < hi; i++ {
			if ptrs[i].Value() != nil {
				count++
			}
		}
		return count
	}
	if got := alive(1, n+1); got != n {
		t.Fatalf("%d of %d entries alive before compaction", got, n)
	}
	if err := s.Compact(700, 1); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if got := alive(1, 701); got != 0 {
		t.Errorf("%d compacted entries still referenced", got)
	}
	mustSave(t, s, run(801, 802, 2, 8)) // truncates 802..1000
	if got := alive(802, n+1); got != 0 {
		t.Errorf("%d truncated entries still referenced", got)
	}
	if got := alive(701, 801); got != 100 {
		t.Errorf("%d of the 100 kept entries alive, want 100", got)
	}
	if err := s.Compact(900, 5); err != nil { // beyond the last index
		t.Fatalf("Compact: %v", err)
	}
	if got := alive(701, 801); got != 0 {
		t.Errorf("%d entries still referenced after the whole log was discarded", got)
	}
}

// TestSaveRejectsIndexWrap: a batch whose indexes wrap around 2^64 is not
// contiguous.
func TestSaveRejectsIndexWrap(t *testing.T) {
	s := memory.New()
	const maxIndex = 1<<64 - 1
	if err := s.Compact(maxIndex-1, 1); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if err := s.Save(raft.HardState{}, []raft.Entry{{Index: maxIndex, Term: 1}, {Index: 0, Term: 1}}); err == nil {
		t.Fatal("Save of indexes wrapping around 2^64 succeeded")
	}
	if last, err := s.LastIndex(); err != nil || last != maxIndex-1 {
		t.Fatalf("LastIndex = %d, %v; want %d", last, err, uint64(maxIndex-1))
	}
}

// TestBindNode: the first BindNode records the node; the same ID binds
// again, another is refused with raft.ErrWrongNode naming both.
func TestBindNode(t *testing.T) {
	s := memory.New()
	var _ raft.NodeBinder = s
	if err := s.BindNode(""); err == nil {
		t.Fatal("BindNode(\"\") succeeded")
	}
	if err := s.BindNode("s1"); err != nil {
		t.Fatal(err)
	}
	if err := s.BindNode("s1"); err != nil {
		t.Fatalf("BindNode with the same ID: %v", err)
	}
	err := s.BindNode("s2")
	if !errors.Is(err, raft.ErrWrongNode) || !strings.Contains(err.Error(), `"s1"`) || !strings.Contains(err.Error(), `"s2"`) {
		t.Fatalf("BindNode(s2): %v; want raft.ErrWrongNode naming s1 and s2", err)
	}
	s.Close()
	if err := s.BindNode("s1"); !errors.Is(err, raft.ErrStorageClosed) {
		t.Fatalf("BindNode after Close: %v", err)
	}
}

// scribbler is an io.Writer that overwrites what it is given (which the
// io.Writer contract forbids): it shows whether a reader hands out the
// store's own bytes.
type scribbler struct{ got []byte }

func (w *scribbler) Write(p []byte) (int, error) {
	w.got = append(w.got, p...)
	for i := range p {
		p[i] = 'X'
	}
	return len(p), nil
}

// TestSnapshotImmutable: a committed snapshot cannot be changed through the
// slices given to the sink, through a reader (even one copied into a
// misbehaving writer), or by a later sink.
func TestSnapshotImmutable(t *testing.T) {
	s := memory.New()
	sink, err := s.CreateSnapshot(raft.SnapshotMeta{Index: 4, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	chunk := []byte("original")
	if _, err := sink.Write(chunk); err != nil {
		t.Fatal(err)
	}
	if err := sink.Commit(); err != nil {
		t.Fatal(err)
	}
	copy(chunk, "XXXXXXXX")
	for range 2 {
		_, r, err := s.OpenSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		w := &scribbler{}
		if _, err := io.Copy(w, r); err != nil {
			t.Fatal(err)
		}
		r.Close()
		if string(w.got) != "original" {
			t.Fatalf("read %q, want %q", w.got, "original")
		}
	}
	next, err := s.CreateSnapshot(raft.SnapshotMeta{Index: 9, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(next, "unfinished")
	_, r, err := s.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	if string(b) != "original" {
		t.Fatalf("read %q after a newer sink was written, want %q", b, "original")
	}
	next.Abort()
}

// A new Store asks a node to save inline (raft.InlineSaver); tests can
// send it through the node's writer goroutine instead.
func TestSavesInline(t *testing.T) {
	s := memory.New()
	var _ raft.InlineSaver = s
	if !s.SavesInline() {
		t.Fatal("a new Store does not save inline")
	}
	s.SetSavesInline(false)
	if s.SavesInline() {
		t.Fatal("SetSavesInline(false) ignored")
	}
	s.SetSavesInline(true)
	if !s.SavesInline() {
		t.Fatal("SetSavesInline(true) ignored")
	}
}
