package tcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Wire format of every frame:
//
//	[magic 2B "TD"][version 1B][type 1B][length 4B big-endian][body: length bytes]
const (
	magic0       byte = 'T'
	magic1       byte = 'D'
	wireVersion  byte = 2
	frameHdrSize      = 8
)

// frameType says what a frame's body holds.
type frameType uint8

const (
	frameHello      frameType = iota + 1 // dialer -> listener: hello (handshake)
	frameHelloReply                      // listener -> dialer: accept or refuse with a reason
	frameMessage                         // one raft.Message
	frameKeepalive                       // empty; keeps an idle connection open
	frameSnapHeader                      // the raft.Message (MsgSnap) announcing a snapshot
	frameSnapChunk                       // raw snapshot bytes
	frameSnapEnd                         // total byte count; no more chunks
	frameSnapAck                         // receiver -> sender: handler's verdict
)

// String returns the frame type's name.
func (t frameType) String() string {
	switch t {
	case frameHello:
		return "hello"
	case frameHelloReply:
		return "hello-reply"
	case frameMessage:
		return "message"
	case frameKeepalive:
		return "keepalive"
	case frameSnapHeader:
		return "snap-header"
	case frameSnapChunk:
		return "snap-chunk"
	case frameSnapEnd:
		return "snap-end"
	case frameSnapAck:
		return "snap-ack"
	}
	return fmt.Sprintf("frameType(%d)", uint8(t))
}

func (t frameType) valid() bool { return t >= frameHello && t <= frameSnapAck }

// Frame errors; readFrame wraps them with detail.
var (
	errBadMagic      = errors.New("tcp: bad frame magic (not a typedraft peer?)")
	errBadVersion    = errors.New("tcp: unsupported wire version")
	errBadFrameType  = errors.New("tcp: unknown frame type")
	errFrameTooLarge = errors.New("tcp: frame exceeds max frame size")
)

// initialBodyAlloc caps the first allocation for a frame body: a larger
// body grows only as its bytes actually arrive, so a length field that lies
// costs at most about twice the bytes really sent.
const initialBodyAlloc = 64 << 10

// putFrameHeader writes a frame header for a body of n bytes into hdr.
func putFrameHeader(hdr *[frameHdrSize]byte, t frameType, n int) {
	hdr[0], hdr[1], hdr[2], hdr[3] = magic0, magic1, wireVersion, byte(t)
	binary.BigEndian.PutUint32(hdr[4:], uint32(n))
}

// writeFrame writes one frame to w. The caller ensures len(body) fits the
// peer's frame limit.
func writeFrame(w io.Writer, t frameType, body []byte) error {
	var hdr [frameHdrSize]byte
	putFrameHeader(&hdr, t, len(body))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if len(body) == 0 {
		return nil
	}
	_, err := w.Write(body)
	return err
}

// readFrame reads one frame from r. Its length is checked against max before
// anything is allocated. The body is read into buf when it fits (buf may be
// nil); otherwise a new slice is allocated, growing with the bytes received.
// The returned body aliases buf or the new slice.
//
// Errors: io.EOF if r ends before the first header byte; otherwise an error
// wrapping io.ErrUnexpectedEOF, errBadMagic, errBadVersion, errBadFrameType,
// errFrameTooLarge, or r's error.
func readFrame(r io.Reader, max int, buf []byte) (frameType, []byte, error) {
	t, n, err := readFrameHeader(r, max)
	if err != nil {
		return 0, nil, err
	}
	body, err := readBody(r, n, buf)
	if err != nil {
		return 0, nil, fmt.Errorf("tcp: read %s frame body (%d bytes): %w", t, n, err)
	}
	return t, body, nil
}

// readFrameHeader reads and checks one frame header from r and returns the
// frame's type and body length (at most max). Errors: as readFrame's.
func readFrameHeader(r io.Reader, max int) (frameType, int, error) {
	var hdr [frameHdrSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, 0, io.EOF
		}
		return 0, 0, fmt.Errorf("tcp: read frame header: %w", err)
	}
	if hdr[0] != magic0 || hdr[1] != magic1 {
		return 0, 0, fmt.Errorf("%w: got %#x %#x", errBadMagic, hdr[0], hdr[1])
	}
	if hdr[2] != wireVersion {
		return 0, 0, fmt.Errorf("%w: peer speaks version %d, this node %d", errBadVersion, hdr[2], wireVersion)
	}
	t := frameType(hdr[3])
	if !t.valid() {
		return 0, 0, fmt.Errorf("%w: %d", errBadFrameType, hdr[3])
	}
	n := uint64(binary.BigEndian.Uint32(hdr[4:]))
	if max < 0 || n > uint64(max) {
		return 0, 0, fmt.Errorf("%w: %s frame of %d bytes, limit %d", errFrameTooLarge, t, n, max)
	}
	return t, int(n), nil
}

// readBody reads exactly n bytes, reusing buf when it is large enough and
// otherwise growing a new slice as data arrives.
func readBody(r io.Reader, n int, buf []byte) ([]byte, error) {
	if n <= cap(buf) {
		b := buf[:n]
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, unexpected(err)
		}
		return b, nil
	}
	b := make([]byte, min(n, initialBodyAlloc))
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, unexpected(err)
	}
	for len(b) < n {
		grow := min(n-len(b), len(b)) // double, never past n
		b = append(b, make([]byte, grow)...)
		if _, err := io.ReadFull(r, b[len(b)-grow:]); err != nil {
			return nil, unexpected(err)
		}
	}
	return b, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
