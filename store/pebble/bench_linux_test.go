//go:build linux

package pebble

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// BenchmarkRawFsync measures a 4 KiB append plus fdatasync on a plain file
// in the same kind of directory BenchmarkSave uses: the floor of any durable
// write on this machine.
func BenchmarkRawFsync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
	}
}
