// Command raftbench measures typedraft clusters running in one process:
// for every requested combination of store × transport × operation ×
// clients × payload it starts a fresh cluster of -nodes nodes, runs
// closed-loop clients against it (each waits for the outcome of its
// request before sending the next), and reports throughput, latency
// percentiles, peak RSS, the log writes (Saves and fsyncs, cluster-wide)
// per request, and the leader's commit and save latencies from its
// Raft.Metrics. With -compare-hashicorp and -compare-dragonboat it runs
// the same write workload on hashicorp/raft (the nested module
// benchmarks/hashicorp) and on dragonboat v4 (benchmarks/dragonboat) in
// the same invocation, interleaved per configuration, and adds their rows
// and typedraft's throughput ratio to each to the table.
//
//	go run ./benchmarks/cmd/raftbench -clients 1,16,64 -payload 128 \
//	    -store memory,pebble -transport inmem,tcp -duration 5s -compare-hashicorp -compare-dragonboat
//
// Before the first configuration it measures the disk's floor in the
// directory of the on-disk stores: -floor-samples 4 KiB appends, each
// followed by fdatasync, and as many in-place overwrites, each followed by
// fdatasync; it prints their p50 and p99, records them in every result,
// and relates the durable 1-client p50 of every system to the append
// floor.
//
// -ops chooses what a request does (default write): write proposes a
// -payload-byte command and waits until the leader applied it;
// write-follower proposes it on a follower (client k on follower k mod
// the followers), which forwards it to the leader and answers with the
// leader's result; write-session proposes it to the leader in a
// raft.Session (one per client, opened before the run; a new sequence
// number per request). For every write op other than write, and every
// read other than read-log, the table is followed by its ratios to write
// (or read-log) at the same configuration, per round and their median:
//
//	go run ./benchmarks/cmd/raftbench -ops write,write-follower,write-session \
//	    -clients 1,16,64 -pairs pebble/tcp,memory/inmem -duration 3s -repeat 3
//
// read-log
// proposes an empty read-only command (a read through the log); read-index
// reads on the leader with raft.ReadLinearizable; read-follower does the
// same on the followers (which ask the leader for the read index);
// read-lease reads on the leader with raft.ReadLease. Reads carry no
// payload and are recorded with payload 0:
//
//	go run ./benchmarks/cmd/raftbench -ops read-log,read-index,read-follower,read-lease \
//	    -clients 1,16,64 -pairs pebble/tcp,memory/inmem -duration 3s -repeat 3
//
// -metrics on,off runs every typedraft configuration twice, with its
// metrics on and with raft.Config.DisableMetrics, to measure what they
// cost.
//
// -repeat N runs the whole matrix N times, one round after another (so
// the configurations interleave), prints every run as it finishes and
// tables the per-configuration medians.
//
// The table goes to stdout, or to stderr with -json, which prints one JSON
// line per run on stdout instead. -svg writes a chart of throughput and
// p99 against clients.
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
	ops        []string
	repeat     int
	duration   time.Duration
	warmup     time.Duration
	// compare lists the peers to run; peerDirs their nested modules'
	// directories (empty: found from the working directory); peersOnly
	// skips typedraft.
	compare   []peer
	peerDirs  map[string]string
	peersOnly bool
	// metricsOff lists, for every typedraft configuration, the
	// raft.Config.DisableMetrics settings to run.
	metricsOff   []bool
	floorSamples int
	jsonOut      bool
	svgPath      string
	mdPath       string
	dir          string
	cpuProfile   string
	from         string
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
	ops := fs.String("ops", workload.OpWrite, "comma-separated operations: "+strings.Join(workload.Ops, ", "))
	fs.IntVar(&c.repeat, "repeat", 1, "run every configuration this many times, round after round, and table the medians")
	pairs := fs.String("pairs", "", "comma-separated store/transport pairs to run instead of every -store × -transport, e.g. pebble/tcp,memory/inmem")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "measured time per configuration")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured warm-up per configuration")
	compare := map[string]*bool{}
	only := map[string]*bool{}
	dirs := map[string]*string{}
	for _, p := range peers {
		compare[p.name] = fs.Bool("compare-"+p.name, false, "also run "+p.about+" on the same write workload")
		dirs[p.name] = fs.String(p.name+"-dir", "", "directory of the nested module benchmarks/"+p.module+" (default: found from the working directory)")
		only[p.name] = fs.Bool(p.name+"-only", false, "run only "+p.name+" (implies -compare-"+p.name+"; with another -*-only, only those)")
	}
	metrics := fs.String("metrics", "on", "comma-separated typedraft metrics settings to run: on, off (raft.Config.DisableMetrics)")
	fs.IntVar(&c.floorSamples, "floor-samples", 2000, "timed 4 KiB writes of each kind for the disk floor (0: do not measure it)")
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
	if c.ops, err = nameList("ops", *ops, workload.Ops); err != nil {
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
	case c.repeat < 1 || c.repeat > maxRepeat:
		return c, fmt.Errorf("-repeat %d outside [1, %d]", c.repeat, maxRepeat)
	case slices.Contains(c.ops, workload.OpReadFollower) && c.nodes < 2:
		return c, fmt.Errorf("-ops %s needs -nodes >= 2", workload.OpReadFollower)
	case slices.Contains(c.ops, workload.OpWriteFollower) && c.nodes < 2:
		return c, fmt.Errorf("-ops %s needs -nodes >= 2", workload.OpWriteFollower)
	}
	c.peerDirs = map[string]string{}
	for _, p := range peers {
		if *only[p.name] {
			c.peersOnly = true
		}
		if *compare[p.name] || *only[p.name] {
			c.compare = append(c.compare, p)
			c.peerDirs[p.name] = *dirs[p.name]
			if !slices.Contains(c.ops, workload.OpWrite) {
				return c, fmt.Errorf("-compare-%s compares writes only; add %s to -ops", p.name, workload.OpWrite)
			}
		}
	}
	ms, err := nameList("metrics", *metrics, []string{"on", "off"})
	if err != nil {
		return c, err
	}
	for _, m := range ms {
		c.metricsOff = append(c.metricsOff, m == "off")
	}
	if c.floorSamples < 0 || c.floorSamples > maxFloorSamples {
		return c, fmt.Errorf("-floor-samples %d outside [0, %d]", c.floorSamples, maxFloorSamples)
	}
	return c, nil
}

// maxRepeat bounds -repeat.
const maxRepeat = 100

// durable reports whether c runs an on-disk store.
func (c config) durable() bool {
	for _, p := range c.pairs {
		if p[0] == "pebble" {
			return true
		}
	}
	return false
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

	var runners []*peerRunner
	for _, p := range c.compare {
		r, err := newPeerRunner(ctx, p, c.peerDirs[p.name], dir, stderr)
		if err != nil {
			return err
		}
		runners = append(runners, r)
	}
	var floor *workload.DiskFloor
	if c.floorSamples > 0 && c.durable() {
		f, err := measureFloor(dir, c.floorSamples)
		if err != nil {
			return err
		}
		floor = &f
		fmt.Fprintln(stderr, floorLine(f))
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
		r.DiskFloor = floor
		results = append(results, r)
		fmt.Fprintln(stderr, progressLine(r))
		if c.jsonOut {
			return workload.WriteJSON(stdout, r)
		}
		return nil
	}
	if err := runRounds(ctx, c, dir, runners, stderr, emit); err != nil {
		return err
	}

	fmt.Fprintln(tableOut)
	return render(c, results, tableOut)
}

// render writes the tables of the medians of raw (and the same-round
// ratios of raw's operations to write and read-log) to tableOut and the
// -svg and -markdown files.
func render(c config, raw []workload.Result, tableOut io.Writer) error {
	results := report.Medians(raw)
	report.Sort(results)
	if n, all := maxRuns(results); n > 1 && all {
		fmt.Fprintf(tableOut, "medians of %d runs per configuration\n", n)
	} else if n > 1 {
		fmt.Fprintf(tableOut, "medians of up to %d runs where a configuration was repeated\n", n)
	}
	if err := report.WriteTable(tableOut, results); err != nil {
		return err
	}
	if err := report.WriteFloor(tableOut, results); err != nil {
		return err
	}
	if err := report.WriteRaftMetrics(tableOut, results); err != nil {
		return err
	}
	if err := report.WriteOpRatios(tableOut, raw); err != nil {
		return err
	}
	if c.svgPath != "" {
		if err := writeFile(c.svgPath, func(w io.Writer) error { return report.WriteSVG(w, results) }); err != nil {
			return err
		}
	}
	if c.mdPath != "" {
		md := func(w io.Writer) error {
			if err := report.WriteMarkdown(w, results); err != nil {
				return err
			}
			return report.WriteOpRatiosMarkdown(w, raw)
		}
		if err := writeFile(c.mdPath, md); err != nil {
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

// maxRuns returns the largest Runs of rs (1 for raw results) and whether
// every result folds that many runs.
func maxRuns(rs []workload.Result) (n int, all bool) {
	n = 1
	for _, r := range rs {
		n = max(n, r.Runs)
	}
	for _, r := range rs {
		if max(r.Runs, 1) != n {
			return n, false
		}
	}
	return n, true
}
