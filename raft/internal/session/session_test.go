package session

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestEntryRoundTrip(t *testing.T) {
	for _, e := range []Entry{
		{Kind: KindOpen, TTL: 1000, Max: 16},
		{Kind: KindCommand, ID: 7, Seq: 3, Payload: []byte("cmd")},
		{Kind: KindCommand, ID: 1 << 60, Seq: 1, Payload: []byte{}},
		{Kind: KindClose, ID: 9},
	} {
		got, err := Decode(Encode(nil, e))
		if err != nil {
			t.Fatalf("%+v: %v", e, err)
		}
		if e.Kind == KindCommand && len(e.Payload) == 0 {
			e.Payload = got.Payload // empty either way
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip %+v -> %+v", e, got)
		}
	}
	for _, bad := range [][]byte{nil, {9}, {KindOpen}, {KindOpen, 0x80}, {KindClose, 1, 2}, {KindCommand, 1}} {
		if _, err := Decode(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Decode(%v) = %v, want ErrCorrupt", bad, err)
		}
	}
}

func TestVerdicts(t *testing.T) {
	var tb Table
	tb.Open(5, 100, 10)
	if v, _ := tb.Check(6, 5, 1); v != Apply {
		t.Fatalf("first seq: %v", v)
	}
	res := Result{Index: 6, Term: 2, Resp: []byte("r"), Err: []byte("e")}
	tb.Record(6, 5, 1, res)
	if v, got := tb.Check(7, 5, 1); v != Duplicate || !reflect.DeepEqual(got, res) {
		t.Fatalf("retry: %v %+v", v, got)
	}
	if v, got := tb.Peek(5, 1); v != Duplicate || !reflect.DeepEqual(got, res) {
		t.Fatalf("peek: %v %+v", v, got)
	}
	if v, _ := tb.Check(8, 5, 2); v != Apply {
		t.Fatalf("next seq: %v", v)
	}
	tb.Record(8, 5, 2, Result{Index: 8})
	if v, _ := tb.Check(9, 5, 1); v != Stale {
		t.Fatalf("old seq: %v", v)
	}
	if v, _ := tb.Check(9, 99, 1); v != Unknown {
		t.Fatalf("unknown session: %v", v)
	}
	tb.Close(5)
	if v, _ := tb.Check(10, 5, 3); v != Unknown {
		t.Fatalf("closed session: %v", v)
	}
}

// Expiry is by log index: the same entries expire the same sessions.
func TestExpiryByIndex(t *testing.T) {
	var tb Table
	tb.Open(1, 10, 0)
	if v, _ := tb.Check(11, 1, 1); v != Apply {
		t.Fatalf("at the TTL: %v", v)
	}
	tb.Record(11, 1, 1, Result{Index: 11})
	if v, _ := tb.Check(21, 1, 2); v != Apply {
		t.Fatalf("touched at 11, checked at 21: %v", v)
	}
	if v, _ := tb.Check(32, 1, 2); v != Unknown {
		t.Fatalf("untouched for 11 entries: %v", v)
	}
	if tb.Len() != 0 {
		t.Fatalf("expired session kept: %d", tb.Len())
	}
}

// The table is bounded: opening beyond Max sweeps expired sessions, then
// evicts the least recently used one.
func TestBoundEvictsLRU(t *testing.T) {
	var tb Table
	tb.Open(1, 0, 2)
	tb.Open(2, 0, 2)
	tb.Check(3, 1, 1) // touch 1: 2 is now the least recently used
	tb.Record(3, 1, 1, Result{Index: 3})
	tb.Open(4, 0, 2)
	if v, _ := tb.Check(5, 2, 1); v != Unknown {
		t.Fatalf("LRU session 2 survived: %v", v)
	}
	if v, _ := tb.Check(5, 1, 1); v != Duplicate {
		t.Fatalf("session 1 evicted: %v", v)
	}
	if tb.Len() != 2 {
		t.Fatalf("len %d, want 2", tb.Len())
	}
	tb2 := Table{}
	tb2.Open(1, 5, 2)
	tb2.Open(2, 0, 2)
	tb2.Open(20, 0, 2) // 1 expired: swept instead of evicting 2
	if v, _ := tb2.Check(21, 2, 1); v != Apply {
		t.Fatalf("live session 2 evicted while an expired one was there: %v", v)
	}
}

func TestMarshalRoundTripAndDeterminism(t *testing.T) {
	var a, b Table
	for _, tb := range []*Table{&a, &b} {
		tb.Open(1, 50, 0)
		tb.Open(2, 0, 0)
		tb.Record(3, 1, 4, Result{Index: 3, Term: 1, Resp: []byte("x"), Err: []byte("y")})
		tb.Record(4, 2, 1, Result{Index: 4, Term: 1, Lost: true})
	}
	if !bytes.Equal(a.Marshal(), b.Marshal()) {
		t.Fatal("equal tables encode differently")
	}
	var c Table
	if err := c.Unmarshal(a.Marshal()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Marshal(), a.Marshal()) {
		t.Fatal("round trip changed the table")
	}
	if v, r := c.Check(5, 1, 4); v != Duplicate || string(r.Resp) != "x" || string(r.Err) != "y" {
		t.Fatalf("restored result: %v %+v", v, r)
	}
	enc := a.Marshal()
	for i := 0; i < len(enc); i++ {
		var d Table
		if err := d.Unmarshal(enc[:i]); err == nil {
			t.Fatalf("truncated at %d of %d decoded", i, len(enc))
		}
	}
	if err := (&Table{}).Unmarshal([]byte{tableVersion, 0xff, 0xff, 0xff, 0xff, 0x0f}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("huge count: %v", err)
	}
}

func TestSection(t *testing.T) {
	var tb Table
	tb.Open(1, 0, 0)
	tb.Record(2, 1, 1, Result{Index: 2, Resp: []byte("r")})
	var buf bytes.Buffer
	if err := WriteSection(&buf, tb.Marshal(), false); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("app data")
	br := bufio.NewReader(&buf)
	got, err := ReadSection(br)
	if err != nil || got.Len() != 1 {
		t.Fatalf("ReadSection: %v len %d", err, got.Len())
	}
	rest, _ := br.ReadString(0)
	if rest != "app data" {
		t.Fatalf("state machine data %q", rest)
	}
	// No section: the data is left as it was.
	br = bufio.NewReader(bytes.NewReader([]byte("plain")))
	if got, err := ReadSection(br); err != nil || got.Len() != 0 {
		t.Fatalf("no section: %v", err)
	}
	if rest, _ := br.ReadString(0); rest != "plain" {
		t.Fatalf("data without a section changed: %q", rest)
	}
	// A forged length and a truncated section fail with a clear error.
	forged := append(append([]byte(nil), magic[:]...), 0xff, 0xff, 0xff, 0xff, 0x7f)
	if _, err := ReadSection(bufio.NewReader(bytes.NewReader(forged))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("forged length: %v", err)
	}
	short := append(append([]byte(nil), magic[:]...), 10, 1, 2)
	if _, err := ReadSection(bufio.NewReader(bytes.NewReader(short))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated section: %v", err)
	}
}

// Whatever the bytes, decoding returns a table or an error: no panic, no
// allocation sized by a forged count.
func FuzzDecode(f *testing.F) {
	var tb Table
	tb.Open(1, 9, 3)
	tb.Record(2, 1, 1, Result{Index: 2, Resp: []byte("r"), Err: []byte("e")})
	f.Add(tb.Marshal())
	f.Add(Encode(nil, Entry{Kind: KindCommand, ID: 1, Seq: 2, Payload: []byte("p")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Decode(b)
		var d Table
		if d.Unmarshal(b) == nil {
			if err := (&Table{}).Unmarshal(d.Marshal()); err != nil {
				t.Fatalf("a decoded table does not re-decode: %v", err)
			}
		}
		_, _ = ReadSection(bufio.NewReader(bytes.NewReader(append(append([]byte(nil), magic[:]...), b...))))
	})
}
