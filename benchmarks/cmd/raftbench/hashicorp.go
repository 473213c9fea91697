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

// hashicorpRunner runs the hcbench binary of the nested module
// benchmarks/hashicorp, built once per raftbench invocation.
type hashicorpRunner struct {
	bin    string
	stderr io.Writer
}

// hashicorpStore maps a typedraft store to the comparable hashicorp/raft
// one: the durable, fsyncing store of each, or the in-memory store of each.
var hashicorpStore = map[string]string{"memory": "inmem", "pebble": "boltdb"}

// rootModule is the module path whose directory holds benchmarks/hashicorp.
const rootModule = "github.com/typedraft/typedraft"

// findHashicorpDir looks for benchmarks/hashicorp in the typedraft module
// that contains the working directory.
func findHashicorpDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find benchmarks/hashicorp: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if isRootModule(filepath.Join(dir, "go.mod")) {
			return filepath.Join(dir, "benchmarks", "hashicorp"), nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("find benchmarks/hashicorp: %s is not inside the typedraft module; run from the repository or pass -hashicorp-dir", wd)
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

// newHashicorpRunner builds hcbench from dir (found automatically when
// empty) into tmp.
func newHashicorpRunner(ctx context.Context, dir, tmp string, stderr io.Writer) (*hashicorpRunner, error) {
	if dir == "" {
		var err error
		if dir, err = findHashicorpDir(); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return nil, fmt.Errorf("hashicorp comparison: %s has no go.mod: %w", dir, err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("hashicorp comparison needs the go command to build %s: %w", dir, err)
	}
	bin := filepath.Join(tmp, "hcbench")
	fmt.Fprintf(stderr, "building hashicorp/raft runner in %s ...\n", dir)
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/hcbench")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build hashicorp/raft runner in %s: %w", dir, err)
	}
	return &hashicorpRunner{bin: bin, stderr: stderr}, nil
}

// run measures every client count and payload of c on hashicorp/raft with
// the store comparable to typedraft's store and the same transport.
func (h *hashicorpRunner) run(ctx context.Context, c config, store, transport string, parent string) ([]workload.Result, error) {
	hs, ok := hashicorpStore[store]
	if !ok {
		return nil, fmt.Errorf("hashicorp comparison: no store comparable to %q", store)
	}
	var out []workload.Result
	for _, p := range c.payloads {
		for _, k := range c.clients {
			dir, err := os.MkdirTemp(parent, "hashicorp-")
			if err != nil {
				return nil, fmt.Errorf("temporary directory: %w", err)
			}
			cmd := exec.CommandContext(ctx, h.bin,
				"-nodes", strconv.Itoa(c.nodes),
				"-clients", strconv.Itoa(k),
				"-payload", strconv.Itoa(p),
				"-duration", c.duration.String(),
				"-warmup", c.warmup.String(),
				"-store", hs,
				"-transport", transport,
				"-dir", dir)
			var stdout bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, h.stderr
			err = cmd.Run()
			os.RemoveAll(dir)
			if err != nil {
				return nil, fmt.Errorf("hashicorp/raft %s/%s clients=%d payload=%d: %w", hs, transport, k, p, err)
			}
			rs, err := workload.ReadJSON(&stdout)
			if err != nil {
				return nil, fmt.Errorf("hashicorp/raft output: %w", err)
			}
			if len(rs) != 1 {
				return nil, fmt.Errorf("hashicorp/raft %s/%s clients=%d payload=%d: %d results, want 1", hs, transport, k, p, len(rs))
			}
			out = append(out, rs...)
		}
	}
	return out, nil
}
