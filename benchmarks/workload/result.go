package workload

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"time"
)

// Result is one benchmark configuration's outcome: one JSON line of
// raftbench's and hcbench's output. Latencies are in microseconds.
type Result struct {
	// System is "typedraft" or "hashicorp".
	System string `json:"system"`
	// Store is the log store: "memory", "pebble" (typedraft), "inmem" or
	// "boltdb" (hashicorp).
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

	GoVersion  string `json:"go"`
	GOMAXPROCS int    `json:"gomaxprocs"`
}

// Key identifies a configuration independently of the system, for
// pairing typedraft's results with hashicorp/raft's.
type Key struct {
	Durable   bool
	Transport string
	Nodes     int
	Clients   int
	Payload   int
}

// Key returns r's comparison key.
func (r Result) Key() Key {
	return Key{Durable: r.Durable, Transport: r.Transport, Nodes: r.Nodes, Clients: r.Clients, Payload: r.Payload}
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
