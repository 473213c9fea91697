package pebble_test

import (
	"fmt"
	"io"
	"log"
	"os"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/pebble"
)

// Example opens a store in a temporary directory, saves a hard state with
// two entries, compacts the first one, commits a snapshot and reopens the
// store to read everything back.
func Example() {
	dir, err := os.MkdirTemp("", "typedraft-pebble-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := pebble.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	err = s.Save(raft.HardState{Term: 2, Vote: "n1", Commit: 1}, []raft.Entry{
		{Index: 1, Term: 1, Type: raft.EntryNoop},
		{Index: 2, Term: 2, Type: raft.EntryCommand, Data: []byte("set x=1")},
	})
	if err != nil {
		log.Fatal(err)
	}
	sink, err := s.CreateSnapshot(raft.SnapshotMeta{Index: 1, Term: 1})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := sink.Write([]byte("state at 1")); err != nil {
		log.Fatal(err)
	}
	if err := sink.Commit(); err != nil {
		log.Fatal(err)
	}
	if err := s.Compact(1, 1); err != nil {
		log.Fatal(err)
	}
	if err := s.Close(); err != nil {
		log.Fatal(err)
	}

	s, err = pebble.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	hs, _ := s.InitialState()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	t1, _ := s.Term(1)
	ents, err := s.Entries(first, last+1, 0)
	if err != nil {
		log.Fatal(err)
	}
	meta, r, err := s.OpenSnapshot()
	if err != nil {
		log.Fatal(err)
	}
	data, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("hard state: term %d vote %s commit %d\n", hs.Term, hs.Vote, hs.Commit)
	fmt.Printf("log: [%d, %d], term at 1: %d\n", first, last, t1)
	fmt.Printf("entry %d: %q\n", ents[0].Index, ents[0].Data)
	fmt.Printf("snapshot %d: %q (%d bytes)\n", meta.Index, data, meta.Size)
	// Output:
	// hard state: term 2 vote n1 commit 1
	// log: [2, 2], term at 1: 1
	// entry 2: "set x=1"
	// snapshot 1: "state at 1" (10 bytes)
}
