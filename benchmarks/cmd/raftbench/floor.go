package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/typedraft/typedraft/benchmarks/workload"
)

const (
	// floorBlock is the size of each timed write of the disk floor.
	floorBlock = 4096
	// floorWarmup writes of each kind run untimed first.
	floorWarmup = 20
	// maxFloorSamples bounds -floor-samples.
	maxFloorSamples = 1_000_000
)

// measureFloor measures, in a new directory under dir, the latency of
// samples 4 KiB appends each followed by fdatasync (the file grows, so the
// sync also commits its size), then of samples in-place overwrites each
// followed by fdatasync (the blocks of a file already written and synced,
// in order: only data to flush). These are the cheapest durable writes
// the disk offers, the floor under any log store's commit.
func measureFloor(dir string, samples int) (workload.DiskFloor, error) {
	tmp, err := os.MkdirTemp(dir, "floor-")
	if err != nil {
		return workload.DiskFloor{}, fmt.Errorf("disk floor: %w", err)
	}
	defer os.RemoveAll(tmp)
	f := workload.DiskFloor{Dir: dir, Samples: samples, Block: floorBlock}
	block := make([]byte, floorBlock)
	for i := range block {
		block[i] = byte(i*7 + 1)
	}

	// Appends.
	af, err := os.OpenFile(filepath.Join(tmp, "append"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return f, fmt.Errorf("disk floor: %w", err)
	}
	var ah workload.Histogram
	for i := range floorWarmup + samples {
		t0 := time.Now()
		if _, err := af.Write(block); err != nil {
			af.Close()
			return f, fmt.Errorf("disk floor: append: %w", err)
		}
		if err := datasync(af); err != nil {
			af.Close()
			return f, fmt.Errorf("disk floor: append sync: %w", err)
		}
		if i >= floorWarmup {
			ah.Record(time.Since(t0))
		}
	}
	if err := af.Close(); err != nil {
		return f, fmt.Errorf("disk floor: %w", err)
	}

	// Overwrites: a file of samples blocks, written and synced, then
	// each block rewritten in order.
	n := floorWarmup + samples
	of, err := os.OpenFile(filepath.Join(tmp, "overwrite"), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return f, fmt.Errorf("disk floor: %w", err)
	}
	defer of.Close()
	for range n {
		if _, err := of.Write(block); err != nil {
			return f, fmt.Errorf("disk floor: prepare overwrite: %w", err)
		}
	}
	if err := of.Sync(); err != nil {
		return f, fmt.Errorf("disk floor: prepare overwrite: %w", err)
	}
	var oh workload.Histogram
	for i := range n {
		block[0]++
		t0 := time.Now()
		if _, err := of.WriteAt(block, int64(i)*floorBlock); err != nil {
			return f, fmt.Errorf("disk floor: overwrite: %w", err)
		}
		if err := datasync(of); err != nil {
			return f, fmt.Errorf("disk floor: overwrite sync: %w", err)
		}
		if i >= floorWarmup {
			oh.Record(time.Since(t0))
		}
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	f.AppendP50us, f.AppendP99us = us(ah.Quantile(0.5)), us(ah.Quantile(0.99))
	f.OverwriteP50us, f.OverwriteP99us = us(oh.Quantile(0.5)), us(oh.Quantile(0.99))
	return f, nil
}

// floorLine describes f for stderr.
func floorLine(f workload.DiskFloor) string {
	return fmt.Sprintf("disk floor in %s (%d × %d B, one at a time): append+fdatasync p50 %.3f ms p99 %.3f ms; overwrite+fdatasync p50 %.3f ms p99 %.3f ms",
		f.Dir, f.Samples, f.Block, f.AppendP50us/1000, f.AppendP99us/1000, f.OverwriteP50us/1000, f.OverwriteP99us/1000)
}
