package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/typedraft/typedraft/raft"
)

// logState is the expected content of a store after some writes.
type logState struct {
	hs           raft.HardState
	compactIndex uint64
	compactTerm  uint64
	// terms[i] is the term of the entry at compactIndex+1+i.
	terms []uint64
}

func (s *logState) last() uint64 { return s.compactIndex + uint64(len(s.terms)) }

// writeOp is one write of the concurrent schedule: a Save when compact is
// false, else Compact(index, term).
type writeOp struct {
	compact bool
	hs      raft.HardState
	es      []raft.Entry
	index   uint64
	term    uint64
}

// concurrentSchedule returns n random writes, deterministic for a seed,
// and states[k], the expected state after the first k of them: appends,
// conflict truncations with a new term, hard-state-only saves, compactions
// that keep part of the log and compactions that discard it all.
func concurrentSchedule(seed uint64, n int) ([]writeOp, []logState) {
	r := rand.New(rand.NewPCG(seed, 7))
	states := []logState{{}}
	ops := make([]writeOp, 0, n)
	term := uint64(1)
	for k := 0; k < n; k++ {
		cur := states[len(states)-1]
		next := cur
		next.terms = cur.terms
		var op writeOp
		first, last := cur.compactIndex+1, cur.last()
		switch p := r.IntN(100); {
		case p < 15 && len(cur.terms) > 0 || len(cur.terms) > 64:
			// Compaction keeping the rest of the log.
			idx := first + r.Uint64N(uint64(len(cur.terms)))
			op = writeOp{compact: true, index: idx, term: cur.terms[idx-first]}
			next.compactIndex, next.compactTerm = idx, op.term
			next.terms = cur.terms[idx-first+1:]
		case p < 20:
			// Compaction discarding the whole log: a term no entry has,
			// at an index up to a few beyond LastIndex.
			term++
			idx := first + r.Uint64N(uint64(len(cur.terms))+3)
			op = writeOp{compact: true, index: idx, term: term}
			next.compactIndex, next.compactTerm, next.terms = idx, term, nil
		case p < 25:
			op = writeOp{hs: raft.HardState{Term: term, Vote: "n1", Commit: uint64(k)}}
		default:
			start := last + 1
			if p < 45 && len(cur.terms) > 0 {
				// Conflict truncation within the last few entries.
				term++
				start = last - min(r.Uint64N(6), last-first)
			}
			cnt := 1 + r.Uint64N(8)
			op = writeOp{hs: raft.HardState{Term: term, Vote: "n1", Commit: uint64(k)}, es: entries(start, start+cnt, term)}
			next.terms = append(cur.terms[:start-first:start-first], make([]uint64, cnt)...)
			for i := range cnt {
				next.terms[start-first+i] = term
			}
		}
		if !op.compact {
			next.hs = op.hs
		}
		// States are read concurrently: every state owns its terms.
		next.terms = append([]uint64(nil), next.terms...)
		ops = append(ops, op)
		states = append(states, next)
	}
	return ops, states
}

// testConcurrentReads: readers running concurrently with Saves and Compacts
// only ever observe states that existed between two writes: every result
// of InitialState, FirstIndex, LastIndex, Term and Entries must match one
// state the store went through during the call, and the entries of one
// Entries call must all come from a single state.
func testConcurrentReads(h *harness) {
	t := h.t
	const writes, readers = 800, 3
	ops, states := concurrentSchedule(1, writes)
	// started is the number of writes begun, done the number finished: a
	// read that began when done was v0 and ended before started passed v1
	// saw one of states[v0..v1].
	var started, done atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	ready := make(chan struct{})
	// reads counts each reader's reads; the writer waits for every reader
	// to make progress every few writes, so that reads interleave with
	// writes even when the writer could run alone.
	reads := make([]atomic.Int64, readers)
	seen := make([]int64, readers)
	waitReaders := func() {
		for id := range reads {
			for reads[id].Load() == seen[id] && !stop.Load() {
				runtime.Gosched()
			}
			seen[id] = reads[id].Load()
		}
	}
	for id := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(id), 99))
			<-ready
			for !stop.Load() {
				v0 := int(done.Load())
				check := concurrentRead(h.s, r, &states[v0])
				v1 := int(started.Load())
				if reads[id].Add(1)%4 == 0 {
					runtime.Gosched() // let the writer run on a busy machine
				}
				var errs []string
				ok := false
				for v := v0; v <= v1 && !ok; v++ {
					err := check(&states[v])
					ok = err == nil
					if err != nil {
						errs = append(errs, fmt.Sprintf("state after %d writes: %v", v, err))
					}
				}
				if !ok {
					t.Errorf("reader %d: a read during writes %d..%d matches no state the store went through: %v", id, v0, v1, errs)
					stop.Store(true)
					return
				}
			}
		}()
	}
	close(ready)
	for k, op := range ops {
		started.Store(int64(k + 1))
		var err error
		if op.compact {
			err = h.s.Compact(op.index, op.term)
		} else {
			err = h.s.Save(op.hs, op.es)
		}
		if err != nil {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("write %d (%+v): %v", k, op, err)
		}
		done.Store(int64(k + 1))
		if stop.Load() {
			break
		}
		if k%2 == 0 {
			waitReaders()
		}
	}
	stop.Store(true)
	wg.Wait()
	if t.Failed() {
		return
	}
	final := &states[len(states)-1]
	want := make([]raft.Entry, len(final.terms))
	for i, term := range final.terms {
		want[i] = entry(final.compactIndex+1+uint64(i), term)
	}
	h.checkLog(final.compactIndex, final.compactTerm, want)
	h.checkHardState(final.hs)
	counts := make([]int64, readers)
	for id := range reads {
		counts[id] = reads[id].Load()
	}
	t.Logf("%d writes; reads per reader: %v", writes, counts)
}

// concurrentRead performs one random read, choosing its arguments around
// the state hint, and returns a function that says whether the result is
// what state s would give (nil) or how it differs.
func concurrentRead(st raft.Storage, r *rand.Rand, hint *logState) func(s *logState) error {
	lo := hint.compactIndex + r.Uint64N(uint64(len(hint.terms))+4)
	lo = max(lo, 2) - 1 // around [FirstIndex-1, LastIndex+3]
	switch r.IntN(6) {
	case 0:
		hs, err := st.InitialState()
		return func(s *logState) error {
			if err != nil || hs != s.hs {
				return fmt.Errorf("InitialState = %+v, %v; want %+v", hs, err, s.hs)
			}
			return nil
		}
	case 1:
		fi, err := st.FirstIndex()
		return func(s *logState) error {
			if err != nil || fi != s.compactIndex+1 {
				return fmt.Errorf("FirstIndex = %d, %v; want %d", fi, err, s.compactIndex+1)
			}
			return nil
		}
	case 2:
		li, err := st.LastIndex()
		return func(s *logState) error {
			if err != nil || li != s.last() {
				return fmt.Errorf("LastIndex = %d, %v; want %d", li, err, s.last())
			}
			return nil
		}
	case 3:
		term, err := st.Term(lo)
		return func(s *logState) error { return checkTermIn(s, lo, term, err) }
	default:
		hi := lo + r.Uint64N(12)
		maxBytes := uint64(0)
		if r.IntN(2) == 0 {
			maxBytes = r.Uint64N(300)
		}
		es, err := st.Entries(lo, hi, maxBytes)
		return func(s *logState) error { return checkEntriesIn(s, lo, hi, maxBytes, es, err) }
	}
}

// checkTermIn says whether Term(i) returning (term, err) is right for s.
func checkTermIn(s *logState, i, term uint64, err error) error {
	switch {
	case i < s.compactIndex:
		if !errors.Is(err, raft.ErrCompacted) {
			return fmt.Errorf("Term(%d) = %d, %v; want ErrCompacted (compacted to %d)", i, term, err, s.compactIndex)
		}
	case i > s.last():
		if !errors.Is(err, raft.ErrUnavailable) {
			return fmt.Errorf("Term(%d) = %d, %v; want ErrUnavailable (last index %d)", i, term, err, s.last())
		}
	default:
		want := s.compactTerm
		if i > s.compactIndex {
			want = s.terms[i-s.compactIndex-1]
		}
		if err != nil || term != want {
			return fmt.Errorf("Term(%d) = %d, %v; want %d", i, term, err, want)
		}
	}
	return nil
}

// checkEntriesIn says whether Entries(lo, hi, maxBytes) returning (es, err)
// is right for s.
func checkEntriesIn(s *logState, lo, hi, maxBytes uint64, es []raft.Entry, err error) error {
	lowOut, highOut := lo <= s.compactIndex, hi > s.last()+1
	if lowOut || highOut {
		if lowOut && errors.Is(err, raft.ErrCompacted) || highOut && errors.Is(err, raft.ErrUnavailable) {
			return nil
		}
		return fmt.Errorf("Entries(%d, %d, %d) = %d entries, %v; want ErrCompacted or ErrUnavailable (log [%d, %d])",
			lo, hi, maxBytes, len(es), err, s.compactIndex+1, s.last())
	}
	if err != nil {
		return fmt.Errorf("Entries(%d, %d, %d): %v (log [%d, %d])", lo, hi, maxBytes, err, s.compactIndex+1, s.last())
	}
	var want []raft.Entry
	total := uint64(0)
	for i := lo; i < hi; i++ {
		e := entry(i, s.terms[i-s.compactIndex-1])
		total += e.Size()
		if maxBytes > 0 && len(want) > 0 && total > maxBytes {
			break
		}
		want = append(want, e)
	}
	if d := diffEntries(es, want); d != "" {
		return fmt.Errorf("Entries(%d, %d, %d): %s", lo, hi, maxBytes, d)
	}
	return nil
}
