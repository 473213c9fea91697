package pebble

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/typedraft/typedraft/raft"
)

// On-disk layout of the log database (format version 1).
//
// Keys:
//
//	0x00 0x01                 format version
//	0x00 0x02                 hard state
//	0x00 0x03                 compaction point (index, term)
//	0x00 0x04                 identity (node and cluster IDs, see identity.go)
//	0x01 <index, 8 bytes BE>  log entry
//
// Every value starts with the same 5-byte envelope:
//
//	[0]    kind byte (record type and record version)
//	[1:5]  CRC-32C (Castagnoli), big endian, over key || value[0] || value[5:]
//
// followed by a payload whose layout depends on the kind:
//
//	format version  u32 version
//	hard state      u64 term | u64 commit | u16 len(vote) | vote
//	compaction      u64 index | u64 term
//	identity        u16 len(node) | node | u16 len(cluster) | cluster
//	entry           u8 type | u64 index | u64 term | data
//
// All integers are big endian. The key is covered by the checksum, so a value
// that ends up under another key fails verification; entries also carry their
// index, which must match the key. The layout of the format-version record
// (key, envelope and payload) never changes, so any later build can tell which
// version a directory holds.
const (
	// FormatVersion is the version of the on-disk layout this build writes
	// and reads. Open refuses directories written with any other version.
	FormatVersion = 1

	kindFormat     = 'F'
	kindHardState  = 'H'
	kindCompaction = 'C'
	kindIdentity   = 'I'
	kindEntry      = 'E'

	envelopeLen     = 5
	entryHeaderLen  = envelopeLen + 1 + 8 + 8
	hardStateMinLen = envelopeLen + 8 + 8 + 2
	compactionLen   = envelopeLen + 8 + 8
	formatLen       = envelopeLen + 4
	entryKeyLen     = 9

	// maxEntryData bounds Entry.Data so that a value always fits Pebble's
	// 32-bit value lengths.
	maxEntryData = 1<<31 - entryHeaderLen
	// maxVoteLen bounds HardState.Vote (its length is stored in 16 bits).
	maxVoteLen = 1<<16 - 1
)

var (
	keyFormat     = []byte{0x00, 0x01}
	keyHardState  = []byte{0x00, 0x02}
	keyCompaction = []byte{0x00, 0x03}
	keyIdentity   = []byte{0x00, 0x04}

	// entriesLower and entriesUpper bound the entry keyspace: [0x01, 0x02).
	entriesLower = []byte{0x01}
	entriesUpper = []byte{0x02}
	// allLower and allUpper bound every key this store writes.
	allLower = []byte{0x00}
	allUpper = []byte{0x02}

	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// ErrUnsupportedFormat is returned (wrapped, naming the directory or file and
// both versions) by Open and snapshot reads when the data on disk was written
// with a format version this build does not understand.
var ErrUnsupportedFormat = errors.New("unsupported storage format version")

// CorruptError reports stored data that failed a checksum or format check.
// It matches raft.ErrCorrupt with errors.Is. What names the corrupt record:
// "entry 42", "hard state", "compaction point", "format version",
// "identity", "log", a snapshot or high-water mark file path, or a file of
// Pebble's database ("file /dir/log/000006.sst") when Pebble found a block
// that failed its checksum.
type CorruptError struct {
	What   string
	Reason string
}

// Error implements error.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("pebble: %s: %v: %s", e.What, raft.ErrCorrupt, e.Reason)
}

// Unwrap makes a CorruptError match raft.ErrCorrupt.
func (e *CorruptError) Unwrap() error { return raft.ErrCorrupt }

func corruptf(what, format string, args ...any) error {
	return &CorruptError{What: what, Reason: fmt.Sprintf(format, args...)}
}

// entryKey writes the key of the entry at index into dst (len >= 9) and
// returns it.
func putEntryKey(dst []byte, index uint64) []byte {
	dst[0] = entriesLower[0]
	binary.BigEndian.PutUint64(dst[1:9], index)
	return dst[:entryKeyLen]
}

func entryKey(index uint64) []byte {
	return putEntryKey(make([]byte, entryKeyLen), index)
}

// parseEntryKey returns the index an entry key names.
func parseEntryKey(key []byte) (uint64, bool) {
	if len(key) != entryKeyLen || key[0] != entriesLower[0] {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[1:]), true
}

// checksum computes the envelope checksum of value (whose envelope need not be
// filled in yet) stored under key.
func checksum(key, value []byte) uint32 {
	c := crc32.Update(0, castagnoli, key)
	c = crc32.Update(c, castagnoli, value[:1])
	return crc32.Update(c, castagnoli, value[envelopeLen:])
}

// seal fills in value's envelope: its kind and the checksum.
func seal(key, value []byte, kind byte) {
	value[0] = kind
	binary.BigEndian.PutUint32(value[1:envelopeLen], checksum(key, value))
}

// unseal verifies value's envelope and returns its payload, or a
// CorruptError whose What the caller fills in (so that the name is only
// formatted on failure).
func unseal(key, value []byte, kind byte, minLen int) ([]byte, *CorruptError) {
	if len(value) < envelopeLen || len(value) < minLen {
		return nil, &CorruptError{Reason: fmt.Sprintf("value is %d bytes, want at least %d (truncated?)", len(value), minLen)}
	}
	if want, got := binary.BigEndian.Uint32(value[1:envelopeLen]), checksum(key, value); want != got {
		return nil, &CorruptError{Reason: fmt.Sprintf("checksum mismatch (stored %08x, computed %08x)", want, got)}
	}
	if value[0] != kind {
		return nil, &CorruptError{Reason: fmt.Sprintf("record kind %q, want %q", value[0], kind)}
	}
	return value[envelopeLen:], nil
}

// unsealNamed is unseal for records whose name is a constant.
func unsealNamed(what string, key, value []byte, kind byte, minLen int) ([]byte, error) {
	p, cerr := unseal(key, value, kind, minLen)
	if cerr != nil {
		cerr.What = what
		return nil, cerr
	}
	return p, nil
}

func encodeFormat(version uint32) []byte {
	v := make([]byte, formatLen)
	binary.BigEndian.PutUint32(v[envelopeLen:], version)
	seal(keyFormat, v, kindFormat)
	return v
}

func decodeFormat(value []byte) (uint32, error) {
	p, err := unsealNamed("format version", keyFormat, value, kindFormat, formatLen)
	if err != nil {
		return 0, err
	}
	if len(p) != 4 {
		return 0, corruptf("format version", "payload is %d bytes, want 4", len(p))
	}
	return binary.BigEndian.Uint32(p), nil
}

func hardStateLen(hs raft.HardState) int { return hardStateMinLen + len(hs.Vote) }

// putHardState encodes hs into v, which must be hardStateLen(hs) bytes.
func putHardState(v []byte, hs raft.HardState) {
	p := v[envelopeLen:]
	binary.BigEndian.PutUint64(p[0:8], hs.Term)
	binary.BigEndian.PutUint64(p[8:16], hs.Commit)
	binary.BigEndian.PutUint16(p[16:18], uint16(len(hs.Vote)))
	copy(p[18:], hs.Vote)
	seal(keyHardState, v, kindHardState)
}

func decodeHardState(value []byte) (raft.HardState, error) {
	const what = "hard state"
	p, err := unsealNamed(what, keyHardState, value, kindHardState, hardStateMinLen)
	if err != nil {
		return raft.HardState{}, err
	}
	n := int(binary.BigEndian.Uint16(p[16:18]))
	if len(p) != 18+n {
		return raft.HardState{}, corruptf(what, "payload is %d bytes, want %d", len(p), 18+n)
	}
	return raft.HardState{
		Term:   binary.BigEndian.Uint64(p[0:8]),
		Commit: binary.BigEndian.Uint64(p[8:16]),
		Vote:   raft.NodeID(p[18:]),
	}, nil
}

func encodeCompaction(index, term uint64) []byte {
	v := make([]byte, compactionLen)
	binary.BigEndian.PutUint64(v[envelopeLen:], index)
	binary.BigEndian.PutUint64(v[envelopeLen+8:], term)
	seal(keyCompaction, v, kindCompaction)
	return v
}

func decodeCompaction(value []byte) (index, term uint64, err error) {
	const what = "compaction point"
	p, err := unsealNamed(what, keyCompaction, value, kindCompaction, compactionLen)
	if err != nil {
		return 0, 0, err
	}
	if len(p) != 16 {
		return 0, 0, corruptf(what, "payload is %d bytes, want 16", len(p))
	}
	return binary.BigEndian.Uint64(p[0:8]), binary.BigEndian.Uint64(p[8:16]), nil
}

func entryValueLen(e *raft.Entry) int { return entryHeaderLen + len(e.Data) }

// putEntry encodes e into v (entryValueLen(e) bytes) stored under key.
func putEntry(key, v []byte, e *raft.Entry) {
	p := v[envelopeLen:]
	p[0] = byte(e.Type)
	binary.BigEndian.PutUint64(p[1:9], e.Index)
	binary.BigEndian.PutUint64(p[9:17], e.Term)
	copy(p[17:], e.Data)
	seal(key, v, kindEntry)
}

func entryWhat(index uint64) string { return fmt.Sprintf("entry %d", index) }

// decodeEntry verifies the value stored under the key of entry index and
// returns the entry with Data aliasing value (the caller copies it if needed).
func decodeEntry(index uint64, key, value []byte) (raft.Entry, error) {
	p, cerr := unseal(key, value, kindEntry, entryHeaderLen)
	if cerr != nil {
		cerr.What = entryWhat(index)
		return raft.Entry{}, cerr
	}
	e := raft.Entry{
		Type:  raft.EntryType(p[0]),
		Index: binary.BigEndian.Uint64(p[1:9]),
		Term:  binary.BigEndian.Uint64(p[9:17]),
	}
	if e.Index != index {
		return raft.Entry{}, corruptf(entryWhat(index), "value holds index %d", e.Index)
	}
	if len(p) > 17 {
		e.Data = p[17:]
	}
	return e, nil
}
