package pebble

import (
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/typedraft/typedraft/raft"
)

// A failing WAL write makes Pebble call its fatal hook from inside Commit.
// Save must return that as an error — the node then stops and reports it —
// instead of panicking or exiting the host process, and the store must
// refuse every later write (Pebble's commit pipeline is unusable).
func TestWALFailureIsAnErrorNotACrash(t *testing.T) {
	walFails := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.HasSuffix(op.Path, ".log") && (op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileSync ||
			op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo) {
			return errorfs.ErrInjected
		}
		return nil
	})}
	fs := errorfs.Wrap(vfs.NewMem(), walFails)
	s, err := Open("db", &Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { walFails.Off(); _ = s.Close() })
	ent := func(i uint64) []raft.Entry { return []raft.Entry{{Index: i, Term: 1, Data: []byte("x")}} }
	if err := s.Save(raft.HardState{Term: 1}, ent(1)); err != nil {
		t.Fatalf("save before the fault: %v", err)
	}
	walFails.On()
	err = s.Save(raft.HardState{Term: 1}, ent(2))
	if err == nil {
		t.Fatal("Save succeeded although the WAL write failed")
	}
	t.Logf("save during the fault: %v", err)
	if !strings.Contains(err.Error(), "db") {
		t.Errorf("error does not name the directory: %v", err)
	}
	walFails.Off()
	if err2 := s.Save(raft.HardState{Term: 1}, ent(2)); err2 == nil || errors.Is(err2, raft.ErrStorageClosed) {
		t.Fatalf("a write after the fatal error: %v, want the fatal error again", err2)
	}
	if err := s.Compact(1, 1); err == nil {
		t.Fatal("Compact after the fatal error succeeded")
	}
	if last, err := s.LastIndex(); err != nil || last != 1 {
		t.Fatalf("last index %d (%v) after the failed save, want 1", last, err)
	}
}
