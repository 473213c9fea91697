package pebble

import (
	"errors"
	"strings"
	"testing"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/typedraft/typedraft/raft"
)

// wantWrongNode fails unless err matches raft.ErrWrongNode and names both
// IDs.
func wantWrongNode(t *testing.T, op string, err error, ids ...string) {
	t.Helper()
	if !errors.Is(err, raft.ErrWrongNode) {
		t.Fatalf("%s: %v; want an error matching raft.ErrWrongNode", op, err)
	}
	for _, id := range ids {
		if !strings.Contains(err.Error(), `"`+id+`"`) {
			t.Fatalf("%s: %v does not name %q", op, err, id)
		}
	}
}

// TestBindNode: the first BindNode records the node durably; the same ID
// binds again, another is refused with raft.ErrWrongNode naming both, in
// this process and after a reopen, through BindNode and Options.NodeID.
func TestBindNode(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := openT(t, "/bind", &Options{FS: fs})
	if err := s.BindNode(""); err == nil {
		t.Fatal("BindNode(\"\") succeeded")
	}
	if err := s.BindNode("s1"); err != nil {
		t.Fatal(err)
	}
	if err := s.BindNode("s1"); err != nil {
		t.Fatalf("BindNode with the same ID again: %v", err)
	}
	wantWrongNode(t, "BindNode(s2)", s.BindNode("s2"), "s1", "s2")
	if err := s.Save(raft.HardState{Term: 1}, entriesOf(1, 3, 1, 8)); err != nil {
		t.Fatalf("Save after a refused BindNode: %v", err)
	}
	// Durable when BindNode returns: a crash clone keeps it.
	clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	c := openT(t, "/bind", &Options{FS: clone})
	wantWrongNode(t, "BindNode(s2) after a crash", c.BindNode("s2"), "s1", "s2")
	c.Close()
	s.Close()

	_, err := Open("/bind", &Options{FS: fs, NodeID: "s2"})
	wantWrongNode(t, "Open with NodeID s2", err, "s1", "s2")
	s = openT(t, "/bind", &Options{FS: fs, NodeID: "s1"})
	wantWrongNode(t, "BindNode(s2) after reopening", s.BindNode("s2"), "s1", "s2")
	s.Close()

	// Options.NodeID binds a store that has no identity yet.
	s = openT(t, "/fresh", &Options{FS: fs, NodeID: "s3"})
	wantWrongNode(t, "BindNode(s4)", s.BindNode("s4"), "s3", "s4")
}

// TestBindCluster: Options.ClusterID binds the store to a cluster like
// NodeID to a node; another cluster is refused with an error matching
// ErrWrongCluster and raft.ErrWrongNode; opening without a ClusterID does
// not check it.
func TestBindCluster(t *testing.T) {
	fs := vfs.NewMem()
	s := openT(t, "/cluster", &Options{FS: fs, ClusterID: "c1", NodeID: "n1"})
	s.Close()
	_, err := Open("/cluster", &Options{FS: fs, ClusterID: "c2"})
	wantWrongNode(t, "Open with ClusterID c2", err, "c1", "c2")
	if !errors.Is(err, ErrWrongCluster) {
		t.Fatalf("Open with ClusterID c2: %v; want ErrWrongCluster", err)
	}
	s = openT(t, "/cluster", &Options{FS: fs})
	wantWrongNode(t, "BindNode(n2)", s.BindNode("n2"), "n1", "n2")
	s.Close()
	openT(t, "/cluster", &Options{FS: fs, ClusterID: "c1", NodeID: "n1"})
}

// TestCorruptIdentity: a damaged identity record fails Open with an error
// matching raft.ErrCorrupt naming it.
func TestCorruptIdentity(t *testing.T) {
	fs := newCorruptFixture(t)
	s := openT(t, corruptDir, &Options{FS: fs, NodeID: "n1"})
	s.Close()
	rawEdit(t, fs, func(db *pebbledb.DB) {
		v := rawGet(t, db, keyIdentity)
		v[len(v)-1] ^= 1
		rawSet(t, db, keyIdentity, v)
	})
	_, err := Open(corruptDir, &Options{FS: fs})
	wantCorrupt(t, "Open", err, "identity")
}
