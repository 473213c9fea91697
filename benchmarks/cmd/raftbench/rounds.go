package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/typedraft/typedraft/benchmarks/cluster"
	"github.com/typedraft/typedraft/benchmarks/workload"
	"github.com/typedraft/typedraft/raft"
)

// runRounds runs c.repeat rounds of every configuration of c and hands
// each result to emit as soon as it is measured. Within a round, for each
// store/transport pair and client count, typedraft's operations run one
// after another (each with every -metrics setting), then every peer's
// writes at the same client count, so that the systems and operations
// compared are measured under the same machine load.
func runRounds(ctx context.Context, c config, dir string, runners []*peerRunner, stderr io.Writer, emit func(workload.Result) error) error {
	for round := 1; round <= c.repeat; round++ {
		if c.repeat > 1 {
			fmt.Fprintf(stderr, "round %d of %d\n", round, c.repeat)
		}
		for _, pair := range c.pairs {
			st, tr := pair[0], pair[1]
			for _, k := range c.clients {
				if !c.peersOnly {
					for _, op := range c.ops {
						payloads := c.payloads
						if workload.IsRead(op) {
							payloads = []int{workload.MinPayload} // unused: reads carry none
						}
						for _, p := range payloads {
							for _, off := range c.metricsOff {
								r, err := runTypedraft(ctx, c, st, tr, op, k, p, off, dir)
								if err != nil {
									return err
								}
								if err := emit(withRound(r, c, round)); err != nil {
									return err
								}
							}
						}
					}
				}
				for _, h := range runners {
					for _, p := range c.payloads {
						r, err := h.run(ctx, c, st, tr, k, p, dir)
						if err != nil {
							return err
						}
						if err := emit(withRound(r, c, round)); err != nil {
							return err
						}
					}
				}
			}
		}
	}
	return nil
}

// withRound numbers r with its round when there is more than one.
func withRound(r workload.Result, c config, round int) workload.Result {
	if c.repeat > 1 {
		r.Round = round
	}
	return r
}

// runTypedraft measures one configuration on a fresh typedraft cluster:
// it starts the cluster (with raft.Config.DisableMetrics set to
// metricsOff), prepares op (write-session opens one session per client),
// waits until every node has applied what the leader committed, then runs
// the workload of op, counting every node's Saves, fsyncs and sent
// messages during the measured window and, with metrics on, reading the
// nodes' Raft.Metrics at its start and end.
func runTypedraft(ctx context.Context, c config, store, transport, op string, clients, payload int, metricsOff bool, parent string) (workload.Result, error) {
	reset := workload.ResetPeakRSS()
	dir, err := os.MkdirTemp(parent, "typedraft-")
	if err != nil {
		return workload.Result{}, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := cluster.Start(startCtx, cluster.Options{Nodes: c.nodes, Store: store, Transport: transport, Dir: dir,
		Configure: func(cfg *raft.Config) { cfg.DisableMetrics = metricsOff }})
	if err != nil {
		return workload.Result{}, fmt.Errorf("%s/%s: %w", store, transport, err)
	}
	fn, err := cl.OpFor(op)
	if err == nil {
		err = cl.Prepare(startCtx, op, clients)
	}
	if err == nil {
		err = cl.WaitSettled(startCtx)
	}
	if err != nil {
		cl.Close()
		return workload.Result{}, fmt.Errorf("%s/%s %s: %w", store, transport, op, err)
	}
	var counts workload.StorageCounts
	var net workload.NetCounts
	var rm workload.RaftMetrics
	counting, metering := cl.CountWindow(&counts, &net), cl.MetricsWindow(&rm)
	window := func(open bool) {
		counting(open)
		if !metricsOff {
			metering(open)
		}
	}
	spec := workload.Spec{Clients: clients, Payload: payload, Duration: c.duration, Warmup: c.warmup, Window: window}
	m, runErr := workload.Run(ctx, spec, fn)
	rss, _ := workload.PeakRSS(reset)
	closeErr := cl.Close()
	if runErr != nil {
		return workload.Result{}, runErr
	}
	if closeErr != nil {
		return workload.Result{}, closeErr
	}
	r := workload.NewResult("typedraft", store, transport, store == "pebble", c.nodes, spec, m, rss)
	r.Op, r.Storage, r.Net, r.MetricsOff = op, &counts, &net, metricsOff
	if !metricsOff && rm.Leader != "" {
		r.RaftMetrics = &rm
	}
	if workload.IsRead(op) {
		r.Payload = 0
	}
	return r, nil
}

// progressLine describes one finished run for stderr.
func progressLine(r workload.Result) string {
	sys := r.System
	if r.MetricsOff {
		sys += " (metrics off)"
	}
	s := fmt.Sprintf("  %-9s %-13s %-6s/%-5s clients=%-4d payload=%-5d %10.0f ops/s  p50 %.3f ms  p99 %.3f ms",
		sys, r.OpName(), r.Store, r.Transport, r.Clients, r.Payload, r.OpsPerSec, r.P50us/1000, r.P99us/1000)
	if st := r.Storage; st != nil {
		s += fmt.Sprintf("  saves %d (%.3f/op)", st.Saves, r.PerOp(st.Saves))
		if st.Synced {
			s += fmt.Sprintf("  fsyncs %d (%.3f/op)", st.Fsyncs, r.PerOp(st.Fsyncs))
		}
	}
	if n := r.Net; n != nil {
		s += fmt.Sprintf("  msgs %.2f/op  heartbeats %.3f/op", r.PerOp(n.Messages), r.PerOp(n.Heartbeats))
		if n.Proposals > 0 {
			s += fmt.Sprintf("  forwards %.3f/op", r.PerOp(n.Proposals))
		}
	}
	if m := r.RaftMetrics; m != nil {
		s += fmt.Sprintf("  leader commit p50 %.3f ms  save p50 %.3f ms  %.1f entries/save", m.CommitP50us/1000, m.SaveP50us/1000, m.SaveBatchMean)
		if m.ForwardedServed > 0 {
			s += fmt.Sprintf("  served %.3f/op", r.PerOp(m.ForwardedServed))
		}
	}
	if r.Errors > 0 {
		s += fmt.Sprintf("  errors %d (%s)", r.Errors, r.FirstError)
	}
	return s
}
