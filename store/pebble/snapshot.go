package pebble

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
)

// ErrSinkDone is returned by a snapshot sink's methods after Commit or Abort
// has been called on it.
var ErrSinkDone = errors.New("pebble: snapshot sink already committed or aborted")

const (
	snapPrefix  = "snap-"
	snapSuffix  = ".snap"
	tmpSuffix   = ".tmp"
	snapNameLen = len(snapPrefix) + 16 + 1 + 16 + 1 + 16 + len(snapSuffix)
	snapBufSize = 64 << 10
)

// snapshots manages the snapshot files in one directory. Committed files are
// named snap-<seq>-<term>-<index>.snap (16 hex digits each); the one with the
// highest sequence number is the latest. Sinks write to snap-<nonce>-<n>.tmp and
// commit by fsync + rename + directory fsync.
type snapshots struct {
	fs    vfs.FS
	dir   string
	log   hclog.Logger
	fail  *failure
	space *spaceGuard

	// tmpNonce and tmpSeq make temporary file names unique, also across
	// Store instances that opened the same directory one after the other
	// (a sink of a closed instance may still remove its own file).
	tmpNonce uint64
	tmpSeq   atomic.Uint64

	// commitMu serializes commits and guards nextSeq.
	commitMu sync.Mutex
	nextSeq  uint64

	// mu guards latest and closed.
	mu     sync.Mutex
	latest *snapFile
	closed bool
}

// snapFile is a committed snapshot file as listed at Open or Commit.
type snapFile struct {
	seq    uint64
	path   string
	meta   raft.SnapshotMeta
	footer snapFooter
	err    error // verification failure; the file must not be read
}

func snapName(seq uint64, meta raft.SnapshotMeta) string {
	return fmt.Sprintf("%s%016x-%016x-%016x%s", snapPrefix, seq, meta.Term, meta.Index, snapSuffix)
}

func parseSnapName(name string) (uint64, bool) {
	if len(name) != snapNameLen || !strings.HasPrefix(name, snapPrefix) || !strings.HasSuffix(name, snapSuffix) {
		return 0, false
	}
	seq, err := strconv.ParseUint(name[len(snapPrefix):len(snapPrefix)+16], 16, 64)
	return seq, err == nil
}

// openSnapshots creates dir if needed, removes temporary files of interrupted
// writes, finds the latest committed snapshot and removes older ones.
func openSnapshots(fs vfs.FS, dir string, log hclog.Logger, fail *failure, space *spaceGuard) (*snapshots, error) {
	if err := mkdirDurable(fs, dir); err != nil {
		return nil, fmt.Errorf("snapshot directory: %w", err)
	}
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("list snapshot directory %s: %w", dir, err)
	}
	type committed struct {
		seq  uint64
		name string
	}
	var files []committed
	for _, name := range names {
		if strings.HasSuffix(name, tmpSuffix) {
			if err := fs.Remove(fs.PathJoin(dir, name)); err != nil {
				return nil, fmt.Errorf("remove interrupted snapshot %s: %w", fs.PathJoin(dir, name), err)
			}
			log.Debug("removed interrupted snapshot", "file", name)
			continue
		}
		if seq, ok := parseSnapName(name); ok {
			files = append(files, committed{seq, name})
		} else {
			log.Warn("ignoring unknown file in snapshot directory", "file", name, "dir", dir)
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].seq < files[j].seq })
	s := &snapshots{fs: fs, dir: dir, log: log, fail: fail, space: space, nextSeq: 1, tmpNonce: rand.Uint64()}
	if len(files) > 0 {
		newest := files[len(files)-1]
		s.latest = loadSnapFile(fs, fs.PathJoin(dir, newest.name), newest.seq)
		s.nextSeq = newest.seq + 1
		if s.latest.err == nil {
			for _, f := range files[:len(files)-1] {
				s.remove(fs.PathJoin(dir, f.name))
			}
		}
	}
	return s, nil
}

func (s *snapshots) remove(path string) {
	if err := s.fs.Remove(path); err != nil {
		s.log.Warn("cannot remove old snapshot", "file", path, "error", err)
	}
}

// loadSnapFile verifies the header, footer and meta of a committed file. A
// failure is recorded in the result's err.
func loadSnapFile(fs vfs.FS, path string, seq uint64) *snapFile {
	sf := &snapFile{seq: seq, path: path}
	f, err := fs.Open(path)
	if err != nil {
		sf.err = fmt.Errorf("pebble: open snapshot %s: %w", path, err)
		return sf
	}
	defer f.Close()
	sf.meta, sf.footer, sf.err = readSnapMeta(f, path)
	return sf
}

func readSnapMeta(f vfs.File, path string) (raft.SnapshotMeta, snapFooter, error) {
	var (
		m  raft.SnapshotMeta
		ft snapFooter
	)
	fi, err := f.Stat()
	if err != nil {
		return m, ft, fmt.Errorf("pebble: stat snapshot %s: %w", path, err)
	}
	size := fi.Size()
	if size < snapHeaderLen+snapFooterLen {
		return m, ft, corruptf("snapshot "+path, "file is %d bytes, shorter than header and footer", size)
	}
	header := make([]byte, snapHeaderLen)
	if _, err := f.ReadAt(header, 0); err != nil {
		return m, ft, fmt.Errorf("pebble: read snapshot %s: %w", path, err)
	}
	if string(header[:8]) != string(snapMagic[:]) {
		return m, ft, corruptf("snapshot "+path, "bad header magic %q", header[:8])
	}
	if v := uint32(header[8])<<24 | uint32(header[9])<<16 | uint32(header[10])<<8 | uint32(header[11]); v != snapFormatVersion {
		return m, ft, fmt.Errorf("pebble: snapshot %s has format version %d, this build reads version %d: %w",
			path, v, snapFormatVersion, ErrUnsupportedFormat)
	}
	footer := make([]byte, snapFooterLen)
	if _, err := f.ReadAt(footer, size-snapFooterLen); err != nil {
		return m, ft, fmt.Errorf("pebble: read snapshot %s: %w", path, err)
	}
	ft, err = parseFooter(footer, size)
	if err != nil {
		return m, ft, corruptf("snapshot "+path, "%v", err)
	}
	trailer := make([]byte, int(ft.metaLen)+snapFooterLen)
	if _, err := f.ReadAt(trailer, snapHeaderLen+int64(ft.dataLen)); err != nil {
		return m, ft, fmt.Errorf("pebble: read snapshot %s: %w", path, err)
	}
	if err := checkTrailer(header, trailer); err != nil {
		return m, ft, corruptf("snapshot "+path, "%v", err)
	}
	m, err = decodeMeta(trailer[:ft.metaLen])
	if err != nil {
		return m, ft, corruptf("snapshot "+path, "%v", err)
	}
	m.Size = int64(ft.dataLen)
	return m, ft, nil
}

func (s *snapshots) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

func (s *snapshots) current() (*snapFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, raft.ErrStorageClosed
	}
	if s.latest == nil {
		return nil, raft.ErrNoSnapshot
	}
	if s.latest.err != nil {
		return nil, s.latest.err
	}
	return s.latest, nil
}

// CreateSnapshot starts writing a snapshot described by meta into a
// temporary file in dir/snapshots. meta.Index must not be 0; meta.Size is
// ignored (the committed snapshot's Size is the number of bytes written).
// The returned sink is used by one goroutine; exactly one of Commit or Abort
// must be called on it. Errors: raft.ErrStorageClosed after Close, the
// store's failure once it refuses writes (see Failed), an error matching
// syscall.ENOSPC when the disk is full (Options.MinFreeSpace; the sink's
// Write fails the same way), or the file system's error.
func (s *Store) CreateSnapshot(meta raft.SnapshotMeta) (raft.SnapshotSink, error) {
	if err := s.enterWrite(); err != nil {
		return nil, err
	}
	defer s.exit()
	if meta.Index == 0 {
		return nil, errors.New("pebble: create snapshot: meta.Index is 0")
	}
	if err := s.space.check(0); err != nil {
		return nil, fmt.Errorf("pebble: create snapshot: %w", err)
	}
	sn := s.snaps
	path := sn.fs.PathJoin(sn.dir, fmt.Sprintf("%s%016x-%016x%s", snapPrefix, sn.tmpNonce, sn.tmpSeq.Add(1), tmpSuffix))
	f, err := sn.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("pebble: create snapshot %s: %w", path, err)
	}
	meta.Configuration = meta.Configuration.Clone()
	sink := &snapSink{s: sn, meta: meta, path: path, f: f, buf: make([]byte, 0, snapBufSize)}
	if err := sink.write(snapHeader()); err != nil {
		_ = sink.Abort()
		return nil, fmt.Errorf("pebble: create snapshot %s: %w", path, err)
	}
	return sink, nil
}

// LatestSnapshot returns the metadata of the newest committed snapshot, or
// raft.ErrNoSnapshot. A newest file that failed verification at Open is
// reported with an error matching raft.ErrCorrupt (or ErrUnsupportedFormat)
// naming the file. After Close it returns raft.ErrStorageClosed, and after a
// failure that refuses every call (see Failed), the failure.
func (s *Store) LatestSnapshot() (raft.SnapshotMeta, error) {
	if err := s.enter(); err != nil {
		return raft.SnapshotMeta{}, err
	}
	defer s.exit()
	sf, err := s.snaps.current()
	if err != nil {
		return raft.SnapshotMeta{}, err
	}
	return sf.clonedMeta(), nil
}

// clonedMeta returns a deep copy of the meta, which callers may modify.
func (f *snapFile) clonedMeta() raft.SnapshotMeta {
	m := f.meta
	m.Configuration = m.Configuration.Clone()
	return m
}

// OpenSnapshot opens the newest committed snapshot for reading; the caller
// must Close the reader, which stays valid after the store is closed or a
// newer snapshot is committed (on systems that allow removing open files).
//
// Nothing unverified is handed out: before returning, OpenSnapshot reads the
// whole data section once and checks it against the checksum in the footer
// (about 15 ms per 64 MiB from the page cache, more from a cold disk). A
// mismatch, or a file shorter than its footer says, is reported as an error
// matching raft.ErrCorrupt that names the file, and no reader is returned.
// The reader checks the checksum again as it streams: if the file changes
// after the verification, the read that delivers the last byte (or the one
// that finds the file ending early) returns an error matching raft.ErrCorrupt
// instead of io.EOF, so a caller that reads to EOF never mistakes damaged
// data for a snapshot. Errors are otherwise as for LatestSnapshot.
func (s *Store) OpenSnapshot() (raft.SnapshotMeta, io.ReadCloser, error) {
	if err := s.enter(); err != nil {
		return raft.SnapshotMeta{}, nil, err
	}
	defer s.exit()
	for attempt := 0; ; attempt++ {
		sf, err := s.snaps.current()
		if err != nil {
			return raft.SnapshotMeta{}, nil, err
		}
		f, err := s.fs.Open(sf.path)
		if err != nil {
			if again, _ := s.snaps.current(); again != sf && attempt < 3 {
				continue // replaced and removed by a concurrent commit
			}
			return raft.SnapshotMeta{}, nil, fmt.Errorf("pebble: open snapshot %s: %w", sf.path, err)
		}
		if err := verifySnapData(f, sf); err != nil {
			_ = f.Close()
			return raft.SnapshotMeta{}, nil, err
		}
		r := &snapReader{
			f:         f,
			path:      sf.path,
			remaining: sf.footer.dataLen,
			want:      sf.footer.dataCRC,
		}
		r.r = bufio.NewReaderSize(io.NewSectionReader(f, snapHeaderLen, int64(sf.footer.dataLen)), snapBufSize)
		return sf.clonedMeta(), r, nil
	}
}

// snapVerifyBufSize is the read size of verifySnapData.
const snapVerifyBufSize = 1 << 20

// verifySnapData reads the data section of the open snapshot file f and
// checks it against the checksum and length of its footer.
func verifySnapData(f vfs.File, sf *snapFile) error {
	h := crc32.New(castagnoli)
	n, err := io.CopyBuffer(h, io.NewSectionReader(f, snapHeaderLen, int64(sf.footer.dataLen)),
		make([]byte, snapVerifyBufSize))
	if err != nil {
		return fmt.Errorf("pebble: verify snapshot %s: %w", sf.path, err)
	}
	if uint64(n) != sf.footer.dataLen {
		return corruptf("snapshot "+sf.path, "data ends %d bytes early", sf.footer.dataLen-uint64(n))
	}
	if got := h.Sum32(); got != sf.footer.dataCRC {
		return corruptf("snapshot "+sf.path, "data checksum mismatch (stored %08x, computed %08x)", sf.footer.dataCRC, got)
	}
	return nil
}

// snapSink writes one snapshot to a temporary file.
type snapSink struct {
	s    *snapshots
	meta raft.SnapshotMeta
	path string
	f    vfs.File
	// buf batches writes to f. The caller's slices are never passed to
	// f.Write, which vfs allows to modify its argument.
	buf  []byte
	crc  uint32
	n    uint64
	done bool
	err  error // sticky write error: Commit fails with it
}

// Write appends p to the snapshot data.
func (k *snapSink) Write(p []byte) (int, error) {
	if k.done {
		return 0, ErrSinkDone
	}
	if k.err != nil {
		return 0, k.err
	}
	if err := k.write(p); err != nil {
		k.err = fmt.Errorf("pebble: write snapshot %s: %w", k.path, err)
		return 0, k.err
	}
	k.crc = crc32.Update(k.crc, castagnoli, p)
	k.n += uint64(len(p))
	return len(p), nil
}

// write copies p into the buffer, writing the buffer to the file whenever
// it fills.
func (k *snapSink) write(p []byte) error {
	for len(p) > 0 {
		n := copy(k.buf[len(k.buf):cap(k.buf)], p)
		k.buf = k.buf[:len(k.buf)+n]
		p = p[n:]
		if len(k.buf) == cap(k.buf) {
			if err := k.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (k *snapSink) flush() error {
	if len(k.buf) == 0 {
		return nil
	}
	if err := k.s.space.check(int64(len(k.buf))); err != nil {
		return err
	}
	_, err := k.f.Write(k.buf)
	k.buf = k.buf[:0]
	return err
}

// Commit writes the meta and footer, fsyncs the file, renames it into place
// and fsyncs the directory; then the snapshot is the latest one and older
// snapshot files are removed. On error the temporary file is removed and the
// previous snapshot stays the latest. After the store is closed, Commit
// discards the snapshot and returns raft.ErrStorageClosed; after the store
// failed (see Failed), it discards it and returns the failure.
func (k *snapSink) Commit() error {
	if k.done {
		return ErrSinkDone
	}
	k.done = true
	if k.err != nil {
		_ = k.f.Close()
		_ = k.s.fs.Remove(k.path)
		return k.err
	}
	if err := k.finishFile(); err != nil {
		_ = k.s.fs.Remove(k.path)
		return fmt.Errorf("pebble: commit snapshot %s: %w", k.path, err)
	}
	sn := k.s
	sn.commitMu.Lock()
	defer sn.commitMu.Unlock()
	sn.mu.Lock()
	closed := sn.closed
	sn.mu.Unlock()
	if closed {
		_ = sn.fs.Remove(k.path)
		return raft.ErrStorageClosed
	}
	if err := sn.fail.writeErr(); err != nil {
		_ = sn.fs.Remove(k.path)
		return err
	}
	meta := k.meta
	meta.Size = int64(k.n)
	seq := sn.nextSeq
	sn.nextSeq++
	final := sn.fs.PathJoin(sn.dir, snapName(seq, meta))
	if err := sn.fs.Rename(k.path, final); err != nil {
		_ = sn.fs.Remove(k.path)
		return fmt.Errorf("pebble: commit snapshot %s: %w", final, err)
	}
	if err := syncDir(sn.fs, sn.dir); err != nil {
		// The rename may or may not survive a crash; either the old or the
		// new snapshot is then the latest, both acceptable for a failed
		// Commit. Keep serving the old one until the next Open.
		return fmt.Errorf("pebble: commit snapshot %s: %w", final, err)
	}
	sf := &snapFile{seq: seq, path: final, meta: meta,
		footer: snapFooter{dataLen: k.n, metaLen: uint32(len(encodeMeta(meta))), dataCRC: k.crc}}
	sn.mu.Lock()
	old := sn.latest
	sn.latest = sf
	sn.mu.Unlock()
	if old != nil {
		sn.remove(old.path)
	}
	return nil
}

// finishFile writes the trailer, fsyncs and closes the temporary file.
func (k *snapSink) finishFile() error {
	err := k.write(encodeTrailer(encodeMeta(k.meta), k.n, k.crc))
	if err == nil {
		err = k.flush()
	}
	if err == nil {
		err = k.f.Sync()
	}
	if cerr := k.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Abort discards the snapshot being written and removes its temporary file.
func (k *snapSink) Abort() error {
	if k.done {
		return ErrSinkDone
	}
	k.done = true
	err := k.f.Close()
	if rerr := k.s.fs.Remove(k.path); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("pebble: abort snapshot %s: %w", k.path, err)
	}
	return nil
}

// snapReader streams a snapshot's data and verifies its checksum at the end.
type snapReader struct {
	f         vfs.File
	r         *bufio.Reader
	path      string
	remaining uint64
	crc       uint32
	want      uint32
	err       error // sticky final result (io.EOF or corruption)
}

// Read reads snapshot data. When the last byte has been read it returns
// io.EOF, or an error matching raft.ErrCorrupt if the data checksum does not
// match or the file ends early.
func (r *snapReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if uint64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err := r.r.Read(p)
	r.crc = crc32.Update(r.crc, castagnoli, p[:n])
	r.remaining -= uint64(n)
	switch {
	case r.remaining == 0:
		if r.crc != r.want {
			r.err = corruptf("snapshot "+r.path, "data checksum mismatch (stored %08x, computed %08x)", r.want, r.crc)
		} else {
			r.err = io.EOF
		}
		if n > 0 && r.err == io.EOF {
			return n, nil
		}
		return n, r.err
	case errors.Is(err, io.EOF):
		r.err = corruptf("snapshot "+r.path, "data ends %d bytes early", r.remaining)
		return n, r.err
	case err != nil:
		return n, fmt.Errorf("pebble: read snapshot %s: %w", r.path, err)
	}
	return n, nil
}

// Close releases the file.
func (r *snapReader) Close() error { return r.f.Close() }
