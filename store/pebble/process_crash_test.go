//go:build unix

package pebble

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/typedraft/typedraft/raft"
)

var (
	flagProcRuns = flag.Int("pebble.procruns", 3, "directories in TestProcessCrash, each killed twice (-short: 1)")
	flagProcSeed = flag.Uint64("pebble.procseed", 0, "seed of TestProcessCrash's kill times (0: from the clock)")
)

// The child mode: when the test binary starts with these variables set, it
// runs a cluster under load instead of the tests (see crashChild).
const (
	childDirEnv    = "TYPEDRAFT_PEBBLE_CRASH_CHILD_DIR"
	childPrefixEnv = "TYPEDRAFT_PEBBLE_CRASH_CHILD_PREFIX"
	childSeedEnv   = "TYPEDRAFT_PEBBLE_CRASH_CHILD_SEED"
	// childMaxLife bounds a child's life even if its parent vanished
	// without closing the child's stdin.
	childMaxLife = 2 * time.Minute
)

var procIDs = []raft.NodeID{"n1", "n2", "n3"}

func init() {
	if dir := os.Getenv(childDirEnv); dir != "" {
		seed, _ := strconv.ParseUint(os.Getenv(childSeedEnv), 10, 64)
		os.Exit(crashChild(dir, os.Getenv(childPrefixEnv), seed))
	}
}

// crashChild runs a 3-node cluster on Stores in dir (on the real disk; the
// nodes talk over an inmem network inside this process), bootstrapping it
// if new, and writes unique keys from several goroutines, printing
// "ack KEY VALUE" on stdout once each write is acknowledged. It runs until
// killed, until its stdin closes (the parent is gone) or for childMaxLife.
func crashChild(dir, prefix string, seed uint64) int {
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	time.AfterFunc(childMaxLife, func() { os.Exit(4) })
	c := newCCCluster(procIDs, ccOptions{tick: 5 * time.Millisecond, seed: seed})
	for _, id := range procIDs {
		if err := c.start(id, vfs.Default, filepath.Join(dir, string(id)), true); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 2
		}
	}
	var mu sync.Mutex
	w := newWorkload(c, prefix, 1<<30, 4)
	w.onAck = func(key, val string) {
		mu.Lock()
		defer mu.Unlock()
		// One unbuffered write per line: the line is in the pipe before the
		// next write is acknowledged.
		if _, err := fmt.Fprintf(os.Stdout, "ack %s %s\n", key, val); err != nil {
			os.Exit(5)
		}
	}
	err := w.run(context.Background())
	fmt.Fprintln(os.Stderr, "child: workload stopped:", err)
	return 2
}

// TestProcessCrash runs a cluster in a child process on Pebble on disk
// under load, kills it with SIGKILL at a random moment after it has
// acknowledged some writes, then restarts the cluster on the same
// directories in this process and requires every write acknowledged before
// the kill to be readable through the log on the leader. Each directory
// goes through two kill-and-verify rounds, the second continuing on the
// first's data.
func TestProcessCrash(t *testing.T) {
	runs := *flagProcRuns
	if testing.Short() {
		runs = min(runs, 1)
	}
	seed := *flagProcSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	r := rand.New(rand.NewPCG(seed, 5))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	total, kills := 0, 0
	for run := range runs {
		dir := t.TempDir()
		acked := map[string]string{}
		for round := range 2 {
			delay := time.Duration(200+r.IntN(1000)) * time.Millisecond
			prefix := fmt.Sprintf("r%d.%d", run, round)
			got, err := runChildAndKill(exe, dir, prefix, r.Uint64(), delay)
			if err != nil {
				t.Fatalf("seed %d, run %d round %d: %v", seed, run, round, err)
			}
			kills++
			total += len(got)
			for k, v := range got {
				acked[k] = v
			}
			c := newCCCluster(procIDs, ccOptions{tick: 5 * time.Millisecond, seed: r.Uint64()})
			for _, id := range procIDs {
				if err = c.start(id, vfs.Default, filepath.Join(dir, string(id)), false); err != nil {
					break
				}
			}
			if err == nil {
				_, err = c.verify(acked, nil, 10*time.Second)
			}
			if err == nil && round == 1 {
				// The check has teeth: a write never made is reported lost.
				fake := map[string]string{"never-written": "x"}
				if lost, _ := c.verify(fake, nil, 10*time.Second); lost != 1 {
					err = fmt.Errorf("verify of a write never made reported %d lost writes, want 1", lost)
				}
			}
			if err = errors.Join(err, c.shutdown()); err != nil {
				t.Fatalf("seed %d, run %d round %d (killed %v after the first acknowledgement, %d writes acknowledged before): %v",
					seed, run, round, delay, len(got), err)
			}
		}
	}
	t.Logf("seed %d: %d SIGKILLs in %v, %d acknowledged writes, all present after restart",
		seed, kills, time.Since(start).Round(time.Millisecond), total)
	if total == 0 {
		t.Error("no write was acknowledged before any kill")
	}
}

// runChildAndKill starts a child on dir, kills it with SIGKILL delay after
// its first acknowledgement, and returns the writes it acknowledged.
func runChildAndKill(exe, dir, prefix string, seed uint64, delay time.Duration) (map[string]string, error) {
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir, childPrefixEnv+"="+prefix,
		childSeedEnv+"="+strconv.FormatUint(seed, 10))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe() // held open while the child should live
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start child: %w", err)
	}
	acked := map[string]string{}
	var mu sync.Mutex
	first := make(chan struct{})
	eof := make(chan error, 1)
	go func() {
		br := bufio.NewReader(stdout)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				// A final fragment without its newline is not counted.
				eof <- err
				return
			}
			f := strings.Fields(line)
			if len(f) != 3 || f[0] != "ack" {
				eof <- fmt.Errorf("child printed %q", line)
				return
			}
			mu.Lock()
			if len(acked) == 0 {
				close(first)
			}
			acked[f[1]] = f[2]
			mu.Unlock()
		}
	}()
	var early error
	select {
	case <-first:
		select {
		case <-time.After(delay):
		case err := <-eof:
			early = fmt.Errorf("child stopped before the kill: %v", err)
		}
	case err := <-eof:
		early = fmt.Errorf("child stopped before acknowledging anything: %v", err)
	case <-time.After(30 * time.Second):
		early = errors.New("child acknowledged nothing within 30s")
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	if early == nil {
		if err := <-eof; !errors.Is(err, io.EOF) {
			early = err
		}
	}
	werr := cmd.Wait()
	_ = stdin.Close()
	if early != nil {
		return nil, fmt.Errorf("%w (child stderr: %q)", early, stderr.String())
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return nil, fmt.Errorf("child did not die of SIGKILL: %v (stderr: %q)", werr, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	return acked, nil
}
