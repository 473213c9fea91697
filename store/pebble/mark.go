package pebble

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/typedraft/typedraft/raft"
)

// The high-water mark is a small file, dir/highwater, kept apart from
// Pebble's WAL, that records facts known to be durable: a term and the vote
// in it, and a log point (an entry index and its term). Pebble replays a WAL
// whose tail is missing or damaged as if the process had crashed while
// writing it, silently dropping synced entries and hard states; Open compares
// what Pebble recovered with the mark and refuses a store that is behind it.
// See the package documentation (Detecting lost writes) for what is detected.
//
// Layout (mark format version 1), all integers big endian:
//
//	magic "TDRMARK\n" (8) | u32 version | u64 term | u64 index | u64 index term
//	| u16 len(vote) | vote | u32 CRC-32C of everything before it
//
// The file is replaced atomically: written to dir/highwater.tmp, fsynced,
// renamed over dir/highwater, and the directory fsynced.
//
// A mark is valid for a store state when the state's term is above the
// mark's, or equal with the same vote (or the mark has none); and the log
// holds the mark's entry with its term, or has compacted past it. Every
// mark written is valid for the durable state at the time and for every
// state after it: writes that remove entries or take back a term or a vote
// first lower the mark (holding the mark lock, before they commit), and marks are
// raised only from the published state, which is durable (Open fsyncs the
// WALs before Pebble replays them, see syncWALs).
const (
	markName         = "highwater"
	markTmpName      = "highwater.tmp"
	markFormat       = 1
	markFixedLen     = 8 + 4 + 8 + 8 + 8 + 2 + 4
	defaultMarkEvery = time.Second
)

var markMagic = [8]byte{'T', 'D', 'R', 'M', 'A', 'R', 'K', '\n'}

// mark is the content of the high-water mark file.
type mark struct {
	term      uint64
	vote      raft.NodeID
	index     uint64
	indexTerm uint64
}

// markOf returns the mark of a durable state.
func markOf(st *logState) mark {
	return mark{term: st.hs.Term, vote: st.hs.Vote, index: st.lastIndex, indexTerm: st.lastTerm}
}

// dominates reports whether hard state hs is at or beyond the term and vote
// of m.
func dominates(hs raft.HardState, m mark) bool {
	return hs.Term > m.term || hs.Term == m.term && (m.vote == "" || hs.Vote == m.vote)
}

func encodeMark(m mark) []byte {
	b := make([]byte, 0, markFixedLen+len(m.vote))
	b = append(b, markMagic[:]...)
	b = binary.BigEndian.AppendUint32(b, markFormat)
	b = binary.BigEndian.AppendUint64(b, m.term)
	b = binary.BigEndian.AppendUint64(b, m.index)
	b = binary.BigEndian.AppendUint64(b, m.indexTerm)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.vote)))
	b = append(b, m.vote...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeMark(b []byte, path string) (mark, error) {
	what := "high-water mark " + path
	if len(b) < markFixedLen || len(b) > markFixedLen+maxVoteLen {
		return mark{}, corruptf(what, "file is %d bytes", len(b))
	}
	n := len(b) - 4
	if want, got := binary.BigEndian.Uint32(b[n:]), crc32.Checksum(b[:n], castagnoli); want != got {
		return mark{}, corruptf(what, "checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	if string(b[:8]) != string(markMagic[:]) {
		return mark{}, corruptf(what, "bad magic %q", b[:8])
	}
	if v := binary.BigEndian.Uint32(b[8:12]); v != markFormat {
		return mark{}, fmt.Errorf("pebble: %s has format version %d, this build reads version %d: %w",
			what, v, markFormat, ErrUnsupportedFormat)
	}
	m := mark{
		term:      binary.BigEndian.Uint64(b[12:20]),
		index:     binary.BigEndian.Uint64(b[20:28]),
		indexTerm: binary.BigEndian.Uint64(b[28:36]),
	}
	if vl := int(binary.BigEndian.Uint16(b[36:38])); 38+vl != n {
		return mark{}, corruptf(what, "vote length %d does not fit the %d-byte file", vl, len(b))
	}
	m.vote = raft.NodeID(b[38:n])
	return m, nil
}

// readMark reads the mark file of dir; ok is false if there is none.
func readMark(fs vfs.FS, dir string) (m mark, ok bool, err error) {
	path := fs.PathJoin(dir, markName)
	f, err := fs.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return mark{}, false, nil
	}
	if err != nil {
		return mark{}, false, fmt.Errorf("open high-water mark: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, markFixedLen+maxVoteLen+1))
	if err != nil {
		return mark{}, false, fmt.Errorf("read high-water mark %s: %w", path, err)
	}
	m, err = decodeMark(b, path)
	return m, err == nil, err
}

// checkMark fails with an error matching raft.ErrCorrupt, naming what was
// lost, if the recovered state st is behind mark m.
func (s *Store) checkMark(m mark, st *logState) error {
	path := s.fs.PathJoin(s.dir, markName)
	switch {
	case st.hs.Term < m.term:
		return corruptf("hard state", "term %d is below term %d, which %s records as durable: "+
			"the hard state was rolled back (lost or damaged WAL tail?)", st.hs.Term, m.term, path)
	case st.hs.Term == m.term && m.vote != "" && st.hs.Vote != m.vote:
		return corruptf("hard state", "the vote for %q in term %d, which %s records as durable, is lost "+
			"(the store holds vote %q; lost or damaged WAL tail?)", m.vote, m.term, path, st.hs.Vote)
	}
	if m.index <= st.compactIndex {
		return nil
	}
	if st.lastIndex < m.index {
		return corruptf("log", "entries (%d, %d] are lost: the log ends at %d, but %s records entry %d "+
			"(term %d) as durable (lost or damaged WAL tail?)", st.lastIndex, m.index, st.lastIndex, path, m.index, m.indexTerm)
	}
	t := st.lastTerm
	if m.index != st.lastIndex {
		var err error
		if t, err = s.storedTerm(m.index); err != nil {
			return err
		}
	}
	if t != m.indexTerm {
		return corruptf(entryWhat(m.index), "has term %d, but %s records term %d as durable", t, path, m.indexTerm)
	}
	return nil
}

// lockMark takes the mark lock (markSem), which serializes writes of the
// mark file, waiting until deadline at most.
func (s *Store) lockMark(deadline time.Time) error {
	select {
	case s.markSem <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case s.markSem <- struct{}{}:
		return nil
	case <-t.C:
		err := fmt.Errorf("a write of the high-water mark did not finish within the write timeout (%v)", s.writeTimeout)
		s.failWith(s.writeFailure("write the high-water mark", err), false)
		return s.fail.writeErr()
	}
}

func (s *Store) unlockMark() { <-s.markSem }

// writeMark replaces the mark file with m, giving up at deadline: the write
// then goes on in the background and the store fails for writes, so that
// no other mark write starts. The caller holds the mark lock.
func (s *Store) writeMark(m mark, deadline time.Time) error {
	if err := s.fail.writeErr(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- s.writeMarkFile(m) }()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			err = s.writeFailure("write the high-water mark", err)
			s.failWith(err, false)
		}
		return err
	case <-t.C:
		err := s.writeFailure("write the high-water mark",
			fmt.Errorf("not done within the write timeout (%v)", s.writeTimeout))
		s.failWith(err, false)
		return err
	}
}

// writeMarkFile replaces the mark file with m (see the layout above).
func (s *Store) writeMarkFile(m mark) error {
	tmp := s.fs.PathJoin(s.dir, markTmpName)
	f, err := s.fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	_, err = f.Write(encodeMark(m))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.fs.Rename(tmp, s.fs.PathJoin(s.dir, markName))
	}
	if err == nil {
		err = syncDir(s.fs, s.dir)
	}
	if err != nil {
		return err
	}
	s.markDisk.Store(&m)
	return nil
}

// lowerMark is called by Save and Compact, holding wmu, before they commit a
// write whose new hard state is hs and which keeps the mark's log point only
// if keeps says so. If the mark on disk would not be valid for the state
// after the write, it takes the mark lock and first writes a lower mark that
// is valid both before and after: the lower of the two terms without a vote,
// and (safeIndex, safeTerm), a log point held before and after the write.
// locked reports whether the mark lock is held on return (also after an
// error); the caller unlocks it after publishing the new state, so that no
// mark of the old state is written after the change committed.
func (s *Store) lowerMark(st *logState, hs raft.HardState, removes bool, keeps func(m mark) bool,
	safeIndex, safeTerm uint64, deadline time.Time) (locked bool, err error) {
	if !s.marks || !removes && dominates(hs, markOf(st)) && dominates(hs, *s.markDisk.Load()) {
		return false, nil
	}
	if err := s.lockMark(deadline); err != nil {
		return false, err
	}
	m := *s.markDisk.Load()
	low := m
	if !dominates(hs, m) {
		low.term, low.vote = min(m.term, hs.Term), ""
	}
	if removes && !keeps(m) {
		low.index, low.indexTerm = safeIndex, safeTerm
	}
	if low != m {
		if err := s.writeMark(low, deadline); err != nil {
			return true, err
		}
	}
	return true, nil
}

// raiseMark is called by Save after publishing next (holding the mark lock
// if locked). A new term or vote is written to the mark at once, before
// Save returns; the log point is raised by the mark writer at most once per
// markEvery. A failed mark write fails the store for writes (the Save itself
// is durable).
func (s *Store) raiseMark(next *logState, locked bool, deadline time.Time) {
	if !s.marks {
		return
	}
	d := s.markDisk.Load()
	switch {
	case next.hs.Term != d.term || next.hs.Vote != d.vote:
		if !locked {
			if s.lockMark(deadline) != nil {
				return
			}
			defer s.unlockMark()
		}
		_ = s.writeMark(markOf(next), deadline)
		s.markNext = time.Now().Add(s.markEvery)
	case next.lastIndex != d.index:
		if now := time.Now(); !now.Before(s.markNext) {
			s.markNext = now.Add(s.markEvery)
			select {
			case s.markWake <- struct{}{}:
			default:
			}
		}
	}
}

// markWriter raises the mark to the published state whenever Save asks,
// off the Save path. It exits when markStop is closed.
func (s *Store) markWriter() {
	defer close(s.markExit)
	for {
		select {
		case <-s.markStop:
			return
		case <-s.markWake:
		}
		s.markSem <- struct{}{}
		if m := markOf(s.state.Load()); m != *s.markDisk.Load() {
			_ = s.writeMark(m, time.Now().Add(s.writeTimeout))
		}
		s.unlockMark()
	}
}

// finishMarks stops the mark writer and, if the store has not failed,
// writes the mark of the final state. Called by Close.
func (s *Store) finishMarks() {
	if !s.marks {
		return
	}
	close(s.markStop)
	<-s.markExit
	if s.fail.writeErr() != nil {
		return
	}
	s.markSem <- struct{}{}
	defer s.unlockMark()
	if m := markOf(s.state.Load()); m != *s.markDisk.Load() {
		if err := s.writeMark(m, time.Now().Add(s.writeTimeout)); err != nil {
			s.log.Warn("cannot write the high-water mark at close", "dir", s.dir, "error", err)
		}
	}
}
