package tcp

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
)

const waitTimeout = 10 * time.Second

// testOptions returns fast options for loopback tests.
func testOptions(id raft.NodeID) *Options {
	return &Options{
		LocalID:          id,
		ClusterID:        "test-cluster",
		DialTimeout:      2 * time.Second,
		HandshakeTimeout: 2 * time.Second,
		BackoffMin:       5 * time.Millisecond,
		BackoffMax:       50 * time.Millisecond,
	}
}

// listen opens a transport on 127.0.0.1:0 closed by t.Cleanup.
func listen(t testing.TB, o *Options) *Transport {
	t.Helper()
	tr, err := Listen("127.0.0.1:0", o)
	if err != nil {
		t.Fatalf("listen %s: %v", o.LocalID, err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func peerOf(tr *Transport) raft.Peer { return raft.Peer{ID: tr.opts.LocalID, Addr: tr.Addr()} }

// waitFor polls cond until it holds or fails the test after waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	pause := 100 * time.Microsecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 5*time.Millisecond)
	}
}

// handler records everything a transport delivers.
type handler struct {
	mu          sync.Mutex
	msgs        []raft.Message
	snaps       int
	unreachable map[raft.NodeID]int
	onSnapshot  func(m raft.Message, r io.Reader) error
}

func newHandler() *handler { return &handler{unreachable: make(map[raft.NodeID]int)} }

func (h *handler) HandleMessage(m raft.Message) {
	h.mu.Lock()
	h.msgs = append(h.msgs, m)
	h.mu.Unlock()
}

func (h *handler) HandleSnapshot(m raft.Message, r io.Reader) error {
	h.mu.Lock()
	h.snaps++
	f := h.onSnapshot
	h.mu.Unlock()
	if f != nil {
		return f(m, r)
	}
	_, err := io.Copy(io.Discard, r)
	return err
}

func (h *handler) ReportUnreachable(id raft.NodeID) {
	h.mu.Lock()
	h.unreachable[id]++
	h.mu.Unlock()
}

func (h *handler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}

func (h *handler) snapCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.snaps
}

func (h *handler) messages() []raft.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]raft.Message(nil), h.msgs...)
}

func (h *handler) unreachableCount(id raft.NodeID) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.unreachable[id]
}

// logBuffer captures hclog output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) contains(s string) bool { return strings.Contains(b.String(), s) }

// waitLog waits until the log mentions every one of parts on one line.
func (b *logBuffer) waitLog(t testing.TB, parts ...string) {
	t.Helper()
	waitFor(t, "a log line mentioning "+strings.Join(parts, " + "), func() bool {
		for _, line := range strings.Split(b.String(), "\n") {
			ok := true
			for _, p := range parts {
				if !strings.Contains(line, p) {
					ok = false
					break
				}
			}
			if ok {
				return true
			}
		}
		return false
	})
}

func newLogger(name string) (hclog.Logger, *logBuffer) {
	b := &logBuffer{}
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: b, Level: hclog.Debug}), b
}

func heartbeat(from, to raft.NodeID, index uint64) raft.Message {
	return raft.Message{Type: raft.MsgHeartbeat, From: from, To: to, Term: 1, Index: index}
}
