package codec_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/typedraft/typedraft/codec"
)

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func rep(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// nest returns a value of n nested one-element arrays around nil.
func nest(n int) []byte { return append(rep(0x91, n), 0xc0) }

// validValues are well-formed msgpack values covering every type byte
// family and length width, with the depth of their deepest container.
var validValues = []struct {
	name  string
	data  []byte
	depth int
}{
	{"positive fixint", []byte{0x7f}, 0},
	{"negative fixint", []byte{0xe0}, 0},
	{"nil", []byte{0xc0}, 0},
	{"false", []byte{0xc2}, 0},
	{"true", []byte{0xc3}, 0},
	{"float32", cat([]byte{0xca}, rep(1, 4)), 0},
	{"float64", cat([]byte{0xcb}, rep(1, 8)), 0},
	{"uint8", []byte{0xcc, 1}, 0},
	{"uint16", []byte{0xcd, 1, 2}, 0},
	{"uint32", cat([]byte{0xce}, rep(1, 4)), 0},
	{"uint64", cat([]byte{0xcf}, rep(1, 8)), 0},
	{"int8", []byte{0xd0, 1}, 0},
	{"int16", []byte{0xd1, 1, 2}, 0},
	{"int32", cat([]byte{0xd2}, rep(1, 4)), 0},
	{"int64", cat([]byte{0xd3}, rep(1, 8)), 0},
	{"empty fixstr", []byte{0xa0}, 0},
	{"fixstr", []byte{0xa3, 'a', 'b', 'c'}, 0},
	{"fixstr 31", cat([]byte{0xbf}, rep('x', 31)), 0},
	{"str8", cat([]byte{0xd9, 40}, rep('x', 40)), 0},
	{"str16", cat([]byte{0xda, 0x01, 0x00}, rep('x', 256)), 0},
	{"str32", cat([]byte{0xdb, 0, 1, 0, 0}, rep('x', 65536)), 0},
	{"bin8", cat([]byte{0xc4, 3}, rep(9, 3)), 0},
	{"bin8 empty", []byte{0xc4, 0}, 0},
	{"bin16", cat([]byte{0xc5, 0x01, 0x00}, rep(9, 256)), 0},
	{"bin32", cat([]byte{0xc6, 0, 1, 0, 0}, rep(9, 65536)), 0},
	{"fixext1", []byte{0xd4, 5, 1}, 0},
	{"fixext2", []byte{0xd5, 5, 1, 2}, 0},
	{"fixext4", cat([]byte{0xd6, 5}, rep(1, 4)), 0},
	{"fixext8", cat([]byte{0xd7, 5}, rep(1, 8)), 0},
	{"fixext16", cat([]byte{0xd8, 5}, rep(1, 16)), 0},
	{"ext8", []byte{0xc7, 2, 5, 1, 2}, 0},
	{"ext8 empty", []byte{0xc7, 0, 5}, 0},
	{"ext16", cat([]byte{0xc8, 0x01, 0x00, 5}, rep(1, 256)), 0},
	{"ext32", cat([]byte{0xc9, 0, 0, 0, 3, 5}, rep(1, 3)), 0},
	{"empty fixarray", []byte{0x90}, 1},
	{"fixarray", []byte{0x93, 1, 2, 3}, 1},
	{"array16", cat([]byte{0xdc, 0, 20}, rep(0xc0, 20)), 1},
	{"array32", cat([]byte{0xdd, 0, 0, 0, 20}, rep(0xc0, 20)), 1},
	{"empty fixmap", []byte{0x80}, 1},
	{"fixmap", []byte{0x82, 0xa1, 'a', 1, 0xa1, 'b', 0x90}, 2},
	{"map16", cat([]byte{0xde, 0, 2}, []byte{1, 2, 3, 4}), 1},
	{"map32", cat([]byte{0xdf, 0, 0, 0, 1}, []byte{0x90, 0x80}), 2},
	{"nested 40", nest(40), 40},
	{"array then scalar siblings", []byte{0x93, 0x91, 0x91, 0xc0, 0x90, 7}, 3},
}

// invalidValues are inputs CheckMsgpack must reject with any depth limit.
var invalidValues = []struct {
	name string
	data []byte
}{
	{"empty", nil},
	{"never-used 0xc1", []byte{0xc1}},
	{"0xc1 inside an array", []byte{0x92, 1, 0xc1}},
	{"array32 of 2^32-1", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}},
	{"str32 of 2^32-1", []byte{0xdb, 0xff, 0xff, 0xff, 0xff}},
	{"bin32 of 2^32-1", []byte{0xc6, 0xff, 0xff, 0xff, 0xff}},
	{"bin16 of 65535", []byte{0xc5, 0xff, 0xff}},
	{"map32 of 2^32-1", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}},
	{"map16 of 65535", []byte{0xde, 0xff, 0xff}},
	{"ext32 of 2^32-1", []byte{0xc9, 0xff, 0xff, 0xff, 0xff, 1}},
	{"array16 needing more bytes than remain", cat([]byte{0xdc, 0, 10}, rep(0xc0, 9))},
	{"map with a key and no value", []byte{0x81, 0xa1, 'k'}},
	{"map of 3 pairs with 5 bytes", cat([]byte{0x83}, rep(1, 5))},
	{"truncated length", []byte{0xda, 0x01}},
	{"truncated string", []byte{0xa5, 'a', 'b'}},
	{"truncated int64", []byte{0xd3, 1, 2}},
	{"truncated float64", []byte{0xcb, 1, 2, 3}},
	{"truncated fixext16", cat([]byte{0xd8, 1}, rep(1, 15))},
	{"ext8 without its type", []byte{0xc7, 0}},
	{"ext8 with a short payload", []byte{0xc7, 2, 5, 1}},
	{"trailing byte", []byte{0xc0, 0xc0}},
	{"trailing array", []byte{0x90, 0x90}},
	{"two values in an array of one", []byte{0x91, 1, 2}},
}

func TestCheckMsgpackValid(t *testing.T) {
	for _, tc := range validValues {
		if err := codec.CheckMsgpack(tc.data, tc.depth); err != nil {
			t.Errorf("%s at max depth %d: %v", tc.name, tc.depth, err)
		}
		if err := codec.CheckMsgpack(tc.data, codec.MsgpackMaxDepth); err != nil {
			t.Errorf("%s at the default max depth: %v", tc.name, err)
		}
		if tc.depth > 0 {
			err := codec.CheckMsgpack(tc.data, tc.depth-1)
			if !errors.Is(err, codec.ErrInvalidMsgpack) || !strings.Contains(err.Error(), "nesting") {
				t.Errorf("%s (depth %d) at max depth %d: %v, want a nesting error", tc.name, tc.depth, tc.depth-1, err)
			}
		}
		// Every strict prefix of a value is incomplete (sampled for long
		// values).
		for n := 0; n < len(tc.data); n++ {
			if n > 100 && n < len(tc.data)-100 && n%997 != 0 {
				continue
			}
			if err := codec.CheckMsgpack(tc.data[:n], codec.MsgpackMaxDepth); !errors.Is(err, codec.ErrInvalidMsgpack) {
				t.Fatalf("%s truncated to %d of %d bytes: %v, want ErrInvalidMsgpack", tc.name, n, len(tc.data), err)
			}
		}
		// The reference decoder agrees.
		if depth, err := refCheck(tc.data); err != nil || depth != tc.depth {
			t.Errorf("%s: reference says depth %d, %v; table says %d", tc.name, depth, err, tc.depth)
		}
	}
}

func TestCheckMsgpackInvalid(t *testing.T) {
	for _, tc := range invalidValues {
		err := codec.CheckMsgpack(tc.data, 1000)
		if !errors.Is(err, codec.ErrInvalidMsgpack) {
			t.Errorf("%s: %v, want an error matching ErrInvalidMsgpack", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), "offset") {
			t.Errorf("%s: error %q does not give the offset", tc.name, err)
		}
		if _, ref := refCheck(tc.data); ref == nil {
			t.Errorf("%s: the reference decoder accepts it", tc.name)
		}
	}
	if err := codec.CheckMsgpack([]byte{0xc0}, -1); !errors.Is(err, codec.ErrInvalidMsgpack) {
		t.Errorf("negative max depth: %v, want an error", err)
	}
}

// TestCheckMsgpackErrorOffsets: errors name the offset of the offending
// value and the problem.
func TestCheckMsgpackErrorOffsets(t *testing.T) {
	for _, tc := range []struct {
		data  []byte
		depth int
		want  string
	}{
		{[]byte{0x92, 1, 0xdd, 0xff, 0xff, 0xff, 0xff}, 5, "at offset 2: container of 4294967295 values"},
		{[]byte{0x92, 1, 0xdb, 0xff, 0xff, 0xff, 0xff}, 5, "at offset 2: truncated string: needs 4294967295 more bytes, 0 remain"},
		{[]byte{0x92, 0x91, 0x91, 0xc0, 0xc0}, 2, "at offset 2: nesting deeper than 2"},
		{[]byte{0x91, 0xc0, 0x90}, 5, "at offset 2: 1 bytes after the value"},
		{[]byte{0x91, 0xc1}, 5, "at offset 1: type byte 0xc1"},
		{[]byte{0x92, 0xc0}, 5, "at offset 0: container of 2 values needs at least 2 more bytes, 1 remain"},
		{[]byte{0x81, 0xa1, 'k'}, 5, "at offset 3: truncated: a value is missing"},
		{[]byte{0x91, 0xa3, 'a'}, 5, "at offset 1: truncated string: needs 3 more bytes, 1 remain"},
		{[]byte{0x91, 0xda, 1}, 5, "at offset 1: truncated string length: needs 2 more bytes, 1 remain"},
	} {
		err := codec.CheckMsgpack(tc.data, tc.depth)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckMsgpack(% x, %d) = %v, want an error containing %q", tc.data, tc.depth, err, tc.want)
		}
	}
}

// TestCheckMsgpackAcceptsEncoderOutput: whatever the msgpack library
// encodes passes, including values nested deeper than the counters kept
// on the stack.
func TestCheckMsgpackAcceptsEncoderOutput(t *testing.T) {
	var deep any = "leaf"
	for range 100 {
		deep = []any{deep, map[string]any{"k": 1}}
	}
	for _, v := range []any{
		sampleCommand(), command{}, deep, time.Unix(1700000000, 5), map[int]string{1: "a"},
		[]float32{1.5}, int64(-1 << 40), strings.Repeat("s", 70_000),
	} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%T): %v", v, err)
		}
		if err := codec.CheckMsgpack(b, 1000); err != nil {
			t.Errorf("CheckMsgpack(encoding of %T): %v", v, err)
		}
	}
}

// TestCheckMsgpackAllocations: checking well-formed input nested up to 32
// levels allocates nothing.
func TestCheckMsgpackAllocations(t *testing.T) {
	b, err := msgpack.Marshal(sampleCommand())
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range [][]byte{b, nest(32)} {
		if n := testing.AllocsPerRun(20, func() { _ = codec.CheckMsgpack(data, 100) }); n != 0 {
			t.Errorf("CheckMsgpack allocates %v times per call on %d bytes", n, len(data))
		}
	}
}

// refCheck is an independent reference for CheckMsgpack built on the
// msgpack library's decoder: it returns the nesting depth of data if data
// is exactly one well-formed value. It is only used on small inputs (the
// library's Skip allocates declared lengths in chunks of up to 1 MiB).
func refCheck(data []byte) (int, error) {
	r := bytes.NewReader(data)
	dec := msgpack.NewDecoder(r)
	var walk func() (int, error)
	walk = func() (int, error) {
		c, err := dec.PeekCode()
		if err != nil {
			return 0, err
		}
		n, mult := 0, 0
		switch {
		case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
			n, err = dec.DecodeArrayLen()
			mult = 1
		case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
			n, err = dec.DecodeMapLen()
			mult = 2
		default:
			return 0, dec.Skip()
		}
		if err != nil {
			return 0, err
		}
		deepest := 0
		for range n * mult {
			d, err := walk()
			if err != nil {
				return 0, err
			}
			deepest = max(deepest, d)
		}
		return deepest + 1, nil
	}
	depth, err := walk()
	if err != nil {
		return 0, err
	}
	if r.Len() != 0 {
		return 0, errors.New("reference: trailing bytes")
	}
	return depth, nil
}

// BenchmarkCheckMsgpack checks the command BenchmarkMsgpackUnmarshal
// decodes, to compare the cost of the check with the decoding.
func BenchmarkCheckMsgpack(b *testing.B) {
	c := sampleCommand()
	c.Nested = nil
	data, err := msgpack.Marshal(c)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := codec.CheckMsgpack(data, codec.MsgpackMaxDepth); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMsgpackUnmarshal(b *testing.B) {
	c := sampleCommand()
	c.Nested = nil // a typical small command
	data, err := msgpack.Marshal(c)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var v command
		if err := codec.Msgpack().Unmarshal(data, &v); err != nil {
			b.Fatal(err)
		}
	}
}
