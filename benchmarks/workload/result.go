package workload

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"
)

// Result is one benchmark configuration's outcome: one JSON line of
// raftbench's and hcbench's output. Latencies are in microseconds.
type Result struct {
	// System is "typedraft", "hashicorp" or "dragonboat".
	System string `json:"system"`
	// Op is what each request did (see OpName); empty, in records written
	// before reads were measured and in hashicorp/raft's, means OpWrite.
	Op string `json:"op,omitempty"`
	// Store is the log store: "memory", "pebble" (typedraft), "inmem" or
	// "boltdb" (hashicorp), "pebble" or "memfs" (dragonboat's LogDB on disk
	// or on its in-memory file system).
	Store string `json:"store"`
	// Transport is "inmem" or "tcp".
	Transport string `json:"transport"`
	// Durable reports whether the store fsyncs (pebble, boltdb); it pairs
	// each typedraft configuration with its comparable hashicorp one.
	Durable bool `json:"durable"`

	Nodes   int `json:"nodes"`
	Clients int `json:"clients"`
	Payload int `json:"payload"`

	DurationSec float64 `json:"duration_s"`
	Ops         uint64  `json:"ops"`
	Errors      uint64  `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	OpsPerSec   float64 `json:"ops_per_sec"`

	P50us  float64 `json:"p50_us"`
	P90us  float64 `json:"p90_us"`
	P99us  float64 `json:"p99_us"`
	Maxus  float64 `json:"max_us"`
	Meanus float64 `json:"mean_us"`

	// PeakRSSMiB is the process's peak resident set during this
	// configuration (cluster start, warm-up and measurement), in MiB; 0 if
	// the platform does not report it.
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// PeakRSSScope is "config" when the peak was reset before this
	// configuration, "process" when it covers the process's whole life.
	PeakRSSScope string `json:"peak_rss_scope,omitempty"`

	// Storage counts the log writes of every node during the measured
	// window; nil when they were not counted (hashicorp/raft, and records
	// written before they were).
	Storage *StorageCounts `json:"storage,omitempty"`
	// Net counts the messages every node sent during the measured window;
	// nil when they were not counted.
	Net *NetCounts `json:"net,omitempty"`
	// MetricsOff reports a typedraft run with raft.Config.DisableMetrics
	// set; such runs are never compared with the other systems.
	MetricsOff bool `json:"metrics_off,omitempty"`
	// RaftMetrics holds what the typedraft nodes' Raft.Metrics recorded
	// during the measured window; nil when not recorded (metrics off,
	// other systems, older records).
	RaftMetrics *RaftMetrics `json:"raft_metrics,omitempty"`
	// DiskFloor is the disk's fdatasync floor that raftbench measured at
	// the start of the invocation that produced this record, in the
	// directory of the on-disk stores; nil when not measured.
	DiskFloor *DiskFloor `json:"disk_floor,omitempty"`

	// Round numbers the run when raftbench -repeat ran every configuration
	// more than once (1, 2, ...); 0 otherwise.
	Round int `json:"round,omitempty"`
	// Runs, when more than 1, says that this record is the per-field
	// median of that many runs of the configuration (report.Medians).
	Runs int `json:"runs,omitempty"`

	GoVersion  string `json:"go"`
	GOMAXPROCS int    `json:"gomaxprocs"`
}

// Operations a request can perform, as recorded in Result.Op.
const (
	// OpWrite proposes a Payload-byte command and waits until it is applied
	// on the leader.
	OpWrite = "write"
	// OpWriteFollower proposes the same command to a follower, which
	// forwards it to the leader (MsgPropose) and answers with the leader's
	// result once the leader applied it.
	OpWriteFollower = "write-follower"
	// OpWriteSession proposes the command to the leader in a client
	// session (one per client, a fresh sequence number per request), so
	// that every node records the session's result as it applies it.
	OpWriteSession = "write-session"
	// OpReadLog is a read done through the log: an empty, read-only command
	// proposed to the leader and answered by its state machine once
	// applied, as reads were done before ReadIndex.
	OpReadLog = "read-log"
	// OpReadIndex is a ReadIndex read on the leader (raft.ReadLinearizable).
	OpReadIndex = "read-index"
	// OpReadFollower is a ReadIndex read on a follower, which asks the
	// leader for the read index and serves the read from its own state.
	OpReadFollower = "read-follower"
	// OpReadLease is a lease read on the leader (raft.ReadLease).
	OpReadLease = "read-lease"
)

// Ops lists every operation, writes first.
var Ops = []string{OpWrite, OpWriteFollower, OpWriteSession, OpReadLog, OpReadIndex, OpReadFollower, OpReadLease}

// IsWrite reports whether op is one of the writes (a Payload-byte command
// per request); "" is OpWrite.
func IsWrite(op string) bool {
	return op == "" || op == OpWrite || op == OpWriteFollower || op == OpWriteSession
}

// IsRead reports whether op is one of the reads, which carry no payload.
func IsRead(op string) bool { return op != "" && !IsWrite(op) && slices.Contains(Ops, op) }

// OpName returns r.Op, or OpWrite when it is empty.
func (r Result) OpName() string {
	if r.Op == "" {
		return OpWrite
	}
	return r.Op
}

// StorageCounts are a run's log writes, summed over every node of the
// cluster, during the measured window only.
type StorageCounts struct {
	// Saves is the number of Storage.Save calls (hard state and entries,
	// one atomic write each); SaveEntries the entries they carried.
	Saves       uint64 `json:"saves"`
	SaveEntries uint64 `json:"save_entries"`
	// Fsyncs is the number of file syncs the stores issued (fsync,
	// fdatasync, and sync_file_range calls that synced the whole file), of
	// every file: WAL, sstables, manifest, directories. Always 0 for
	// stores that never sync (memory); see Synced.
	Fsyncs uint64 `json:"fsyncs"`
	// Synced reports whether the store syncs at all, i.e. whether Fsyncs
	// was counted.
	Synced bool `json:"synced"`
}

// NetCounts are a run's messages, summed over every node of the cluster,
// during the measured window only.
type NetCounts struct {
	// Messages is every message handed to the transport.
	Messages uint64 `json:"messages"`
	// Heartbeats is the MsgHeartbeat messages among them: one per follower
	// for each heartbeat broadcast, periodic or confirming a read round.
	Heartbeats uint64 `json:"heartbeats"`
	// ReadIndex is the MsgReadIndex messages: reads forwarded by followers
	// to the leader.
	ReadIndex uint64 `json:"read_index"`
	// Proposals is the MsgPropose messages: proposals forwarded by
	// followers to the leader (each answered by one MsgProposeResp).
	Proposals uint64 `json:"proposals,omitempty"`
}

// Sub returns n minus an earlier reading e of the same counters.
func (n NetCounts) Sub(e NetCounts) NetCounts {
	return NetCounts{Messages: n.Messages - e.Messages, Heartbeats: n.Heartbeats - e.Heartbeats,
		ReadIndex: n.ReadIndex - e.ReadIndex, Proposals: n.Proposals - e.Proposals}
}

// Sub returns s minus an earlier reading e of the same counters.
func (s StorageCounts) Sub(e StorageCounts) StorageCounts {
	return StorageCounts{Saves: s.Saves - e.Saves, SaveEntries: s.SaveEntries - e.SaveEntries, Fsyncs: s.Fsyncs - e.Fsyncs, Synced: s.Synced}
}

// PerOp returns v divided by r's successful requests (0 when none).
func (r Result) PerOp(v uint64) float64 {
	if r.Ops == 0 {
		return 0
	}
	return float64(v) / float64(r.Ops)
}

// Key identifies a configuration independently of the system, for
// pairing typedraft's results with hashicorp/raft's.
type Key struct {
	Op        string
	Durable   bool
	Transport string
	Nodes     int
	Clients   int
	Payload   int
}

// Key returns r's comparison key.
func (r Result) Key() Key {
	return Key{Op: r.OpName(), Durable: r.Durable, Transport: r.Transport, Nodes: r.Nodes, Clients: r.Clients, Payload: r.Payload}
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// NewResult fills a Result from a Measurement and the configuration.
func NewResult(system, store, transport string, durable bool, nodes int, spec Spec, m Measurement, rss RSS) Result {
	r := Result{
		System: system, Store: store, Transport: transport, Durable: durable,
		Nodes: nodes, Clients: spec.Clients, Payload: spec.Payload,
		DurationSec: m.Elapsed.Seconds(), Ops: m.Ops, Errors: m.Errors,
		OpsPerSec:  m.OpsPerSec(),
		PeakRSSMiB: float64(rss.PeakBytes) / (1 << 20), PeakRSSScope: rss.Scope,
		GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	if m.FirstError != nil {
		r.FirstError = m.FirstError.Error()
	}
	if h := m.Latency; h != nil {
		r.P50us = micros(h.Quantile(0.50))
		r.P90us = micros(h.Quantile(0.90))
		r.P99us = micros(h.Quantile(0.99))
		r.Maxus = micros(h.Max())
		r.Meanus = micros(h.Mean())
	}
	return r
}

// WriteJSON writes r as one JSON line.
func WriteJSON(w io.Writer, r Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("workload: encode result: %w", err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("workload: write result: %w", err)
	}
	return nil
}

// maxLine bounds one JSON line read by ReadJSON.
const maxLine = 1 << 20

// ReadJSON reads JSON-lines results from r. Blank lines are skipped; any
// other line that is not a Result is an error naming its line number.
func ReadJSON(r io.Reader) ([]Result, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var out []Result
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var res Result
		if err := json.Unmarshal(line, &res); err != nil {
			return out, fmt.Errorf("workload: result line %d: %w", n, err)
		}
		if res.System == "" {
			return out, fmt.Errorf("workload: result line %d: no \"system\" field", n)
		}
		out = append(out, res)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("workload: read results: %w", err)
	}
	return out, nil
}
