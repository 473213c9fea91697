package transporttest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
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
		waitTimeout, verdictLimit = 2*time.Second, time.Second
	}
	Run(t, mutantFactory(kind))
}

// mutantFactory returns endpoints on one inmem network, wrapped as kind.
func mutantFactory(kind string) Factory {
	return func(t *testing.T, ids []raft.NodeID) []Endpoint {
		net := inmem.NewNetwork(1)
		reg := &registry{byID: map[raft.NodeID]*mutant{}}
		eps := make([]Endpoint, len(ids))
		for i, id := range ids {
			cur := newMutant(net.Join(id), kind, reg, id)
			eps[i] = Endpoint{
				ID: id, Addr: string(id), Transport: cur,
				Close: func() error { return cur.Close() },
				Restart: func() (raft.Transport, error) {
					cur = newMutant(net.Join(id), kind, reg, id)
					return cur, nil
				},
			}
		}
		return eps
	}
}

// registry finds the mutant of a node, for the "sharemem" mutant's direct
// delivery.
type registry struct {
	mu   sync.Mutex
	byID map[raft.NodeID]*mutant
}

// mutant is an inmem transport with one defect, named by kind.
type mutant struct {
	inner *inmem.Transport
	kind  string
	reg   *registry
	h     atomic.Pointer[handlerBox]

	mu       sync.Mutex
	held     map[raft.NodeID]raft.Message // "swap": a message waiting for the next
	slept    bool
	sent     uint64                       // "lossy": messages sent so far
	first    map[raft.NodeID]raft.Message // "resend": the first message to each peer
	reported map[raft.NodeID]bool         // "resend": peers reported since the last Send
	queues   map[raft.NodeID]chan []raft.Message

	snapMu sync.RWMutex // "snapblocks": held by SendSnapshot, taken by Send
	stop   chan struct{}
	wg     sync.WaitGroup
}

type handlerBox struct{ h raft.Handler }

func newMutant(inner *inmem.Transport, kind string, reg *registry, id raft.NodeID) *mutant {
	m := &mutant{inner: inner, kind: kind, reg: reg, stop: make(chan struct{}),
		held: map[raft.NodeID]raft.Message{}, first: map[raft.NodeID]raft.Message{},
		reported: map[raft.NodeID]bool{}, queues: map[raft.NodeID]chan []raft.Message{}}
	reg.mu.Lock()
	reg.byID[id] = m
	reg.mu.Unlock()
	return m
}

// leaked is never closed: the "leak" mutant's goroutines wait on it forever.
var leaked = make(chan struct{})

// reportHook passes everything to Handler but unreachable reports, which
// go to onReport.
type reportHook struct {
	raft.Handler
	onReport func(id raft.NodeID)
}

func (r reportHook) ReportUnreachable(id raft.NodeID) { r.onReport(id) }

func (m *mutant) Register(h raft.Handler) {
	if h != nil {
		m.h.Store(&handlerBox{h})
	} else {
		m.h.Store(nil)
	}
	if h != nil {
		switch m.kind {
		case "noreport":
			h = reportHook{h, func(raft.NodeID) {}}
		case "reportflood": // as if every lost message were reported
			inner := h
			h = reportHook{h, func(id raft.NodeID) {
				for range 100 {
					inner.ReportUnreachable(id)
				}
			}}
		case "resend":
			inner := h
			h = reportHook{h, func(id raft.NodeID) {
				m.mu.Lock()
				m.reported[id] = true
				m.mu.Unlock()
				inner.ReportUnreachable(id)
			}}
		}
	}
	m.inner.Register(h)
}

func (m *mutant) handler() raft.Handler {
	if b := m.h.Load(); b != nil {
		return b.h
	}
	return nil
}

func (m *mutant) Send(to raft.Peer, msgs []raft.Message) {
	switch m.kind {
	case "swap": // send each message after the one that follows it
		m.mu.Lock()
		defer m.mu.Unlock()
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
	case "dropleader": // a field added to raft.Message after the transport was written
		for i := range msgs {
			msgs[i].Leader = ""
		}
	case "blocking": // the first Send blocks
		m.mu.Lock()
		if !m.slept {
			m.slept = true
			time.Sleep(sendBlockLimit + 500*time.Millisecond)
		}
		m.mu.Unlock()
	case "lossy": // loses one message in 37, silently
		m.mu.Lock()
		kept := msgs[:0:0]
		for _, msg := range msgs {
			m.sent++
			if m.sent%37 != 0 {
				kept = append(kept, msg)
			}
		}
		m.mu.Unlock()
		msgs = kept
	case "spuriousreport":
		if h := m.handler(); h != nil {
			h.ReportUnreachable(to.ID)
		}
	case "resend": // replays the first message to a peer after a report
		m.mu.Lock()
		first, ok := m.first[to.ID]
		if !ok && len(msgs) > 0 {
			m.first[to.ID] = cloneMessage(msgs[0])
		}
		replay := ok && m.reported[to.ID]
		m.reported[to.ID] = false
		m.mu.Unlock()
		if replay {
			m.inner.Send(to, []raft.Message{cloneMessage(first)})
		}
	case "silentoverflow": // a queue of its own that drops silently
		m.enqueue(to, msgs)
		return
	case "sharemem": // delivers the sender's messages themselves
		m.reg.mu.Lock()
		dest := m.reg.byID[to.ID]
		m.reg.mu.Unlock()
		if dest != nil {
			if h := dest.handler(); h != nil {
				for _, msg := range msgs {
					h.HandleMessage(msg)
				}
			}
		}
		return
	case "snapblocks": // waits for snapshots in progress
		m.snapMu.Lock()
		defer m.snapMu.Unlock()
	}
	m.inner.Send(to, msgs)
}

// enqueue is the "silentoverflow" mutant's Send: one message at a time
// into a queue of 64 per peer, drained by a goroutine that takes 20us per
// message (a network).
func (m *mutant) enqueue(to raft.Peer, msgs []raft.Message) {
	m.mu.Lock()
	q := m.queues[to.ID]
	if q == nil {
		q = make(chan []raft.Message, 64)
		m.queues[to.ID] = q
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			for {
				select {
				case <-m.stop:
					return
				case batch := <-q:
					time.Sleep(20 * time.Microsecond)
					m.inner.Send(to, batch)
				}
			}
		}()
	}
	m.mu.Unlock()
	for _, msg := range msgs {
		select {
		case q <- []raft.Message{msg}:
		default: // dropped, and nobody is told
		}
	}
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
	case "snapblocks":
		m.snapMu.RLock()
		defer m.snapMu.RUnlock()
	case "streamsall": // sends the rest of the data after the verdict
		err := m.inner.SendSnapshot(ctx, to, msg, r)
		buf := make([]byte, 64<<10)
		// (For 2s here: a transport streaming an endless snapshot would
		// go on until ctx ends.)
		for deadline := time.Now().Add(2 * time.Second); ctx.Err() == nil && time.Now().Before(deadline); {
			select {
			case <-m.stop:
				return err
			default:
			}
			if _, rerr := r.Read(buf); rerr != nil {
				break
			}
		}
		return err
	case "readsafter": // leaves a reader running after returning
		err := m.inner.SendSnapshot(ctx, to, msg, r)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			buf := make([]byte, 1<<10)
			for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
				if _, rerr := r.Read(buf); rerr != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		return err
	case "noverdictwait": // returns nil once the data is sent
		eof := make(chan struct{})
		errc := make(chan error, 1)
		go func() { errc <- m.inner.SendSnapshot(ctx, to, msg, &eofReader{r: r, eof: eof}) }()
		select {
		case err := <-errc:
			return err
		case <-eof:
			return nil
		}
	}
	return m.inner.SendSnapshot(ctx, to, msg, r)
}

// eofReader closes eof when r reports io.EOF.
type eofReader struct {
	r    io.Reader
	eof  chan struct{}
	once sync.Once
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.once.Do(func() { close(e.eof) })
	}
	return n, err
}

func (m *mutant) Close() error {
	if m.kind == "leak" {
		go func() { <-leaked }()
	}
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	m.wg.Wait()
	return m.inner.Close()
}

// TestSuiteCatchesBrokenTransports runs, for each defect, the case meant to
// catch it in a child process and requires that case to fail.
func TestSuiteCatchesBrokenTransports(t *testing.T) {
	tests := []struct{ kind, caseName string }{
		{"swap", "PerPeerOrdering"},
		{"duplicate", "PerPeerOrdering"},
		{"lossy", "PerPeerOrdering"},
		{"silentoverflow", "PerPeerOrdering"},
		{"dropfield", "FieldRoundTrip"},
		{"dropleader", "FieldRoundTrip"},
		{"blocking", "FieldRoundTrip"},
		{"spuriousreport", "FieldRoundTrip"},
		{"sharemem", "NoSharedMemory"},
		{"noreport", "UnreachablePeer"},
		{"reportflood", "StuckReceiver"},
		{"buffering", "SnapshotStream"},
		{"snapblocks", "SnapshotStream"},
		{"ignorerefusal", "SnapshotRefused"},
		{"streamsall", "SnapshotEarlyAccept"},
		{"readsafter", "SnapshotEarlyAccept"},
		{"noverdictwait", "SnapshotEarlyAccept"},
		{"ignorecancel", "SnapshotCancel"},
		{"resend", "PeerRestart"},
		{"leak", "ManyPeers"},
	}
	// The children mostly wait for timeouts: run them all at once rather
	// than GOMAXPROCS at a time, as t.Parallel would.
	type result struct {
		out []byte
		err error
	}
	results := make([]chan result, len(tests))
	for i, tc := range tests {
		results[i] = make(chan result, 1)
		go func() {
			pattern := fmt.Sprintf("^TestMutantChild$/^%s$", tc.caseName)
			cmd := exec.Command(os.Args[0], "-test.run="+pattern, "-test.v", "-test.timeout=60s")
			cmd.Env = append(os.Environ(), envMutant+"="+tc.kind)
			out, err := cmd.CombinedOutput()
			results[i] <- result{out, err}
		}()
	}
	for i, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			res := <-results[i]
			out, err := res.out, res.err
			if err == nil {
				t.Fatalf("suite passed a transport with defect %q:\n%s", tc.kind, out)
			}
			if want := "--- FAIL: TestMutantChild/" + tc.caseName; !strings.Contains(string(out), want) {
				t.Fatalf("defect %q: output lacks %q:\n%s", tc.kind, want, out)
			}
		})
	}
}

// TestSampleMessagesSetEveryField: some sample message sets each field of
// raft.Message (and of the entries, snapshot meta and servers it carries)
// to a non-zero value, so FieldRoundTrip notices a transport that loses
// any of them, including fields added to raft.Message later.
func TestSampleMessagesSetEveryField(t *testing.T) {
	set := map[string]bool{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(prefix, v.Elem())
			}
			return
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				walk(prefix+"."+v.Type().Field(i).Name, v.Field(i))
			}
			return
		case reflect.Slice:
			if v.Type().Elem().Kind() == reflect.Struct {
				for i := 0; i < v.Len(); i++ {
					walk(prefix, v.Index(i))
				}
				return
			}
		}
		if !v.IsZero() {
			set[prefix] = true
		}
	}
	var all func(prefix string, typ reflect.Type) []string
	all = func(prefix string, typ reflect.Type) []string {
		switch typ.Kind() {
		case reflect.Pointer:
			return all(prefix, typ.Elem())
		case reflect.Slice:
			if typ.Elem().Kind() == reflect.Struct {
				return all(prefix, typ.Elem())
			}
		case reflect.Struct:
			var out []string
			for i := 0; i < typ.NumField(); i++ {
				out = append(out, all(prefix+"."+typ.Field(i).Name, typ.Field(i).Type)...)
			}
			return out
		}
		return []string{prefix}
	}
	for _, m := range sampleMessages("a", "b") {
		walk("Message", reflect.ValueOf(m))
	}
	for _, f := range all("Message", reflect.TypeOf(raft.Message{})) {
		if !set[f] {
			t.Errorf("no sample message sets %s: extend sampleMessages so FieldRoundTrip checks it", f)
		}
	}
}
