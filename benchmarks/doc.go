// Package benchmarks holds typedraft's reproducible benchmarks: the
// `go test -bench` benchmarks of whole clusters (stores × transports ×
// clients) in this directory, and the raftbench command
// (benchmarks/cmd/raftbench), which runs closed-loop clients against
// in-process clusters, optionally side by side with hashicorp/raft (the
// nested module benchmarks/hashicorp), and reports throughput, latency
// percentiles and peak RSS as a table, JSON lines and an SVG chart.
//
// The packages below it are:
//
//   - workload: the closed-loop load generator, latency histogram and
//     result records shared by typedraft and the hashicorp/raft runner;
//   - report: the table, JSON-lines and SVG renderings of results;
//   - cluster: an in-process typedraft cluster for any store × transport.
//
// Figures are measured, never asserted in tests; benchmarks/README.md
// records them with the machine and the command.
package benchmarks
