package storetest_test

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/store/storetest"
)

// TestDurableCases runs the whole suite, reopen cases included, on a
// memory store made "durable" by keeping it per directory across Close and
// Open, so that the durable cases are themselves exercised.
func TestDurableCases(t *testing.T) {
	storetest.Run(t, storetest.Factory{Open: durableOpener(nil), Durable: true})
}

// durableOpener returns a Factory.Open that keeps one store per directory:
// Close closes only the handle, and Open on the same directory returns a new
// handle on the same store, passed through onReopen if it is not nil.
func durableOpener(onReopen func(raft.Storage)) func(t *testing.T, dir string) raft.Storage {
	var mu sync.Mutex
	stores := map[string]raft.Storage{}
	return func(t *testing.T, dir string) raft.Storage {
		mu.Lock()
		defer mu.Unlock()
		s, ok := stores[dir]
		if !ok {
			s = memory.New()
			stores[dir] = s
		} else if onReopen != nil {
			onReopen(s)
		}
		return &handle{s: s}
	}
}

// handle is one open instance of a durable test store.
type handle struct {
	s      raft.Storage
	closed atomic.Bool
}

var _ io.Closer = (*handle)(nil)

func (h *handle) check(op string) error {
	if h.closed.Load() {
		return fmt.Errorf("handle: %s: %w", op, raft.ErrStorageClosed)
	}
	return nil
}

func (h *handle) Close() error {
	if h.closed.Swap(true) {
		return fmt.Errorf("handle: closed twice")
	}
	return nil
}

func (h *handle) InitialState() (raft.HardState, error) {
	if err := h.check("initial state"); err != nil {
		return raft.HardState{}, err
	}
	return h.s.InitialState()
}

func (h *handle) FirstIndex() (uint64, error) {
	if err := h.check("first index"); err != nil {
		return 0, err
	}
	return h.s.FirstIndex()
}

func (h *handle) LastIndex() (uint64, error) {
	if err := h.check("last index"); err != nil {
		return 0, err
	}
	return h.s.LastIndex()
}

func (h *handle) Term(i uint64) (uint64, error) {
	if err := h.check("term"); err != nil {
		return 0, err
	}
	return h.s.Term(i)
}

func (h *handle) Entries(lo, hi, maxBytes uint64) ([]raft.Entry, error) {
	if err := h.check("entries"); err != nil {
		return nil, err
	}
	return h.s.Entries(lo, hi, maxBytes)
}

func (h *handle) Save(hs raft.HardState, es []raft.Entry) error {
	if err := h.check("save"); err != nil {
		return err
	}
	return h.s.Save(hs, es)
}

func (h *handle) Compact(index, term uint64) error {
	if err := h.check("compact"); err != nil {
		return err
	}
	return h.s.Compact(index, term)
}

func (h *handle) CreateSnapshot(meta raft.SnapshotMeta) (raft.SnapshotSink, error) {
	if err := h.check("create snapshot"); err != nil {
		return nil, err
	}
	return h.s.CreateSnapshot(meta)
}

func (h *handle) LatestSnapshot() (raft.SnapshotMeta, error) {
	if err := h.check("latest snapshot"); err != nil {
		return raft.SnapshotMeta{}, err
	}
	return h.s.LatestSnapshot()
}

func (h *handle) OpenSnapshot() (raft.SnapshotMeta, io.ReadCloser, error) {
	if err := h.check("open snapshot"); err != nil {
		return raft.SnapshotMeta{}, nil, err
	}
	return h.s.OpenSnapshot()
}

// BindNode passes through to the store, so that the durable BindNode case
// runs on the memory store.
func (h *handle) BindNode(id raft.NodeID) error {
	if err := h.check("bind node"); err != nil {
		return err
	}
	return h.s.(raft.NodeBinder).BindNode(id)
}
