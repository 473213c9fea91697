package report

import (
	"slices"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

// config identifies a configuration including the system, for grouping
// repeated runs of it.
type config struct {
	system, op, store, transport string
	durable, metricsOff          bool
	nodes, clients, payload      int
}

func configOf(r workload.Result) config {
	return config{system: r.System, op: r.OpName(), store: r.Store, transport: r.Transport,
		durable: r.Durable, metricsOff: r.MetricsOff, nodes: r.Nodes, clients: r.Clients, payload: r.Payload}
}

// Medians folds repeated runs of the same configuration (same system,
// operation, store, transport, nodes, clients and payload) into one
// record whose every measured field is the median of the runs' (the lower
// middle value for an even count), with Runs set to their number and
// Round cleared. Configurations run once are returned unchanged. The
// result keeps the order in which configurations first appear; rs is not
// modified.
func Medians(rs []workload.Result) []workload.Result {
	var order []config
	groups := map[config][]workload.Result{}
	for _, r := range rs {
		k := configOf(r)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	out := make([]workload.Result, 0, len(order))
	for _, k := range order {
		g := groups[k]
		if len(g) == 1 {
			out = append(out, g[0])
			continue
		}
		out = append(out, median(g))
	}
	return out
}

// median returns g[0] with every measured field replaced by its median
// over g.
func median(g []workload.Result) workload.Result {
	m := g[0]
	m.Round, m.Runs = 0, len(g)
	f := func(get func(workload.Result) float64) float64 {
		vs := make([]float64, len(g))
		for i, r := range g {
			vs[i] = get(r)
		}
		slices.Sort(vs)
		return vs[(len(vs)-1)/2]
	}
	u := func(get func(workload.Result) uint64) uint64 {
		return uint64(f(func(r workload.Result) float64 { return float64(get(r)) }))
	}
	m.DurationSec = f(func(r workload.Result) float64 { return r.DurationSec })
	m.Ops = u(func(r workload.Result) uint64 { return r.Ops })
	m.Errors = u(func(r workload.Result) uint64 { return r.Errors })
	m.OpsPerSec = f(func(r workload.Result) float64 { return r.OpsPerSec })
	m.P50us = f(func(r workload.Result) float64 { return r.P50us })
	m.P90us = f(func(r workload.Result) float64 { return r.P90us })
	m.P99us = f(func(r workload.Result) float64 { return r.P99us })
	m.Maxus = f(func(r workload.Result) float64 { return r.Maxus })
	m.Meanus = f(func(r workload.Result) float64 { return r.Meanus })
	m.PeakRSSMiB = f(func(r workload.Result) float64 { return r.PeakRSSMiB })
	for _, r := range g {
		if m.FirstError == "" {
			m.FirstError = r.FirstError
		}
	}
	if m.RaftMetrics != nil {
		rm := func(get func(workload.RaftMetrics) float64) float64 {
			return f(func(r workload.Result) float64 {
				if r.RaftMetrics == nil {
					return 0
				}
				return get(*r.RaftMetrics)
			})
		}
		m.RaftMetrics = &workload.RaftMetrics{
			Leader:            m.RaftMetrics.Leader,
			Commits:           uint64(rm(func(x workload.RaftMetrics) float64 { return float64(x.Commits) })),
			CommitP50us:       rm(func(x workload.RaftMetrics) float64 { return x.CommitP50us }),
			CommitP99us:       rm(func(x workload.RaftMetrics) float64 { return x.CommitP99us }),
			Saves:             uint64(rm(func(x workload.RaftMetrics) float64 { return float64(x.Saves) })),
			SaveP50us:         rm(func(x workload.RaftMetrics) float64 { return x.SaveP50us }),
			SaveP99us:         rm(func(x workload.RaftMetrics) float64 { return x.SaveP99us }),
			SaveBatchMean:     rm(func(x workload.RaftMetrics) float64 { return x.SaveBatchMean }),
			FollowerSaves:     uint64(rm(func(x workload.RaftMetrics) float64 { return float64(x.FollowerSaves) })),
			FollowerSaveP50us: rm(func(x workload.RaftMetrics) float64 { return x.FollowerSaveP50us }),
			FollowerSaveP99us: rm(func(x workload.RaftMetrics) float64 { return x.FollowerSaveP99us }),
			Forwarded:         uint64(rm(func(x workload.RaftMetrics) float64 { return float64(x.Forwarded) })),
			ForwardedServed:   uint64(rm(func(x workload.RaftMetrics) float64 { return float64(x.ForwardedServed) })),
		}
	}
	if m.Storage != nil {
		// Counts are the median per request, rescaled to the median Ops,
		// so that saves/op and fsyncs/op are medians of the runs' ratios.
		perOp := func(get func(workload.StorageCounts) uint64) uint64 {
			v := f(func(r workload.Result) float64 {
				if r.Storage == nil {
					return 0
				}
				return r.PerOp(get(*r.Storage))
			})
			return uint64(v*float64(m.Ops) + 0.5)
		}
		m.Storage = &workload.StorageCounts{
			Saves:       perOp(func(s workload.StorageCounts) uint64 { return s.Saves }),
			SaveEntries: perOp(func(s workload.StorageCounts) uint64 { return s.SaveEntries }),
			Fsyncs:      perOp(func(s workload.StorageCounts) uint64 { return s.Fsyncs }),
			Synced:      m.Storage.Synced,
		}
	}
	return m
}
