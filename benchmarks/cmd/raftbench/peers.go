package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

// peer describes another Raft library that raftbench compares typedraft
// with: a nested module under benchmarks/ with a runner command that
// prints workload.Result JSON lines.
type peer struct {
	// name is the system's name in results and in -compare-NAME.
	name string
	// module is the nested module's directory under benchmarks/; cmd the
	// runner's package in it.
	module, cmd string
	// stores maps a typedraft store to the peer's comparable one: the
	// durable, fsyncing store of each, or the in-memory store of each.
	stores map[string]string
	// about says what the peer runs, for the flag's help.
	about string
}

// peers lists the comparisons, in the order the table shows them.
var peers = []peer{
	{name: "hashicorp", module: "hashicorp", cmd: "./cmd/hcbench",
		stores: map[string]string{"memory": "inmem", "pebble": "boltdb"},
		about:  "hashicorp/raft v1.8.0 (raft-boltdb/v2 for pebble, InmemStore for memory)"},
	{name: "dragonboat", module: "dragonboat", cmd: "./cmd/dbbench",
		stores: map[string]string{"memory": "memfs", "pebble": "pebble"},
		about:  "dragonboat v4 (its default Pebble LogDB for pebble, the same on its in-memory test file system for memory)"},
}

// peerRunner runs the runner binary of one peer's nested module, built
// once per raftbench invocation.
type peerRunner struct {
	peer
	bin    string
	stderr io.Writer
}

// rootModule is the module path whose directory holds the nested modules.
const rootModule = "github.com/typedraft/typedraft"

// findNestedDir looks for benchmarks/<module> in the typedraft module that
// contains the working directory.
func findNestedDir(module string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find benchmarks/%s: %w", module, err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if isRootModule(filepath.Join(dir, "go.mod")) {
			return filepath.Join(dir, "benchmarks", module), nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("find benchmarks/%s: %s is not inside the typedraft module; run from the repository or pass -%s-dir", module, wd, module)
		}
	}
}

// isRootModule reports whether the go.mod at path declares rootModule.
func isRootModule(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`) == rootModule
		}
	}
	return false
}

// newPeerRunner builds p's runner from dir (found automatically when
// empty) into tmp, with the go command (GOWORK off, so the nested
// module's own go.mod and go.sum decide; the first build needs the module
// proxy).
func newPeerRunner(ctx context.Context, p peer, dir, tmp string, stderr io.Writer) (*peerRunner, error) {
	if dir == "" {
		var err error
		if dir, err = findNestedDir(p.module); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return nil, fmt.Errorf("%s comparison: %s has no go.mod: %w", p.name, dir, err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("%s comparison needs the go command to build %s: %w", p.name, dir, err)
	}
	bin := filepath.Join(tmp, p.name+"-bench")
	fmt.Fprintf(stderr, "building %s runner in %s ...\n", p.name, dir)
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, p.cmd)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build %s runner in %s: %w", p.name, dir, err)
	}
	return &peerRunner{peer: p, bin: bin, stderr: stderr}, nil
}

// run measures one client count and payload of c on the peer with the
// store comparable to typedraft's store and the same transport.
func (h *peerRunner) run(ctx context.Context, c config, store, transport string, clients, payload int, parent string) (workload.Result, error) {
	ps, ok := h.stores[store]
	if !ok {
		return workload.Result{}, fmt.Errorf("%s comparison: no store comparable to %q", h.name, store)
	}
	dir, err := os.MkdirTemp(parent, h.name+"-")
	if err != nil {
		return workload.Result{}, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	cmd := exec.CommandContext(ctx, h.bin,
		"-nodes", strconv.Itoa(c.nodes),
		"-clients", strconv.Itoa(clients),
		"-payload", strconv.Itoa(payload),
		"-duration", c.duration.String(),
		"-warmup", c.warmup.String(),
		"-store", ps,
		"-transport", transport,
		"-dir", dir)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, h.stderr
	if err := cmd.Run(); err != nil {
		return workload.Result{}, fmt.Errorf("%s %s/%s clients=%d payload=%d: %w", h.name, ps, transport, clients, payload, err)
	}
	rs, err := workload.ReadJSON(&stdout)
	if err != nil {
		return workload.Result{}, fmt.Errorf("%s output: %w", h.name, err)
	}
	if len(rs) != 1 {
		return workload.Result{}, fmt.Errorf("%s %s/%s clients=%d payload=%d: %d results, want 1", h.name, ps, transport, clients, payload, len(rs))
	}
	return rs[0], nil
}
