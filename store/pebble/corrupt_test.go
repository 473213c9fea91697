package pebble

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/typedraft/typedraft/raft"
)

const corruptDir = "/store"

// newCorruptFixture returns a MemFS holding a closed store with hard state
// {Term: 3, Vote: n1, Commit: 5} and entries 1..10 (term 2, data "entry-<i>").
func newCorruptFixture(t *testing.T) vfs.FS {
	t.Helper()
	fs := vfs.NewMem()
	s, err := Open(corruptDir, &Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	var es []raft.Entry
	for i := uint64(1); i <= 10; i++ {
		es = append(es, raft.Entry{Index: i, Term: 2, Data: []byte("entry-" + string(rune('0'+i%10)))})
	}
	if err := s.Save(raft.HardState{Term: 3, Vote: "n1", Commit: 5}, es); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return fs
}

// rawEdit opens the store's Pebble database directly and runs edit on it.
func rawEdit(t *testing.T, fs vfs.FS, edit func(db *pebbledb.DB)) {
	t.Helper()
	db, err := pebbledb.Open(fs.PathJoin(corruptDir, logDirName), &pebbledb.Options{
		FS: fs, FormatMajorVersion: pebbledb.FormatValueSeparation, Logger: quietLogger{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	edit(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// quietLogger is Pebble's logger for databases tests open directly: silent,
// except that a fatal error fails the test.
type quietLogger struct{ t *testing.T }

func (quietLogger) Infof(string, ...any)                {}
func (quietLogger) Errorf(string, ...any)               {}
func (l quietLogger) Fatalf(format string, args ...any) { l.t.Fatalf("pebble: "+format, args...) }

func rawGet(t *testing.T, db *pebbledb.DB, key []byte) []byte {
	t.Helper()
	v, c, err := db.Get(key)
	if err != nil {
		t.Fatalf("raw get %x: %v", key, err)
	}
	defer c.Close()
	return bytes.Clone(v)
}

func rawSet(t *testing.T, db *pebbledb.DB, key, value []byte) {
	t.Helper()
	if err := db.Set(key, value, pebbledb.Sync); err != nil {
		t.Fatal(err)
	}
}

// wantCorrupt fails unless err matches raft.ErrCorrupt and is a
// CorruptError naming what.
func wantCorrupt(t *testing.T, op string, err error, what string) {
	t.Helper()
	var ce *CorruptError
	if !errors.Is(err, raft.ErrCorrupt) || !errors.As(err, &ce) || ce.What != what {
		t.Fatalf("%s: %v; want a CorruptError naming %q", op, err, what)
	}
	if !strings.Contains(err.Error(), what) {
		t.Fatalf("%s: message %q does not name %q", op, err, what)
	}
}

// TestCorruptEntry: a flipped byte, a truncated value, a value moved under
// another key and a value holding another index are each reported by Term
// and Entries as corruption of that entry; the neighbours stay readable.
func TestCorruptEntry(t *testing.T) {
	cases := map[string]func(t *testing.T, db *pebbledb.DB){
		"flipped data byte": func(t *testing.T, db *pebbledb.DB) {
			v := rawGet(t, db, entryKey(5))
			v[len(v)-1] ^= 0x40
			rawSet(t, db, entryKey(5), v)
		},
		"flipped term byte": func(t *testing.T, db *pebbledb.DB) {
			v := rawGet(t, db, entryKey(5))
			v[envelopeLen+9+7] ^= 1
			rawSet(t, db, entryKey(5), v)
		},
		"truncated": func(t *testing.T, db *pebbledb.DB) {
			rawSet(t, db, entryKey(5), rawGet(t, db, entryKey(5))[:12])
		},
		"empty": func(t *testing.T, db *pebbledb.DB) {
			rawSet(t, db, entryKey(5), nil)
		},
		"moved from entry 6": func(t *testing.T, db *pebbledb.DB) {
			rawSet(t, db, entryKey(5), rawGet(t, db, entryKey(6)))
		},
		"holds index 7": func(t *testing.T, db *pebbledb.DB) {
			e := raft.Entry{Index: 7, Term: 2, Data: []byte("x")}
			v := make([]byte, entryValueLen(&e))
			putEntry(entryKey(5), v, &e) // checksum valid for key 5
			rawSet(t, db, entryKey(5), v)
		},
		"wrong kind": func(t *testing.T, db *pebbledb.DB) {
			v := rawGet(t, db, entryKey(5))
			seal(entryKey(5), v, kindHardState)
			rawSet(t, db, entryKey(5), v)
		},
	}
	for name, corrupt := range cases {
		t.Run(name, func(t *testing.T) {
			fs := newCorruptFixture(t)
			rawEdit(t, fs, func(db *pebbledb.DB) { corrupt(t, db) })
			s := openT(t, corruptDir, &Options{FS: fs})
			_, err := s.Term(5)
			wantCorrupt(t, "Term(5)", err, "entry 5")
			_, err = s.Entries(1, 11, 0)
			wantCorrupt(t, "Entries(1, 11)", err, "entry 5")
			_, err = s.Entries(5, 6, 0)
			wantCorrupt(t, "Entries(5, 6)", err, "entry 5")
			if err := s.Compact(5, 2); err == nil {
				t.Fatal("Compact(5, 2) over a corrupt entry succeeded")
			} else {
				wantCorrupt(t, "Compact(5, 2)", err, "entry 5")
			}
			if got, err := s.Entries(6, 11, 0); err != nil || len(got) != 5 {
				t.Fatalf("Entries(6, 11) = %d entries, %v; want 5", len(got), err)
			}
			if got, err := s.Term(4); err != nil || got != 2 {
				t.Fatalf("Term(4) = %d, %v; want 2", got, err)
			}
		})
	}
}

// TestMissingEntry: a gap in the log is corruption naming the missing index.
func TestMissingEntry(t *testing.T) {
	fs := newCorruptFixture(t)
	rawEdit(t, fs, func(db *pebbledb.DB) {
		if err := db.Delete(entryKey(5), pebbledb.Sync); err != nil {
			t.Fatal(err)
		}
	})
	s := openT(t, corruptDir, &Options{FS: fs})
	_, err := s.Term(5)
	wantCorrupt(t, "Term(5)", err, "entry 5")
	_, err = s.Entries(3, 8, 0)
	wantCorrupt(t, "Entries(3, 8)", err, "entry 5")
	_, err = s.Entries(5, 6, 0)
	wantCorrupt(t, "Entries(5, 6)", err, "entry 5")
}

// TestCorruptAtOpen: records read by Open (hard state, compaction point,
// last entry, first entry position, format version) fail Open with an error
// naming the record.
func TestCorruptAtOpen(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(t *testing.T, db *pebbledb.DB)
		what    string
	}{
		{"hard state", func(t *testing.T, db *pebbledb.DB) {
			v := rawGet(t, db, keyHardState)
			v[envelopeLen] ^= 0x80
			rawSet(t, db, keyHardState, v)
		}, "hard state"},
		{"hard state vote length", func(t *testing.T, db *pebbledb.DB) {
			v := rawGet(t, db, keyHardState)
			v[envelopeLen+17] = 200 // claims a 200-byte vote
			seal(keyHardState, v, kindHardState)
			rawSet(t, db, keyHardState, v)
		}, "hard state"},
		{"compaction point", func(t *testing.T, db *pebbledb.DB) {
			rawSet(t, db, keyCompaction, encodeCompaction(0, 1)[:10])
		}, "compaction point"},
		{"last entry", func(t *testing.T, db *pebbledb.DB) {
			v := rawGet(t, db, entryKey(10))
			v[len(v)-2] ^= 1
			rawSet(t, db, entryKey(10), v)
		}, "entry 10"},
		{"first entry missing", func(t *testing.T, db *pebbledb.DB) {
			if err := db.Delete(entryKey(1), pebbledb.Sync); err != nil {
				t.Fatal(err)
			}
		}, "log"},
		{"format version", func(t *testing.T, db *pebbledb.DB) {
			v := rawGet(t, db, keyFormat)
			v[len(v)-1] ^= 1
			rawSet(t, db, keyFormat, v)
		}, "format version"},
		{"format version missing", func(t *testing.T, db *pebbledb.DB) {
			if err := db.Delete(keyFormat, pebbledb.Sync); err != nil {
				t.Fatal(err)
			}
		}, "format version"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := newCorruptFixture(t)
			rawEdit(t, fs, func(db *pebbledb.DB) { c.corrupt(t, db) })
			s, err := Open(corruptDir, &Options{FS: fs})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			wantCorrupt(t, "Open", err, c.what)
			if !strings.Contains(err.Error(), corruptDir) {
				t.Fatalf("Open error %q does not name the directory", err)
			}
		})
	}
}

// TestUnknownFormatVersion: a directory stamped with another format version
// is refused with ErrUnsupportedFormat naming the directory and both
// versions.
func TestUnknownFormatVersion(t *testing.T) {
	fs := newCorruptFixture(t)
	rawEdit(t, fs, func(db *pebbledb.DB) { rawSet(t, db, keyFormat, encodeFormat(77)) })
	s, err := Open(corruptDir, &Options{FS: fs})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded")
	}
	if !errors.Is(err, ErrUnsupportedFormat) || errors.Is(err, raft.ErrCorrupt) {
		t.Fatalf("Open: %v; want ErrUnsupportedFormat", err)
	}
	for _, want := range []string{corruptDir, "77", "version 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("Open error %q does not mention %q", err, want)
		}
	}
	// A correct stamp opens again.
	rawEdit(t, fs, func(db *pebbledb.DB) { rawSet(t, db, keyFormat, encodeFormat(FormatVersion)) })
	openT(t, corruptDir, &Options{FS: fs})
}

// snapFixture returns a MemFS with a closed store whose latest snapshot is
// index 7 with 100 KiB of data, and the path of the snapshot file.
func snapFixture(t *testing.T) (vfs.FS, string, []byte) {
	t.Helper()
	fs := vfs.NewMem()
	s, err := Open(corruptDir, &Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16)
	sm := &snapModel{meta: raft.SnapshotMeta{Index: 7, Term: 2, Configuration: raft.Configuration{
		Servers: []raft.Server{{ID: "n1", Addr: "a:1"}}}}, data: data}
	if err := writeSnapshot(s, sm, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dir := fs.PathJoin(corruptDir, snapDirName)
	names, err := fs.List(dir)
	if err != nil || len(names) != 1 {
		t.Fatalf("snapshot directory holds %v, %v; want one file", names, err)
	}
	return fs, fs.PathJoin(dir, names[0]), data
}

// rewriteFile replaces the file at path with edit(contents).
func rewriteFile(t *testing.T, fs vfs.FS, path string, edit func([]byte) []byte) {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	b = edit(b)
	w, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptSnapshotData: a flipped data byte makes OpenSnapshot itself
// fail, before any byte is handed out, with an error matching
// raft.ErrCorrupt naming the file; the metadata is still served.
func TestCorruptSnapshotData(t *testing.T) {
	fs, path, data := snapFixture(t)
	rewriteFile(t, fs, path, func(b []byte) []byte { b[snapHeaderLen+len(data)/2] ^= 1; return b })
	s := openT(t, corruptDir, &Options{FS: fs})
	if meta, err := s.LatestSnapshot(); err != nil || meta.Index != 7 {
		t.Fatalf("LatestSnapshot = %+v, %v", meta, err)
	}
	_, r, err := s.OpenSnapshot()
	if r != nil {
		r.Close()
		t.Fatal("OpenSnapshot returned a reader of corrupt data")
	}
	wantCorrupt(t, "OpenSnapshot", err, "snapshot "+path)
}

// TestCorruptSnapshotFile: damage to the header, footer or meta, or a
// truncated file, makes LatestSnapshot and OpenSnapshot fail with an error
// naming the file; an unknown snapshot format version is
// ErrUnsupportedFormat.
func TestCorruptSnapshotFile(t *testing.T) {
	cases := map[string]func(b []byte, dataLen int) []byte{
		"truncated":         func(b []byte, _ int) []byte { return b[:len(b)-100] },
		"tiny":              func(b []byte, _ int) []byte { return b[:10] },
		"header magic":      func(b []byte, _ int) []byte { b[0] ^= 1; return b },
		"footer magic":      func(b []byte, _ int) []byte { b[len(b)-1] ^= 1; return b },
		"meta byte":         func(b []byte, n int) []byte { b[snapHeaderLen+n+3] ^= 1; return b },
		"data length":       func(b []byte, _ int) []byte { b[len(b)-snapFooterLen+7] ^= 1; return b },
		"meta length huge":  func(b []byte, _ int) []byte { b[len(b)-snapFooterLen+8] = 0xff; return b },
		"appended garbage":  func(b []byte, _ int) []byte { return append(b, 1, 2, 3) },
		"data checksum too": func(b []byte, _ int) []byte { b[len(b)-snapFooterLen+12] ^= 1; return b },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			fs, path, data := snapFixture(t)
			rewriteFile(t, fs, path, func(b []byte) []byte { return edit(b, len(data)) })
			s := openT(t, corruptDir, &Options{FS: fs})
			_, err := s.LatestSnapshot()
			wantCorrupt(t, "LatestSnapshot", err, "snapshot "+path)
			_, _, err = readAllSnapshot(s)
			wantCorrupt(t, "OpenSnapshot", err, "snapshot "+path)
		})
	}
	t.Run("unknown version", func(t *testing.T) {
		fs, path, _ := snapFixture(t)
		rewriteFile(t, fs, path, func(b []byte) []byte { b[11] = 9; return b })
		s := openT(t, corruptDir, &Options{FS: fs})
		_, err := s.LatestSnapshot()
		if !errors.Is(err, ErrUnsupportedFormat) || !strings.Contains(err.Error(), path) {
			t.Fatalf("LatestSnapshot: %v; want ErrUnsupportedFormat naming %s", err, path)
		}
	})
}
