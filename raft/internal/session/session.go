// Package session is the deterministic table behind raft's client
// sessions: it records, per session, the last sequence number applied and
// its encoded result, so that a retried command returns the original
// result instead of being applied twice.
//
// Everything here is a pure function of the entries applied, in log
// order: every node that applies the same log holds the same table.
// Sessions expire by log index (a session untouched for TTL entries is
// gone), never by a node's clock, and opening a session beyond the bound
// evicts the least recently used one, so the table stays bounded.
//
// Concurrency: a Table is owned by one goroutine (the apply goroutine).
package session

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Kinds of session entries.
const (
	KindOpen    byte = 1
	KindCommand byte = 2
	KindClose   byte = 3
)

// ErrCorrupt: a session entry or table does not decode.
var ErrCorrupt = errors.New("session: corrupt encoding")

// Entry is the decoded payload of a session log entry.
type Entry struct {
	Kind byte
	// ID and Seq identify a command (KindCommand) or the session closed
	// (KindClose, ID only).
	ID, Seq uint64
	// TTL and Max are an opened session's lifetime in log entries and the
	// table's bound when it opened (KindOpen): they travel in the log so
	// that every node expires and evicts alike, whatever its own config.
	TTL, Max uint64
	// Payload is the encoded command (KindCommand).
	Payload []byte
}

// Encode appends e's encoding to dst.
func Encode(dst []byte, e Entry) []byte {
	dst = append(dst, e.Kind)
	switch e.Kind {
	case KindOpen:
		dst = binary.AppendUvarint(dst, e.TTL)
		dst = binary.AppendUvarint(dst, e.Max)
	case KindCommand:
		dst = binary.AppendUvarint(dst, e.ID)
		dst = binary.AppendUvarint(dst, e.Seq)
		dst = append(dst, e.Payload...)
	case KindClose:
		dst = binary.AppendUvarint(dst, e.ID)
	}
	return dst
}

// Decode decodes a session entry's data. Payload aliases data.
func Decode(data []byte) (Entry, error) {
	if len(data) == 0 {
		return Entry{}, fmt.Errorf("%w: empty session entry", ErrCorrupt)
	}
	e := Entry{Kind: data[0]}
	r := reader{b: data[1:]}
	switch e.Kind {
	case KindOpen:
		e.TTL, e.Max = r.uvarint(), r.uvarint()
	case KindCommand:
		e.ID, e.Seq = r.uvarint(), r.uvarint()
		e.Payload = r.b
		r.b = nil
	case KindClose:
		e.ID = r.uvarint()
	default:
		return Entry{}, fmt.Errorf("%w: unknown session entry kind %d", ErrCorrupt, e.Kind)
	}
	if r.err != nil {
		return Entry{}, fmt.Errorf("%w: session entry of kind %d: %v", ErrCorrupt, e.Kind, r.err)
	}
	if len(r.b) != 0 {
		return Entry{}, fmt.Errorf("%w: %d trailing bytes in a session entry of kind %d", ErrCorrupt, len(r.b), e.Kind)
	}
	return e, nil
}

// reader decodes uvarints, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("truncated or overlong varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes reads a length-prefixed byte string (a copy).
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("a %d-byte field with %d bytes left", n, len(r.b))
		return nil
	}
	out := append([]byte(nil), r.b[:n]...)
	r.b = r.b[n:]
	return out
}
