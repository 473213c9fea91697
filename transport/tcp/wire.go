package tcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// errMalformed is wrapped by every body decoding error.
var errMalformed = errors.New("tcp: malformed frame body")

// bodyDecoder reads msgpack values from one frame body with every length
// checked against the bytes that remain (and against explicit limits)
// before anything is allocated. Strings are copied out; byte strings alias
// the body.
//
// msgpack.Decoder decodes the length headers (array, str, bin) and bools,
// whose cost does not depend on the declared lengths; integers and payload
// bytes are read from the body slice by this type (the hot path).
type bodyDecoder struct {
	body []byte
	rd   bytes.Reader
	dec  *msgpack.Decoder
}

func newBodyDecoder(body []byte) *bodyDecoder {
	d := &bodyDecoder{body: body}
	d.rd.Reset(body)
	// bytes.Reader is an io.ByteScanner, so the decoder reads it directly
	// without buffering ahead: d.rd.Len() is exactly what is left.
	d.dec = msgpack.NewDecoder(&d.rd)
	return d
}

func (d *bodyDecoder) remaining() int { return d.rd.Len() }

func (d *bodyDecoder) errorf(format string, args ...any) error {
	off := len(d.body) - d.rd.Len()
	return fmt.Errorf("%w: at byte %d: %s", errMalformed, off, fmt.Sprintf(format, args...))
}

func (d *bodyDecoder) wrap(what string, err error) error {
	if errors.Is(err, errMalformed) {
		return err
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return d.errorf("%s: %v", what, err)
}

// peek returns the next msgpack code without consuming it.
func (d *bodyDecoder) peek(what string) (byte, error) {
	if d.rd.Len() == 0 {
		return 0, d.wrap(what, io.ErrUnexpectedEOF)
	}
	return d.body[len(d.body)-d.rd.Len()], nil
}

// uint decodes a non-negative integer encoded as a msgpack uint.
func (d *bodyDecoder) uint(what string) (uint64, error) {
	c, err := d.peek(what)
	if err != nil {
		return 0, err
	}
	if c > msgpcode.PosFixedNumHigh && (c < msgpcode.Uint8 || c > msgpcode.Uint64) {
		return 0, d.errorf("%s: want unsigned integer, got code %#x", what, c)
	}
	if c <= msgpcode.PosFixedNumHigh { // the value is the code
		_, _ = d.rd.ReadByte()
		return uint64(c), nil
	}
	// uint8/16/32/64: the code then 1, 2, 4 or 8 big-endian bytes. Read
	// from the body directly; this is the decoder's hot path.
	n := 1 << (c - msgpcode.Uint8)
	off := len(d.body) - d.rd.Len()
	if d.rd.Len() < 1+n {
		return 0, d.errorf("%s: %d-byte integer but only %d bytes left", what, n, d.rd.Len()-1)
	}
	p := d.body[off+1 : off+1+n]
	var v uint64
	switch n {
	case 1:
		v = uint64(p[0])
	case 2:
		v = uint64(binary.BigEndian.Uint16(p))
	case 4:
		v = uint64(binary.BigEndian.Uint32(p))
	default:
		v = binary.BigEndian.Uint64(p)
	}
	_, _ = d.rd.Seek(int64(1+n), io.SeekCurrent)
	return v, nil
}

// uintMax decodes an unsigned integer no larger than max.
func (d *bodyDecoder) uintMax(what string, max uint64) (uint64, error) {
	v, err := d.uint(what)
	if err != nil {
		return 0, err
	}
	if v > max {
		return 0, d.errorf("%s: %d exceeds %d", what, v, max)
	}
	return v, nil
}

func (d *bodyDecoder) bool(what string) (bool, error) {
	c, err := d.peek(what)
	if err != nil {
		return false, err
	}
	if c != msgpcode.True && c != msgpcode.False {
		return false, d.errorf("%s: want bool, got code %#x", what, c)
	}
	v, err := d.dec.DecodeBool()
	if err != nil {
		return false, d.wrap(what, err)
	}
	return v, nil
}

// arrayLen decodes an array header. nil is allowed only when nilOK, and
// returns -1. The length is bounded by limit and by the remaining bytes,
// given that each element takes at least minElem bytes.
func (d *bodyDecoder) arrayLen(what string, nilOK bool, limit, minElem int) (int, error) {
	c, err := d.peek(what)
	if err != nil {
		return 0, err
	}
	switch {
	case c == msgpcode.Nil && nilOK:
	case c >= msgpcode.FixedArrayLow && c <= msgpcode.FixedArrayHigh:
	case c == msgpcode.Array16 || c == msgpcode.Array32:
	default:
		return 0, d.errorf("%s: want array, got code %#x", what, c)
	}
	var n int
	if c >= msgpcode.FixedArrayLow && c <= msgpcode.FixedArrayHigh {
		_, _ = d.rd.ReadByte() // fast path: the length is in the code
		n = int(c & msgpcode.FixedArrayMask)
	} else if n, err = d.dec.DecodeArrayLen(); err != nil {
		return 0, d.wrap(what, err)
	}
	if n < 0 {
		return -1, nil
	}
	if n > limit {
		return 0, d.errorf("%s: %d elements, limit %d", what, n, limit)
	}
	if n > d.remaining()/minElem {
		return 0, d.errorf("%s: %d elements cannot fit in the %d bytes left", what, n, d.remaining())
	}
	return n, nil
}

// fixedArray decodes an array header that must have exactly n elements.
func (d *bodyDecoder) fixedArray(what string, n int) error {
	got, err := d.arrayLen(what, false, n, 1)
	if err != nil {
		return err
	}
	if got != n {
		return d.errorf("%s: %d fields, want %d", what, got, n)
	}
	return nil
}

// rawLen decodes a str or bin header (per str) and bounds its length by
// limit and the remaining bytes, then returns the payload slice of body.
func (d *bodyDecoder) raw(what string, str bool, limit int) ([]byte, bool, error) {
	c, err := d.peek(what)
	if err != nil {
		return nil, false, err
	}
	if str {
		if !msgpcode.IsFixedString(c) && c != msgpcode.Str8 && c != msgpcode.Str16 && c != msgpcode.Str32 {
			return nil, false, d.errorf("%s: want string, got code %#x", what, c)
		}
	} else if c != msgpcode.Nil && c != msgpcode.Bin8 && c != msgpcode.Bin16 && c != msgpcode.Bin32 {
		return nil, false, d.errorf("%s: want bytes, got code %#x", what, c)
	}
	var n int
	if msgpcode.IsFixedString(c) {
		_, _ = d.rd.ReadByte() // fast path: the length is in the code
		n = int(c & msgpcode.FixedStrMask)
	} else if n, err = d.dec.DecodeBytesLen(); err != nil {
		return nil, false, d.wrap(what, err)
	}
	if n < 0 {
		return nil, true, nil
	}
	if n > limit {
		return nil, false, d.errorf("%s: %d bytes, limit %d", what, n, limit)
	}
	if n > d.remaining() {
		return nil, false, d.errorf("%s: %d bytes but only %d left", what, n, d.remaining())
	}
	off := len(d.body) - d.remaining()
	if _, err := d.rd.Seek(int64(n), io.SeekCurrent); err != nil {
		return nil, false, d.wrap(what, err)
	}
	return d.body[off : off+n : off+n], false, nil
}

// str decodes a string of at most limit bytes (copied).
func (d *bodyDecoder) str(what string, limit int) (string, error) {
	b, _, err := d.raw(what, true, limit)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// bin decodes a byte string (or nil) that aliases the body.
func (d *bodyDecoder) bin(what string) ([]byte, error) {
	b, isNil, err := d.raw(what, false, d.remaining())
	if err != nil || isNil {
		return nil, err
	}
	return b, nil
}

// end fails unless the whole body was consumed.
func (d *bodyDecoder) end(what string) error {
	if n := d.remaining(); n != 0 {
		return d.errorf("%s: %d trailing bytes", what, n)
	}
	return nil
}
