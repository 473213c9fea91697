package tcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func frameBytes(t frameType, body []byte) []byte {
	var buf bytes.Buffer
	_ = writeFrame(&buf, t, body)
	return buf.Bytes()
}

func header(t frameType, n uint32) []byte {
	h := []byte{magic0, magic1, wireVersion, byte(t), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[4:], n)
	return h
}

func TestFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 100, initialBodyAlloc - 1, initialBodyAlloc, initialBodyAlloc + 1, 5*initialBodyAlloc + 7} {
		body := bytes.Repeat([]byte{0xab}, n)
		in := frameBytes(frameMessage, body)
		for _, buf := range [][]byte{nil, make([]byte, 0, 10), make([]byte, 0, n+10)} {
			typ, got, err := readFrame(bytes.NewReader(in), DefaultMaxFrameSize, buf)
			if err != nil || typ != frameMessage || !bytes.Equal(got, body) {
				t.Fatalf("n=%d cap=%d: got %v %d bytes %v", n, cap(buf), typ, len(got), err)
			}
		}
	}
}

func TestReadFrameErrors(t *testing.T) {
	good := frameBytes(frameMessage, []byte{1, 2, 3})
	bad := func(i int, v byte) []byte { b := bytes.Clone(good); b[i] = v; return b }
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.EOF},
		{"short header", good[:5], io.ErrUnexpectedEOF},
		{"short body", good[:len(good)-1], io.ErrUnexpectedEOF},
		{"bad magic", bad(0, 'X'), errBadMagic},
		{"bad version", bad(2, 9), errBadVersion},
		{"frame type 0", bad(3, 0), errBadFrameType},
		{"frame type 200", bad(3, 200), errBadFrameType},
		{"too large", header(frameMessage, 1<<20+1), errFrameTooLarge},
		{"2^32-1", header(frameSnapChunk, 1<<32-1), errFrameTooLarge},
	}
	for _, c := range cases {
		_, _, err := readFrame(bytes.NewReader(c.in), 1<<20, nil)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

// TestReadFrameTooLargeAllocatesNothing: a header announcing more than the
// limit is refused before any body allocation.
func TestReadFrameTooLargeAllocatesNothing(t *testing.T) {
	in := append(header(frameMessage, 1<<32-1), make([]byte, 100)...)
	var err error
	n := allocBytes(func() {
		_, _, err = readFrame(bytes.NewReader(in), DefaultMaxFrameSize, nil)
	})
	if !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("got %v, want errFrameTooLarge", err)
	}
	if n > 4<<10 {
		t.Fatalf("refusing an oversized frame allocated %d bytes", n)
	}
}

// TestReadFrameLyingLengthAllocatesLittle: a length within the limit but
// far beyond the bytes actually sent costs about what was sent, not what
// was announced.
func TestReadFrameLyingLengthAllocatesLittle(t *testing.T) {
	in := append(header(frameSnapChunk, DefaultMaxFrameSize), make([]byte, 200<<10)...)
	var err error
	n := allocBytes(func() {
		_, _, err = readFrame(bytes.NewReader(in), DefaultMaxFrameSize, nil)
	})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want unexpected EOF", err)
	}
	if n > 1<<20 {
		t.Fatalf("a 64 MiB length with 200 KiB of data allocated %d bytes", n)
	}
}
