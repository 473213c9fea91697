package pebble

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/typedraft/typedraft/raft"
)

// fatalChildEnv makes the test binary run fatalChild instead of the tests:
// the scenario abandons a Pebble database (its goroutines stay blocked), so
// it runs in its own process, away from the leak check.
const fatalChildEnv = "TYPEDRAFT_PEBBLE_FATAL_CHILD"

func init() {
	if os.Getenv(fatalChildEnv) != "" {
		os.Exit(fatalChild())
	}
}

// TestFatalOnPebbleGoroutine: when Pebble fails fatally on one of its own
// goroutines (here a MANIFEST write fails with ENOSPC during a background
// flush, after which Pebble calls Fatalf), the process survives: the store reports the
// failure through Failed, every call returns it at once, and Close returns
// within the write timeout. See fatalChild.
func TestFatalOnPebbleGoroutine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fatalChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child output:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if !strings.Contains(string(out), "OK\n") {
		t.Fatal("the child did not finish its checks")
	}
	if strings.Contains(string(out), "panic") || strings.Contains(string(out), "goroutine ") {
		t.Fatal("the child printed a panic or a stack trace")
	}
}

// fatalChild runs the scenario of TestFatalOnPebbleGoroutine and returns the
// process exit code.
func fatalChild() int {
	fail := func(format string, args ...any) int {
		fmt.Printf("FAIL: "+format+"\n", args...)
		return 1
	}
	manifestFails := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.Contains(op.Path, "MANIFEST-") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return syscall.ENOSPC
		}
		return nil
	})}
	const timeout = 2 * time.Second
	s, err := Open("/db", &Options{FS: errorfs.Wrap(vfs.NewMem(), manifestFails), WriteTimeout: timeout})
	if err != nil {
		return fail("Open: %v", err)
	}
	if err := s.Save(raft.HardState{Term: 1, Vote: "n1"}, entriesOf(1, 100, 1, 64)); err != nil {
		return fail("Save: %v", err)
	}
	manifestFails.On()
	if _, err := s.db.AsyncFlush(); err != nil {
		return fail("AsyncFlush: %v", err)
	}
	select {
	case <-s.Failed():
	case <-time.After(30 * time.Second):
		return fail("Failed not closed 30 s after the MANIFEST write failed")
	}
	ferr := s.FailureErr()
	fmt.Printf("failure: %v\n", ferr)
	if !errors.Is(ferr, syscall.ENOSPC) || !strings.Contains(ferr.Error(), "background goroutine") ||
		!strings.Contains(ferr.Error(), "disk is full") {
		return fail("FailureErr %v does not wrap ENOSPC and say where it happened and that the disk is full", ferr)
	}
	start := time.Now()
	if err := s.Save(raft.HardState{Term: 1, Vote: "n1"}, entriesOf(101, 1, 1, 64)); !errors.Is(err, syscall.ENOSPC) {
		return fail("Save after the failure: %v", err)
	}
	if _, err := s.Entries(1, 101, 0); !errors.Is(err, syscall.ENOSPC) {
		return fail("Entries after the failure: %v", err)
	}
	if _, err := s.InitialState(); !errors.Is(err, syscall.ENOSPC) {
		return fail("InitialState after the failure: %v", err)
	}
	err = s.Close()
	fmt.Printf("close: %v\n", err)
	if err == nil || !strings.Contains(err.Error(), "abandoned") {
		return fail("Close: %v, want an error saying the database is abandoned", err)
	}
	if d := time.Since(start); d > timeout+5*time.Second {
		return fail("the calls after the failure took %v", d)
	}
	fmt.Println("OK")
	return 0
}
