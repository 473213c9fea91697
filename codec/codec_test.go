package codec_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/typedraft/typedraft/codec"
)

// command is a typical application command, with the field types whose
// decoding allocates by declared length.
type command struct {
	Op     string            `msgpack:"o" json:"o"`
	Key    []byte            `msgpack:"k" json:"k"`
	Vals   []string          `msgpack:"v" json:"v"`
	Meta   map[string]string `msgpack:"m" json:"m"`
	Items  []item            `msgpack:"i" json:"i"`
	Nums   []int64           `msgpack:"n" json:"n"`
	Big    uint64            `msgpack:"b" json:"b"`
	Ratio  float64           `msgpack:"r" json:"r"`
	Ok     bool              `msgpack:"ok" json:"ok"`
	Nested *command          `msgpack:"x" json:"x"`
}

type item struct {
	ID   uint64   `msgpack:"id" json:"id"`
	Name string   `msgpack:"nm" json:"nm"`
	Tags []string `msgpack:"tg" json:"tg"`
}

func sampleCommand() command {
	return command{
		Op:    "put",
		Key:   []byte{0, 1, 2, 0xff},
		Vals:  []string{"a", "", "ünïcödé", strings.Repeat("long", 100)},
		Meta:  map[string]string{"k1": "v1", "": "empty key"},
		Items: []item{{ID: 1, Name: "one", Tags: []string{"x"}}, {ID: math.MaxUint64}},
		Nums:  []int64{math.MinInt64, -1, 0, 1, math.MaxInt64},
		Big:   math.MaxUint64,
		Ratio: 0.1,
		Ok:    true,
		Nested: &command{
			Op:   "nested",
			Key:  make([]byte, 70_000), // bin32
			Vals: make([]string, 20),   // array16
		},
	}
}

var codecs = []struct {
	name string
	c    codec.Codec
}{
	{"msgpack", codec.Msgpack()},
	{"json", codec.JSON()},
}

func TestName(t *testing.T) {
	for _, tc := range codecs {
		if got := tc.c.Name(); got != tc.name {
			t.Errorf("Name() = %q, want %q", got, tc.name)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range codecs {
		t.Run(tc.name, func(t *testing.T) {
			for _, in := range []command{sampleCommand(), {}} {
				b, err := tc.c.Marshal(in)
				if err != nil {
					t.Fatalf("Marshal: %v", err)
				}
				var out command
				if err := tc.c.Unmarshal(b, &out); err != nil {
					t.Fatalf("Unmarshal: %v", err)
				}
				if !reflect.DeepEqual(normalize(in), normalize(out)) {
					t.Fatalf("round trip changed the value:\n in  %+v\n out %+v", in, out)
				}
			}
			// Scalars and generic values.
			for _, in := range []any{"text", uint64(7), true, []any{"a", "b"}} {
				b, err := tc.c.Marshal(in)
				if err != nil {
					t.Fatalf("Marshal(%v): %v", in, err)
				}
				out := reflect.New(reflect.TypeOf(in))
				if err := tc.c.Unmarshal(b, out.Interface()); err != nil {
					t.Fatalf("Unmarshal(%v): %v", in, err)
				}
				if !reflect.DeepEqual(out.Elem().Interface(), in) {
					t.Fatalf("round trip of %#v gave %#v", in, out.Elem().Interface())
				}
			}
		})
	}
}

// normalize maps empty slices and maps to nil, which the codecs do not
// preserve (msgpack decodes an empty []byte as nil, JSON omits nothing but
// decodes null as nil).
func normalize(c command) command {
	if len(c.Key) == 0 {
		c.Key = nil
	}
	if len(c.Vals) == 0 {
		c.Vals = nil
	}
	if len(c.Meta) == 0 {
		c.Meta = nil
	}
	if len(c.Items) == 0 {
		c.Items = nil
	}
	for i := range c.Items {
		if len(c.Items[i].Tags) == 0 {
			c.Items[i].Tags = nil
		}
	}
	if len(c.Nums) == 0 {
		c.Nums = nil
	}
	if c.Nested != nil {
		n := normalize(*c.Nested)
		c.Nested = &n
	}
	return c
}

func TestUnmarshalGarbage(t *testing.T) {
	valid, err := codec.Msgpack().Marshal(sampleCommand())
	if err != nil {
		t.Fatal(err)
	}
	msgpackCases := []struct {
		name string
		data []byte
		// invalid says the input is not well-formed msgpack, so the error
		// must match codec.ErrInvalidMsgpack.
		invalid bool
	}{
		{"empty", nil, true},
		{"never-used byte", []byte{0xc1}, true},
		{"array32 of 2^32-1", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, true},
		{"str32 of 2^32-1", []byte{0xdb, 0xff, 0xff, 0xff, 0xff}, true},
		{"bin32 of 2^32-1", []byte{0xc6, 0xff, 0xff, 0xff, 0xff}, true},
		{"bin16 of 65535", []byte{0xc5, 0xff, 0xff}, true},
		{"map32 of 2^32-1", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, true},
		{"truncated command", valid[:len(valid)/2], true},
		{"trailing byte", append(append([]byte{}, valid...), 0xc0), true},
		{"string for a struct", []byte{0xa3, 'a', 'b', 'c'}, false},
		{"map with an integer where a string goes", []byte{0x81, 0xa1, 'o', 0x05}, false},
	}
	for _, tc := range msgpackCases {
		var v command
		err := codec.Msgpack().Unmarshal(tc.data, &v)
		if err == nil {
			t.Errorf("msgpack: Unmarshal(%s) succeeded", tc.name)
			continue
		}
		if got := errors.Is(err, codec.ErrInvalidMsgpack); got != tc.invalid {
			t.Errorf("msgpack: Unmarshal(%s): %v; matches ErrInvalidMsgpack: %v, want %v", tc.name, err, got, tc.invalid)
		}
		if !strings.Contains(err.Error(), "codec_test.command") {
			t.Errorf("msgpack: Unmarshal(%s): error %q does not name the target type", tc.name, err)
		}
	}
	for _, data := range []string{"", "{", `{"o": 5}`, `{"o":"x"} {}`, `{"o":"x"}garbage`, "\xff\xfe", `[1,2]`} {
		var v command
		if err := codec.JSON().Unmarshal([]byte(data), &v); err == nil {
			t.Errorf("json: Unmarshal(%q) succeeded", data)
		}
	}
}

func TestMarshalErrors(t *testing.T) {
	for _, tc := range codecs {
		for _, v := range []any{make(chan int), func() {}} {
			if _, err := tc.c.Marshal(v); err == nil {
				t.Errorf("%s: Marshal(%T) succeeded", tc.name, v)
			} else if !strings.Contains(err.Error(), fmt.Sprintf("%T", v)) {
				t.Errorf("%s: Marshal(%T): error %q does not name the type", tc.name, v, err)
			}
		}
	}
}

// TestConcurrentUse: the codecs are safe for concurrent use (run with
// -race).
func TestConcurrentUse(t *testing.T) {
	for _, tc := range codecs {
		in := sampleCommand()
		in.Nested = nil
		want, err := tc.c.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					b, err := tc.c.Marshal(in)
					if err != nil || len(b) != len(want) {
						errs <- fmt.Errorf("%s: Marshal: %d bytes, %v", tc.name, len(b), err)
						return
					}
					var out command
					if err := tc.c.Unmarshal(b, &out); err != nil || out.Op != in.Op {
						errs <- fmt.Errorf("%s: Unmarshal: %v", tc.name, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}

// The pooled encoder writes exactly what msgpack.Marshal writes, call after
// call (no state leaks from one value into the next through the pool).
func TestMsgpackMarshalMatchesLibrary(t *testing.T) {
	type cmd struct {
		Op   string            `msgpack:"o"`
		Key  []byte            `msgpack:"k"`
		Tags map[string]uint64 `msgpack:"t"`
	}
	values := []any{
		cmd{Op: "put", Key: []byte("k1"), Tags: map[string]uint64{"a": 1}},
		[]byte(nil), "", uint64(1 << 40), cmd{}, []any{1, "x", nil, []byte{0xff}},
		make([]byte, 100<<10), // larger than the pooled-buffer bound
		cmd{Op: "del"},
	}
	c := codec.Msgpack()
	for round := range 3 {
		for i, v := range values {
			got, err := c.Marshal(v)
			if err != nil {
				t.Fatalf("round %d value %d: %v", round, i, err)
			}
			want, err := msgpack.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("round %d value %d (%T): % x, msgpack.Marshal gives % x", round, i, v, got, want)
			}
		}
	}
}

func BenchmarkMsgpackMarshal(b *testing.B) {
	type cmd struct {
		Op  string `msgpack:"o"`
		Key string `msgpack:"k"`
		Val []byte `msgpack:"v"`
	}
	v := cmd{Op: "put", Key: "key-00001", Val: make([]byte, 128)}
	c := codec.Msgpack()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
}

// wide is a command shape that amplifies: a slice of large structs.
type wide struct {
	Items []struct {
		A, B, C, D [4]uint64
		S          [8]string
	}
}

// A small input of nils cannot make the default codec allocate gigabytes:
// decoding 8 MiB of nils into a slice of 256-byte structs is refused with
// an error naming the bound, before anything is allocated.
func TestMsgpackBoundsDecodeAmplification(t *testing.T) {
	n := 8 << 20
	data := make([]byte, 0, n+16)
	data = append(data, 0x81, 0xa5, 'I', 't', 'e', 'm', 's', 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	for i := 0; i < n; i++ {
		data = append(data, 0xc0)
	}
	var w wide
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := codec.Msgpack().Unmarshal(data, &w)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, codec.ErrInvalidMsgpack) || !strings.Contains(err.Error(), "MsgpackMaxAmplification") {
		t.Fatalf("8 MiB of nils into []struct{256 bytes}: %v, want the amplification bound", err)
	}
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 64<<20 {
		t.Fatalf("refusing the input allocated %d bytes", grown)
	}
	// A legitimate command of the same shape decodes.
	ok := wide{Items: make([]struct {
		A, B, C, D [4]uint64
		S          [8]string
	}, 3)}
	b, err := codec.Msgpack().Marshal(ok)
	if err != nil {
		t.Fatal(err)
	}
	if err := codec.Msgpack().Unmarshal(b, &w); err != nil || len(w.Items) != 3 {
		t.Fatalf("a real command of the shape: %v (%d items)", err, len(w.Items))
	}
}
