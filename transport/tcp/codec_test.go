package tcp

import (
	"bytes"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/typedraft/typedraft/raft"
)

func encodeForTest(t testing.TB, m raft.Message) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := encodeMessage(msgpack.NewEncoder(&buf), &m); err != nil {
		t.Fatalf("encode %v: %v", m, err)
	}
	return buf.Bytes()
}

// fullMessages returns one message per type with every field set to a
// distinct non-zero value, plus variants exercising nil versus empty.
func fullMessages() []raft.Message {
	var out []raft.Message
	for typ := raft.MsgVote; typ.Valid(); typ++ {
		k := uint64(typ)
		out = append(out, raft.Message{
			Type: typ, From: "node-α", To: "node-β",
			Term: 1<<63 + k, LogTerm: 1<<32 + k, Index: 1<<16 + k, Commit: 1<<8 + k,
			Entries: []raft.Entry{
				{Index: 1, Term: 2, Type: raft.EntryCommand, Data: []byte("cmd")},
				{Index: 2, Term: 3, Type: raft.EntryNoop},
				{Index: 3, Term: 4, Type: raft.EntryConfig, Data: []byte{}},
				{Index: 1<<64 - 1, Term: 1<<64 - 1, Type: raft.EntryCommand, Data: bytes.Repeat([]byte{0xff}, 70000)},
			},
			Reject: true, Hint: 77 + k, HintTerm: 88 + k, Transfer: true, Context: 99 + k, Lease: true, Leader: "node-γ",
			Snapshot: &raft.SnapshotMeta{
				Index: 10 + k, Term: 20 + k, ConfigIndex: 30 + k, Size: 1<<62 + int64(k),
				Configuration: raft.Configuration{
					Servers: []raft.Server{
						{ID: "a", Addr: "127.0.0.1:1", Suffrage: raft.Voter},
						{ID: "b", Addr: "", Suffrage: raft.Learner},
					},
					Old: []raft.Server{{ID: "c", Addr: "host:3", Suffrage: raft.Voter}},
				},
			},
		})
	}
	out = append(out,
		raft.Message{Type: raft.MsgApp, From: "x", To: "y"},                          // nil entries, nil snapshot
		raft.Message{Type: raft.MsgApp, From: "x", To: "y", Entries: []raft.Entry{}}, // empty entries
		raft.Message{Type: raft.MsgSnap, From: "", To: "", Snapshot: &raft.SnapshotMeta{
			Configuration: raft.Configuration{Servers: []raft.Server{}},
		}},
	)
	return out
}

func TestMessageRoundTripEveryField(t *testing.T) {
	for _, m := range fullMessages() {
		body := encodeForTest(t, m)
		got, err := decodeMessage(body)
		if err != nil {
			t.Fatalf("decode %v: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip changed the message:\n got %#v\nwant %#v", got, m)
		}
	}
}

// TestRoundTripCoversEveryField fails when raft.Message or its parts gain a
// field that the codec does not know about: the counts below must then be
// updated together with codec.go.
func TestRoundTripCoversEveryField(t *testing.T) {
	for _, c := range []struct {
		v    any
		want int
	}{
		{raft.Message{}, messageFields},
		{raft.Entry{}, entryFields},
		{raft.SnapshotMeta{}, snapshotFields},
		{raft.Configuration{}, configFields},
		{raft.Server{}, serverFields},
	} {
		if n := reflect.TypeOf(c.v).NumField(); n != c.want {
			t.Errorf("%T has %d fields, the wire format encodes %d", c.v, n, c.want)
		}
	}
	// Every message field is non-zero in fullMessages()[0], so a field the
	// codec dropped would make the round trip test fail.
	m := reflect.ValueOf(fullMessages()[0])
	for i := 0; i < m.NumField(); i++ {
		if m.Field(i).IsZero() {
			t.Errorf("fullMessages leaves %s zero", m.Type().Field(i).Name)
		}
	}
}

func TestDecodedDataIsIndependentOfSender(t *testing.T) {
	data := []byte("payload")
	m := raft.Message{Type: raft.MsgApp, From: "a", To: "b", Entries: []raft.Entry{{Data: data}}}
	body := encodeForTest(t, m)
	data[0] = 'X' // the sender may not do this, but the copy must not care
	got, err := decodeMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Entries[0].Data) != "payload" {
		t.Fatalf("decoded data %q shares memory with the sender", got.Entries[0].Data)
	}
	if cap(got.Entries[0].Data) != len(got.Entries[0].Data) {
		t.Fatalf("decoded data has spare capacity %d: an append could overwrite the next field", cap(got.Entries[0].Data))
	}
}

func TestEncodeRejectsInvalidMessages(t *testing.T) {
	long := raft.NodeID(strings.Repeat("n", MaxIDLen+1))
	for name, m := range map[string]raft.Message{
		"unknown type":  {Type: 0},
		"type 200":      {Type: 200},
		"long from":     {Type: raft.MsgApp, From: long},
		"long to":       {Type: raft.MsgApp, To: long},
		"negative size": {Type: raft.MsgSnap, Snapshot: &raft.SnapshotMeta{Size: -1}},
		"long server id": {Type: raft.MsgSnap, Snapshot: &raft.SnapshotMeta{
			Configuration: raft.Configuration{Servers: []raft.Server{{ID: long}}}}},
	} {
		var buf bytes.Buffer
		err := encodeMessage(msgpack.NewEncoder(&buf), &m)
		if !errors.Is(err, errEncode) {
			t.Errorf("%s: got %v, want errEncode", name, err)
		}
	}
}

// mp builds a msgpack body from values with the library's generic encoder.
func mp(t testing.TB, vs ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	for _, v := range vs {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// validFields returns the 16 fields of a valid heartbeat as generic values.
func validFields() []any {
	return []any{uint8(raft.MsgHeartbeat), "a", "b", 1, 2, 3, 4, nil, false, 5, 6, nil, false, 7, false, ""}
}

func withField(i int, v any) []any {
	f := validFields()
	f[i] = v
	return f
}

func TestDecodeMessageRejectsMalformed(t *testing.T) {
	if _, err := decodeMessage(mp(t, validFields())); err != nil {
		t.Fatalf("the valid baseline does not decode: %v", err)
	}
	prefix := append([]byte{0xdc, 0x00, 0x10}, mp(t, validFields()[:7]...)...) // array header + 7 fields
	pad := make([]byte, 32)
	full := mp(t, withField(7, []any{[]any{1, 2, 0, bytes.Repeat([]byte{1}, 40)}}))
	cases := map[string][]byte{
		"empty":              {},
		"not an array":       mp(t, 5),
		"map":                mp(t, map[string]int{"y": 1}),
		"too few fields":     mp(t, validFields()[:15]),
		"too many fields":    mp(t, append(validFields(), 1)),
		"unknown type":       mp(t, withField(0, 99)),
		"type zero":          mp(t, withField(0, 0)),
		"negative type":      mp(t, withField(0, -1)),
		"negative term":      mp(t, withField(3, -5)),
		"float term":         mp(t, withField(3, 1.5)),
		"nil term":           mp(t, withField(3, nil)),
		"from is bytes":      mp(t, withField(1, []byte("a"))),
		"from is int":        mp(t, withField(1, 7)),
		"long from":          mp(t, withField(1, strings.Repeat("x", MaxIDLen+1))),
		"reject is int":      mp(t, withField(8, 1)),
		"entries is map":     mp(t, withField(7, map[string]int{})),
		"entry is short":     mp(t, withField(7, []any{[]any{1, 2, 0}})),
		"entry bad type":     mp(t, withField(7, []any{[]any{1, 2, 9, nil}})),
		"entry data string":  mp(t, withField(7, []any{[]any{1, 2, 0, "str"}})),
		"snapshot short":     mp(t, withField(11, []any{1, 2, 3, 4})),
		"snapshot neg size":  mp(t, withField(11, []any{1, 2, 3, -4, []any{nil, nil}})),
		"server bad suffr":   mp(t, withField(11, []any{1, 2, 3, 4, []any{[]any{[]any{"a", "b", 7}}, nil}})),
		"trailing bytes":     append(mp(t, validFields()), 0xc0),
		"truncated":          mp(t, validFields())[:10],
		"array32 huge":       {0xdd, 0xff, 0xff, 0xff, 0xff},
		"array16 > bytes":    {0xdc, 0xff, 0xff, 0x01},
		"fields, no array":   mp(t, validFields()[:7]...),
		"str32 huge from":    append([]byte{0xdc, 0x00, 0x10, 0x07, 0xdb, 0xff, 0xff, 0xff, 0xff}, pad...),
		"bin32 huge data":    append(append(bytes.Clone(prefix), 0x91, 0x94, 1, 1, 0, 0xc6, 0xff, 0xff, 0xff, 0xff), pad...),
		"truncated data":     full[:len(full)-10],
		"entries > bytes":    append(bytes.Clone(prefix), 0xdd, 0x00, 0x10, 0x00, 0x00),
		"config short":       mp(t, withField(11, []any{1, 2, 3, 4, []any{nil}})),
		"uint64 past int64":  mp(t, withField(11, []any{1, 2, 3, uint64(1 << 63), []any{nil, nil}})),
		"entries huge count": append(bytes.Clone(prefix), 0xdd, 0x7f, 0xff, 0xff, 0xff),
	}
	for name, body := range cases {
		_, err := decodeMessage(body)
		if !errors.Is(err, errMalformed) {
			t.Errorf("%s (% x): got %v, want errMalformed", name, body[:min(len(body), 16)], err)
		}
	}
}

// allocBytes returns how many bytes f allocates (single goroutine).
func allocBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDecodeHugeLengthsDoNotAllocate feeds declared lengths of 2^32-1 that
// msgpack would trust and checks the decoder fails without allocating them.
func TestDecodeHugeLengthsDoNotAllocate(t *testing.T) {
	prefix := append([]byte{0xdc, 0x00, 0x10}, mp(t, validFields()[:7]...)...)
	for name, body := range map[string][]byte{
		"array32":         {0xdd, 0xff, 0xff, 0xff, 0xff},
		"str32":           {0xdb, 0xff, 0xff, 0xff, 0xff},
		"bin32":           {0xc6, 0xff, 0xff, 0xff, 0xff},
		"entries array32": append(bytes.Clone(prefix), 0xdd, 0xff, 0xff, 0xff, 0xff),
		"data bin32":      append(bytes.Clone(prefix), 0x91, 0x94, 1, 1, 0, 0xc6, 0xff, 0xff, 0xff, 0xff),
		"from str32":      append([]byte{0xdc, 0x00, 0x10, 0x07, 0xdb, 0xff, 0xff, 0xff, 0xff}, make([]byte, 32)...),
	} {
		var err error
		n := allocBytes(func() { _, err = decodeMessage(body) })
		if err == nil {
			t.Errorf("%s: decoded", name)
		}
		if n > 64<<10 {
			t.Errorf("%s: allocated %d bytes", name, n)
		}
	}
}
