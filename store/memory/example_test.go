package memory_test

import (
	"fmt"
	"io"
	"strings"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
)

// Example shows the life of a log: appends, a conflicting suffix replaced,
// a snapshot, and compaction up to it.
func Example() {
	s := memory.New()
	defer s.Close()

	hs := raft.HardState{Term: 1, Vote: "n1"}
	_ = s.Save(hs, []raft.Entry{
		{Index: 1, Term: 1, Type: raft.EntryCommand, Data: []byte("set x=1")},
		{Index: 2, Term: 1, Type: raft.EntryCommand, Data: []byte("set y=2")},
		{Index: 3, Term: 1, Type: raft.EntryCommand, Data: []byte("set z=3")},
	})
	// A new leader in term 2 overwrites entry 3 onwards.
	hs = raft.HardState{Term: 2, Vote: "n2", Commit: 2}
	_ = s.Save(hs, []raft.Entry{{Index: 3, Term: 2, Type: raft.EntryNoop}})

	sink, _ := s.CreateSnapshot(raft.SnapshotMeta{Index: 2, Term: 1})
	_, _ = io.WriteString(sink, "x=1 y=2")
	_ = sink.Commit()
	_ = s.Compact(2, 1)

	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	term, _ := s.Term(2)
	es, _ := s.Entries(first, last+1, 0)
	fmt.Printf("log [%d,%d], term at 2: %d, entry 3: %v in term %d\n", first, last, term, es[0].Type, es[0].Term)

	meta, r, _ := s.OpenSnapshot()
	defer r.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, r)
	fmt.Printf("snapshot at %d: %q\n", meta.Index, b.String())
	// Output:
	// log [3,3], term at 2: 1, entry 3: noop in term 2
	// snapshot at 2: "x=1 y=2"
}
