package memory

import (
	"testing"

	"github.com/typedraft/typedraft/raft"
)

// TestBackingArrayShrinks: repeated compaction while appending keeps the
// backing array proportional to the live entries (the released front is
// dropped once it is as large as the live part), and released slots hold
// no Data.
func TestBackingArrayShrinks(t *testing.T) {
	s := New()
	const keep = 100
	for i := uint64(1); i <= 20_000; i++ {
		if err := s.Save(raft.HardState{}, []raft.Entry{{Index: i, Term: 1, Data: []byte{1}}}); err != nil {
			t.Fatalf("Save %d: %v", i, err)
		}
		if i > keep {
			if err := s.Compact(i-keep, 1); err != nil {
				t.Fatalf("Compact: %v", err)
			}
		}
		live := len(s.buf) - s.off
		if live > keep {
			t.Fatalf("after %d: %d live entries, want at most %d", i, live, keep)
		}
		if cap(s.buf) > 4*keep+16 {
			t.Fatalf("after %d: backing array of %d for %d live entries", i, cap(s.buf), live)
		}
		for j, e := range s.buf[:s.off] {
			if e.Data != nil {
				t.Fatalf("after %d: released slot %d still holds Data", i, j)
			}
		}
	}
}
