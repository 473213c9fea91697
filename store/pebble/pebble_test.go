package pebble

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/storetest"
)

// TestConformanceDisk runs the public conformance suite on the real disk
// (each case in its own t.TempDir, reopened in place).
func TestConformanceDisk(t *testing.T) {
	storetest.Run(t, storetest.Factory{
		Open: func(t *testing.T, dir string) raft.Storage {
			s, err := Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Durable: true,
	})
}

// TestConformanceMem runs the suite on Pebble's in-memory file system; a
// reopen uses the same MemFS and directory.
func TestConformanceMem(t *testing.T) {
	fss := map[string]vfs.FS{}
	storetest.Run(t, storetest.Factory{
		Open: func(t *testing.T, dir string) raft.Storage {
			fs, ok := fss[dir]
			if !ok {
				fs = vfs.NewMem()
				fss[dir] = fs
			}
			s, err := Open(dir, &Options{FS: fs})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Durable: true,
	})
}

// TestConformanceRangeDeletes runs the suite with every truncation and
// compaction done by range deletion (normally only deletions of more than
// pointDeleteMax entries are).
func TestConformanceRangeDeletes(t *testing.T) {
	fss := map[string]vfs.FS{}
	storetest.Run(t, storetest.Factory{
		Open: func(t *testing.T, dir string) raft.Storage {
			fs, ok := fss[dir]
			if !ok {
				fs = vfs.NewMem()
				fss[dir] = fs
			}
			s, err := Open(dir, &Options{FS: fs})
			if err != nil {
				t.Fatal(err)
			}
			s.pointDeleteMax = 0
			return s
		},
		Durable: true,
	})
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
