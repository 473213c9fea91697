package rafttest

import (
	"errors"
	"testing"

	"github.com/typedraft/typedraft/raft"
)

func ents(from, to, term uint64) []raft.Entry {
	var out []raft.Entry
	for i := from; i <= to; i++ {
		out = append(out, raft.Entry{Index: i, Term: term, Data: []byte{byte(i), byte(term)}})
	}
	return out
}

// TestDiskLog checks the simulated durable log against the LogStore
// contract the core relies on: truncation on save, compaction, reads at the
// edges, and prefix hashes that name a whole log prefix.
func TestDiskLog(t *testing.T) {
	var d, other disk
	if err := d.save(raft.HardState{Term: 1}, ents(1, 5, 1)); err != nil {
		t.Fatal(err)
	}
	if err := other.save(raft.HardState{Term: 1}, ents(1, 5, 1)); err != nil {
		t.Fatal(err)
	}
	if d.prefixHash(5) != other.prefixHash(5) || d.prefixHash(4) == d.prefixHash(5) {
		t.Fatal("equal logs must have equal prefix hashes, and different prefixes different ones")
	}
	// A conflicting suffix is truncated.
	if err := d.save(raft.HardState{Term: 2}, ents(4, 6, 2)); err != nil {
		t.Fatal(err)
	}
	if d.last() != 6 || d.prefixHash(3) != other.prefixHash(3) || d.prefixHash(4) == other.prefixHash(4) {
		t.Fatalf("truncation: last %d, prefixes must agree up to 3 and differ from 4", d.last())
	}
	if tm, _ := d.Term(5); tm != 2 {
		t.Fatalf("term of 5 = %d, want 2", tm)
	}
	// Entries that do not attach are refused.
	if err := d.save(raft.HardState{Term: 2}, ents(9, 9, 2)); err == nil {
		t.Fatal("a gap in the log was accepted")
	}
	// Compaction keeps the entries after the compaction point and its hash.
	h4 := d.prefixHash(4)
	d.compact(4, 2, 0)
	if first, _ := d.FirstIndex(); first != 5 || d.prefixHash(4) != h4 {
		t.Fatalf("after compact(4): first %d", first)
	}
	if tm, err := d.Term(4); err != nil || tm != 2 {
		t.Fatalf("the compacted entry's term must stay readable: %d %v", tm, err)
	}
	if _, err := d.Term(3); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("term below compaction: %v, want ErrCompacted", err)
	}
	if _, err := d.Entries(4, 6, 0); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("entries below compaction: %v, want ErrCompacted", err)
	}
	if _, err := d.Entries(5, 8, 0); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("entries beyond the log: %v, want ErrUnavailable", err)
	}
	if got, err := d.Entries(5, 7, 0); err != nil || len(got) != 2 || got[1].Index != 6 {
		t.Fatalf("entries [5,7): %v %v", got, err)
	}
	if got, _ := d.Entries(5, 7, 1); len(got) != 1 {
		t.Fatalf("a byte limit must still return one entry, got %d", len(got))
	}
	// Compacting to an entry the log does not hold discards the whole log.
	d.compact(10, 3, 77)
	if d.last() != 10 || len(d.ents) != 0 || d.prefixHash(10) != 77 {
		t.Fatalf("reset to a snapshot: last %d, %d entries", d.last(), len(d.ents))
	}
	if err := d.save(raft.HardState{Term: 3}, ents(11, 11, 3)); err != nil {
		t.Fatal(err)
	}
	if d.prefixHash(11) != chainHash(77, ents(11, 11, 3)[0]) {
		t.Fatal("entries after a snapshot must chain from its prefix hash")
	}
}

// TestDiskReconcile checks the restart path: a snapshot stored but not yet
// installed in the log (a crash in between) resets the log to it.
func TestDiskReconcile(t *testing.T) {
	var d disk
	if err := d.save(raft.HardState{Term: 1}, ents(1, 3, 1)); err != nil {
		t.Fatal(err)
	}
	d.storeSnapshot(&snapshot{meta: raft.SnapshotMeta{Index: 8, Term: 2}, phash: 99})
	if d.storeSnapshot(&snapshot{meta: raft.SnapshotMeta{Index: 5, Term: 2}}) {
		t.Fatal("an older snapshot replaced a newer one")
	}
	d.reconcile()
	if first, _ := d.FirstIndex(); first != 9 || d.prefixHash(8) != 99 {
		t.Fatalf("reconcile: first %d", first)
	}
	// A snapshot the log already holds leaves the log alone.
	var e disk
	if err := e.save(raft.HardState{Term: 1}, ents(1, 6, 1)); err != nil {
		t.Fatal(err)
	}
	e.storeSnapshot(&snapshot{meta: raft.SnapshotMeta{Index: 4, Term: 1}})
	e.reconcile()
	if first, _ := e.FirstIndex(); first != 1 || e.last() != 6 {
		t.Fatalf("reconcile of a consistent log changed it: first %d last %d", first, e.last())
	}
}
