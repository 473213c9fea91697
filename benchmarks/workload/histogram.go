package workload

import (
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: each power of two is split into
// 2^subBits linear buckets, so a recorded value is known to within
// 1/2^subBits (about 1.6%) of itself.
const subBits = 6

const (
	subCount = 1 << subBits
	// numBuckets covers every non-negative int64 nanosecond value.
	numBuckets = (64-subBits)*subCount + subCount
)

// Histogram is a log-linear latency histogram in the spirit of HDR
// histograms: values below 2^(subBits+1) ns are exact, larger values fall
// into buckets whose width is 1/64 of their magnitude. Recording is O(1)
// and allocation-free; the fixed footprint is about 30 KiB.
//
// Concurrency: a Histogram is not safe for concurrent use; give each client
// its own and Merge them afterwards. The zero value is empty and ready.
type Histogram struct {
	counts [numBuckets]uint64
	total  uint64
	max    time.Duration
	min    time.Duration
	sum    time.Duration
}

// bucketOf returns the bucket index of v (v >= 0).
func bucketOf(v uint64) int {
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return shift*subCount + int(v>>uint(shift))
}

// bucketUpper returns the largest value that falls into bucket i.
func bucketUpper(i int) uint64 {
	if i < 2*subCount {
		return uint64(i)
	}
	shift := i/subCount - 1
	mant := uint64(i - shift*subCount)
	return (mant+1)<<uint(shift) - 1
}

// Record adds one observation. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	if h.total == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.total++
	h.sum += d
}

// Merge adds every observation of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.total }

// Max returns the largest observation exactly (0 if empty).
func (h *Histogram) Max() time.Duration { return h.max }

// Min returns the smallest observation exactly (0 if empty).
func (h *Histogram) Min() time.Duration { return h.min }

// Mean returns the mean observation (0 if empty).
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return h.sum / time.Duration(h.total)
}

// Quantile returns an upper bound of the q-quantile (0 <= q <= 1): the
// smallest bucket bound below which at least q of the observations fall,
// clamped to the exact maximum. It returns 0 for an empty histogram; q
// outside [0, 1] is clamped.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(q*float64(h.total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := time.Duration(bucketUpper(i))
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}
