// Command raftbench measures typedraft clusters running in one process:
// for every requested combination of store × transport × clients ×
// payload it starts a fresh cluster of -nodes nodes, runs closed-loop
// clients proposing payload-byte commands to the leader (each waits for its
// command to be applied before sending the next), and reports throughput,
// latency percentiles and peak RSS. With -compare-hashicorp it runs the
// same workload on hashicorp/raft (the nested module benchmarks/hashicorp)
// in the same invocation, interleaved per configuration, and adds its rows
// and the throughput ratio to the table.
//
//	go run ./benchmarks/cmd/raftbench -clients 1,16,64 -payload 128 \
//	    -store memory,pebble -transport inmem,tcp -duration 5s -compare-hashicorp
//
// The table goes to stdout, or to stderr with -json, which prints one JSON
// line per configuration on stdout instead. -svg writes a chart of
// throughput and p99 against clients.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/typedraft/typedraft/benchmarks/cluster"
	"github.com/typedraft/typedraft/benchmarks/report"
	"github.com/typedraft/typedraft/benchmarks/workload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "raftbench:", err)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// config is the parsed command line.
type config struct {
	nodes      int
	clients    []int
	payloads   []int
	stores     []string
	transports []string
	pairs      [][2]string // store, transport
	duration   time.Duration
	warmup     time.Duration
	compare    bool
	hcDir      string
	hcOnly     bool
	jsonOut    bool
	svgPath    string
	mdPath     string
	dir        string
	cpuProfile string
	from       string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("raftbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.nodes, "nodes", 3, "nodes in the cluster")
	clients := fs.String("clients", "1,16,64", "comma-separated numbers of closed-loop clients")
	payloads := fs.String("payload", "128", "comma-separated command sizes in bytes (>= 8)")
	stores := fs.String("store", "memory,pebble", "comma-separated stores: memory, pebble")
	transports := fs.String("transport", "inmem,tcp", "comma-separated transports: inmem, tcp")
	pairs := fs.String("pairs", "", "comma-separated store/transport pairs to run instead of every -store × -transport, e.g. pebble/tcp,memory/inmem")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "measured time per configuration")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured warm-up per configuration")
	fs.BoolVar(&c.compare, "compare-hashicorp", false, "also run hashicorp/raft v1.8.0 (raft-boltdb/v2 for pebble, InmemStore for memory) on the same workload")
	fs.StringVar(&c.hcDir, "hashicorp-dir", "", "directory of the nested module benchmarks/hashicorp (default: found from the working directory)")
	fs.BoolVar(&c.hcOnly, "hashicorp-only", false, "run only hashicorp/raft (implies -compare-hashicorp)")
	fs.BoolVar(&c.jsonOut, "json", false, "print JSON lines on stdout (the table goes to stderr)")
	fs.StringVar(&c.svgPath, "svg", "", "write an SVG chart of throughput and p99 vs clients to this file")
	fs.StringVar(&c.mdPath, "markdown", "", "write the table as Markdown to this file")
	fs.StringVar(&c.dir, "dir", "", "parent directory for on-disk stores (default: a new temporary directory, removed at exit)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the typedraft runs to this file")
	fs.StringVar(&c.from, "from", "", "run nothing: render the table, -svg and -markdown from this JSON-lines file of earlier results")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if c.clients, err = intList("clients", *clients, 1, workload.MaxClients); err != nil {
		return c, err
	}
	if c.payloads, err = intList("payload", *payloads, workload.MinPayload, workload.MaxPayload); err != nil {
		return c, err
	}
	if c.stores, err = nameList("store", *stores, cluster.Stores); err != nil {
		return c, err
	}
	if c.transports, err = nameList("transport", *transports, cluster.Transports); err != nil {
		return c, err
	}
	if *pairs == "" {
		for _, st := range c.stores {
			for _, tr := range c.transports {
				c.pairs = append(c.pairs, [2]string{st, tr})
			}
		}
	} else {
		for _, p := range strings.Split(*pairs, ",") {
			st, tr, ok := strings.Cut(strings.TrimSpace(p), "/")
			if !ok || !slices.Contains(cluster.Stores, st) || !slices.Contains(cluster.Transports, tr) {
				return c, fmt.Errorf("-pairs: %q is not store/transport with store in %v and transport in %v", p, cluster.Stores, cluster.Transports)
			}
			c.pairs = append(c.pairs, [2]string{st, tr})
		}
	}
	switch {
	case c.nodes < 1 || c.nodes > cluster.MaxNodes:
		return c, fmt.Errorf("-nodes %d outside [1, %d]", c.nodes, cluster.MaxNodes)
	case c.duration <= 0:
		return c, fmt.Errorf("-duration %v must be positive", c.duration)
	case c.warmup < 0:
		return c, fmt.Errorf("-warmup %v must not be negative", c.warmup)
	}
	if c.hcOnly {
		c.compare = true
	}
	return c, nil
}

// intList parses a comma-separated list of integers in [lo, hi].
func intList(name, s string, lo, hi int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("-%s: %q is not an integer", name, f)
		}
		if v < lo || v > hi {
			return nil, fmt.Errorf("-%s: %d outside [%d, %d]", name, v, lo, hi)
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// nameList parses a comma-separated list of names from allowed.
func nameList(name, s string, allowed []string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(allowed, f) {
			return nil, fmt.Errorf("-%s: unknown %q (want one of %s)", name, f, strings.Join(allowed, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if c.from != "" {
		f, err := os.Open(c.from)
		if err != nil {
			return err
		}
		results, err := workload.ReadJSON(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", c.from, err)
		}
		return render(c, results, stdout)
	}
	dir := c.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "raftbench-"); err != nil {
			return fmt.Errorf("temporary directory: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	tableOut := stdout
	if c.jsonOut {
		tableOut = stderr
	}

	var hc *hashicorpRunner
	if c.compare {
		if hc, err = newHashicorpRunner(ctx, c.hcDir, dir, stderr); err != nil {
			return err
		}
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	var results []workload.Result
	emit := func(r workload.Result) error {
		results = append(results, r)
		fmt.Fprintf(stderr, "  %-9s %-6s/%-5s clients=%-4d payload=%-5d %10.0f ops/s  p50 %.3f ms  p99 %.3f ms\n",
			r.System, r.Store, r.Transport, r.Clients, r.Payload, r.OpsPerSec, r.P50us/1000, r.P99us/1000)
		if c.jsonOut {
			return workload.WriteJSON(stdout, r)
		}
		return nil
	}
	for _, pair := range c.pairs {
		st, tr := pair[0], pair[1]
		if !c.hcOnly {
			for _, p := range c.payloads {
				for _, k := range c.clients {
					r, err := runTypedraft(ctx, c, st, tr, k, p, dir)
					if err != nil {
						return err
					}
					if err := emit(r); err != nil {
						return err
					}
				}
			}
		}
		if hc != nil {
			rs, err := hc.run(ctx, c, st, tr, dir)
			if err != nil {
				return err
			}
			for _, r := range rs {
				if err := emit(r); err != nil {
					return err
				}
			}
		}
	}

	fmt.Fprintln(tableOut)
	return render(c, results, tableOut)
}

// render writes the table to tableOut and the -svg and -markdown files.
func render(c config, results []workload.Result, tableOut io.Writer) error {
	report.Sort(results)
	if err := report.WriteTable(tableOut, results); err != nil {
		return err
	}
	if c.svgPath != "" {
		if err := writeFile(c.svgPath, func(w io.Writer) error { return report.WriteSVG(w, results) }); err != nil {
			return err
		}
	}
	if c.mdPath != "" {
		if err := writeFile(c.mdPath, func(w io.Writer) error { return report.WriteMarkdown(w, results) }); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runTypedraft measures one configuration on a fresh typedraft cluster.
func runTypedraft(ctx context.Context, c config, store, transport string, clients, payload int, parent string) (workload.Result, error) {
	reset := workload.ResetPeakRSS()
	dir, err := os.MkdirTemp(parent, "typedraft-")
	if err != nil {
		return workload.Result{}, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := cluster.Start(startCtx, cluster.Options{Nodes: c.nodes, Store: store, Transport: transport, Dir: dir})
	if err != nil {
		return workload.Result{}, fmt.Errorf("%s/%s: %w", store, transport, err)
	}
	spec := workload.Spec{Clients: clients, Payload: payload, Duration: c.duration, Warmup: c.warmup}
	m, runErr := workload.Run(ctx, spec, cl.Op())
	rss, _ := workload.PeakRSS(reset)
	closeErr := cl.Close()
	if runErr != nil {
		return workload.Result{}, runErr
	}
	if closeErr != nil {
		return workload.Result{}, closeErr
	}
	return workload.NewResult("typedraft", store, transport, store == "pebble", c.nodes, spec, m, rss), nil
}
