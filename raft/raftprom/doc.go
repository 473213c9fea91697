// Package raftprom exports a typedraft node's metrics to Prometheus.
//
// raft keeps its metrics without a dependency (raft.Raft.Metrics returns
// counters, gauges and histograms as plain values); this package turns
// them into a prometheus.Collector, read at every scrape:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(raftprom.NewCollector(node))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Every metric is named typedraft_<raft name> (the namespace can be
// changed with WithNamespace), carries the constant label node (the node's
// ID) and, where raft labels a sample, one variable label: peer (a member's
// ID, on the leader), type (a message type) or mode (a read consistency
// mode). All three are bounded: by the configuration's size, and by two
// enumerations of raft. raft's counters become Prometheus counters, its
// gauges gauges and its histograms histograms with the buckets raft
// counted (cumulative, the last one +Inf); durations are in seconds and
// their names end in _seconds. For example, on a leader:
//
//	typedraft_proposals_total{node="n1"} 1200
//	typedraft_is_leader{node="n1"} 1
//	typedraft_messages_sent_total{node="n1",type="app"} 5310
//	typedraft_peer_lag_entries{node="n1",peer="n2"} 0
//	typedraft_commit_seconds_bucket{node="n1",le="0.002"} 1187
//
// # Describe
//
// The collector describes every metric family up front, so a registry
// checks it like any other: the families are those of the node's first
// Metrics call, in NewCollector, and the peer families that raft reports
// only on a leader (peer_match_index, peer_lag_entries,
// peer_last_contact_seconds), which are described on every node. A family
// exists on every node even when it has no sample yet (a follower exports
// no peer samples). A sample of a family that was not described (a
// metric a later raft reports only in some states) is left out of the
// scrape rather than failing it; SkippedMetrics counts them.
//
// # Concurrency
//
// A Collector is immutable after NewCollector and safe for concurrent
// scrapes; each Collect calls the node's Metrics once, which takes no lock
// the node's driver waits for.
package raftprom
