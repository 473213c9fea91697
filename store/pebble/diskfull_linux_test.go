//go:build linux

package pebble

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestDiskFullTmpfs fills a real 4 MiB tmpfs. It needs root (to mount) and
// skips, saying so, otherwise; TestDiskFull* cover the same paths with
// errorfs everywhere.
//
//   - With the default guard scaled down (MinFreeSpace 512 KiB), Saves fail
//     with ENOSPC before the file system is full; the store does not fail,
//     and Saves succeed again once the tmpfs is grown.
//   - With the guard off, the WAL write itself fails with ENOSPC: Save
//     returns the error at once, the store fails, and after the tmpfs is
//     grown a reopened store holds every entry whose Save returned nil.
func TestDiskFullTmpfs(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a 4 MiB tmpfs on %s (%v: %s): this test needs root on Linux", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	grow := func(size string) {
		t.Helper()
		if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
			t.Fatalf("grow the tmpfs: %v: %s", err, out)
		}
	}

	t.Run("guard", func(t *testing.T) {
		path := dir + "/guarded"
		s, err := Open(path, &Options{MinFreeSpace: 512 << 10})
		if err != nil {
			t.Fatal(err)
		}
		s.space.every = 0
		m, _, err := fillDisk(t, s, nil, 0, 1<<10, 2*time.Second)
		t.Logf("Save %d: %v", m.last()+1, err)
		wantDiskFull(t, "Save", err)
		select {
		case <-s.Failed():
			t.Fatalf("the store failed: %v", s.FailureErr())
		default:
		}
		grow("64m")
		es := entriesOf(m.last()+1, 1, 2, 100)
		if err := s.Save(m.hs, es); err != nil {
			t.Fatalf("Save after the tmpfs grew: %v", err)
		}
		m.save(m.hs, es)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openT(t, path, nil)
		if err := checkState(s, m); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := os.RemoveAll(path); err != nil {
			t.Fatal(err)
		}
		grow("4m")
	})

	t.Run("really full", func(t *testing.T) {
		path := dir + "/unguarded"
		s, err := Open(path, &Options{MinFreeSpace: -1, WriteTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		m, maybe, err := fillDisk(t, s, nil, 0, 1<<10, 6*time.Second)
		t.Logf("Save %d: %v", m.last()+1, err)
		wantDiskFull(t, "Save", err)
		select {
		case <-s.Failed():
		default:
			t.Fatal("Failed is not closed after a failed WAL write")
		}
		if err := s.Save(m.hs, entriesOf(m.last()+1, 1, 2, 8)); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Save after the failure: %v", err)
		}
		grow("64m")
		if err := s.Close(); err != nil {
			t.Logf("Close after the failure: %v", err)
		}
		s = openT(t, path, &Options{MinFreeSpace: 1 << 20})
		if err := checkState(s, m); err != nil {
			if err2 := checkState(s, maybe); err2 != nil {
				t.Fatalf("after the tmpfs grew: %v (or, with the failed Save, %v)", err, err2)
			}
			m = maybe
		}
		if err := s.Save(m.hs, entriesOf(m.last()+1, 1, 2, 8)); err != nil {
			t.Fatalf("Save after reopening: %v", err)
		}
	})
}
