package pebble

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/typedraft/typedraft/raft"
)

const benchEntrySize = 128

// BenchmarkSave measures durable Saves on the real disk (b.TempDir()) of
// batches of 128-byte entries: one synced Pebble batch per Save. It reports
// entries/s, MB/s of entry data and the measured WAL fsyncs per entry (of
// the Saves alone). Like a Raft node that snapshots, it compacts the log
// (inside the timed loop) to keep about 10,000 to 20,000 entries, so Pebble's
// background work reflects a bounded log. Compare with BenchmarkRawFsync,
// the floor set by the disk.
func BenchmarkSave(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			fs := &countingFS{FS: vfs.Default}
			s := openT(b, b.TempDir(), &Options{FS: fs})
			data := make([]byte, benchEntrySize)
			next := uint64(1)
			hs := raft.HardState{Term: 1, Vote: "n1"}
			b.SetBytes(int64(batch * benchEntrySize))
			w0, _ := fs.syncs()
			for b.Loop() {
				es := make([]raft.Entry, batch)
				for i := range es {
					es[i] = raft.Entry{Index: next, Term: 1, Data: data}
					next++
				}
				hs.Commit = next - 1
				if err := s.Save(hs, es); err != nil {
					b.Fatal(err)
				}
				if first, _ := s.FirstIndex(); next-first > 20_000 {
					c0, _ := fs.syncs()
					if err := s.Compact(next-10_000, 1); err != nil {
						b.Fatal(err)
					}
					c1, _ := fs.syncs()
					w0 += c1 - c0
				}
			}
			w1, _ := fs.syncs()
			entries := float64(next - 1)
			b.ReportMetric(entries/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric(float64(w1-w0)/entries, "fsyncs/entry")
		})
	}
}

// BenchmarkEntries measures reads of 100 consecutive 128-byte entries from
// a 10,000-entry log (served from Pebble's memtable and block cache).
func BenchmarkEntries(b *testing.B) {
	const logLen, span = 10_000, 100
	s := openT(b, b.TempDir(), &Options{NoSync: true})
	data := make([]byte, benchEntrySize)
	for lo := uint64(1); lo <= logLen; lo += 1000 {
		es := make([]raft.Entry, 1000)
		for i := range es {
			es[i] = raft.Entry{Index: lo + uint64(i), Term: 1, Data: data}
		}
		if err := s.Save(raft.HardState{Term: 1}, es); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(span * benchEntrySize)
	lo, n := uint64(1), 0
	for b.Loop() {
		es, err := s.Entries(lo, lo+span, 0)
		if err != nil || len(es) != span {
			b.Fatalf("Entries(%d, %d) = %d entries, %v", lo, lo+span, len(es), err)
		}
		n += len(es)
		lo = (lo+span)%(logLen-span) + 1
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkTerm measures Term of an entry in the middle of the log (the
// ends are served from memory).
func BenchmarkTerm(b *testing.B) {
	s := openT(b, b.TempDir(), &Options{NoSync: true})
	if err := s.Save(raft.HardState{Term: 1}, entriesOf(1, 1000, 1, benchEntrySize)); err != nil {
		b.Fatal(err)
	}
	i := uint64(0)
	for b.Loop() {
		if _, err := s.Term(2 + i%997); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkSaveMem measures Saves of one 128-byte entry on Pebble's
// in-memory file system, where an fsync costs nothing: the store's own CPU
// cost and goroutine hand-offs per Save (the committer, the WAL writer).
func BenchmarkSaveMem(b *testing.B) {
	s := openT(b, "/bench", &Options{FS: vfs.NewMem()})
	data := make([]byte, benchEntrySize)
	next := uint64(1)
	hs := raft.HardState{Term: 1, Vote: "n1"}
	for b.Loop() {
		hs.Commit = next
		if err := s.Save(hs, []raft.Entry{{Index: next, Term: 1, Data: data}}); err != nil {
			b.Fatal(err)
		}
		next++
		if next%20_000 == 0 {
			if err := s.Compact(next-10_000, 1); err != nil {
				b.Fatal(err)
			}
		}
	}
}
