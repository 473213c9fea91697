// Package codec turns application commands into the bytes stored in log
// entries and back. The raft package calls a Codec from many goroutines, so
// implementations must be safe for concurrent use.
package codec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// Codec encodes and decodes values. Marshal's result belongs to the caller;
// Unmarshal must not keep a reference to data after it returns. Both are
// safe for concurrent use and return an error (never panic) on values they
// cannot encode or bytes they cannot decode.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
	// Name identifies the codec in logs and errors, e.g. "msgpack".
	Name() string
}

// MsgpackMaxAmplification bounds how many bytes the Msgpack codec lets the
// values of arrays and maps allocate per input byte when it decodes (plus
// 64 KiB): decoding into slices of large structs would otherwise turn a
// small input of nils into gigabytes (8 MiB of nils into []struct{ 256
// bytes } is 2 GiB). It is estimated from the input's element count and the
// largest element type reachable from the decoded value's type. A command
// of MaxEntryBytes (8 MiB by default) may thus allocate up to 256 MiB.
const MsgpackMaxAmplification = 32

// decodeBudget is the allocation the Msgpack codec allows for n input bytes.
func decodeBudget(n int) uint64 { return MsgpackMaxAmplification*uint64(n) + 64<<10 }

// Msgpack returns the default codec: MessagePack via
// github.com/vmihailenco/msgpack/v5, with struct fields keyed by their
// `msgpack` tags (falling back to field names).
//
// Unmarshal first checks the input with CheckMsgpack(data, MsgpackMaxDepth),
// because the msgpack library allocates whatever length a header declares
// (gigabytes for a 5-byte input) and recurses once per nesting level. Input
// that is not exactly one well-formed value — truncated, declaring lengths
// beyond its size, nested deeper than MsgpackMaxDepth, or followed by
// trailing bytes — is rejected with an error matching ErrInvalidMsgpack
// before any decoding, so decoding allocates in proportion to len(data).
// Input whose arrays and maps would make decoding into v allocate more than
// MsgpackMaxAmplification times its size is rejected the same way.
func Msgpack() Codec { return msgpackCodec{} }

// JSON returns a codec based on encoding/json. Decoding rejects trailing data.
func JSON() Codec { return jsonCodec{} }

type msgpackCodec struct{}

func (msgpackCodec) Name() string { return "msgpack" }

// encBuf is a pooled encoder with its buffer: encoding into a warm buffer
// and copying the result out costs one exact-size allocation instead of the
// buffer's growth steps.
type encBuf struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var encPool = sync.Pool{New: func() any {
	e := &encBuf{}
	e.enc = msgpack.NewEncoder(&e.buf)
	return e
}}

// maxPooledBuf bounds the buffers kept in encPool, so one huge command does
// not pin its buffer.
const maxPooledBuf = 64 << 10

func (msgpackCodec) Marshal(v any) ([]byte, error) {
	e := encPool.Get().(*encBuf)
	e.buf.Reset()
	err := e.enc.Encode(v)
	var out []byte
	if err == nil {
		out = bytes.Clone(e.buf.Bytes())
	}
	if e.buf.Cap() <= maxPooledBuf {
		encPool.Put(e)
	}
	if err != nil {
		return nil, fmt.Errorf("codec: msgpack marshal %T: %w", v, err)
	}
	return out, nil
}

func (msgpackCodec) Unmarshal(data []byte, v any) error {
	elems, err := checkMsgpack(data, MsgpackMaxDepth)
	if err != nil {
		return fmt.Errorf("codec: msgpack unmarshal %d bytes into %T: %w", len(data), v, err)
	}
	if est, limit := elems*uint64(elemSize(v)), decodeBudget(len(data)); est > limit {
		return fmt.Errorf("codec: msgpack unmarshal %d bytes into %T: %d array and map values would allocate about %d bytes, more than %d (MsgpackMaxAmplification x the input): %w",
			len(data), v, elems, est, limit, ErrInvalidMsgpack)
	}
	d := decPool.Get().(*decBuf)
	d.r.Reset(data)
	// Reset clears every decoder option, as msgpack.Unmarshal's own Reset
	// does: the pooled decoder decodes exactly as msgpack.Unmarshal would.
	d.dec.Reset(&d.r)
	err = d.dec.Decode(v)
	d.r.Reset(nil)
	d.dec.Reset(&d.r)
	decPool.Put(d)
	if err != nil {
		return fmt.Errorf("codec: msgpack unmarshal %d bytes into %T: %w", len(data), v, err)
	}
	return nil
}

// decBuf is a pooled decoder reading from a reusable bytes.Reader.
type decBuf struct {
	r   bytes.Reader
	dec *msgpack.Decoder
}

var decPool = sync.Pool{New: func() any {
	d := &decBuf{}
	d.dec = msgpack.NewDecoder(&d.r)
	return d
}}

type jsonCodec struct{}

func (jsonCodec) Name() string { return "json" }

func (jsonCodec) Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("codec: json marshal %T: %w", v, err)
	}
	return b, nil
}

func (jsonCodec) Unmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("codec: json unmarshal %d bytes into %T: %w", len(data), v, err)
	}
	if dec.More() {
		return fmt.Errorf("codec: json unmarshal into %T: trailing data after value", v)
	}
	return nil
}
