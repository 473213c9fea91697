package pebble

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
)

// Options configure Open. The zero value (or nil) gives safe defaults.
type Options struct {
	// FS is the file system to use; nil means the real disk (vfs.Default).
	// Tests pass vfs.NewMem() or vfs.NewCrashableMem() to simulate disks and
	// power loss. The log database and the snapshot files both use it.
	FS vfs.FS

	// Logger receives Pebble's and the store's diagnostics. Nil means silent
	// (hclog.NewNullLogger()). Pebble's informational messages are logged at
	// Debug level.
	Logger hclog.Logger

	// CacheSize is the size in bytes of Pebble's block cache. Zero means
	// 8 MiB; a negative value is an error.
	CacheSize int64

	// NoSync disables every fsync of the log database (Save and Compact return
	// before data is durable; snapshot commits still fsync). UNSAFE: a crash or power loss can then lose
	// acknowledged entries and votes, which breaks Raft's safety. Only for
	// benchmarks that want to measure everything except the disk.
	NoSync bool
}

const (
	defaultCacheSize = 8 << 20
	logDirName       = "log"
	snapDirName      = "snapshots"
)

// Store is a durable raft.Storage backed by a Pebble database (the log and
// hard state, in dir/log) and snapshot files (in dir/snapshots).
//
// Concurrency: all methods are safe for concurrent use. Reads never wait for
// Save or Compact, and observe either the state before or after a concurrent
// write. Save and Compact are serialized with each other. Close waits for
// calls in progress; every later call (except Close, which is idempotent)
// returns raft.ErrStorageClosed.
type Store struct {
	dir   string
	fs    vfs.FS
	log   hclog.Logger
	db    *pebbledb.DB
	wopts *pebbledb.WriteOptions

	// closeMu is held shared by every call and exclusively by Close.
	closeMu sync.RWMutex
	closed  bool

	// wmu serializes Save and Compact.
	wmu sync.Mutex
	// state is the cached log bounds and hard state. Writers replace it
	// (under wmu) after their batch has committed.
	state atomic.Pointer[logState]

	snaps *snapshots

	// failed is set (to an error) once Pebble reported a fatal error while
	// committing a write: its commit pipeline is then unusable, and every
	// later write fails with this error instead of touching it.
	failed atomic.Pointer[error]

	// pointDeleteMax is normally the constant of the same name; tests
	// lower it to exercise range deletions.
	pointDeleteMax int
}

// logState is an immutable picture of the store's bounds and hard state.
type logState struct {
	hs           raft.HardState
	compactIndex uint64
	compactTerm  uint64
	lastIndex    uint64
	lastTerm     uint64
}

// Open opens (creating if needed) the store in dir. A new directory is
// stamped with FormatVersion. It returns an error wrapping
// ErrUnsupportedFormat, naming dir and both versions, if the directory was
// written with another format version; an error matching raft.ErrCorrupt if
// the stored hard state, compaction point or last entry fail verification;
// and an error if another Store (in this or another process) holds dir.
// Temporary files of interrupted snapshot writes are removed.
//
// The caller owns the Store and must Close it.
func Open(dir string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.CacheSize < 0 {
		return nil, fmt.Errorf("pebble: open %s: negative CacheSize %d", dir, o.CacheSize)
	}
	if o.CacheSize == 0 {
		o.CacheSize = defaultCacheSize
	}
	if dir == "" {
		return nil, errors.New("pebble: open: empty directory name")
	}
	s := &Store{dir: dir, fs: o.FS, log: o.Logger, wopts: pebbledb.Sync, pointDeleteMax: pointDeleteMax}
	if o.NoSync {
		s.wopts = pebbledb.NoSync
		s.log.Warn("NoSync is set: writes are not durable", "dir", dir)
	}
	if err := mkdirDurable(o.FS, dir); err != nil {
		return nil, fmt.Errorf("pebble: open %s: %w", dir, err)
	}
	db, err := pebbledb.Open(o.FS.PathJoin(dir, logDirName), &pebbledb.Options{
		FS:        o.FS,
		CacheSize: o.CacheSize,
		Logger:    pebbleLogger{o.Logger},
		// Pinned rather than FormatNewest so that upgrading Pebble never
		// ratchets the on-disk format without a deliberate change here.
		FormatMajorVersion: pebbledb.FormatValueSeparation,
	})
	if err != nil {
		return nil, fmt.Errorf("pebble: open %s: %w", dir, err)
	}
	s.db = db
	st, err := s.load()
	if err == nil {
		s.state.Store(st)
		s.snaps, err = openSnapshots(o.FS, o.FS.PathJoin(dir, snapDirName), o.Logger)
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("pebble: open %s: %w", dir, err)
	}
	return s, nil
}

// load checks the format version (stamping a new database) and reads the
// hard state and log bounds.
func (s *Store) load() (*logState, error) {
	v, closer, err := s.db.Get(keyFormat)
	switch {
	case errors.Is(err, pebbledb.ErrNotFound):
		if err := s.stampNew(); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("read format version: %w", err)
	default:
		version, derr := decodeFormat(v)
		_ = closer.Close()
		if derr != nil {
			return nil, derr
		}
		if version != FormatVersion {
			return nil, fmt.Errorf("directory %s holds format version %d, this build reads version %d: %w",
				s.dir, version, FormatVersion, ErrUnsupportedFormat)
		}
	}
	st := &logState{}
	if err := s.getValue(keyHardState, func(v []byte) (err error) {
		st.hs, err = decodeHardState(v)
		return err
	}); err != nil {
		return nil, err
	}
	if err := s.getValue(keyCompaction, func(v []byte) (err error) {
		st.compactIndex, st.compactTerm, err = decodeCompaction(v)
		return err
	}); err != nil {
		return nil, err
	}
	it, err := s.db.NewIter(&pebbledb.IterOptions{LowerBound: entriesLower, UpperBound: entriesUpper})
	if err != nil {
		return nil, fmt.Errorf("read log bounds: %w", err)
	}
	defer it.Close()
	st.lastIndex, st.lastTerm = st.compactIndex, st.compactTerm
	if it.First() {
		first, ok := parseEntryKey(it.Key())
		if !ok || first != st.compactIndex+1 {
			return nil, corruptf("log", "first stored entry key %x, want entry %d (compaction index %d + 1)",
				it.Key(), st.compactIndex+1, st.compactIndex)
		}
		if !it.Last() {
			return nil, fmt.Errorf("read last entry: %w", it.Error())
		}
		last, ok := parseEntryKey(it.Key())
		if !ok {
			return nil, corruptf("log", "malformed entry key %x", it.Key())
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("read entry %d: %w", last, err)
		}
		e, err := decodeEntry(last, it.Key(), v)
		if err != nil {
			return nil, err
		}
		st.lastIndex, st.lastTerm = last, e.Term
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("read log bounds: %w", err)
	}
	return st, nil
}

// stampNew writes the format version into a database that has none, which
// must be empty.
func (s *Store) stampNew() error {
	it, err := s.db.NewIter(&pebbledb.IterOptions{LowerBound: allLower, UpperBound: allUpper})
	if err != nil {
		return fmt.Errorf("check empty database: %w", err)
	}
	nonEmpty := it.First()
	var key []byte
	if nonEmpty {
		key = append(key, it.Key()...)
	}
	err = errors.Join(it.Error(), it.Close())
	if err != nil {
		return fmt.Errorf("check empty database: %w", err)
	}
	if nonEmpty {
		return corruptf("format version", "missing from a non-empty database (holds key %x)", key)
	}
	if err := s.db.Set(keyFormat, encodeFormat(FormatVersion), pebbledb.Sync); err != nil {
		return fmt.Errorf("write format version: %w", err)
	}
	return nil
}

// getValue calls decode with the value stored under key, if any.
func (s *Store) getValue(key []byte, decode func([]byte) error) error {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read key %x: %w", key, err)
	}
	defer closer.Close()
	return decode(v)
}

// Close closes the store, waiting for calls in progress. Snapshot readers
// already returned by OpenSnapshot stay readable; open snapshot sinks fail
// to commit. Close is idempotent: calling it again returns nil.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.snaps.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("pebble: close %s: %w", s.dir, err)
	}
	return nil
}

// Dir returns the directory the store was opened on.
func (s *Store) Dir() string { return s.dir }

// enter marks the start of a call; the caller must call s.exit if it
// returns nil.
func (s *Store) enter() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return raft.ErrStorageClosed
	}
	return nil
}

func (s *Store) exit() { s.closeMu.RUnlock() }

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

// pebbleLogger adapts an hclog.Logger to Pebble's logger interface.
type pebbleLogger struct{ l hclog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l.IsDebug() {
		p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf is called by Pebble on unrecoverable internal errors, after which it
// must not continue; it logs and panics with a pebbleFatal (Pebble's default
// would exit the process). A panic raised inside one of our writes (a failed
// WAL write or sync during commit) is recovered by commitBatch and becomes
// that write's error; one raised on Pebble's own background goroutines
// cannot be caught and still ends the process.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble", "fatal", true)
	panic(pebbleFatal(msg))
}

// pebbleFatal is the panic value of pebbleLogger.Fatalf.
type pebbleFatal string

// commitBatch commits b durably. A fatal Pebble error during the commit (an
// I/O failure of the WAL, say) is returned as an error and poisons the store:
// every later write returns the same error.
func (s *Store) commitBatch(b *pebbledb.Batch) (err error) {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(pebbleFatal)
			if !ok {
				panic(r)
			}
			e := fmt.Errorf("pebble: %s: fatal error, the store refuses further writes: %s", s.dir, string(f))
			s.failed.Store(&e)
			err = e
		}
	}()
	return b.Commit(s.wopts)
}

var (
	_ raft.Storage = (*Store)(nil)
	_ io.Closer    = (*Store)(nil)
)
