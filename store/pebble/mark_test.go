package pebble

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/typedraft/typedraft/raft"
)

// activeWAL returns the path and size of the newest WAL file of the store in
// dir on the real disk.
func activeWAL(t *testing.T, dir string) (string, int64) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, logDirName, "*.log"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no WAL in %s: %v", dir, err)
	}
	sort.Strings(names)
	fi, err := os.Stat(names[len(names)-1])
	if err != nil {
		t.Fatal(err)
	}
	return names[len(names)-1], fi.Size()
}

// truncateWAL cuts the WAL at path to size plus a few bytes of the next
// record (a torn tail, which Pebble takes for a crash during the write).
func truncateWAL(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size+5); err != nil {
		t.Fatal(err)
	}
}

// TestLostWALTailDetected: a WAL whose tail is cut off after Close (Pebble
// replays it without complaint, rolling back synced entries) fails Open
// with an error matching raft.ErrCorrupt that names the lost entries.
func TestLostWALTailDetected(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := raft.HardState{Term: 2, Vote: "n1"}
	var cut int64
	for i := uint64(0); i < 10; i++ {
		hs.Commit = i * 10
		if err := s.Save(hs, entriesOf(1+10*i, 10, 2, 100)); err != nil {
			t.Fatal(err)
		}
		if i == 4 {
			_, cut = activeWAL(t, dir)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wal, _ := activeWAL(t, dir)
	truncateWAL(t, wal, cut)
	s, err = Open(dir, nil)
	if err == nil {
		last, _ := s.LastIndex()
		s.Close()
		t.Fatalf("Open succeeded with the log ending at %d; 100 entries were acknowledged", last)
	}
	t.Logf("Open: %v", err)
	wantCorrupt(t, "Open", err, "log")
	if !strings.Contains(err.Error(), "(50, 100] are lost") {
		t.Fatalf("Open error does not name the lost entries (50, 100]: %v", err)
	}
}

// TestLostVoteDetected: a WAL cut off after the Save of a vote (a voter
// that forgets its vote can vote twice in a term) fails Open with an error
// matching raft.ErrCorrupt naming the hard state: a new term with a vote,
// and a vote given later in the same term.
func TestLostVoteDetected(t *testing.T) {
	cases := []struct {
		name   string
		before raft.HardState
		lost   raft.HardState
		want   string
	}{
		{"new term", raft.HardState{Term: 2, Vote: "n1"}, raft.HardState{Term: 3, Vote: "n2"}, "term 2 is below term 3"},
		{"vote in the same term", raft.HardState{Term: 3}, raft.HardState{Term: 3, Vote: "n2"}, `vote for "n2" in term 3`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Save(c.before, entriesOf(1, 20, 1, 100)); err != nil {
				t.Fatal(err)
			}
			_, cut := activeWAL(t, dir)
			if err := s.Save(c.lost, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			wal, _ := activeWAL(t, dir)
			truncateWAL(t, wal, cut)
			s, err = Open(dir, nil)
			if err == nil {
				hs, _ := s.InitialState()
				s.Close()
				t.Fatalf("Open succeeded with hard state %+v; %+v was acknowledged", hs, c.lost)
			}
			t.Logf("Open: %v", err)
			wantCorrupt(t, "Open", err, "hard state")
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open error does not say %q: %v", c.want, err)
			}
		})
	}
}

// TestMarkFollowsRollbacks: writes that legitimately take back what the
// mark recorded — a conflict truncation, a compaction that discards the
// log, a vote changed within a term, a lower term — lower the mark first,
// so neither a reopen nor a crash at any point is mistaken for lost data.
func TestMarkFollowsRollbacks(t *testing.T) {
	fs := vfs.NewCrashableMem()
	const dir = "/rollback"
	s, err := Open(dir, &Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	m := &model{}
	save := func(hs raft.HardState, es []raft.Entry) func() error {
		return func() error {
			if err := s.Save(hs, append([]raft.Entry(nil), es...)); err != nil {
				return err
			}
			m.save(hs, es)
			return nil
		}
	}
	steps := []struct {
		what string
		op   func() error
	}{
		{"append 1..30", save(raft.HardState{Term: 3, Vote: "n1"}, entriesOf(1, 30, 3, 50))},
		{"truncate back to 10 in a new term", save(raft.HardState{Term: 4, Vote: "n2"}, entriesOf(10, 1, 4, 50))},
		{"truncate back to 8 in the same term", save(raft.HardState{Term: 4, Vote: "n2"}, entriesOf(8, 1, 4, 50))},
		{"compact discarding the log at 5", func() error {
			if err := s.Compact(5, 9); err != nil {
				return err
			}
			m.compact(5, 9)
			return nil
		}},
		{"change the vote in term 4", save(raft.HardState{Term: 4, Vote: "n3"}, nil)},
		{"lower the term", save(raft.HardState{Term: 2, Vote: "n1"}, nil)},
		{"append after the discard", save(raft.HardState{Term: 2, Vote: "n1"}, entriesOf(6, 3, 9, 50))},
	}
	for _, st := range steps {
		// Raise the mark to everything written so far, then roll back.
		if err := s.lockMark(time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.writeMark(markOf(s.state.Load()), time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		s.unlockMark()
		before := m.clone()
		if err := st.op(); err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
		for pct := 0; pct <= 100; pct += 50 {
			clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(uint64(pct), 1))})
			if err := verifyClone(clone, dir, []durableState{{m: m}, {m: before}}); err != nil {
				t.Fatalf("after %s, crash keeping %d%% of unsynced data: %v", st.what, pct, err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, &Options{FS: fs})
	if err := checkState(s, m); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptMark: a damaged high-water mark fails Open with an error
// matching raft.ErrCorrupt naming the file.
func TestCorruptMark(t *testing.T) {
	fs := newCorruptFixture(t)
	path := fs.PathJoin(corruptDir, markName)
	rewriteFile(t, fs, path, func(b []byte) []byte { b[14] ^= 1; return b })
	_, err := Open(corruptDir, &Options{FS: fs})
	wantCorrupt(t, "Open", err, "high-water mark "+path)
}

// TestMarkNoSync: a NoSync store (which cannot keep the mark) checks an
// existing mark at Open and removes it; a synced store opened later writes
// a new one.
func TestMarkNoSync(t *testing.T) {
	fs := newCorruptFixture(t)
	path := fs.PathJoin(corruptDir, markName)
	s := openT(t, corruptDir, &Options{FS: fs, NoSync: true})
	if _, err := fs.Stat(path); err == nil {
		t.Fatal("the mark is still there after a NoSync Open")
	}
	if err := s.Save(raft.HardState{Term: 9, Vote: "n2"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(path); err == nil {
		t.Fatal("a NoSync Save wrote the mark")
	}
	s.Close()
	s = openT(t, corruptDir, &Options{FS: fs})
	if err := s.Save(raft.HardState{Term: 10, Vote: "n1"}, nil); err != nil {
		t.Fatal(err)
	}
	m, ok, err := readMark(fs, corruptDir)
	if err != nil || !ok || m.term != 10 || m.vote != "n1" {
		t.Fatalf("mark after a synced Save = %+v, %v, %v", m, ok, err)
	}
}
