package pebble

import (
	"bytes"
	"errors"
	"io"
	"sort"
	"strings"
	"testing"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/typedraft/typedraft/raft"
)

// treeFiles returns every file under dir with its contents.
func treeFiles(t *testing.T, fs vfs.FS, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	var walk func(string)
	walk = func(d string) {
		names, err := fs.List(d)
		if err != nil {
			t.Fatalf("list %s: %v", d, err)
		}
		for _, n := range names {
			p := fs.PathJoin(d, n)
			fi, err := fs.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.IsDir() {
				walk(p)
				continue
			}
			f, err := fs.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			out[p] = b
		}
	}
	walk(dir)
	return out
}

// sameTree fails unless got and want hold the same files byte for byte.
func sameTree(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	var diffs []string
	for p, b := range want {
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, "removed "+p)
		case !bytes.Equal(g, b):
			diffs = append(diffs, "changed "+p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "added "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("the directory changed: %s", strings.Join(diffs, ", "))
	}
}

// dataFixture returns a MemFS with a closed store in corruptDir holding
// entries 1..300 partly in an sstable and partly in the WAL, a hard state
// and a snapshot.
func dataFixture(t *testing.T) vfs.FS {
	t.Helper()
	fs := vfs.NewMem()
	s, err := Open(corruptDir, &Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(raft.HardState{Term: 2, Vote: "n1", Commit: 200}, entriesOf(1, 200, 2, 100)); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(raft.HardState{Term: 3, Vote: "n2", Commit: 250}, entriesOf(201, 100, 3, 100)); err != nil {
		t.Fatal(err)
	}
	if err := writeSnapshot(s, &snapModel{meta: raft.SnapshotMeta{Index: 150, Term: 2}, data: []byte("state")}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestOpenRefusesDamagedDirectory: when the files that tell Pebble a
// database exists (its manifest marker, the manifest, the options) are
// missing from a store's directory, Open fails with an error naming what is
// missing, and every remaining file is still there byte for byte. (Pebble
// alone would create a new database in place, replay the WALs and delete
// every sstable.)
func TestOpenRefusesDamagedDirectory(t *testing.T) {
	cases := []struct {
		name    string
		remove  func(name string) bool
		missing string
	}{
		{"manifest marker", func(n string) bool { return strings.HasPrefix(n, "marker.manifest.") }, "marker.manifest"},
		{"marker and manifest", func(n string) bool {
			return strings.HasPrefix(n, "marker.manifest.") || strings.HasPrefix(n, "MANIFEST-")
		}, "MANIFEST-"},
		{"every metadata file", func(n string) bool {
			return strings.HasPrefix(n, "marker.") || strings.HasPrefix(n, "MANIFEST-") || strings.HasPrefix(n, "OPTIONS-")
		}, "OPTIONS-"},
		{"the whole log database", func(string) bool { return true }, "the whole log database"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := dataFixture(t)
			logDir := fs.PathJoin(corruptDir, logDirName)
			names, err := fs.List(logDir)
			if err != nil {
				t.Fatal(err)
			}
			removed := 0
			for _, n := range names {
				if c.remove(n) {
					if err := fs.Remove(fs.PathJoin(logDir, n)); err != nil {
						t.Fatal(err)
					}
					removed++
				}
			}
			if removed == 0 {
				t.Fatalf("no file to remove among %v", names)
			}
			before := treeFiles(t, fs, corruptDir)
			s, err := Open(corruptDir, &Options{FS: fs})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded on a store whose database metadata is missing")
			}
			t.Logf("Open: %v", err)
			for _, want := range []string{corruptDir, c.missing, "nothing was changed"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open error does not mention %q: %v", want, err)
				}
			}
			if !errors.Is(err, pebbledb.ErrDBDoesNotExist) {
				t.Errorf("Open error does not wrap pebble.ErrDBDoesNotExist: %v", err)
			}
			sameTree(t, treeFiles(t, fs, corruptDir), before)
		})
	}
}

// TestOpenRefusesReplacedLogDatabase: a log database that opens but lacks
// the store's format version, while the directory holds snapshots and a
// high-water mark, is refused as corruption (it was lost or replaced), and
// nothing is changed.
func TestOpenRefusesReplacedLogDatabase(t *testing.T) {
	fs := dataFixture(t)
	logDir := fs.PathJoin(corruptDir, logDirName)
	if err := fs.RemoveAll(logDir); err != nil {
		t.Fatal(err)
	}
	db, err := pebbledb.Open(logDir, &pebbledb.Options{FS: fs, FormatMajorVersion: pebbledb.FormatValueSeparation,
		Logger: quietLogger{t}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before := treeFiles(t, fs, corruptDir)
	s, err := Open(corruptDir, &Options{FS: fs})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded on a replaced log database")
	}
	wantCorrupt(t, "Open", err, "format version")
	after := treeFiles(t, fs, corruptDir)
	// Pebble itself may rewrite its own metadata on open (a new OPTIONS
	// file); the store's data files must be untouched.
	for p, b := range before {
		if !strings.HasPrefix(p, logDir) && !bytes.Equal(after[p], b) {
			t.Errorf("%s changed or removed", p)
		}
	}
}

// TestOpenNewDirectories: an absent directory, an empty one and one whose
// log database holds only Pebble's LOCK file (a first Open that stopped
// before creating anything) all open as new stores.
func TestOpenNewDirectories(t *testing.T) {
	fs := vfs.NewMem()
	openT(t, "/absent/store", &Options{FS: fs})
	if err := fs.MkdirAll("/empty", 0o755); err != nil {
		t.Fatal(err)
	}
	openT(t, "/empty", &Options{FS: fs})
	if err := fs.MkdirAll("/locked/log", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Create("/locked/log/LOCK", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	s := openT(t, "/locked", &Options{FS: fs})
	if err := s.Save(raft.HardState{Term: 1}, entriesOf(1, 3, 1, 8)); err != nil {
		t.Fatal(err)
	}
}
