// Command dbbench runs typedraft's benchmark workload
// (github.com/typedraft/typedraft/benchmarks/workload) on dragonboat v4,
// configured as its users configure it: one NodeHost per node in one
// process, each hosting one replica of one shard, with dragonboat's
// default Pebble-based LogDB (fsync on; default LogDB and engine settings)
// and its default TCP transport on loopback, PreVote and CheckQuorum on,
// an IStateMachine (dragonboat's recommended in-memory state machine) that
// counts commands like typedraft's benchmark FSM, and one SyncPropose
// loop per client on the leader's NodeHost with a NO-OP session. Logging
// is off, which only saves it work.
//
// The timing settings follow dragonboat's guidance and typedraft's
// defaults: RTTMillisecond is 1, as dragonboat's documentation says to set
// it when the round trip between NodeHosts is below a millisecond (on
// loopback it is tens of microseconds; dragonboat steps proposals as they
// arrive, not on ticks, and 1, 2 and 5 ms measured the same here), and the
// heartbeat and election timeouts are typedraft's, so that both systems
// detect failures equally fast: HeartbeatRTT 100 (100 ms, typedraft's 2
// ticks of 50 ms) and ElectionRTT 500 (500 ms, typedraft's 10 ticks).
// SnapshotEntries is 8192 and CompactionOverhead 1024, typedraft's
// SnapshotThreshold and TrailingLogs.
//
// -store memfs -transport inmem is the in-memory counterpart of
// typedraft's memory/inmem: the same Pebble LogDB on dragonboat's
// in-memory file system (NodeHostConfig.Expert.FS, lni/vfs MemFS: no
// fsync reaches a disk) and dragonboat's channel transport (plugin/chan).
// dragonboat offers them for tests, not for production.
//
// It prints one JSON line (workload.Result) per configuration on stdout.
// raftbench -compare-dragonboat builds and runs it; it can also be run on
// its own from this directory:
//
//	go run ./cmd/dbbench -clients 1,64 -store pebble -transport tcp
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lni/dragonboat/v4/client"
	"github.com/lni/dragonboat/v4/logger"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dbbench:", err)
		os.Exit(1)
	}
}

// silence turns dragonboat's logging off, and the standard logger's,
// which Pebble's default logger writes to, once per process.
var silence = sync.OnceFunc(func() {
	log.SetOutput(io.Discard)
	logger.SetLoggerFactory(func(string) logger.ILogger { return nullLogger{} })
})

type nullLogger struct{}

func (nullLogger) SetLevel(logger.LogLevel) {}
func (nullLogger) Debugf(string, ...any)    {}
func (nullLogger) Infof(string, ...any)     {}
func (nullLogger) Warningf(string, ...any)  {}
func (nullLogger) Errorf(string, ...any)    {}
func (nullLogger) Panicf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dbbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{}
	fs.IntVar(&o.nodes, "nodes", 3, "nodes in the cluster")
	clients := fs.String("clients", "1", "comma-separated numbers of closed-loop clients")
	payloads := fs.String("payload", "128", "comma-separated command sizes in bytes")
	duration := fs.Duration("duration", 5*time.Second, "measured time per configuration")
	warmup := fs.Duration("warmup", time.Second, "unmeasured warm-up per configuration")
	fs.StringVar(&o.store, "store", "pebble", "log store: pebble (the default LogDB on disk, fsync on) or memfs (the same on dragonboat's in-memory file system)")
	fs.StringVar(&o.transport, "transport", "tcp", "transport: tcp (the default TCP transport) or inmem (plugin/chan)")
	dir := fs.String("dir", "", "parent directory for the NodeHost directories (default: a temporary directory)")
	fs.DurationVar(&o.rtt, "rtt", time.Millisecond, "NodeHostConfig.RTTMillisecond (whole milliseconds)")
	fs.DurationVar(&o.heartbeat, "heartbeat", 100*time.Millisecond, "heartbeat interval (HeartbeatRTT = heartbeat / rtt)")
	fs.DurationVar(&o.election, "election", 500*time.Millisecond, "minimum election timeout (ElectionRTT = election / rtt)")
	fs.Uint64Var(&o.snapshotEntries, "snapshot-entries", 8192, "Config.SnapshotEntries")
	fs.Uint64Var(&o.compactionOverhead, "compaction-overhead", 1024, "Config.CompactionOverhead")
	smKind := fs.String("sm", "regular", "state machine: regular (IStateMachine) or concurrent (IConcurrentStateMachine)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case o.nodes < 1 || o.nodes > 15:
		return fmt.Errorf("-nodes %d outside [1, 15]", o.nodes)
	case o.store != "pebble" && o.store != "memfs":
		return fmt.Errorf("-store %q: want pebble or memfs", o.store)
	case o.transport != "tcp" && o.transport != "inmem":
		return fmt.Errorf("-transport %q: want tcp or inmem", o.transport)
	case o.rtt < time.Millisecond || o.rtt%time.Millisecond != 0:
		return fmt.Errorf("-rtt %v: want whole milliseconds, at least 1ms", o.rtt)
	case ticks(o.election, o.rtt) <= 2*ticks(o.heartbeat, o.rtt):
		return fmt.Errorf("-election %v must exceed twice -heartbeat %v", o.election, o.heartbeat)
	case *smKind != "regular" && *smKind != "concurrent":
		return fmt.Errorf("-sm %q: want regular or concurrent", *smKind)
	}
	o.concurrentSM = *smKind == "concurrent"
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
		if parent, err = os.MkdirTemp("", "dbbench-"); err != nil {
			return fmt.Errorf("temporary directory: %w", err)
		}
		defer os.RemoveAll(parent)
	}
	silence()
	for _, p := range ps {
		for _, k := range ks {
			spec := workload.Spec{Clients: k, Payload: p, Duration: *duration, Warmup: *warmup}
			if err := spec.Validate(); err != nil {
				return err
			}
			r, err := measure(ctx, o, parent, spec)
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
func measure(ctx context.Context, o options, parent string, spec workload.Spec) (workload.Result, error) {
	reset := workload.ResetPeakRSS()
	dir, err := os.MkdirTemp(parent, "run-")
	if err != nil {
		return workload.Result{}, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	o.dir = dir
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, err := startCluster(startCtx, o)
	if err != nil {
		return workload.Result{}, err
	}
	lead, err := c.waitLeader(startCtx)
	if err != nil {
		c.close()
		return workload.Result{}, err
	}
	// One NO-OP session per client: sessions are per shard, not per host,
	// so they stay valid when the leader moves.
	sessions := make([]*client.Session, spec.Clients)
	for i := range sessions {
		sessions[i] = lead.GetNoOPSession(shardID)
	}
	m, runErr := workload.Run(ctx, spec, func(ctx context.Context, k int, cmd []byte) error {
		return c.apply(ctx, sessions[k], cmd)
	})
	rss, _ := workload.PeakRSS(reset)
	c.close()
	if runErr != nil {
		return workload.Result{}, runErr
	}
	return workload.NewResult("dragonboat", o.store, o.transport, o.store == "pebble", o.nodes, spec, m, rss), nil
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
