// Package benchmarks holds typedraft's reproducible benchmarks: the
// `go test -bench` benchmarks of whole clusters (stores × transports ×
// clients) in this directory, for writes (BenchmarkCluster) and reads
// (BenchmarkRead: through the log, ReadIndex on the leader and on a
// follower, lease), and the raftbench command (benchmarks/cmd/raftbench),
// which runs closed-loop clients writing (to the leader, through a
// follower that forwards to it, or in client sessions) or reading against
// in-process clusters, optionally side by side with hashicorp/raft and dragonboat v4
// (the nested modules benchmarks/hashicorp and benchmarks/dragonboat, which
// the main module never builds), measures the disk's fdatasync floor, and
// reports throughput, latency percentiles, peak RSS, the Saves, fsyncs and
// messages per request and the leader's commit and save latencies from
// Raft.Metrics as tables, JSON lines and an SVG chart.
//
// The packages below it are:
//
//   - workload: the closed-loop load generator, latency histogram and
//     result records shared by typedraft and the hashicorp/raft and
//     dragonboat runners;
//   - report: the table, JSON-lines and SVG renderings of results;
//   - cluster: an in-process typedraft cluster for any store × transport,
//     its write and read operations, counters of every node's Saves,
//     fsyncs and sent messages, and the leader's Raft.Metrics histograms
//     over a measured window.
//
// Figures are measured, never asserted in tests; benchmarks/README.md
// records them with the machine and the command.
package benchmarks
