package pebble

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// existingStore reports whether dir already holds a store, and what of it
// was found: files in dir/log other than Pebble's LOCK, committed snapshot
// files, or the high-water mark. Such a directory is never treated as new:
// Open then requires Pebble's database to exist (pebble.Options
// .ErrorIfNotExists), because Pebble would otherwise create a new database
// in place of one whose manifest marker is missing, replay the WALs into it
// and delete every sstable the new manifest does not know.
func existingStore(fs vfs.FS, dir string) (found []string, logFiles []string, err error) {
	logDir := fs.PathJoin(dir, logDirName)
	names, err := fs.List(logDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("list %s: %w", logDir, err)
	}
	for _, n := range names {
		if n != "LOCK" {
			logFiles = append(logFiles, n)
		}
	}
	sort.Strings(logFiles)
	if len(logFiles) > 0 {
		found = append(found, fmt.Sprintf("%d files in %s", len(logFiles), logDir))
	}
	snapDir := fs.PathJoin(dir, snapDirName)
	names, err = fs.List(snapDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("list %s: %w", snapDir, err)
	}
	for _, n := range names {
		if _, ok := parseSnapName(n); ok {
			found = append(found, "snapshot "+fs.PathJoin(snapDir, n))
			break
		}
	}
	if _, err := fs.Stat(fs.PathJoin(dir, markName)); err == nil {
		found = append(found, "high-water mark "+fs.PathJoin(dir, markName))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("stat high-water mark: %w", err)
	}
	return found, logFiles, nil
}

// missingDatabase explains Pebble's ErrDBDoesNotExist for a directory that
// holds a store: it names the files of Pebble's manifest that are missing.
func missingDatabase(dir string, found, logFiles []string, err error) error {
	var missing []string
	for _, want := range []struct{ prefix, desc string }{
		{"marker.manifest.", "the manifest marker (marker.manifest.*)"},
		{"MANIFEST-", "the manifest (MANIFEST-*)"},
		{"OPTIONS-", "the options file (OPTIONS-*)"},
		{"marker.format-version.", "the format version marker (marker.format-version.*)"},
	} {
		has := false
		for _, n := range logFiles {
			has = has || strings.HasPrefix(n, want.prefix)
		}
		if !has {
			missing = append(missing, want.desc)
		}
	}
	logDir := dir + "/" + logDirName
	if len(logFiles) == 0 {
		return fmt.Errorf("pebble: open %s: the directory holds a store (%s), but its log database %s is "+
			"missing (the whole log database): refusing to create a new one in its place; nothing was changed "+
			"(restore it, or remove the directory to start over): %w", dir, strings.Join(found, ", "), logDir, err)
	}
	return fmt.Errorf("pebble: open %s: the directory holds a store (%s), but Pebble's database %s is "+
		"missing %s: refusing to open it as a new one, which would delete the remaining data; nothing was "+
		"changed (restore the missing files, or remove the directory to start over): %w",
		dir, strings.Join(found, ", "), logDir, strings.Join(missing, ", "), err)
}

// openError turns an error of pebble.Open into the error of Open.
func (s *Store) openError(found, logFiles []string, err error) error {
	switch {
	case errors.Is(err, pebbledb.ErrDBDoesNotExist):
		return missingDatabase(s.dir, found, logFiles, err)
	case pebbledb.IsCorruptionError(err):
		return fmt.Errorf("pebble: open %s: %w", s.dir, s.pebbleCorruption(err))
	case diskProblem(err) != "":
		return fmt.Errorf("pebble: open %s: %s: %w", s.dir, diskProblem(err), err)
	}
	return fmt.Errorf("pebble: open %s: %w", s.dir, err)
}

// openDB opens the Pebble database. A panic of Pebble's Fatalf during the
// open (a failed MANIFEST write) is returned as an error.
func (s *Store) openDB(o *Options, existing bool) (db *pebbledb.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			cause, ok := r.(error)
			if !ok {
				cause = fmt.Errorf("panic: %v", r)
			}
			db, err = nil, cause
		}
	}()
	return pebbledb.Open(o.FS.PathJoin(s.dir, logDirName), &pebbledb.Options{
		FS:               o.FS,
		CacheSize:        o.CacheSize,
		Logger:           pebbleLogger{s},
		EventListener:    listener{s}.eventListener(),
		ErrorIfNotExists: existing,
		// Pinned rather than FormatNewest so that upgrading Pebble never
		// ratchets the on-disk format without a deliberate change here.
		FormatMajorVersion: pebbledb.FormatValueSeparation,
	})
}

// syncWALs fsyncs the WAL files in dir/log before Pebble replays them, so
// that the state Pebble recovers is durable before any high-water mark can
// claim it: after a process crash a WAL may hold data that reached the file
// but was never fsynced. (Pebble flushes what it recovers to sstables, but
// in the background.) Syncing written data needs no new space, so this is
// safe on a full disk too.
func syncWALs(fs vfs.FS, dir string, logFiles []string) error {
	for _, n := range logFiles {
		if !strings.HasSuffix(n, ".log") {
			continue
		}
		path := fs.PathJoin(dir, logDirName, n)
		f, err := fs.Open(path)
		if err != nil {
			return fmt.Errorf("open WAL %s for sync: %w", path, err)
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("sync WAL %s: %w", path, err)
		}
	}
	return nil
}

// mkdirDurable creates dir (and parents) and syncs the parent of dir so that
// the new directory entry survives a crash.
func mkdirDurable(fs vfs.FS, dir string) error {
	if _, err := fs.Stat(dir); err == nil {
		return nil
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return syncDir(fs, fs.PathDir(dir))
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("open directory %s for sync: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
