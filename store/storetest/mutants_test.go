package storetest_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/store/storetest"
)

// The suite is checked against a correct store (store/memory runs it) and
// here against broken ones: each mutant below breaks one guarantee, and the
// named case must fail for it. The suite runs in a child process because
// its failures are reported to the *testing.T it is given.

const mutantEnv = "STORETEST_MUTANT"

var mutants = []struct {
	name string
	// failing is the case that must catch the mutant.
	failing string
}{
	{"no-truncate", "ConflictTruncation"},
	{"lose-compact-term", "Compact"},
	{"ignore-maxbytes", "EntriesMaxBytes"},
	{"maxbytes-may-return-none", "EntriesMaxBytes"},
	{"unwrapped-unavailable", "ReadBounds"},
	{"mismatch-keeps-suffix", "CompactMismatchingTerm"},
	{"abort-commits", "SnapshotAbort"},
	{"hs-before-validation", "SaveRejectsGaps"},
	{"aliased-entries", "ReturnedSliceOwnership"},
	{"torn-save", "ConcurrentReads"},
	{"close-noop", "Close"},
	{"meta-shared", "SnapshotMetaOwnership"},
	{"reopen-forgets-hard-state", "Reopen"},
	{"reopen-restores-truncated", "ReopenAfterTruncation"},
	{"bind-accepts-anyone", "BindNode"},
	{"bind-error-unwrapped", "BindNode"},
	{"reused-read-buffer", "ReturnedSliceOwnership"},
	{"snapshot-overwritten-in-place", "SnapshotReaderOutlivesCommit"},
	{"failed-at-start", "FailureNotifier"},
	{"open-snapshot-torn", "SnapshotConcurrentSinks"},
}

func TestSuiteCatchesMutants(t *testing.T) {
	if os.Getenv(mutantEnv) != "" {
		t.Fatalf("%s is set in the parent test", mutantEnv)
	}
	for _, m := range mutants {
		t.Run(m.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestMutantHelperProcess$/^"+m.failing+"$", "-test.count=1")
			cmd.Env = append(os.Environ(), mutantEnv+"="+m.name)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the suite passed (or did not run: %v) with mutant %s; output:\n%s", err, m.name, out)
			}
			if want := "--- FAIL: TestMutantHelperProcess/" + m.failing; !strings.Contains(string(out), want) {
				t.Fatalf("mutant %s: output lacks %q:\n%s", m.name, want, out)
			}
		})
	}
}

// TestMutantHelperProcess runs the suite on the mutant named by
// STORETEST_MUTANT; it does nothing unless started by
// TestSuiteCatchesMutants.
func TestMutantHelperProcess(t *testing.T) {
	kind := os.Getenv(mutantEnv)
	if kind == "" {
		return
	}
	switch kind {
	case "reopen-forgets-hard-state":
		storetest.Run(t, storetest.Factory{Durable: true, Open: durableOpener(func(s raft.Storage) {
			s.Save(raft.HardState{}, nil)
		})})
	case "reopen-restores-truncated":
		// The store loses a truncation on reopen: entries a conflict
		// removed come back (written here with the terms they had).
		storetest.Run(t, storetest.Factory{Durable: true, Open: durableOpener(func(s raft.Storage) {
			last, _ := s.LastIndex()
			if last == 6 {
				var es []raft.Entry
				for i := uint64(7); i <= 10; i++ {
					es = append(es, raft.Entry{Index: i, Term: 1})
				}
				s.Save(raft.HardState{Term: 2, Vote: "n3"}, es)
			}
		})})
	default:
		storetest.Run(t, storetest.Factory{Open: func(t *testing.T, dir string) raft.Storage {
			return &mutant{Store: memory.New(), kind: kind, cache: map[[2]uint64][]raft.Entry{}}
		}})
	}
}

// mutant is a memory store with one guarantee broken, chosen by kind.
type mutant struct {
	*memory.Store
	kind string

	mu      sync.Mutex
	cache   map[[2]uint64][]raft.Entry
	meta    *raft.SnapshotMeta
	scratch []byte // "reused-read-buffer": every Entries call's Data
	snap    []byte // "snapshot-overwritten-in-place": the one snapshot buffer
	failed  chan struct{}
}

func (m *mutant) Save(hs raft.HardState, es []raft.Entry) error {
	switch m.kind {
	case "no-truncate":
		if len(es) > 0 {
			last, _ := m.Store.LastIndex()
			end := es[len(es)-1].Index
			if end < last {
				tail, err := m.Store.Entries(end+1, last+1, 0)
				if err == nil {
					es = append(es, tail...)
				}
			}
		}
	case "hs-before-validation":
		if err := m.Store.Save(hs, nil); err != nil {
			return err
		}
	case "torn-save":
		if len(es) > 1 {
			if err := m.Store.Save(hs, es[:1]); err != nil {
				return err
			}
			for range 20 {
				runtime.Gosched()
			}
			return m.Store.Save(hs, es[1:])
		}
	}
	return m.Store.Save(hs, es)
}

func (m *mutant) Term(i uint64) (uint64, error) {
	switch m.kind {
	case "lose-compact-term":
		if first, _ := m.Store.FirstIndex(); i == first-1 && i > 0 {
			return 0, fmt.Errorf("mutant: %w", raft.ErrCompacted)
		}
	case "unwrapped-unavailable":
		if last, _ := m.Store.LastIndex(); i > last {
			return 0, errors.New("mutant: unavailable")
		}
	}
	return m.Store.Term(i)
}

func (m *mutant) Entries(lo, hi, maxBytes uint64) ([]raft.Entry, error) {
	switch m.kind {
	case "ignore-maxbytes":
		maxBytes = 0
	case "maxbytes-may-return-none":
		es, err := m.Store.Entries(lo, hi, maxBytes)
		if err == nil && maxBytes > 0 && len(es) == 1 && es[0].Size() > maxBytes {
			return nil, nil
		}
		return es, err
	case "reused-read-buffer": // decodes Data into one buffer, reused
		es, err := m.Store.Entries(lo, hi, maxBytes)
		if err != nil {
			return es, err
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		n := 0
		for _, e := range es {
			n += len(e.Data)
		}
		if cap(m.scratch) < n {
			m.scratch = make([]byte, 0, 2*n+1024)
		}
		m.scratch = m.scratch[:0]
		for i := range es {
			start := len(m.scratch)
			m.scratch = append(m.scratch, es[i].Data...)
			es[i].Data = m.scratch[start:len(m.scratch):len(m.scratch)]
		}
		return es, nil
	case "aliased-entries":
		m.mu.Lock()
		defer m.mu.Unlock()
		if es, ok := m.cache[[2]uint64{lo, hi}]; ok && maxBytes == 0 {
			return es, nil
		}
		es, err := m.Store.Entries(lo, hi, maxBytes)
		if err == nil && maxBytes == 0 {
			m.cache[[2]uint64{lo, hi}] = es
		}
		return es, err
	}
	return m.Store.Entries(lo, hi, maxBytes)
}

func (m *mutant) Compact(index, term uint64) error {
	if m.kind == "mismatch-keeps-suffix" {
		if t, err := m.Store.Term(index); err == nil && t != term {
			last, _ := m.Store.LastIndex()
			tail, _ := m.Store.Entries(index+1, last+1, 0)
			if err := m.Store.Compact(index, term); err != nil {
				return err
			}
			return m.Store.Save(raft.HardState{}, tail)
		}
	}
	return m.Store.Compact(index, term)
}

func (m *mutant) BindNode(id raft.NodeID) error {
	switch m.kind {
	case "bind-accepts-anyone":
		return nil
	case "bind-error-unwrapped":
		if err := m.Store.BindNode(id); err != nil {
			return errors.New(err.Error())
		}
		return nil
	}
	return m.Store.BindNode(id)
}

func (m *mutant) Close() error {
	if m.kind == "close-noop" {
		return nil
	}
	return m.Store.Close()
}

// Failed and FailureErr make every mutant a raft.FailureNotifier; only
// "failed-at-start" reports a failure (on a healthy store).
func (m *mutant) Failed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failed == nil {
		m.failed = make(chan struct{})
		if m.kind == "failed-at-start" {
			close(m.failed)
		}
	}
	return m.failed
}

func (m *mutant) FailureErr() error { return nil }

func (m *mutant) CreateSnapshot(meta raft.SnapshotMeta) (raft.SnapshotSink, error) {
	if m.kind == "snapshot-overwritten-in-place" {
		return &inPlaceSink{m: m, meta: meta}, nil
	}
	sink, err := m.Store.CreateSnapshot(meta)
	if err != nil {
		return nil, err
	}
	switch m.kind {
	case "abort-commits":
		return abortCommits{sink}, nil
	case "meta-shared":
		return &sharedMetaSink{SnapshotSink: sink, m: m, meta: meta}, nil
	}
	return sink, nil
}

// OpenSnapshot of "snapshot-overwritten-in-place" reads the one buffer
// every commit overwrites.
func (m *mutant) OpenSnapshot() (raft.SnapshotMeta, io.ReadCloser, error) {
	if m.kind == "open-snapshot-torn" { // the meta and the data read apart
		meta, err := m.Store.LatestSnapshot()
		if err != nil {
			return meta, nil, err
		}
		for range 20 {
			runtime.Gosched()
		}
		_, r, err := m.Store.OpenSnapshot()
		return meta, r, err
	}
	if m.kind == "snapshot-overwritten-in-place" {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.meta == nil {
			return raft.SnapshotMeta{}, nil, fmt.Errorf("mutant: %w", raft.ErrNoSnapshot)
		}
		meta := *m.meta
		meta.Configuration = meta.Configuration.Clone()
		return meta, io.NopCloser(bytes.NewReader(m.snap)), nil
	}
	return m.Store.OpenSnapshot()
}

type inPlaceSink struct {
	m    *mutant
	meta raft.SnapshotMeta
	buf  bytes.Buffer
}

func (s *inPlaceSink) Write(p []byte) (int, error) { return s.buf.Write(p) }
func (s *inPlaceSink) Abort() error                { return nil }
func (s *inPlaceSink) Commit() error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.snap = append(s.m.snap[:0], s.buf.Bytes()...)
	meta := s.meta
	meta.Configuration = meta.Configuration.Clone()
	s.m.meta = &meta
	return nil
}

func (m *mutant) LatestSnapshot() (raft.SnapshotMeta, error) {
	if m.kind == "meta-shared" || m.kind == "snapshot-overwritten-in-place" {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.meta != nil {
			return *m.meta, nil
		}
	}
	return m.Store.LatestSnapshot()
}

type abortCommits struct{ raft.SnapshotSink }

func (s abortCommits) Abort() error { return s.SnapshotSink.Commit() }

// sharedMetaSink remembers the caller's meta, sharing its slices.
type sharedMetaSink struct {
	raft.SnapshotSink
	m    *mutant
	meta raft.SnapshotMeta
}

func (s *sharedMetaSink) Commit() error {
	if err := s.SnapshotSink.Commit(); err != nil {
		return err
	}
	s.m.mu.Lock()
	s.m.meta = &s.meta
	s.m.mu.Unlock()
	return nil
}
