// Command hcbench runs typedraft's benchmark workload
// (github.com/typedraft/typedraft/benchmarks/workload) on hashicorp/raft
// v1.8.0, configured as its users configure it: raft.DefaultConfig(),
// raft-boltdb/v2 (fsync on) behind a 512-entry LogCache with a
// FileSnapshotStore, and NetworkTransport over TCP; or InmemStore and
// InmemTransport. Logging is off, which only saves it work.
//
// It prints one JSON line (workload.Result) per configuration on stdout.
// raftbench -compare-hashicorp builds and runs it; it can also be run on
// its own from this directory:
//
//	go run ./cmd/hcbench -clients 1,64 -store boltdb -transport tcp
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hcbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hcbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.Int("nodes", 3, "nodes in the cluster")
	clients := fs.String("clients", "1", "comma-separated numbers of closed-loop clients")
	payloads := fs.String("payload", "128", "comma-separated command sizes in bytes")
	duration := fs.Duration("duration", 5*time.Second, "measured time per configuration")
	warmup := fs.Duration("warmup", time.Second, "unmeasured warm-up per configuration")
	store := fs.String("store", "boltdb", "log store: boltdb or inmem")
	transport := fs.String("transport", "tcp", "transport: tcp or inmem")
	dir := fs.String("dir", "", "parent directory for boltdb files (default: a temporary directory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *nodes < 1 || *nodes > 15 {
		return fmt.Errorf("-nodes %d outside [1, 15]", *nodes)
	}
	if *store != "boltdb" && *store != "inmem" {
		return fmt.Errorf("-store %q: want boltdb or inmem", *store)
	}
	if *transport != "tcp" && *transport != "inmem" {
		return fmt.Errorf("-transport %q: want tcp or inmem", *transport)
	}
	ks, err := ints("clients", *clients)
	if err != nil {
		return err
	}
	ps, err := ints("payload", *payloads)
	if err != nil {
		return err
	}
	parent := *dir
	if parent == "" {
		if parent, err = os.MkdirTemp("", "hcbench-"); err != nil {
			return fmt.Errorf("temporary directory: %w", err)
		}
		defer os.RemoveAll(parent)
	}
	for _, p := range ps {
		for _, k := range ks {
			spec := workload.Spec{Clients: k, Payload: p, Duration: *duration, Warmup: *warmup}
			if err := spec.Validate(); err != nil {
				return err
			}
			r, err := measure(ctx, *nodes, *store, *transport, parent, spec)
			if err != nil {
				return err
			}
			if err := workload.WriteJSON(stdout, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// measure runs spec on a fresh cluster.
func measure(ctx context.Context, nodes int, store, transport, parent string, spec workload.Spec) (workload.Result, error) {
	reset := workload.ResetPeakRSS()
	dir, err := os.MkdirTemp(parent, "run-")
	if err != nil {
		return workload.Result{}, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, err := startCluster(startCtx, nodes, store, transport, dir)
	if err != nil {
		return workload.Result{}, err
	}
	m, runErr := workload.Run(ctx, spec, func(ctx context.Context, _ int, cmd []byte) error { return c.apply(ctx, cmd) })
	rss, _ := workload.PeakRSS(reset)
	closeErr := c.close()
	if runErr != nil {
		return workload.Result{}, runErr
	}
	if closeErr != nil {
		return workload.Result{}, closeErr
	}
	return workload.NewResult("hashicorp", store, transport, store == "boltdb", nodes, spec, m, rss), nil
}

func ints(name, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("-%s: %q is not an integer", name, f)
		}
		out = append(out, v)
	}
	return out, nil
}
