package raft

import "testing"

func confEntry(index uint64, ids ...NodeID) Entry {
	var cfg Configuration
	for _, id := range ids {
		cfg.Servers = append(cfg.Servers, Server{ID: id, Addr: string(id)})
	}
	return Entry{Index: index, Term: 1, Type: EntryConfig, Data: encodeConfiguration(cfg)}
}

// A removal is judged on every committed configuration, however far the
// commit index jumps at once: a follower that appends the configuration
// removing it in the same append that first tells it a commit index
// (every configuration since its last status) must still learn it was
// removed. The driver once judged only the configuration in force when it
// published a status, and such a follower kept running with
// ShutdownOnRemove (TestShutdownOnRemove, under -race).
func TestConfTrackerRemovalAcrossOneCommitJump(t *testing.T) {
	tr := confTracker{self: "n3"}
	tr.appended([]Entry{confEntry(1, "n1", "n2", "n3")})
	tr.committed(0)
	if tr.removedAt != 0 {
		t.Fatalf("removedAt %d before any commit", tr.removedAt)
	}
	tr.appended([]Entry{{Index: 2, Term: 2}, {Index: 3, Term: 2}, confEntry(4, "n1", "n2")})
	tr.committed(4)
	if tr.removedAt != 4 || len(tr.removedBy.Servers) != 2 {
		t.Fatalf("removedAt %d by %v, want 4 by {n1 n2}", tr.removedAt, tr.removedBy)
	}
	// Judged once: a later committed configuration that also leaves n3
	// out is not a second removal.
	tr.appended([]Entry{confEntry(6, "n1", "n2", "n5")})
	tr.committed(6)
	if tr.removedAt != 4 {
		t.Fatalf("removedAt %d, want 4 (one removal)", tr.removedAt)
	}
	// Added back, then removed again: a new removal.
	tr.appended([]Entry{confEntry(7, "n1", "n2", "n3"), confEntry(8, "n1", "n2")})
	tr.committed(7)
	if tr.removedAt != 0 {
		t.Fatalf("removedAt %d after being added back", tr.removedAt)
	}
	tr.committed(8)
	if tr.removedAt != 8 {
		t.Fatalf("removedAt %d, want 8", tr.removedAt)
	}
}

// A node that joins through the log (or a snapshot) first sees committed
// configurations from before it was added: they leave it out but are not
// a removal. An uncommitted configuration that included it and was
// truncated away is not a membership either.
func TestConfTrackerJoiningNodeIsNotRemoved(t *testing.T) {
	tr := confTracker{self: "n4"}
	tr.reset(Configuration{Servers: []Server{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}}}, 3)
	tr.appended([]Entry{confEntry(5, "n1", "n2", "n3", "n5")})
	tr.committed(5)
	if tr.removedAt != 0 {
		t.Fatalf("removedAt %d for a node never added", tr.removedAt)
	}
	tr.appended([]Entry{confEntry(6, "n1", "n2", "n3", "n4")})
	tr.truncate(6) // the leader that added n4 lost leadership
	tr.appended([]Entry{{Index: 6, Term: 3}, confEntry(7, "n1", "n2", "n3")})
	tr.committed(7)
	if tr.removedAt != 0 {
		t.Fatalf("removedAt %d after an uncommitted add was truncated", tr.removedAt)
	}
	tr.appended([]Entry{confEntry(8, "n1", "n2", "n3", "n4")})
	tr.committed(8)
	if tr.removedAt != 0 || !tr.wasMember {
		t.Fatalf("removedAt %d wasMember %v once added", tr.removedAt, tr.wasMember)
	}
	// A snapshot that removes it counts too.
	tr.reset(Configuration{Servers: []Server{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}}}, 12)
	if tr.removedAt != 12 {
		t.Fatalf("removedAt %d after a snapshot without n4, want 12", tr.removedAt)
	}
}
