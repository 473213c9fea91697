package memory_test

import (
	"testing"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
)

// BenchmarkSave appends batches of 64 entries of 128 bytes, compacting to
// keep the last 10,000 entries, as a node under load does.
func BenchmarkSave(b *testing.B) {
	const batch, keep = 64, 10_000
	s := memory.New()
	data := make([]byte, 128)
	next := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		es := make([]raft.Entry, batch)
		for i := range es {
			es[i] = raft.Entry{Index: next, Term: 1, Data: data}
			next++
		}
		if err := s.Save(raft.HardState{Term: 1, Commit: next - 1}, es); err != nil {
			b.Fatal(err)
		}
		if next > 2*keep && next%keep < batch {
			if err := s.Compact(next-keep, 1); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(next-1)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkSaveOne appends one entry per Save.
func BenchmarkSaveOne(b *testing.B) {
	s := memory.New()
	data := make([]byte, 128)
	next := uint64(1)
	for b.Loop() {
		if err := s.Save(raft.HardState{Term: 1}, []raft.Entry{{Index: next, Term: 1, Data: data}}); err != nil {
			b.Fatal(err)
		}
		next++
	}
	b.ReportMetric(float64(next-1)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkEntries reads 64-entry ranges from a 10,000-entry log.
func BenchmarkEntries(b *testing.B) {
	s := memory.New()
	es := make([]raft.Entry, 10_000)
	for i := range es {
		es[i] = raft.Entry{Index: uint64(i + 1), Term: 1, Data: make([]byte, 128)}
	}
	if err := s.Save(raft.HardState{}, es); err != nil {
		b.Fatal(err)
	}
	lo := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Entries(lo, lo+64, 1<<20); err != nil {
			b.Fatal(err)
		}
		lo = lo%9_000 + 1
	}
}
