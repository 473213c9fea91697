package transporttest

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// waitTimeout bounds every wait of the suite; generous because transports
// may run under the race detector on a loaded machine. A variable only so
// that the suite's own tests can shorten it.
var waitTimeout = 20 * time.Second

// sendBlockLimit is how long one Send may take before the suite calls it
// blocking. Send must not wait for the network, but a loaded machine can
// stall any call for a while.
const sendBlockLimit = 2 * time.Second

func after(d time.Duration) <-chan time.Time { return time.After(d) }

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll(waitTimeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
	}
}

// poll calls cond with a growing pause until it returns true (poll reports
// true) or timeout passes (false).
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	pause := 100 * time.Microsecond
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		if pause < 5*time.Millisecond {
			pause *= 2
		}
	}
}

// recorder is the raft.Handler the suite registers on every endpoint: it
// records messages and unreachable reports, and lets a case hook message and
// snapshot handling.
type recorder struct {
	t  *testing.T
	id raft.NodeID

	mu          sync.Mutex
	msgs        []raft.Message
	unreachable map[raft.NodeID]int
	snaps       int
	pristine    []raft.Message       // copies a case's hook keeps of what arrived
	onMessage   func(m raft.Message) // called before recording; may block
	onSnapshot  func(m raft.Message, r io.Reader) error
	violations  []string
}

func newRecorder(t *testing.T, id raft.NodeID) *recorder {
	r := &recorder{t: t, id: id, unreachable: make(map[raft.NodeID]int)}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, v := range r.violations {
			t.Errorf("handler of %s: %s", id, v)
		}
	})
	return r
}

// HandleMessage implements raft.Handler.
func (r *recorder) HandleMessage(m raft.Message) {
	r.mu.Lock()
	hook := r.onMessage
	if m.To != r.id {
		r.violations = append(r.violations, "got message addressed to "+string(m.To)+": "+m.String())
	}
	r.mu.Unlock()
	if hook != nil {
		hook(m)
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

// HandleSnapshot implements raft.Handler; without a hook it reads the data
// and accepts.
func (r *recorder) HandleSnapshot(m raft.Message, rd io.Reader) error {
	r.mu.Lock()
	hook := r.onSnapshot
	if m.To != r.id {
		r.violations = append(r.violations, "got snapshot addressed to "+string(m.To)+": "+m.String())
	}
	r.snaps++
	r.mu.Unlock()
	if hook != nil {
		return hook(m, rd)
	}
	_, err := io.Copy(io.Discard, rd)
	return err
}

// ReportUnreachable implements raft.Handler.
func (r *recorder) ReportUnreachable(id raft.NodeID) {
	r.mu.Lock()
	r.unreachable[id]++
	r.mu.Unlock()
}

func (r *recorder) setOnMessage(f func(raft.Message)) {
	r.mu.Lock()
	r.onMessage = f
	r.mu.Unlock()
}

func (r *recorder) setOnSnapshot(f func(raft.Message, io.Reader) error) {
	r.mu.Lock()
	r.onSnapshot = f
	r.mu.Unlock()
}

// from returns a copy of the messages received from id, in arrival order.
func (r *recorder) from(id raft.NodeID) []raft.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []raft.Message
	for _, m := range r.msgs {
		if m.From == id {
			out = append(out, m)
		}
	}
	return out
}

// count returns how many messages arrived from id.
func (r *recorder) count(id raft.NodeID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for i := range r.msgs {
		if r.msgs[i].From == id {
			n++
		}
	}
	return n
}

// has reports whether a message from id satisfying match arrived.
func (r *recorder) has(id raft.NodeID, match func(raft.Message) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if m.From == id && match(m) {
			return true
		}
	}
	return false
}

func (r *recorder) unreachableCount(id raft.NodeID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unreachable[id]
}

// reports returns a copy of the unreachable reports received, by peer.
func (r *recorder) reports() map[raft.NodeID]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[raft.NodeID]int, len(r.unreachable))
	for id, n := range r.unreachable {
		out[id] = n
	}
	return out
}
