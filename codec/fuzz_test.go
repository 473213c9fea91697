package codec_test

import (
	"errors"
	"runtime"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/typedraft/typedraft/codec"
)

// hugeHeaders are msgpack headers declaring about 4 GiB (or 64 KiB) of
// content that is not there; before CheckMsgpack, decoding them made the
// msgpack library allocate up to the declared size.
var hugeHeaders = [][]byte{
	{0xdd, 0xff, 0xff, 0xff, 0xff}, // array32
	{0xdb, 0xff, 0xff, 0xff, 0xff}, // str32
	{0xc6, 0xff, 0xff, 0xff, 0xff}, // bin32
	{0xc5, 0xff, 0xff},             // bin16
	{0xdf, 0xff, 0xff, 0xff, 0xff}, // map32
	{0xc9, 0xff, 0xff, 0xff, 0xff}, // ext32
}

// fieldKeys are the msgpack keys of command's fields, so seeds can put a
// huge header where each field type is decoded.
var fieldKeys = []string{"o", "k", "v", "m", "i", "n", "x"}

// allocLimit is how many bytes decoding data may allocate: 1 MiB, plus an
// allowance proportional to the input, since a well-formed array of n nils
// legitimately decodes into n structs (or interfaces, maps...).
func allocLimit(data []byte) uint64 { return 1<<20 + 128*uint64(len(data)) }

// decodeAllocs decodes data into a new *T with the Msgpack codec and returns
// the error and the bytes allocated meanwhile. The fuzz target and the
// tests run on one goroutine, so TotalAlloc counts only the decoding.
func decodeAllocs[T any](data []byte) (uint64, error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var v T
	err := codec.Msgpack().Unmarshal(data, &v)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, err
}

// TestHugeHeadersAllocateLittle: each huge header, at the top level and in
// every field of a command, is rejected as invalid without allocating
// more than a few KiB.
func TestHugeHeadersAllocateLittle(t *testing.T) {
	for _, h := range hugeHeaders {
		inputs := [][]byte{h}
		for _, k := range fieldKeys {
			inputs = append(inputs, cat([]byte{0x81, 0xa1, k[0]}, h))
			inputs = append(inputs, cat([]byte{0x81, 0xa1, 'x', 0x81, 0xa1, k[0]}, h)) // nested command
		}
		for _, in := range inputs {
			for name, decode := range map[string]func([]byte) (uint64, error){
				"command": decodeAllocs[command], "any": decodeAllocs[any],
			} {
				n, err := decode(in)
				if !errors.Is(err, codec.ErrInvalidMsgpack) {
					t.Errorf("% x into %s: %v, want ErrInvalidMsgpack", in, name, err)
				}
				if n > 64<<10 {
					t.Errorf("% x into %s: allocated %d bytes", in, name, n)
				}
			}
		}
	}
}

// FuzzMsgpackUnmarshal: decoding any input into a command or an any
// returns (an error or a value) without panicking and without allocating
// more than allocLimit. Its seed corpus, which runs in every go test,
// holds the huge headers at the top level and in each field, truncated
// encodings and valid ones.
func FuzzMsgpackUnmarshal(f *testing.F) {
	valid, err := msgpack.Marshal(sampleCommand())
	if err != nil {
		f.Fatal(err)
	}
	small := sampleCommand()
	small.Nested, small.Vals = nil, small.Vals[:2]
	smallValid, err := msgpack.Marshal(small)
	if err != nil {
		f.Fatal(err)
	}
	for _, h := range hugeHeaders {
		f.Add(h)
		for _, k := range fieldKeys {
			f.Add(cat([]byte{0x81, 0xa1, k[0]}, h))
		}
	}
	for _, n := range []int{1, 2, 5, len(smallValid) / 2, len(smallValid) - 1} {
		f.Add(smallValid[:n])
	}
	f.Add(smallValid)
	f.Add(valid)
	f.Add(nest(300))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := decodeAllocs[command](data)
		if n > allocLimit(data) {
			t.Fatalf("decoding %d bytes into a command allocated %d bytes (err %v)", len(data), n, err)
		}
		n, err = decodeAllocs[any](data)
		if n > allocLimit(data) {
			t.Fatalf("decoding %d bytes into an any allocated %d bytes (err %v)", len(data), n, err)
		}
		if err == nil {
			if cerr := codec.CheckMsgpack(data, codec.MsgpackMaxDepth); cerr != nil {
				t.Fatalf("Unmarshal accepted input that CheckMsgpack rejects: %v", cerr)
			}
		}
	})
}

// FuzzCheckMsgpack compares CheckMsgpack with a reference built on the
// msgpack library's decoder: both accept exactly the same inputs, and the
// depth limit is exact.
func FuzzCheckMsgpack(f *testing.F) {
	for _, v := range validValues {
		if len(v.data) < 1000 {
			f.Add(v.data)
		}
	}
	for _, v := range invalidValues {
		f.Add(v.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return // the reference allocates declared lengths in 1 MiB chunks
		}
		depth, refErr := refCheck(data)
		err := codec.CheckMsgpack(data, len(data))
		if (err == nil) != (refErr == nil) {
			t.Fatalf("CheckMsgpack: %v; reference: %v", err, refErr)
		}
		if err != nil {
			if !errors.Is(err, codec.ErrInvalidMsgpack) {
				t.Fatalf("error %v does not match ErrInvalidMsgpack", err)
			}
			return
		}
		if err := codec.CheckMsgpack(data, depth); err != nil {
			t.Fatalf("rejected at its own depth %d: %v", depth, err)
		}
		if depth > 0 {
			if err := codec.CheckMsgpack(data, depth-1); err == nil {
				t.Fatalf("accepted with max depth %d, below its depth %d", depth-1, depth)
			}
		}
	})
}
