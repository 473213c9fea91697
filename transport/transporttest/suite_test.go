package transporttest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/inmem"
)

// The suite's own tests check that it fails broken transports. Each mutant
// wraps an inmem transport with one defect; a child process (this test
// binary, re-executed with envMutant set) runs the case that should catch it,
// and the parent checks that exactly that case failed.
const envMutant = "TRANSPORTTEST_MUTANT"

// TestMutantChild runs the whole suite over inmem transports wrapped as the
// defect named by envMutant; with envMutant unset the wrapper has no defect
// and every case must pass (the control). The parent test re-executes it with
// envMutant set.
func TestMutantChild(t *testing.T) {
	kind := os.Getenv(envMutant)
	if kind != "" {
		waitTimeout = 2 * time.Second
	}
	Run(t, mutantFactory(kind))
}

// mutantFactory returns endpoints on one inmem network, wrapped as kind.
func mutantFactory(kind string) Factory {
	return func(t *testing.T, ids []raft.NodeID) []Endpoint {
		net := inmem.NewNetwork(1)
		eps := make([]Endpoint, len(ids))
		for i, id := range ids {
			cur := &mutant{inner: net.Join(id), kind: kind}
			eps[i] = Endpoint{
				ID: id, Addr: string(id), Transport: cur,
				Close: func() error { return cur.Close() },
				Restart: func() (raft.Transport, error) {
					cur = &mutant{inner: net.Join(id), kind: kind}
					return cur, nil
				},
			}
		}
		return eps
	}
}

// leaked is never closed: the "leak" mutant's goroutines wait on it forever.
var leaked = make(chan struct{})

// mutant is an inmem transport with one defect, named by kind.
type mutant struct {
	inner *inmem.Transport
	kind  string

	mu    sync.Mutex
	held  map[raft.NodeID]raft.Message // "swap": a message waiting for the next
	slept bool
}

type noReport struct{ raft.Handler }

func (noReport) ReportUnreachable(raft.NodeID) {}

func (m *mutant) Register(h raft.Handler) {
	if m.kind == "noreport" && h != nil {
		h = noReport{h}
	}
	m.inner.Register(h)
}

func (m *mutant) Send(to raft.Peer, msgs []raft.Message) {
	switch m.kind {
	case "swap": // send each message after the one that follows it
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.held == nil {
			m.held = make(map[raft.NodeID]raft.Message)
		}
		for _, msg := range msgs {
			if prev, ok := m.held[to.ID]; ok {
				delete(m.held, to.ID)
				m.inner.Send(to, []raft.Message{msg, prev})
			} else {
				m.held[to.ID] = msg
			}
		}
		return
	case "duplicate":
		m.inner.Send(to, msgs)
	case "dropfield":
		for i := range msgs {
			msgs[i].HintTerm = 0
			if s := msgs[i].Snapshot; s != nil {
				c := *s
				c.Configuration.Old = nil
				msgs[i].Snapshot = &c
			}
		}
	case "blocking": // the first Send blocks
		m.mu.Lock()
		if !m.slept {
			m.slept = true
			time.Sleep(sendBlockLimit + 500*time.Millisecond)
		}
		m.mu.Unlock()
	}
	m.inner.Send(to, msgs)
}

func (m *mutant) SendSnapshot(ctx context.Context, to raft.Peer, msg raft.Message, r io.Reader) error {
	switch m.kind {
	case "buffering":
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		return m.inner.SendSnapshot(ctx, to, msg, bytes.NewReader(data))
	case "ignorerefusal":
		_ = m.inner.SendSnapshot(ctx, to, msg, r)
		return nil
	case "ignorecancel":
		return m.inner.SendSnapshot(context.Background(), to, msg, r)
	}
	return m.inner.SendSnapshot(ctx, to, msg, r)
}

func (m *mutant) Close() error {
	if m.kind == "leak" {
		go func() { <-leaked }()
	}
	return m.inner.Close()
}

// TestSuiteCatchesBrokenTransports runs, for each defect, the case meant to
// catch it in a child process and requires that case to fail.
func TestSuiteCatchesBrokenTransports(t *testing.T) {
	tests := []struct{ kind, caseName string }{
		{"swap", "PerPeerOrdering"},
		{"duplicate", "PerPeerOrdering"},
		{"dropfield", "FieldRoundTrip"},
		{"blocking", "FieldRoundTrip"},
		{"noreport", "UnreachablePeer"},
		{"buffering", "SnapshotStream"},
		{"ignorerefusal", "SnapshotRefused"},
		{"ignorecancel", "SnapshotCancel"},
		{"leak", "ManyPeers"},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			pattern := fmt.Sprintf("^TestMutantChild$/^%s$", tc.caseName)
			cmd := exec.Command(os.Args[0], "-test.run="+pattern, "-test.v", "-test.timeout=60s")
			cmd.Env = append(os.Environ(), envMutant+"="+tc.kind)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("suite passed a transport with defect %q:\n%s", tc.kind, out)
			}
			if want := "--- FAIL: TestMutantChild/" + tc.caseName; !strings.Contains(string(out), want) {
				t.Fatalf("defect %q: output lacks %q:\n%s", tc.kind, want, out)
			}
		})
	}
}
