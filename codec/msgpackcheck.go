package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MsgpackMaxDepth is how deeply the Msgpack codec lets arrays and maps nest
// in the data it decodes (a top-level array or map is at depth 1).
const MsgpackMaxDepth = 256

// ErrInvalidMsgpack is matched (with errors.Is) by the errors CheckMsgpack
// returns, and so by the Msgpack codec's errors for such input.
var ErrInvalidMsgpack = errors.New("codec: invalid msgpack")

// CheckMsgpack reports whether data is exactly one well-formed MessagePack
// value whose arrays and maps nest at most maxDepth deep (0 allows scalars
// only). It checks every declared length against the input before anything
// would be allocated for it: a string, binary or extension of n bytes needs
// n more bytes, an array of n elements at least n more bytes and a map of n
// pairs at least 2n. Input that passes can therefore be decoded with
// allocations proportional to len(data) (times the size of the decoded
// element types), whatever lengths its headers declare.
//
// It returns nil, or an error matching ErrInvalidMsgpack that names the
// offset and the problem: a truncated value, a length exceeding the input,
// nesting deeper than maxDepth, the never-used type byte 0xc1, or bytes left
// after the value. It runs in O(len(data)) time and allocates nothing but the
// error it returns and, for values nested more than 32 deep, a stack of one
// counter per level; it keeps no reference to data and is safe for
// concurrent use.
func CheckMsgpack(data []byte, maxDepth int) error {
	_, err := checkMsgpack(data, maxDepth)
	return err
}

// checkMsgpack is CheckMsgpack that also returns the number of values held
// by the input's arrays and maps (two per map pair), the elements a
// decoder allocates.
func checkMsgpack(data []byte, maxDepth int) (elems uint64, err error) {
	if maxDepth < 0 {
		return 0, fmt.Errorf("%w: negative maximum depth %d", ErrInvalidMsgpack, maxDepth)
	}
	w := walker{data: data}
	// pending counts the values still to read in the innermost open
	// container (or 1 for the top-level value); stack saves the counts of
	// the enclosing containers.
	pending := uint64(1)
	var small [32]uint64
	stack := small[:0]
	for {
		for pending == 0 {
			if len(stack) == 0 {
				if w.pos != len(data) {
					w.start = w.pos
					return 0, w.fail("%d bytes after the value", len(data)-w.pos)
				}
				return elems, nil
			}
			pending, stack = stack[len(stack)-1], stack[:len(stack)-1]
		}
		pending--
		items, isContainer, err := w.value()
		if err != nil {
			return 0, err
		}
		if !isContainer {
			continue
		}
		if len(stack)+1 > maxDepth {
			return 0, w.fail("nesting deeper than %d", maxDepth)
		}
		if rest := uint64(len(data) - w.pos); items > rest {
			return 0, w.fail("container of %d values needs at least %d more bytes, %d remain", items, items, rest)
		}
		elems += items
		if items > 0 {
			stack = append(stack, pending)
			pending = items
		}
	}
}

// walker reads MessagePack headers from data.
type walker struct {
	data []byte
	pos  int // next byte to read
	// start is the offset of the value being read, for errors.
	start int
}

// fail returns an error about the value at w.start.
func (w *walker) fail(format string, args ...any) error {
	return fmt.Errorf("%w: at offset %d: %s", ErrInvalidMsgpack, w.start, fmt.Sprintf(format, args...))
}

// need fails unless n more bytes remain for the payload (or, if length,
// the length field) of a value of kind what.
func (w *walker) need(n uint64, what string, length bool) error {
	if rest := uint64(len(w.data) - w.pos); n > rest {
		if length {
			return w.fail("truncated %s length: needs %d more bytes, %d remain", what, n, rest)
		}
		return w.fail("truncated %s: needs %d more bytes, %d remain", what, n, rest)
	}
	return nil
}

// uint reads a big-endian length of size bytes (1, 2 or 4).
func (w *walker) uint(size int, what string) (uint64, error) {
	if err := w.need(uint64(size), what, true); err != nil {
		return 0, err
	}
	b := w.data[w.pos : w.pos+size]
	w.pos += size
	switch size {
	case 1:
		return uint64(b[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(b)), nil
	default:
		return uint64(binary.BigEndian.Uint32(b)), nil
	}
}

// skip consumes n payload bytes.
func (w *walker) skip(n uint64, what string) error {
	if err := w.need(n, what, false); err != nil {
		return err
	}
	w.pos += int(n)
	return nil
}

// value reads one value's header and, for scalars, strings, binaries and
// extensions, its payload. For an array or map it returns the number of
// values the container holds (two per map pair) and isContainer.
func (w *walker) value() (items uint64, isContainer bool, err error) {
	w.start = w.pos
	if w.pos >= len(w.data) {
		return 0, false, w.fail("truncated: a value is missing")
	}
	c := w.data[w.pos]
	w.pos++
	switch {
	case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3: // fixints, nil, bools
		return 0, false, nil
	case c <= 0x8f: // fixmap
		return 2 * uint64(c&0x0f), true, nil
	case c <= 0x9f: // fixarray
		return uint64(c & 0x0f), true, nil
	case c <= 0xbf: // fixstr
		return 0, false, w.skip(uint64(c&0x1f), "string")
	}
	switch c {
	case 0xc1:
		return 0, false, w.fail("type byte 0xc1 is never used")
	case 0xc4, 0xc5, 0xc6: // bin 8/16/32
		return 0, false, w.sized(1<<(c-0xc4), 0, "binary")
	case 0xc7, 0xc8, 0xc9: // ext 8/16/32: length, type, payload
		return 0, false, w.sized(1<<(c-0xc7), 1, "extension")
	case 0xca, 0xcb: // float 32/64
		return 0, false, w.skip(4<<(c-0xca), "float")
	case 0xcc, 0xcd, 0xce, 0xcf: // uint 8/16/32/64
		return 0, false, w.skip(1<<(c-0xcc), "integer")
	case 0xd0, 0xd1, 0xd2, 0xd3: // int 8/16/32/64
		return 0, false, w.skip(1<<(c-0xd0), "integer")
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1/2/4/8/16 plus type
		return 0, false, w.skip(1+1<<(c-0xd4), "extension")
	case 0xd9, 0xda, 0xdb: // str 8/16/32
		return 0, false, w.sized(1<<(c-0xd9), 0, "string")
	case 0xdc, 0xdd: // array 16/32
		n, err := w.uint(2<<(c-0xdc), "array")
		return n, err == nil, err
	default: // 0xde, 0xdf: map 16/32
		n, err := w.uint(2<<(c-0xde), "map")
		return 2 * n, err == nil, err
	}
}

// sized reads a length of lenSize bytes, then skips extra bytes (an
// extension's type) and that many payload bytes.
func (w *walker) sized(lenSize int, extra uint64, what string) error {
	n, err := w.uint(lenSize, what)
	if err != nil {
		return err
	}
	return w.skip(extra+n, what)
}
