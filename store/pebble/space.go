package pebble

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"
)

// DefaultMinFreeSpace is the Options.MinFreeSpace used when none is given.
const DefaultMinFreeSpace = 64 << 20

// spaceCheckEvery is how often spaceGuard asks the file system for its free
// space at most (more often when much is written in between).
const spaceCheckEvery = 100 * time.Millisecond

// spaceGuard refuses writes while the file system holding the store has
// less than reserve bytes available. Pebble treats some write failures as
// fatal in ways no caller can recover from — a WAL that cannot be closed or
// created while switching memtables panics with Pebble's mutex released,
// and the runtime then ends the process — so the store stops writing before
// the disk is actually full, leaving room for Pebble's flushes, its MANIFEST
// and the high-water mark. Refusals are not failures: writes succeed again
// once space is freed. File systems that cannot report their usage (Pebble's
// in-memory one) are not checked. Safe for concurrent use.
type spaceGuard struct {
	fs      vfs.FS
	dir     string
	reserve int64 // < 0: disabled
	log     *rateLog
	every   time.Duration
	// off is set when the file system cannot report its usage.
	off atomic.Bool

	mu        sync.Mutex
	checkedAt time.Time
	written   int64 // bytes admitted since checkedAt
	lowErr    error // the refusal of the last check, or nil
}

// check admits a write of about need bytes, or returns an error matching
// syscall.ENOSPC that says the disk is full.
func (g *spaceGuard) check(need int64) error {
	if g.reserve < 0 || g.off.Load() {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	if !g.checkedAt.IsZero() && now.Sub(g.checkedAt) < g.every && g.written+need < g.reserve/4 {
		if g.lowErr == nil {
			g.written += need
		}
		return g.lowErr
	}
	du, err := g.fs.GetDiskUsage(g.dir)
	switch {
	case errors.Is(err, vfs.ErrUnsupported):
		g.off.Store(true)
		return nil
	case err != nil:
		// Not knowing is no reason to refuse the write.
		g.log.log(hclog.Warn, "disk usage", "cannot read the free disk space", "dir", g.dir, "error", err.Error())
		return nil
	}
	g.checkedAt, g.written, g.lowErr = now, need, nil
	if int64(du.AvailBytes) < g.reserve+need {
		g.lowErr = fmt.Errorf("pebble: %s: the disk is full: %d bytes available, less than the %d the store "+
			"keeps free (Options.MinFreeSpace) so that Pebble can finish its work; writes resume once space is freed: %w",
			g.dir, du.AvailBytes, g.reserve, syscall.ENOSPC)
		g.log.log(hclog.Warn, "disk full", "write refused: the disk is full", "dir", g.dir,
			"available", du.AvailBytes, "reserve", g.reserve)
	}
	return g.lowErr
}
