package rafttest_test

import (
	"errors"
	"flag"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft/rafttest"
	"github.com/typedraft/typedraft/raft/rafttest/kvmodel"
)

var (
	flagSeed   = flag.Int64("seed", -1, "run only this seed (replays a failure)")
	flagSeeds  = flag.Int("seeds", 0, "number of seeds to run (soak); default 200, 20 with -short")
	flagFirst  = flag.Uint64("first", 1, "first seed of a soak")
	flagTrace  = flag.Bool("events", false, "print every event of the run (use with -seed)")
	flagOps    = flag.Int("ops", 1000, "client operations per seed")
	flagSilent = flag.Bool("silentloss", false, "lose messages silently (no Core.ReportUnreachable)")
	flagSnap   = flag.String("snapshot", "", "snapshot threshold of every seed: a number, 'vary' (the seed chooses) or 'off'; default 10 or 100 by seed")
)

// simOptions are the options of the package's default simulation for seed:
// odd seeds start with 5 voters, even seeds with 3; seeds 1, 2, 5, 6, 9, ...
// snapshot every 10 applied entries, seeds 3, 4, 7, 8, ... every 100; the
// seed also varies fault rates (the membership fault among them, with a
// pool of 7 node IDs) and core settings.
func simOptions(seed uint64) rafttest.Options {
	nodes := 3
	if seed%2 == 1 {
		nodes = 5
	}
	o := rafttest.Options{Seed: seed, Nodes: nodes, Ops: *flagOps, Vary: true, SnapshotInterval: snapshotInterval(seed)}
	// The transport reports lost messages to the sender's core, as TCP
	// transports do. With -silentloss every loss is silent instead; the core
	// then stalls replication to a follower whose appends were lost
	// (reported as a core liveness bug; see the package report).
	o.ReportLoss = !*flagSilent
	return o
}

// snapshotInterval is the snapshot threshold (Options.SnapshotInterval)
// of the default simulation for seed: 10 or 100 applied entries,
// alternating every two seeds so that both node counts run both
// thresholds. The -snapshot flag overrides it: 0 lets the seed choose
// (Options.Vary), -1 turns snapshots off.
func snapshotInterval(seed uint64) int {
	switch *flagSnap {
	case "":
	case "vary":
		return 0
	case "off":
		return -1
	default:
		if n, err := strconv.Atoi(*flagSnap); err == nil && n > 0 {
			return n
		}
		// forSeeds rejects the flag before any seed runs.
	}
	if (seed/2)%2 == 0 {
		return 10
	}
	return 100
}

// replay is the command that reproduces seed of test name, with the flags
// that change what a seed does.
func replay(name string, seed uint64) string {
	extra := ""
	if *flagOps != 1000 {
		extra += fmt.Sprintf(" -ops=%d", *flagOps)
	}
	if *flagSilent {
		extra += " -silentloss"
	}
	if *flagSnap != "" {
		extra += " -snapshot=" + *flagSnap
	}
	return fmt.Sprintf("go test ./raft/rafttest -run '^%s$' -seed=%d%s -v", name, seed, extra)
}

// seedsToRun returns the seeds selected by the flags.
func seedsToRun(defaultN, shortN int) []uint64 {
	if *flagSeed >= 0 {
		return []uint64{uint64(*flagSeed)}
	}
	n := defaultN
	if testing.Short() {
		n = shortN
	}
	if *flagSeeds > 0 {
		n = *flagSeeds
	}
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = *flagFirst + uint64(i)
	}
	return seeds
}

// forSeeds runs fn on every seed, on all CPUs, and reports failures with
// their replay command.
func forSeeds(t *testing.T, seeds []uint64, fn func(seed uint64) (rafttest.Report, error)) []rafttest.Report {
	t.Helper()
	if f := *flagSnap; f != "" && f != "vary" && f != "off" {
		if n, err := strconv.Atoi(f); err != nil || n <= 0 {
			t.Fatalf("-snapshot=%q: want a positive number, 'vary' or 'off'", f)
		}
	}
	var (
		mu      sync.Mutex
		reports []rafttest.Report
		wg      sync.WaitGroup
		next    = make(chan uint64)
	)
	workers := min(runtime.GOMAXPROCS(0), len(seeds))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range next {
				rep, err := fn(seed)
				mu.Lock()
				if err != nil {
					var f *rafttest.Failure
					if errors.As(err, &f) {
						t.Errorf("%v\nreplay: %s", err, replay(t.Name(), seed))
					} else {
						t.Errorf("seed %d: %v", seed, err)
					}
				} else {
					reports = append(reports, rep)
				}
				mu.Unlock()
			}
		}()
	}
	for _, s := range seeds {
		next <- s
	}
	close(next)
	wg.Wait()
	return reports
}

// TestSimulation is the default soak: 400 seeds (20 with -short) of
// 1,000 client operations each, starting with 3 or 5 voters, with every
// fault enabled (membership changes, leadership transfers and crashes in
// the middle of snapshots among them) and rates varied per seed; half the
// seeds snapshot every 10 applied entries, half every 100. Every safety
// invariant is checked after every step, each history is checked for
// linearizability, and after the faults stop every seed must have one
// leader with a non-joint configuration within 10 election timeouts.
func TestSimulation(t *testing.T) {
	seeds := seedsToRun(400, 20)
	start := time.Now()
	w := kvmodel.Workload(4)
	reports := forSeeds(t, seeds, func(seed uint64) (rafttest.Report, error) {
		o := simOptions(seed)
		if *flagTrace && *flagSeed >= 0 {
			o.Trace = func(line string) { fmt.Println(line) }
		}
		return rafttest.Run(o, w)
	})
	for _, r := range reports {
		if r.Submitted < *flagOps {
			t.Logf("seed %d submitted only %d of %d operations", r.Seed, r.Submitted, *flagOps)
		}
		if *flagSeed >= 0 {
			t.Log(r)
		}
	}
	sum := summarize(reports, snapshotInterval)
	t.Logf("%d seeds passed in %v", len(reports), time.Since(start).Round(time.Millisecond))
	for _, line := range sum.lines() {
		t.Log(line)
	}
	if len(reports) >= 100 && !t.Failed() {
		// A soak this long exercises every fault; one that never happens
		// has stopped being injected.
		for _, c := range sum.counts {
			if c.seeds == 0 {
				t.Errorf("no seed exercised %s", c.name)
			}
		}
	}
}

// TestDeterminism runs seeds twice and checks that the runs are identical,
// event for event (the trace hash covers every event), and that different
// seeds give different runs.
func TestDeterminism(t *testing.T) {
	w := kvmodel.Workload(4)
	hashes := map[uint64]uint64{}
	for _, seed := range []uint64{7, 8} {
		o := simOptions(seed)
		o.Ops = 300
		a, errA := rafttest.Run(o, w)
		b, errB := rafttest.Run(o, w)
		if errA != nil || errB != nil {
			t.Fatalf("seed %d: %v / %v\nreplay: %s", seed, errA, errB, replay(t.Name(), seed))
		}
		if a != b {
			t.Fatalf("seed %d ran differently twice:\n  %v\n  %v", seed, a, b)
		}
		if a.Steps < 1000 || a.Ops == 0 {
			t.Fatalf("seed %d did too little to be a meaningful comparison: %v", seed, a)
		}
		hashes[seed] = a.TraceHash
	}
	if hashes[7] == hashes[8] {
		t.Fatalf("seeds 7 and 8 produced the same trace hash %x", hashes[7])
	}
}

// TestSnapshots runs with frequent snapshots and short trailing logs, so
// that lagging and restarted nodes must be brought up to date by snapshots
// sent over the faulty network, and checks that this happened.
func TestSnapshots(t *testing.T) {
	var snaps, installs int
	reports := forSeeds(t, seedsToRun(8, 4), func(seed uint64) (rafttest.Report, error) {
		o := simOptions(seed)
		o.Ops, o.SnapshotInterval, o.TrailingLogs = 400, 10, 1
		return rafttest.Run(o, kvmodel.Workload(4))
	})
	for _, r := range reports {
		snaps += r.Snapshots
		installs += r.Installs
	}
	if snaps == 0 || installs == 0 {
		t.Fatalf("%d snapshots taken, %d installed: the snapshot paths were not exercised", snaps, installs)
	}
	t.Logf("%d snapshots taken, %d installed from leaders", snaps, installs)
}
