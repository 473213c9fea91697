package pebble

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/typedraft/typedraft/raft"
)

var (
	flagCrashSeeds = flag.Int("pebble.crashseeds", 100, "seeds in TestCrashSafety")
	flagCrashSeed0 = flag.Uint64("pebble.crashseed0", 1, "first seed of TestCrashSafety")
	flagCrashSteps = flag.Int("pebble.crashsteps", 40, "operations per seed in TestCrashSafety")
)

// durableState is what a store must hold after a crash: the log and the
// latest committed snapshot (nil for none).
type durableState struct {
	m    *model
	snap *snapModel
}

type snapModel struct {
	meta raft.SnapshotMeta
	data []byte
}

// TestCrashSafety runs random Saves (appends and conflict truncations),
// Compacts (keeping or discarding the log) and snapshot writes (committed,
// aborted, and left unfinished) on Pebble's crashable in-memory file system,
// and takes crash clones (dropping a random share of unsynced data) at random
// points:
//   - between operations, the reopened clone must hold exactly everything
//     acknowledged so far;
//   - while an operation runs, it must hold the state either before or after
//     that operation, never part of it.
//
// Every reopened clone must also have no temporary snapshot files left.
func TestCrashSafety(t *testing.T) {
	seeds := *flagCrashSeeds
	if raceEnabled {
		seeds = max(seeds/5, 1)
	}
	crashes := 0
	for i := range seeds {
		seed := *flagCrashSeed0 + uint64(i)
		crashes += crashRun(t, seed, *flagCrashSteps)
		if t.Failed() {
			t.Fatalf("seed %d failed (rerun with -pebble.crashseed0=%d -pebble.crashseeds=1)", seed, seed)
		}
	}
	t.Logf("%d seeds, %d crash clones verified", seeds, crashes)
}

func crashRun(t *testing.T, seed uint64, steps int) (crashes int) {
	r := rand.New(rand.NewPCG(seed, 1234))
	fs := vfs.NewCrashableMem()
	const dir = "/node"
	s, err := Open(dir, &Options{FS: fs})
	if err != nil {
		t.Fatalf("seed %d: Open: %v", seed, err)
	}
	defer s.Close()
	if r.IntN(2) == 0 {
		s.pointDeleteMax = 0 // exercise range deletions too
	}
	// Raise the high-water mark after every Save, so that crashes also
	// land during mark writes and every reopen checks a recent mark.
	s.wmu.Lock()
	s.markEvery, s.markNext = 0, time.Time{}
	s.wmu.Unlock()
	g := &gen{r: r}
	cur := durableState{m: &model{}}
	var unfinished []raft.SnapshotSink
	defer func() {
		for _, k := range unfinished {
			_ = k.Abort()
		}
	}()

	crash := func(step int, what string, candidates ...durableState) {
		t.Helper()
		crashes++
		clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: r.IntN(101), RNG: r})
		if err := verifyClone(clone, dir, candidates); err != nil {
			t.Errorf("seed %d step %d (%s): %v", seed, step, what, err)
		}
	}

	for step := 0; step < steps && !t.Failed(); step++ {
		next := durableState{m: cur.m.clone(), snap: cur.snap}
		var (
			what string
			op   func() error
		)
		switch p := r.IntN(100); {
		case p < 70:
			hs, es := g.save(next.m)
			next.m.save(hs, es)
			what = fmt.Sprintf("Save(%d entries from %d)", len(es), firstIndexOf(es))
			op = func() error { return s.Save(hs, es) }
		case p < 82:
			idx, term := g.compact(next.m)
			next.m.compact(idx, term)
			what = fmt.Sprintf("Compact(%d, %d)", idx, term)
			op = func() error { return s.Compact(idx, term) }
		case p < 92:
			sm := randomSnapshot(r, next.m)
			next.snap = sm
			what = fmt.Sprintf("snapshot %d (%d bytes)", sm.meta.Index, len(sm.data))
			op = func() error { return writeSnapshot(s, sm, true) }
		case p < 96:
			sm := randomSnapshot(r, next.m)
			what = "aborted snapshot"
			op = func() error { return writeSnapshot(s, sm, false) }
		default:
			sm := randomSnapshot(r, next.m)
			what = "unfinished snapshot"
			op = func() error {
				k, err := s.CreateSnapshot(sm.meta)
				if err == nil {
					unfinished = append(unfinished, k)
					_, err = k.Write(sm.data)
				}
				return err
			}
		}
		switch mode := r.IntN(10); {
		case mode < 1:
			// Crash while the operation runs.
			done := make(chan error, 1)
			go func() { done <- op() }()
			for range r.IntN(64) {
				runtime.Gosched()
			}
			crash(step, "during "+what, cur, next)
			if err := <-done; err != nil {
				t.Fatalf("seed %d step %d: %s: %v", seed, step, what, err)
			}
		default:
			if err := op(); err != nil {
				t.Fatalf("seed %d step %d: %s: %v", seed, step, what, err)
			}
			if mode < 2 {
				crash(step, "after "+what, next)
			}
		}
		cur = next
	}
	crash(steps, "at the end", cur)
	return crashes
}

func randomSnapshot(r *rand.Rand, m *model) *snapModel {
	sm := &snapModel{meta: raft.SnapshotMeta{
		Index:       m.last() + 1 + r.Uint64N(5),
		Term:        r.Uint64N(10),
		ConfigIndex: r.Uint64N(5),
		Configuration: raft.Configuration{Servers: []raft.Server{
			{ID: "n1", Addr: "127.0.0.1:1"},
			{ID: "n2", Addr: "127.0.0.1:2", Suffrage: raft.Learner},
		}},
	}}
	sm.data = make([]byte, r.IntN(3)*r.IntN(40_000))
	for i := range sm.data {
		sm.data[i] = byte(r.Uint32())
	}
	sm.meta.Size = int64(len(sm.data))
	return sm
}

func writeSnapshot(s *Store, sm *snapModel, commit bool) error {
	k, err := s.CreateSnapshot(sm.meta)
	if err != nil {
		return err
	}
	for off := 0; off < len(sm.data); off += 4096 {
		if _, err := k.Write(sm.data[off:min(off+4096, len(sm.data))]); err != nil {
			_ = k.Abort()
			return err
		}
	}
	if commit {
		return k.Commit()
	}
	return k.Abort()
}

// verifyClone opens the crashed file system and requires it to hold one of
// the candidate states.
func verifyClone(fs vfs.FS, dir string, candidates []durableState) error {
	s, err := Open(dir, &Options{FS: fs})
	if err != nil {
		return fmt.Errorf("reopen after crash: %w", err)
	}
	defer s.Close()
	names, err := fs.List(fs.PathJoin(dir, snapDirName))
	if err != nil {
		return err
	}
	for _, n := range names {
		if strings.HasSuffix(n, tmpSuffix) {
			return fmt.Errorf("temporary snapshot file %s left after Open", n)
		}
	}
	var errs []error
	for i, c := range candidates {
		err := checkDurable(s, c)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("candidate %d: %w", i, err))
	}
	return errors.Join(errs...)
}

func checkDurable(s *Store, want durableState) error {
	if err := checkState(s, want.m); err != nil {
		return err
	}
	meta, data, err := readAllSnapshot(s)
	if want.snap == nil {
		if !errors.Is(err, raft.ErrNoSnapshot) {
			return fmt.Errorf("OpenSnapshot = %+v, %v; want ErrNoSnapshot", meta, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("OpenSnapshot: %w (want snapshot %d)", err, want.snap.meta.Index)
	}
	if meta.Index != want.snap.meta.Index || meta.Term != want.snap.meta.Term || meta.ConfigIndex != want.snap.meta.ConfigIndex ||
		meta.Size != want.snap.meta.Size || fmt.Sprintf("%+v", meta.Configuration.Servers) != fmt.Sprintf("%+v", want.snap.meta.Configuration.Servers) ||
		!bytes.Equal(data, want.snap.data) {
		return fmt.Errorf("snapshot = %+v with %d bytes; want %+v with %d bytes", meta, len(data), want.snap.meta, len(want.snap.data))
	}
	return nil
}
