package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/typedraft/typedraft/raft"
)

// snapMeta returns a snapshot description at (index, term) with a joint
// configuration that includes a learner.
func snapMeta(index, term uint64) raft.SnapshotMeta {
	id := func(s string) raft.NodeID { return raft.NodeID(fmt.Sprintf("%s-%d", s, index)) }
	return raft.SnapshotMeta{
		Index: index,
		Term:  term,
		Configuration: raft.Configuration{
			Servers: []raft.Server{
				{ID: id("n1"), Addr: "10.0.0.1:7000", Suffrage: raft.Voter},
				{ID: id("n2"), Addr: "10.0.0.2:7000", Suffrage: raft.Voter},
				{ID: id("n4"), Addr: "[::1]:7000", Suffrage: raft.Learner},
			},
			Old: []raft.Server{
				{ID: id("n1"), Addr: "10.0.0.1:7000", Suffrage: raft.Voter},
				{ID: id("n3"), Addr: "host3.example.com:7000", Suffrage: raft.Voter},
			},
		},
		ConfigIndex: index - 1,
	}
}

// snapData returns the test content of the snapshot at index.
func snapData(index uint64, n int) []byte {
	r := rand.New(rand.NewPCG(index, 42))
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b[:n:n]
}

// metaEqual reports whether got describes the snapshot want of size bytes.
// Size may be 0 (unknown) or size; nil and empty server lists are equal.
func metaEqual(got, want raft.SnapshotMeta, size int) bool {
	return got.Index == want.Index && got.Term == want.Term && got.ConfigIndex == want.ConfigIndex &&
		(got.Size == 0 || got.Size == int64(size)) &&
		slices.Equal(got.Configuration.Servers, want.Configuration.Servers) &&
		slices.Equal(got.Configuration.Old, want.Configuration.Old)
}

// writeSnapshot writes data to a new sink for meta in chunks of chunk bytes
// and returns the sink, not yet committed.
func (h *harness) writeSnapshot(meta raft.SnapshotMeta, data []byte, chunk int) raft.SnapshotSink {
	h.t.Helper()
	sink, err := h.s.CreateSnapshot(meta)
	if err != nil {
		h.t.Fatalf("CreateSnapshot(index %d): %v", meta.Index, err)
	}
	for off := 0; off < len(data); off += chunk {
		p := data[off:min(off+chunk, len(data))]
		if n, err := sink.Write(p); err != nil || n != len(p) {
			h.t.Fatalf("snapshot %d: Write(%d bytes) = %d, %v", meta.Index, len(p), n, err)
		}
	}
	return sink
}

// commitSnapshot writes and commits a snapshot.
func (h *harness) commitSnapshot(meta raft.SnapshotMeta, data []byte, chunk int) {
	h.t.Helper()
	sink := h.writeSnapshot(meta, data, chunk)
	if err := sink.Commit(); err != nil {
		h.t.Fatalf("snapshot %d: Commit: %v", meta.Index, err)
	}
}

// checkSnapshot fails the test unless the latest snapshot is meta with data,
// through both LatestSnapshot and OpenSnapshot.
func (h *harness) checkSnapshot(meta raft.SnapshotMeta, data []byte) {
	h.t.Helper()
	got, err := h.s.LatestSnapshot()
	if err != nil {
		h.t.Fatalf("LatestSnapshot: %v", err)
	}
	if !metaEqual(got, meta, len(data)) {
		h.t.Fatalf("LatestSnapshot = %+v, want %+v with Size 0 or %d", got, meta, len(data))
	}
	got, r, err := h.s.OpenSnapshot()
	if err != nil {
		h.t.Fatalf("OpenSnapshot: %v", err)
	}
	if !metaEqual(got, meta, len(data)) {
		r.Close()
		h.t.Fatalf("OpenSnapshot meta = %+v, want %+v with Size 0 or %d", got, meta, len(data))
	}
	if b := h.readAll("OpenSnapshot", r); !bytes.Equal(b, data) {
		h.t.Fatalf("snapshot %d: read %d bytes that differ from the %d written", meta.Index, len(b), len(data))
	}
}

// checkNoSnapshot fails the test unless the store has no committed snapshot.
func (h *harness) checkNoSnapshot() {
	h.t.Helper()
	if m, err := h.s.LatestSnapshot(); !errors.Is(err, raft.ErrNoSnapshot) {
		h.t.Fatalf("LatestSnapshot = %+v, %v; want an error matching %q", m, err, raft.ErrNoSnapshot)
	}
	if m, _, err := h.s.OpenSnapshot(); !errors.Is(err, raft.ErrNoSnapshot) {
		h.t.Fatalf("OpenSnapshot = %+v, %v; want an error matching %q", m, err, raft.ErrNoSnapshot)
	}
}

// testSnapshotRoundTrip: a committed snapshot's metadata and bytes read back;
// it is invisible before Commit; the sink is unusable after Commit; and
// snapshots leave the log alone.
func testSnapshotRoundTrip(h *harness) {
	want := entries(1, 11, 1)
	h.save(raft.HardState{Term: 1}, want)
	meta, data := snapMeta(5, 1), snapData(5, 10_000)
	sink := h.writeSnapshot(meta, data, 333)
	h.checkNoSnapshot()
	if err := sink.Commit(); err != nil {
		h.t.Fatalf("Commit: %v", err)
	}
	h.checkSnapshot(meta, data)
	if _, err := sink.Write([]byte("x")); err == nil {
		h.t.Fatalf("Write after Commit succeeded, want an error")
	}
	h.checkSnapshot(meta, data)
	h.checkLog(0, 0, want)
}

// testSnapshotAbort: an aborted or unfinished snapshot never becomes the
// latest one, whether or not one was committed before, and the sink is
// unusable after Abort.
func testSnapshotAbort(h *harness) {
	sink := h.writeSnapshot(snapMeta(3, 1), snapData(3, 1000), 100)
	if err := sink.Abort(); err != nil {
		h.t.Fatalf("Abort: %v", err)
	}
	h.checkNoSnapshot()
	if _, err := sink.Write([]byte("x")); err == nil {
		h.t.Fatalf("Write after Abort succeeded, want an error")
	}
	if err := sink.Commit(); err == nil {
		h.t.Fatalf("Commit after Abort succeeded, want an error")
	}
	h.checkNoSnapshot()

	meta, data := snapMeta(5, 1), snapData(5, 1000)
	h.commitSnapshot(meta, data, 100)
	newer := h.writeSnapshot(snapMeta(9, 2), snapData(9, 2000), 100)
	h.checkSnapshot(meta, data) // unfinished
	if err := newer.Abort(); err != nil {
		h.t.Fatalf("Abort: %v", err)
	}
	h.checkSnapshot(meta, data)
}

// testSnapshotReplace: each commit replaces the latest snapshot, including
// with an empty one.
func testSnapshotReplace(h *harness) {
	h.commitSnapshot(snapMeta(5, 1), snapData(5, 5000), 1000)
	meta, data := snapMeta(10, 2), snapData(10, 3000)
	h.commitSnapshot(meta, data, 1000)
	h.checkSnapshot(meta, data)
	meta = snapMeta(15, 2)
	h.commitSnapshot(meta, nil, 1)
	h.checkSnapshot(meta, nil)
	meta, data = snapMeta(16, 3), snapData(16, 1)
	h.commitSnapshot(meta, data, 1)
	h.checkSnapshot(meta, data)
}

// testSnapshotConcurrentSinks: sinks written concurrently keep their bytes
// apart, and readers concurrent with the commits see a whole snapshot whose
// bytes match its metadata.
func testSnapshotConcurrentSinks(h *harness) {
	t := h.t
	const writers, rounds, size = 4, 6, 50_000
	var wg sync.WaitGroup
	errs := make(chan error, writers+2)
	stop := make(chan struct{})
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range rounds {
				idx := uint64(10 + i + writers*k)
				sink, err := h.s.CreateSnapshot(snapMeta(idx, 1))
				if err != nil {
					errs <- fmt.Errorf("CreateSnapshot(%d): %w", idx, err)
					return
				}
				data := snapData(idx, size)
				for off := 0; off < size; off += 1000 {
					if _, err := sink.Write(data[off : off+1000]); err != nil {
						errs <- fmt.Errorf("snapshot %d: Write: %w", idx, err)
						sink.Abort()
						return
					}
				}
				if err := sink.Commit(); err != nil {
					errs <- fmt.Errorf("snapshot %d: Commit: %w", idx, err)
					return
				}
			}
		}()
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				meta, r, err := h.s.OpenSnapshot()
				if errors.Is(err, raft.ErrNoSnapshot) {
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("OpenSnapshot: %w", err)
					return
				}
				b, err := io.ReadAll(r)
				r.Close()
				if err != nil {
					errs <- fmt.Errorf("read snapshot %d: %w", meta.Index, err)
					return
				}
				if !bytes.Equal(b, snapData(meta.Index, size)) {
					errs <- fmt.Errorf("OpenSnapshot returned meta of snapshot %d with %d bytes that are not its data", meta.Index, len(b))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	latest, err := h.s.LatestSnapshot()
	if err != nil {
		t.Fatalf("LatestSnapshot: %v", err)
	}
	if latest.Index < 10 || latest.Index >= 10+writers*rounds {
		t.Fatalf("LatestSnapshot index %d is none of the committed snapshots", latest.Index)
	}
	h.checkSnapshot(snapMeta(latest.Index, 1), snapData(latest.Index, size))
}

// testSnapshotLarge: an 8 MiB snapshot streams in through chunks of varied
// sizes and out through small reads, byte for byte.
func testSnapshotLarge(h *harness) {
	const size = 8 << 20
	meta := snapMeta(1000, 7)
	data := snapData(1000, size)
	sink, err := h.s.CreateSnapshot(meta)
	if err != nil {
		h.t.Fatalf("CreateSnapshot: %v", err)
	}
	chunks := []int{1, 7, 4096, 65536, 100_000, 1 << 20}
	for off, i := 0, 0; off < size; i++ {
		p := data[off:min(off+chunks[i%len(chunks)], size)]
		if n, err := sink.Write(p); err != nil || n != len(p) {
			h.t.Fatalf("Write(%d bytes at %d) = %d, %v", len(p), off, n, err)
		}
		off += len(p)
	}
	if err := sink.Commit(); err != nil {
		h.t.Fatalf("Commit: %v", err)
	}
	got, r, err := h.s.OpenSnapshot()
	if err != nil {
		h.t.Fatalf("OpenSnapshot: %v", err)
	}
	defer r.Close()
	if !metaEqual(got, meta, size) {
		h.t.Fatalf("OpenSnapshot meta = %+v, want %+v", got, meta)
	}
	hash := sha256.New()
	n, err := io.CopyBuffer(hash, r, make([]byte, 32<<10))
	if err != nil {
		h.t.Fatalf("read snapshot: %v after %d bytes", err, n)
	}
	if n != size || !bytes.Equal(hash.Sum(nil), sha256Sum(data)) {
		h.t.Fatalf("read %d bytes with another hash than the %d written", n, size)
	}
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// testSnapshotMetaOwnership: the store keeps its own copy of the metadata:
// changing the meta passed to CreateSnapshot after Commit, or the meta
// returned by LatestSnapshot or OpenSnapshot, does not change the store.
func testSnapshotMetaOwnership(h *harness) {
	meta, data := snapMeta(5, 1), snapData(5, 100)
	mine := snapMeta(5, 1)
	h.commitSnapshot(mine, data, 100)
	mine.Configuration.Servers[0].ID = "changed"
	mine.Configuration.Old[0].Addr = "changed"
	h.checkSnapshot(meta, data)

	got, err := h.s.LatestSnapshot()
	if err != nil {
		h.t.Fatalf("LatestSnapshot: %v", err)
	}
	got.Configuration.Servers[1].ID = "changed"
	got.Configuration.Old[1].Suffrage = raft.Learner
	got2, r, err := h.s.OpenSnapshot()
	if err != nil {
		h.t.Fatalf("OpenSnapshot: %v", err)
	}
	r.Close()
	got2.Configuration.Servers[2].ID = "changed"
	h.checkSnapshot(meta, data)
}

// testSnapshotReaderOutlivesCommit: a reader opened on a snapshot keeps
// returning that snapshot's bytes while newer snapshots are committed (and
// older ones deleted) and the log is compacted, as when a leader streams a
// snapshot to a follower while it takes the next one; the newest snapshot
// is then the latest.
func testSnapshotReaderOutlivesCommit(h *harness) {
	const size = 300_000
	h.save(raft.HardState{Term: 1}, entries(1, 31, 1))
	meta, data := snapMeta(10, 1), snapData(10, size)
	h.commitSnapshot(meta, data, 4096)
	got, r, err := h.s.OpenSnapshot()
	if err != nil {
		h.t.Fatalf("OpenSnapshot: %v", err)
	}
	defer r.Close()
	if !metaEqual(got, meta, size) {
		h.t.Fatalf("OpenSnapshot meta = %+v, want %+v", got, meta)
	}
	first := make([]byte, size/3)
	if _, err := io.ReadFull(r, first); err != nil {
		h.t.Fatalf("read the first third of snapshot 10: %v", err)
	}
	for _, idx := range []uint64{20, 25} {
		h.commitSnapshot(snapMeta(idx, 1), snapData(idx, size), 4096)
		h.compact(idx-5, 1)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		h.t.Fatalf("read the rest of snapshot 10 after two newer snapshots were committed: %v", err)
	}
	if !bytes.Equal(append(first, rest...), data) {
		h.t.Fatalf("a reader opened on snapshot 10 returned other bytes after newer snapshots were committed: readers must keep the snapshot they opened")
	}
	h.checkSnapshot(snapMeta(25, 1), snapData(25, size))
}
