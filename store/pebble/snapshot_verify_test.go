package pebble

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/typedraft/typedraft/raft"
)

// diskSnapshot writes a committed snapshot of n random bytes into a store on
// the real disk and returns the store, the data and the snapshot file.
func diskSnapshot(t testing.TB, n int) (*Store, []byte, string) {
	t.Helper()
	dir := t.TempDir()
	s := openT(t, dir, nil)
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 3))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	if err := writeSnapshot(s, &snapModel{meta: raft.SnapshotMeta{Index: 9, Term: 2}, data: data}, true); err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join(dir, snapDirName, snapPrefix+"*"+snapSuffix))
	if err != nil || len(names) != 1 {
		t.Fatalf("snapshot files %v, %v", names, err)
	}
	return s, data, names[0]
}

// TestSnapshotChangedAfterVerification: a snapshot file damaged after
// OpenSnapshot verified it (a flipped byte, or a truncation) still never
// reads as a good snapshot: the read that reaches the end returns an error
// matching raft.ErrCorrupt naming the file instead of io.EOF.
func TestSnapshotChangedAfterVerification(t *testing.T) {
	cases := map[string]func(t *testing.T, f *os.File, n int){
		"flipped byte": func(t *testing.T, f *os.File, n int) {
			b := []byte{0}
			if _, err := f.ReadAt(b, snapHeaderLen+int64(n)/2); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0x20
			if _, err := f.WriteAt(b, snapHeaderLen+int64(n)/2); err != nil {
				t.Fatal(err)
			}
		},
		"truncated": func(t *testing.T, f *os.File, n int) {
			if err := f.Truncate(snapHeaderLen + int64(n)/2); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			s, data, path := diskSnapshot(t, 1<<20)
			_, r, err := s.OpenSnapshot()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			damage(t, f, len(data))
			f.Close()
			got, err := io.ReadAll(r)
			wantCorrupt(t, "reading a snapshot changed after OpenSnapshot", err, "snapshot "+path)
			if bytes.Equal(got, data) {
				t.Fatal("the damaged read returned the original data")
			}
		})
	}
}

// TestOpenSnapshotVerifiesBeforeHandingOut: OpenSnapshot of a file with a
// flipped data byte fails (no reader at all), on the real disk as on MemFS
// (TestCorruptSnapshotData), and a good snapshot reads back unchanged.
func TestOpenSnapshotVerifiesBeforeHandingOut(t *testing.T) {
	s, data, path := diskSnapshot(t, 3<<20+17)
	meta, got, err := readAllSnapshot(s)
	if err != nil || meta.Index != 9 || !bytes.Equal(got, data) {
		t.Fatalf("good snapshot: meta %+v, %d bytes, %v", meta, len(got), err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{data[len(data)-1] ^ 1}, snapHeaderLen+int64(len(data))-1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, r, err := s.OpenSnapshot()
	if r != nil {
		r.Close()
		t.Fatal("OpenSnapshot returned a reader for a corrupt snapshot")
	}
	wantCorrupt(t, "OpenSnapshot", err, "snapshot "+path)
	if !errors.Is(err, raft.ErrCorrupt) {
		t.Fatal(err)
	}
}

// BenchmarkOpenSnapshot measures OpenSnapshot of a 64 MiB snapshot on the
// real disk (from the page cache), which reads and checksums the whole data
// section before returning; BenchmarkReadSnapshot adds reading it through
// the reader, for comparison.
func BenchmarkOpenSnapshot(b *testing.B) {
	s, data, _ := diskSnapshot(b, 64<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		_, r, err := s.OpenSnapshot()
		if err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}

func BenchmarkReadSnapshot(b *testing.B) {
	s, data, _ := diskSnapshot(b, 64<<20)
	b.SetBytes(int64(len(data)))
	buf := make([]byte, 256<<10)
	for b.Loop() {
		_, r, err := s.OpenSnapshot()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}
