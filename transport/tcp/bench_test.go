package tcp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/typedraft/typedraft/raft"
)

// benchHandler returns a window token for every message it receives.
type benchHandler struct {
	tokens chan struct{}
	reply  func(m raft.Message)
}

func (h *benchHandler) HandleMessage(m raft.Message) {
	if h.reply != nil {
		h.reply(m)
		return
	}
	<-h.tokens
}

func (h *benchHandler) HandleSnapshot(_ raft.Message, r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

func (h *benchHandler) ReportUnreachable(id raft.NodeID) {}

func benchPair(b *testing.B) (*Transport, *Transport) {
	b.Helper()
	ao, bo := testOptions("a"), testOptions("b")
	ao.Logger, bo.Logger = hclog.NewNullLogger(), hclog.NewNullLogger()
	return listen(b, ao), listen(b, bo)
}

func msgApp(entries, size int) raft.Message {
	m := raft.Message{Type: raft.MsgApp, From: "a", To: "b", Term: 5, Index: 1000, LogTerm: 5, Commit: 990}
	data := bytes.Repeat([]byte{0x5a}, size)
	for i := 0; i < entries; i++ {
		m.Entries = append(m.Entries, raft.Entry{Index: uint64(1001 + i), Term: 5, Data: data})
	}
	return m
}

// BenchmarkSendMsgApp measures one-way throughput from a to b: each op is one
// MsgApp carrying `entries` entries of 128 B, with at most `window` messages
// in flight (below QueueSize, so nothing is dropped).
func BenchmarkSendMsgApp(b *testing.B) {
	for _, entries := range []int{1, 64} {
		b.Run(fmt.Sprintf("entries=%d", entries), func(b *testing.B) {
			a, dst := benchPair(b)
			const window = 1024
			h := &benchHandler{tokens: make(chan struct{}, window)}
			dst.Register(h)
			m := msgApp(entries, 128)
			to := peerOf(dst)
			msgs := make([]raft.Message, 1)
			b.SetBytes(int64(entries * 128))
			b.ReportAllocs()
			start := time.Now()
			n := 0
			for b.Loop() {
				h.tokens <- struct{}{}
				msgs[0] = m
				a.Send(to, msgs)
				n++
			}
			for len(h.tokens) > 0 { // drain: wait until the last message arrived
				time.Sleep(50 * time.Microsecond)
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkPingPong measures a heartbeat round trip through two transports.
func BenchmarkPingPong(b *testing.B) {
	a, dst := benchPair(b)
	back := make(chan struct{}, 1)
	dst.Register(&benchHandler{reply: func(m raft.Message) {
		dst.Send(peerOf(a), []raft.Message{{Type: raft.MsgHeartbeatResp, From: "b", To: "a", Term: m.Term}})
	}})
	a.Register(&benchHandler{reply: func(raft.Message) { back <- struct{}{} }})
	to := peerOf(dst)
	for b.Loop() {
		a.Send(to, []raft.Message{heartbeat("a", "b", 1)})
		<-back
	}
}

// BenchmarkRawTCPPingPong is the floor for BenchmarkPingPong: an 8-byte
// echo over a plain loopback TCP connection.
func BenchmarkRawTCPPingPong(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 8)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 8)
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	_ = c.Close()
	<-done
}

// BenchmarkRawTCPStream is the floor for BenchmarkSendMsgApp/entries=64:
// one-way writes of the same payload size over plain loopback TCP.
func BenchmarkRawTCPStream(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(io.Discard, c)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64*128)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	_ = c.Close()
	<-done
}

// BenchmarkSnapshot streams a 16 MiB snapshot per op.
func BenchmarkSnapshot(b *testing.B) {
	a, dst := benchPair(b)
	dst.Register(&benchHandler{})
	const size = 16 << 20
	data := make([]byte, size)
	m := raft.Message{Type: raft.MsgSnap, From: "a", To: "b", Snapshot: &raft.SnapshotMeta{Index: 1, Size: size}}
	to := peerOf(dst)
	b.SetBytes(size)
	for b.Loop() {
		if err := a.SendSnapshot(context.Background(), to, m, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCodecMsgApp64 encodes and decodes a MsgApp of 64 x 128 B entries.
func BenchmarkCodecMsgApp64(b *testing.B) {
	m := msgApp(64, 128)
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	b.SetBytes(64 * 128)
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := encodeMessage(enc, &m); err != nil {
			b.Fatal(err)
		}
		if _, err := decodeMessage(buf.Bytes()); err != nil {
			b.Fatal(err)
		}
	}
}
