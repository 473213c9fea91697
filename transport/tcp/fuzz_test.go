package tcp

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/typedraft/typedraft/raft"
)

// hostile msgpack headers that make a trusting decoder allocate gigabytes.
var hostileHeaders = [][]byte{
	{0xdd, 0xff, 0xff, 0xff, 0xff}, // array32 of 2^32-1
	{0xdb, 0xff, 0xff, 0xff, 0xff}, // str32 of 2^32-1
	{0xc6, 0xff, 0xff, 0xff, 0xff}, // bin32 of 2^32-1
	{0xdf, 0xff, 0xff, 0xff, 0xff}, // map32 of 2^32-1
	{0xdc, 0xff, 0xff},             // array16
}

// allocLimit is what one decode of in may allocate: 1 MiB plus a small
// multiple of the input, since valid bodies are copied once.
func allocLimit(in []byte) uint64 { return 1<<20 + 4*uint64(len(in)) }

func messageSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, m := range fullMessages()[:3] {
		m.Entries = m.Entries[:3] // keep seeds small
		seeds = append(seeds, encodeForTest(t, m))
	}
	seeds = append(seeds, encodeForTest(t, heartbeat("a", "b", 1)))
	prefix := append([]byte{0xdc, 0x00, 0x10}, mp(t, validFields()[:7]...)...)
	for _, h := range hostileHeaders {
		seeds = append(seeds, h,
			append([]byte{0xdc, 0x00, 0x10, 0x07}, h...),                   // as From
			append(bytes.Clone(prefix), h...),                              // as Entries
			append(append(bytes.Clone(prefix), 0x91, 0x94, 1, 1, 0), h...)) // as Data
	}
	seeds = append(seeds, bytes.Repeat([]byte{0xff}, 8), []byte{})
	return seeds
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range messageSeeds(f) {
		f.Add(s)
		if len(s) > 2 {
			f.Add(s[:len(s)/2]) // truncated
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var m raft.Message
		var err error
		n := allocBytes(func() { m, err = decodeMessage(body) })
		if n > allocLimit(body) {
			t.Fatalf("decoding %d bytes allocated %d", len(body), n)
		}
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same message.
		var buf bytes.Buffer
		if err := encodeMessage(msgpack.NewEncoder(&buf), &m); err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
		again, err := decodeMessage(buf.Bytes())
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if !reflect.DeepEqual(m, again) {
			t.Fatalf("round trip changed the message:\n%#v\n%#v", m, again)
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	body := encodeForTest(f, heartbeat("a", "b", 1))
	good := frameBytes(frameMessage, body)
	f.Add(good)
	f.Add(append(bytes.Clone(good), good...))
	for i := 0; i < len(good); i += 3 {
		f.Add(good[:i]) // truncated frames
	}
	f.Add(header(frameMessage, 1<<32-1))                    // 2^32-1 length
	f.Add(append(header(frameSnapChunk, 1<<32-1), 1, 2, 3)) // with some body
	f.Add(append(header(frameSnapChunk, 60<<20), 1, 2, 3))  // lying length under the limit
	f.Add(bytes.Repeat([]byte{0xff}, 16))                   // 2^64-1 over header and length
	f.Add(append(header(frameMessage, 0), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	f.Add(frameBytes(frameHello, encodeHello(hello{ClusterID: "c", From: "a", To: "b", Kind: kindMessages, Addr: "127.0.0.1:7000"})))
	f.Add(frameBytes(frameHello, legacyHello("c", "a", "b", kindMessages)))
	f.Add(frameBytes(frameKeepalive, nil))
	for _, h := range hostileHeaders {
		f.Add(frameBytes(frameMessage, h))
		f.Add(frameBytes(frameHello, h))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		n := allocBytes(func() {
			r := bytes.NewReader(in)
			for {
				typ, body, err := readFrame(r, DefaultMaxFrameSize, nil)
				if err != nil {
					return
				}
				switch typ {
				case frameMessage, frameSnapHeader:
					_, _ = decodeMessage(body)
				case frameHello:
					_, _ = decodeHello(body)
				case frameHelloReply:
					_, _ = decodeHelloReply(body)
				case frameSnapEnd:
					_, _ = decodeSnapEnd(body)
				case frameSnapAck:
					_, _ = decodeSnapAck(body)
				}
			}
		})
		if n > allocLimit(in) {
			t.Fatalf("reading %d bytes of frames allocated %d", len(in), n)
		}
	})
}

func FuzzDecodeHandshake(f *testing.F) {
	f.Add(encodeHello(hello{ClusterID: "cluster", From: "a", To: "b", Kind: kindSnapshot}))
	f.Add(encodeHello(hello{ClusterID: "cluster", From: "a", To: "b", Kind: kindMessages, Addr: "[::1]:7000"}))
	f.Add(legacyHello("cluster", "a", "b", kindMessages)) // 4 fields, before address learning
	// 5-field prefix up to the address: hostile headers land on Addr.
	addrPrefix := []byte{0x95, 0xa1, 'c', 0xa1, 'a', 0xa1, 'b', 0x01}
	f.Add(encodeHelloReply(helloReply{OK: true, ClusterID: "cluster", NodeID: "b"}))
	f.Add(encodeHelloReply(helloReply{Reason: "cluster id mismatch"}))
	f.Add(encodeSnapEnd(1 << 40))
	f.Add(encodeSnapAck(snapAck{Reason: "refused"}))
	for _, h := range hostileHeaders {
		f.Add(h)
		f.Add(append([]byte{0x94}, h...))
		f.Add(append([]byte{0x94, 0xa1, 'c'}, h...))
		f.Add(append(bytes.Clone(addrPrefix), h...))
	}
	f.Add(append(bytes.Clone(addrPrefix), 0xda, 0x04, 0x01))               // str16 of 1025: over the address limit
	f.Add([]byte{0x96, 0xa1, 'c', 0xa1, 'a', 0xa1, 'b', 0x01, 0xa0, 0xc0}) // 6 fields
	f.Fuzz(func(t *testing.T, body []byte) {
		var h hello
		var herr error
		n := allocBytes(func() {
			h, herr = decodeHello(body)
			_, _ = decodeHelloReply(body)
			_, _ = decodeSnapEnd(body)
			_, _ = decodeSnapAck(body)
		})
		if n > allocLimit(body) {
			t.Fatalf("decoding %d bytes allocated %d", len(body), n)
		}
		if herr == nil {
			again, err := decodeHello(encodeHello(h))
			if err != nil || again != h {
				t.Fatalf("hello round trip: %+v -> %+v, %v", h, again, err)
			}
		}
	})
}
