package benchmarks

import (
	"fmt"
	"io"
	"testing"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/store/pebble"
)

// storeFactories are the stock stores, side by side. Pebble runs on the
// real disk with fsync (b.TempDir()), memory has no durability at all.
var storeFactories = []struct {
	name string
	open func(b *testing.B) raft.Storage
}{
	{"memory", func(b *testing.B) raft.Storage { return memory.New() }},
	{"pebble", func(b *testing.B) raft.Storage {
		s, err := pebble.Open(b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}},
}

func closeStore(b *testing.B, s raft.Storage) {
	if c, ok := s.(io.Closer); ok {
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreSave appends batches of 128-byte entries with one Save per
// batch, compacting to keep the log between 10,000 and 20,000 entries.
// Metrics: entries/s and MB/s of entry data.
func BenchmarkStoreSave(b *testing.B) {
	for _, f := range storeFactories {
		for _, batch := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("store=%s/batch=%d", f.name, batch), func(b *testing.B) {
				s := f.open(b)
				defer closeStore(b, s)
				data := make([]byte, 128)
				next := uint64(1)
				b.SetBytes(int64(batch * len(data)))
				for b.Loop() {
					es := make([]raft.Entry, batch)
					for i := range es {
						es[i] = raft.Entry{Index: next, Term: 1, Data: data}
						next++
					}
					if err := s.Save(raft.HardState{Term: 1, Commit: next - 1}, es); err != nil {
						b.Fatal(err)
					}
					if first, _ := s.FirstIndex(); next-first > 20_000 {
						if err := s.Compact(next-10_000, 1); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(next-1)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

// BenchmarkStoreEntries reads 100 consecutive 128-byte entries at a time
// from a 10,000-entry log.
func BenchmarkStoreEntries(b *testing.B) {
	const logLen, span = 10_000, 100
	for _, f := range storeFactories {
		b.Run("store="+f.name, func(b *testing.B) {
			s := f.open(b)
			defer closeStore(b, s)
			es := make([]raft.Entry, logLen)
			for i := range es {
				es[i] = raft.Entry{Index: uint64(i + 1), Term: 1, Data: make([]byte, 128)}
			}
			if err := s.Save(raft.HardState{Term: 1}, es); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(span * 128)
			lo, n := uint64(1), 0
			for b.Loop() {
				got, err := s.Entries(lo, lo+span, 0)
				if err != nil || len(got) != span {
					b.Fatalf("Entries(%d, %d) = %d entries, %v", lo, lo+span, len(got), err)
				}
				n += len(got)
				lo = (lo+span)%(logLen-span) + 1
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
