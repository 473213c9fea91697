package workload

import (
	"math"
	"sort"
)

// RaftMetrics is what typedraft's Raft.Metrics histograms recorded during
// a run's measured window (the difference of two readings), on the node
// that led when the window opened and, for the saves, on the other nodes
// together. Quantiles are estimated from the histograms' cumulative
// buckets (BucketQuantile): linear within a bucket, so they are only as
// fine as the bucket bounds (raft's latency bounds are 20, 50, 100, 200,
// 500 µs, 1, 2, 5, 10, 20, 50 ms, ...). Latencies are in microseconds.
type RaftMetrics struct {
	// Leader is the ID of the node the leader figures come from.
	Leader string `json:"leader"`
	// Commits counts commit_seconds observations on the leader (one per
	// proposal committed); CommitP50us and CommitP99us are its quantiles:
	// time from proposal to commit.
	Commits     uint64  `json:"commits"`
	CommitP50us float64 `json:"commit_p50_us"`
	CommitP99us float64 `json:"commit_p99_us"`
	// Saves counts storage_save_seconds observations on the leader (one
	// per Storage.Save: one write and one fsync); SaveP50us and SaveP99us
	// are its quantiles.
	Saves     uint64  `json:"saves"`
	SaveP50us float64 `json:"save_p50_us"`
	SaveP99us float64 `json:"save_p99_us"`
	// SaveBatchMean is the leader's mean save_batch_entries: entries per
	// Save.
	SaveBatchMean float64 `json:"save_batch_mean"`
	// FollowerSaves, FollowerSaveP50us and FollowerSaveP99us are the same
	// for the followers' Saves, merged.
	FollowerSaves     uint64  `json:"follower_saves"`
	FollowerSaveP50us float64 `json:"follower_save_p50_us"`
	FollowerSaveP99us float64 `json:"follower_save_p99_us"`
	// Forwarded is the followers' proposals_forwarded_total over the
	// window (proposals they sent to the leader), ForwardedServed the
	// leader's forwarded_served_total (forwarded proposals it received
	// and proposed): both 0 unless requests go through followers.
	Forwarded       uint64 `json:"forwarded,omitempty"`
	ForwardedServed uint64 `json:"forwarded_served,omitempty"`
}

// BucketQuantile estimates the q-quantile (0 <= q <= 1) of a histogram
// given by its bucket upper bounds (ascending; the last may be +Inf) and
// cumulative counts (counts[i] observations were at most bounds[i]), the
// way Prometheus's histogram_quantile does: it finds the bucket holding
// the rank and interpolates linearly between the bucket's bounds (the
// first bucket starts at 0). A rank in the +Inf bucket returns the last
// finite bound. It returns 0 for an empty histogram or mismatched slices.
func BucketQuantile(bounds []float64, counts []uint64, q float64) float64 {
	n := len(counts)
	if n == 0 || len(bounds) != n || counts[n-1] == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	total := float64(counts[n-1])
	rank := q * total
	i := sort.Search(n, func(i int) bool { return float64(counts[i]) >= rank })
	if i >= n {
		i = n - 1
	}
	if math.IsInf(bounds[i], 1) {
		for j := i - 1; j >= 0; j-- {
			if !math.IsInf(bounds[j], 1) {
				return bounds[j]
			}
		}
		return 0
	}
	lo, below := 0.0, 0.0
	if i > 0 {
		lo, below = bounds[i-1], float64(counts[i-1])
	}
	in := float64(counts[i]) - below
	if in <= 0 {
		return bounds[i]
	}
	return lo + (bounds[i]-lo)*(rank-below)/in
}

// DiskFloor is the latency of the cheapest durable writes the disk under
// the on-disk stores offers: 4 KiB writes, each followed by fdatasync
// (fsync where there is none), one at a time. Latencies are in
// microseconds and cover the write and the sync.
type DiskFloor struct {
	// Dir is the directory the probe files were written in.
	Dir string `json:"dir"`
	// Samples is the number of timed writes of each kind; Block their
	// size in bytes.
	Samples int `json:"samples"`
	Block   int `json:"block"`
	// AppendP50us and AppendP99us time appends: each write extends the
	// file, so its sync also commits the new size (the journal).
	AppendP50us float64 `json:"append_p50_us"`
	AppendP99us float64 `json:"append_p99_us"`
	// OverwriteP50us and OverwriteP99us time overwrites, in order, of the
	// blocks of a file already written and synced: no size or allocation
	// changes, so the sync flushes the data alone.
	OverwriteP50us float64 `json:"overwrite_p50_us"`
	OverwriteP99us float64 `json:"overwrite_p99_us"`
}
