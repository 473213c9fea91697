package pebble

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
)

var (
	flagDiffOps  = flag.Int("pebble.diffops", 100_000, "operations in TestDifferential")
	flagDiffSeed = flag.Uint64("pebble.diffseed", 1, "seed of TestDifferential")
)

// TestDifferential applies one random sequence of operations (appends,
// conflict truncations, hard-state-only saves, invalid saves, compactions
// that keep or discard the log, reopens, and reads of every kind) to the
// Pebble store, the reference model and store/memory, and requires identical
// results from every read and write.
//
// The "points" run uses the store's normal deletion strategy (the generator's
// truncations and compactions are short, so point deletions); the "ranges"
// run makes every deletion a range deletion.
func TestDifferential(t *testing.T) {
	n := *flagDiffOps
	if raceEnabled && n > 20_000 {
		n = 20_000 // the race detector makes Pebble ~10x slower
	}
	t.Run("points", func(t *testing.T) { runDifferential(t, *flagDiffSeed, n, pointDeleteMax) })
	t.Run("ranges", func(t *testing.T) { runDifferential(t, *flagDiffSeed+1, max(n/10, 1), 0) })
}

func runDifferential(t *testing.T, seed uint64, n, pointMax int) {
	t.Logf("seed %d, %d ops (-pebble.diffseed, -pebble.diffops)", seed, n)
	fs := vfs.NewMem()
	const dir = "/diff"
	s, err := Open(dir, &Options{FS: fs, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s.pointDeleteMax = pointMax
	defer func() { _ = s.Close() }()
	mem := memory.New()
	defer mem.Close()
	m := &model{}
	g := &gen{r: rand.New(rand.NewPCG(seed, 99))}
	r := g.r
	stores := []struct {
		name string
		s    raft.LogStore
	}{{"pebble", s}, {"memory", mem}}

	fail := func(op int, format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d op %d: %s", seed, op, fmt.Sprintf(format, args...))
	}
	// readIndex picks an index around the interesting boundaries.
	readIndex := func() uint64 {
		switch r.IntN(4) {
		case 0:
			return m.ci + r.Uint64N(3) - min(m.ci, 1)
		case 1:
			return m.last() + r.Uint64N(3) - min(m.last(), 1)
		}
		return m.ci + r.Uint64N(uint64(len(m.ents))+2)
	}
	writes := 0
	for op := 0; op < n; op++ {
		if op > 0 && op%10_000 == 0 {
			// Reopen on the same file system and compare everything.
			if err := s.Close(); err != nil {
				fail(op, "Close: %v", err)
			}
			if s, err = Open(dir, &Options{FS: fs, NoSync: true}); err != nil {
				fail(op, "reopen: %v", err)
			}
			s.pointDeleteMax = pointMax
			stores[0].s = s
			if err := checkState(s, m); err != nil {
				fail(op, "after reopen: %v", err)
			}
		}
		switch p := r.IntN(100); {
		case p < 30:
			hs, es := g.save(m)
			m.save(hs, es)
			for _, st := range stores {
				if err := st.s.Save(hs, append([]raft.Entry(nil), es...)); err != nil {
					fail(op, "%s: Save(%d entries from %d): %v", st.name, len(es), firstIndexOf(es), err)
				}
			}
			writes++
		case p < 32:
			// Invalid saves: a gap after the log, before the first
			// index, or a non-contiguous batch. All must be rejected
			// and change nothing.
			hs := g.hardState(m)
			var es []raft.Entry
			switch r.IntN(3) {
			case 0:
				es = []raft.Entry{g.entry(m.last()+2, g.term)}
			case 1:
				if m.ci == 0 {
					continue
				}
				es = []raft.Entry{g.entry(m.ci, g.term)}
			case 2:
				es = []raft.Entry{g.entry(m.last()+1, g.term), g.entry(m.last()+3, g.term)}
			}
			for _, st := range stores {
				if err := st.s.Save(hs, es); err == nil {
					fail(op, "%s: invalid Save(entries from %d) succeeded (log [%d, %d])", st.name, es[0].Index, m.first(), m.last())
				}
			}
		case p < 37:
			idx, term := g.compact(m)
			m.compact(idx, term)
			for _, st := range stores {
				if err := st.s.Compact(idx, term); err != nil {
					fail(op, "%s: Compact(%d, %d): %v", st.name, idx, term, err)
				}
			}
			writes++
		case p < 60:
			idx := readIndex()
			wt, werr := m.term(idx)
			for _, st := range stores {
				gt, gerr := st.s.Term(idx)
				if errClass(gerr) != errClass(werr) || gt != wt {
					fail(op, "%s: Term(%d) = %d, %v; want %d, %v (log [%d, %d])", st.name, idx, gt, gerr, wt, werr, m.first(), m.last())
				}
			}
		case p < 95:
			lo := readIndex()
			hi := lo + r.Uint64N(12)
			if r.IntN(20) == 0 && lo > 0 {
				hi = lo - 1
			}
			var maxBytes uint64
			if r.IntN(2) == 0 {
				maxBytes = r.Uint64N(400)
			}
			want, werr := m.entries(lo, hi, maxBytes)
			for _, st := range stores {
				got, gerr := st.s.Entries(lo, hi, maxBytes)
				if (gerr == nil) != (werr == nil) || (werr != errInvalid && errClass(gerr) != errClass(werr)) || !entriesEqual(got, want) {
					fail(op, "%s: Entries(%d, %d, %d) = %d entries, %v; want %d, %v (log [%d, %d])",
						st.name, lo, hi, maxBytes, len(got), gerr, len(want), werr, m.first(), m.last())
				}
			}
		default:
			for _, st := range stores {
				if err := checkBounds(st.s, m); err != nil {
					fail(op, "%s: %v", st.name, err)
				}
			}
		}
	}
	for _, st := range stores {
		if err := checkState(st.s, m); err != nil {
			t.Fatalf("final state of %s: %v", st.name, err)
		}
	}
	t.Logf("%d writes; final log [%d, %d]", writes, m.first(), m.last())
}

func checkBounds(s raft.LogStore, m *model) error {
	hs, err := s.InitialState()
	if err != nil || hs != m.hs {
		return fmt.Errorf("InitialState = %+v, %v; want %+v", hs, err, m.hs)
	}
	if f, err := s.FirstIndex(); err != nil || f != m.first() {
		return fmt.Errorf("FirstIndex = %d, %v; want %d", f, err, m.first())
	}
	if l, err := s.LastIndex(); err != nil || l != m.last() {
		return fmt.Errorf("LastIndex = %d, %v; want %d", l, err, m.last())
	}
	return nil
}

func firstIndexOf(es []raft.Entry) uint64 {
	if len(es) == 0 {
		return 0
	}
	return es[0].Index
}
