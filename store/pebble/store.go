package pebble

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
)

// Options configure Open. The zero value (or nil) gives safe defaults.
type Options struct {
	// FS is the file system to use; nil means the real disk (vfs.Default).
	// Tests pass vfs.NewMem() or vfs.NewCrashableMem() to simulate disks and
	// power loss, or errorfs to inject I/O errors. The log database, the
	// snapshot files and the high-water mark all use it.
	FS vfs.FS

	// Logger receives Pebble's and the store's diagnostics. Nil means silent
	// (hclog.NewNullLogger()). Pebble's informational messages are logged at
	// Debug level; messages that can repeat at a high rate (one per failed
	// background job or refused write) are rate-limited: the first is logged,
	// later ones are counted and summarized.
	Logger hclog.Logger

	// CacheSize is the size in bytes of Pebble's block cache. Zero means
	// 8 MiB; a negative value is an error.
	CacheSize int64

	// NoSync disables every fsync of the log database (Save and Compact return
	// before data is durable; snapshot commits still fsync) and the
	// high-water mark (see the package documentation). UNSAFE: a crash or
	// power loss can then lose acknowledged entries and votes, which breaks
	// Raft's safety. Only for benchmarks that want to measure everything
	// except the disk.
	NoSync bool

	// NodeID, if not empty, binds the store to this node as BindNode does:
	// Open records it in a store that has none and fails with an error
	// matching raft.ErrWrongNode, naming both IDs, if the store belongs to
	// another node.
	NodeID raft.NodeID

	// ClusterID, if not empty, binds the store to this cluster the same way:
	// Open records it in a store that has none and fails with an error
	// matching ErrWrongCluster and raft.ErrWrongNode, naming both IDs, if
	// the store was bound to another cluster.
	ClusterID string

	// MinFreeSpace is the free space, in bytes, that Save and snapshot
	// writes leave on the file system holding dir: below it they fail with
	// an error matching syscall.ENOSPC that says the disk is full, and
	// succeed again once space is freed (see the package documentation,
	// Full disks). Compact is not refused, since it is how a node frees
	// space. Zero means DefaultMinFreeSpace (64 MiB); a negative value
	// disables the check. File systems that cannot report their free space
	// are not checked.
	MinFreeSpace int64

	// WriteTimeout bounds how long Save, Compact and BindNode wait, in all,
	// for Pebble to commit their write and for the high-water mark file to
	// be written. A write that has not finished by then fails, and the store
	// refuses further writes (see Failed). Zero means DefaultWriteTimeout
	// (10 s); a negative value is an error.
	WriteTimeout time.Duration
}

const (
	defaultCacheSize = 8 << 20
	logDirName       = "log"
	snapDirName      = "snapshots"
)

// Store is a durable raft.Storage backed by a Pebble database (the log and
// hard state, in dir/log), snapshot files (in dir/snapshots) and a
// high-water mark (dir/highwater). It also implements raft.NodeBinder and
// raft.FailureNotifier.
//
// Concurrency: all methods are safe for concurrent use. Reads never wait for
// Save or Compact, and observe either the state before or after a concurrent
// write. Save, Compact and BindNode are serialized with each other. Close
// waits for calls in progress; every later call (except Close, which is
// idempotent) returns raft.ErrStorageClosed.
type Store struct {
	dir   string
	fs    vfs.FS
	log   hclog.Logger
	rlog  *rateLog
	db    *pebbledb.DB
	wopts *pebbledb.WriteOptions

	// closeMu is held shared by every call and exclusively by Close.
	closeMu sync.RWMutex
	closed  bool

	// wmu serializes Save, Compact and BindNode, and guards ident and
	// markNext.
	wmu sync.Mutex
	// state is the cached log bounds and hard state. Writers replace it
	// (under wmu) after their batch has committed.
	state atomic.Pointer[logState]
	ident identity

	snaps *snapshots
	space *spaceGuard

	// fail records fatal failures (see failure.go).
	fail *failure

	// The committer goroutine (see commit.go).
	writeTimeout  time.Duration
	commitReqs    chan commitReq
	commitDone    chan error
	committerExit chan struct{}
	commitTimer   *time.Timer

	// The high-water mark (see mark.go). marks is false with NoSync.
	// markSem (capacity 1) is the mark lock, which serializes writes of the
	// mark file; markDisk is the mark on disk; markWake asks the mark
	// writer to raise it.
	marks     bool
	markSem   chan struct{}
	markDisk  atomic.Pointer[mark]
	markEvery time.Duration
	markNext  time.Time
	markWake  chan struct{}
	markStop  chan struct{}
	markExit  chan struct{}

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
// stamped with FormatVersion. Open never deletes data: if dir already holds
// a store (files in dir/log besides Pebble's LOCK, snapshot files, or the
// high-water mark), Pebble's database must exist, and a directory whose
// manifest or format marker is missing is refused with an error naming what
// is missing, leaving every file as it was.
//
// It returns an error wrapping ErrUnsupportedFormat, naming dir and both
// versions, if the directory was written with another format version; an
// error matching raft.ErrCorrupt if the stored hard state, compaction point,
// identity or last entry fail verification, or if the recovered log or hard
// state is behind the high-water mark (writes Pebble lost); an error
// matching raft.ErrWrongNode if Options.NodeID or ClusterID do not match the
// store's; and an error if another Store (in this or another process) holds
// dir. Temporary files of interrupted snapshot writes are removed.
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
	switch {
	case dir == "":
		return nil, errors.New("pebble: open: empty directory name")
	case o.CacheSize < 0:
		return nil, fmt.Errorf("pebble: open %s: negative CacheSize %d", dir, o.CacheSize)
	case o.WriteTimeout < 0:
		return nil, fmt.Errorf("pebble: open %s: negative WriteTimeout %v", dir, o.WriteTimeout)
	case len(o.NodeID) > maxIDLen || len(o.ClusterID) > maxIDLen:
		return nil, fmt.Errorf("pebble: open %s: NodeID or ClusterID longer than %d bytes", dir, maxIDLen)
	}
	if o.CacheSize == 0 {
		o.CacheSize = defaultCacheSize
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MinFreeSpace == 0 {
		o.MinFreeSpace = DefaultMinFreeSpace
	}
	s := &Store{dir: dir, fs: o.FS, log: o.Logger, rlog: newRateLog(o.Logger), wopts: pebbledb.Sync,
		fail: newFailure(), writeTimeout: o.WriteTimeout, marks: !o.NoSync, markSem: make(chan struct{}, 1),
		markEvery:      defaultMarkEvery,
		pointDeleteMax: pointDeleteMax}
	s.space = &spaceGuard{fs: o.FS, dir: dir, reserve: o.MinFreeSpace, log: s.rlog, every: spaceCheckEvery}
	if o.NoSync {
		s.wopts = pebbledb.NoSync
		s.log.Warn("NoSync is set: writes are not durable", "dir", dir)
	}
	if err := mkdirDurable(o.FS, dir); err != nil {
		return nil, fmt.Errorf("pebble: open %s: %w", dir, err)
	}
	found, logFiles, err := existingStore(o.FS, dir)
	if err != nil {
		return nil, fmt.Errorf("pebble: open %s: %w", dir, err)
	}
	if len(found) > 0 && len(logFiles) == 0 {
		return nil, missingDatabase(dir, found, logFiles, pebbledb.ErrDBDoesNotExist)
	}
	if s.marks {
		if err := syncWALs(o.FS, dir, logFiles); err != nil {
			return nil, fmt.Errorf("pebble: open %s: %w", dir, err)
		}
	}
	db, err := s.openDB(&o, len(found) > 0)
	if err != nil {
		return nil, s.openError(found, logFiles, err)
	}
	s.db = db
	s.commitReqs = make(chan commitReq)
	s.commitDone = make(chan error, 1)
	s.committerExit = make(chan struct{})
	s.commitTimer = newStoppedTimer()
	go s.committer()
	// found lists the log files first: other evidence is anything after it.
	evidence := len(found) > 0 && (len(logFiles) == 0 || len(found) > 1)
	if err := s.init(&o, evidence); err != nil {
		_ = s.shutdown()
		return nil, fmt.Errorf("pebble: open %s: %w", dir, err)
	}
	return s, nil
}

// init loads and verifies the database, checks the high-water mark, opens
// the snapshots and binds the identity given in o. evidence reports whether
// dir holds snapshot files or a high-water mark.
func (s *Store) init(o *Options, evidence bool) (err error) {
	defer s.readDone("open", &err)
	st, err := s.load(evidence)
	if err != nil {
		return err
	}
	m, hasMark, err := readMark(s.fs, s.dir)
	if err != nil {
		return err
	}
	if hasMark {
		if err := s.checkMark(m, st); err != nil {
			return err
		}
	}
	s.state.Store(st)
	if tmp := s.fs.PathJoin(s.dir, markTmpName); fileExists(s.fs, tmp) {
		if err := s.fs.Remove(tmp); err != nil {
			return fmt.Errorf("remove %s: %w", tmp, err)
		}
	}
	if !s.marks && hasMark {
		// NoSync writes do not keep the mark up to date, and a crash could
		// leave the log behind it without anything having been lost.
		if err := s.fs.Remove(s.fs.PathJoin(s.dir, markName)); err != nil {
			return fmt.Errorf("remove the high-water mark (NoSync): %w", err)
		}
		if err := syncDir(s.fs, s.dir); err != nil {
			return err
		}
		m = mark{}
	}
	s.markDisk.Store(&m)
	s.markNext = time.Now().Add(s.markEvery)
	if s.marks {
		s.markWake = make(chan struct{}, 1)
		s.markStop = make(chan struct{})
		s.markExit = make(chan struct{})
		go s.markWriter()
	}
	if s.snaps, err = openSnapshots(s.fs, s.fs.PathJoin(s.dir, snapDirName), s.log, s.fail, s.space); err != nil {
		return err
	}
	if o.NodeID != "" || o.ClusterID != "" {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		return s.bind(o.NodeID, o.ClusterID)
	}
	return nil
}

func fileExists(fs vfs.FS, path string) bool {
	_, err := fs.Stat(path)
	return err == nil
}

// load checks the format version (stamping a new database) and reads the
// hard state, the identity and the log bounds. evidence reports whether the
// directory holds a store outside the log database (snapshots or a
// high-water mark), in which case a missing format version is corruption.
func (s *Store) load(evidence bool) (*logState, error) {
	v, closer, err := s.db.Get(keyFormat)
	switch {
	case errors.Is(err, pebbledb.ErrNotFound):
		if err := s.stampNew(evidence); err != nil {
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
	if err := s.getValue(keyIdentity, func(v []byte) (err error) {
		s.ident, err = decodeIdentity(v)
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
// must be empty and, if evidence, is not new: then it fails.
func (s *Store) stampNew(evidence bool) error {
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
	if evidence {
		return corruptf("format version", "missing from an empty log database, although the directory "+
			"holds snapshots or a high-water mark: the log database was lost or replaced")
	}
	b := s.db.NewBatch()
	if err := b.Set(keyFormat, encodeFormat(FormatVersion), nil); err != nil {
		_ = b.Close()
		return fmt.Errorf("write format version: %w", err)
	}
	if err := s.commitBatch(b, pebbledb.Sync, time.Now().Add(s.writeTimeout)); err != nil {
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

// Close closes the store, waiting for calls in progress (each of which ends
// within the write timeout), and writes the final high-water mark. Snapshot
// readers already returned by OpenSnapshot stay readable; open snapshot
// sinks fail to commit. Close is idempotent: calling it again returns nil.
//
// After a fatal failure Close still releases what it safely can: if a commit
// is stuck inside Pebble, it waits for it up to the write timeout, then
// returns an error and leaves the database to be closed when the commit
// returns; if Pebble failed on one of its own goroutines (see Failed), the
// database is abandoned, not closed, and Close returns the failure. In both
// cases the directory stays locked until then (or until the process exits).
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.snaps.close()
	return s.shutdown()
}

// shutdown stops the store's goroutines and closes the database (see
// Close). The caller holds closeMu exclusively, or is Open.
func (s *Store) shutdown() error {
	if s.markExit != nil {
		s.finishMarks()
	}
	exited := s.stopCommitter()
	s.rlog.flush()
	switch {
	case s.fail.abandoned.Load():
		return fmt.Errorf("pebble: close %s: the database is abandoned, not closed: %w", s.dir, s.fail.firstErr())
	case !exited:
		go func() {
			<-s.committerExit
			_ = s.closeDB()
		}()
		return fmt.Errorf("pebble: close %s: %w: %v", s.dir, errStuck, s.fail.firstErr())
	case s.fail.writeErr() != nil:
		// A write failed inside Pebble, which may have left its commit
		// pipeline locked (some of its I/O failures panic while holding
		// it), and DB.Close takes that lock first.
		done := make(chan error, 1)
		go func() { done <- s.closeDB() }()
		t := time.NewTimer(s.writeTimeout)
		defer t.Stop()
		select {
		case err := <-done:
			return err
		case <-t.C:
			return fmt.Errorf("pebble: close %s: Pebble did not close within %v after the failure; the database "+
				"stays open until the process exits: %w", s.dir, s.writeTimeout, s.fail.firstErr())
		}
	}
	return s.closeDB()
}

// closeDB closes the Pebble database; a panic of Fatalf becomes the error.
func (s *Store) closeDB() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pebble: close %s: %v", s.dir, r)
		}
	}()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("pebble: close %s: %w", s.dir, err)
	}
	return nil
}

// Dir returns the directory the store was opened on.
func (s *Store) Dir() string { return s.dir }

// enter marks the start of a call; the caller must call s.exit if it
// returns nil. It fails after Close, and after a failure that refuses every
// call (see Failed).
func (s *Store) enter() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return raft.ErrStorageClosed
	}
	if err := s.fail.readErr(); err != nil {
		s.closeMu.RUnlock()
		return err
	}
	return nil
}

// enterWrite is enter for writes: it also fails once the store refuses
// writes.
func (s *Store) enterWrite() error {
	if err := s.enter(); err != nil {
		return err
	}
	if err := s.fail.writeErr(); err != nil {
		s.closeMu.RUnlock()
		s.rlog.log(hclog.Warn, "write refused", "write refused: the store has failed", "dir", s.dir, "error", err.Error())
		return err
	}
	return nil
}

func (s *Store) exit() { s.closeMu.RUnlock() }

var (
	_ raft.Storage         = (*Store)(nil)
	_ raft.NodeBinder      = (*Store)(nil)
	_ raft.FailureNotifier = (*Store)(nil)
	_ io.Closer            = (*Store)(nil)
)
