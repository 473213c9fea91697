package benchmarks

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// scaleCmd is the command of the scale tests' key-value state machine: put
// Val under Key.
type scaleCmd struct {
	Key string `msgpack:"k"`
	Val []byte `msgpack:"v"`
}

// scaleErr is the key-value state machine's error type E. The machine never
// rejects a put, so it is never returned.
type scaleErr struct{ reason string }

func (e *scaleErr) Error() string { return "kv: " + e.reason }

// scaleNode is one node of a scale-test cluster.
type scaleNode = raft.Raft[scaleCmd, uint64, *scaleErr]

// scaleKV is a key-value map whose snapshot holds every key and value, so
// the snapshot grows with the number of keys, as a real store's does.
//
// Concurrency: the node calls Apply, Snapshot and Restore from its apply
// goroutine; the test reads the state with equal and len concurrently, so
// the map is guarded by mu. Values are never modified after Apply stores
// them (each command's Val is freshly decoded), so a shallow copy of the
// map is a point-in-time view.
type scaleKV struct {
	mu   sync.RWMutex
	m    map[string][]byte
	last uint64 // index of the last applied command

	restores     atomic.Int64
	restoreBytes atomic.Int64 // bytes read by the last Restore
	lastRestore  atomic.Int64 // unix nanoseconds of the last Restore's end
}

func newScaleKV() *scaleKV { return &scaleKV{m: map[string][]byte{}} }

// Apply stores cmd.Val under cmd.Key and returns the number of keys.
func (s *scaleKV) Apply(index uint64, cmd scaleCmd) (uint64, *scaleErr) {
	s.mu.Lock()
	s.m[cmd.Key] = cmd.Val
	s.last = index
	n := len(s.m)
	s.mu.Unlock()
	return uint64(n), nil
}

// Snapshot returns a shallow copy of the map (values are immutable).
func (s *scaleKV) Snapshot(raft.SnapshotMeta) (raft.StateSnapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return scaleView{m: maps.Clone(s.m)}, nil
}

// snapMagic starts every snapshot of scaleKV.
const snapMagic = "SKV1"

// Restore replaces the map with the one read from r and counts the call
// and the bytes read.
func (s *scaleKV) Restore(_ raft.SnapshotMeta, r io.Reader) error {
	cr := &countReader{r: r}
	br := bufio.NewReaderSize(cr, 64<<10)
	var magic [4]byte
	if _, err := io.ReadFull(br, magic[:]); err != nil {
		return fmt.Errorf("kv: restore: read header: %w", err)
	}
	if string(magic[:]) != snapMagic {
		return fmt.Errorf("kv: restore: bad magic %q", magic[:])
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return fmt.Errorf("kv: restore: read count: %w", err)
	}
	if n > 1<<32 {
		return fmt.Errorf("kv: restore: implausible key count %d", n)
	}
	m := make(map[string][]byte, n)
	for i := uint64(0); i < n; i++ {
		k, err := readChunk(br)
		if err != nil {
			return fmt.Errorf("kv: restore: key %d: %w", i, err)
		}
		v, err := readChunk(br)
		if err != nil {
			return fmt.Errorf("kv: restore: value %d: %w", i, err)
		}
		m[string(k)] = v
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return errors.New("kv: restore: trailing data after the last key")
	}
	s.mu.Lock()
	s.m = m
	s.mu.Unlock()
	s.restores.Add(1)
	s.restoreBytes.Store(cr.n)
	s.lastRestore.Store(time.Now().UnixNano())
	return nil
}

func readChunk(br *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, err
	}
	if n > 1<<20 {
		return nil, fmt.Errorf("implausible length %d", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, err
	}
	return b, nil
}

// keys returns the number of keys.
func (s *scaleKV) keys() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

// diff describes the first difference between s and o ("" if equal).
func (s *scaleKV) diff(o *scaleKV) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o.mu.RLock()
	defer o.mu.RUnlock()
	if len(s.m) != len(o.m) {
		return fmt.Sprintf("%d keys vs %d keys", len(s.m), len(o.m))
	}
	for k, v := range s.m {
		w, ok := o.m[k]
		if !ok {
			return fmt.Sprintf("key %q missing", k)
		}
		if !bytes.Equal(v, w) {
			return fmt.Sprintf("key %q: %x vs %x", k, v, w)
		}
	}
	return ""
}

// scaleView is a point-in-time copy of the map.
type scaleView struct{ m map[string][]byte }

// Write writes the magic, the key count, and each key and value prefixed
// by its uvarint length.
func (v scaleView) Write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var tmp [binary.MaxVarintLen64]byte
	bw.WriteString(snapMagic)
	bw.Write(tmp[:binary.PutUvarint(tmp[:], uint64(len(v.m)))])
	for k, val := range v.m {
		bw.Write(tmp[:binary.PutUvarint(tmp[:], uint64(len(k)))])
		bw.WriteString(k)
		bw.Write(tmp[:binary.PutUvarint(tmp[:], uint64(len(val)))])
		if _, err := bw.Write(val); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Release drops the copy.
func (v scaleView) Release() {}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// scaleValue returns the 128-byte value of the i-th command: i's bytes
// repeated, so every command's value is distinct and checkable.
func scaleValue(i uint64) []byte {
	v := make([]byte, 128)
	for off := 0; off < len(v); off += 8 {
		binary.LittleEndian.PutUint64(v[off:], i^uint64(off)*0x9e3779b97f4a7c15)
	}
	return v
}
