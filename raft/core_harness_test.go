package raft

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// testLog is a minimal durable log for core tests (the store packages import
// raft, so core tests cannot use them).
type testLog struct {
	hs       HardState
	snapIdx  uint64
	snapTerm uint64
	ents     []Entry // ents[i].Index == snapIdx+1+i
}

func (s *testLog) FirstIndex() (uint64, error) { return s.snapIdx + 1, nil }
func (s *testLog) LastIndex() (uint64, error)  { return s.snapIdx + uint64(len(s.ents)), nil }
func (s *testLog) Term(i uint64) (uint64, error) {
	switch {
	case i == s.snapIdx:
		return s.snapTerm, nil
	case i < s.snapIdx:
		return 0, ErrCompacted
	case i > s.snapIdx+uint64(len(s.ents)):
		return 0, ErrUnavailable
	}
	return s.ents[i-s.snapIdx-1].Term, nil
}
func (s *testLog) Entries(lo, hi, maxBytes uint64) ([]Entry, error) {
	if lo <= s.snapIdx {
		return nil, ErrCompacted
	}
	if hi > s.snapIdx+uint64(len(s.ents))+1 {
		return nil, ErrUnavailable
	}
	var out []Entry
	var size uint64
	for i := lo; i < hi; i++ {
		e := s.ents[i-s.snapIdx-1]
		size += e.Size()
		if maxBytes > 0 && len(out) > 0 && size > maxBytes {
			break
		}
		out = append(out, e)
	}
	return out, nil
}
func (s *testLog) save(hs HardState, ents []Entry) {
	s.hs = hs
	if len(ents) == 0 {
		return
	}
	at := ents[0].Index
	s.ents = append(s.ents[:at-s.snapIdx-1], ents...)
}

// compact discards entries up to index, or the whole log if it does not hold
// (index, term), as LogStore.Compact does.
func (s *testLog) compact(index, term uint64) {
	if index <= s.snapIdx {
		return
	}
	if t, err := s.Term(index); err == nil && t == term {
		s.ents = append([]Entry(nil), s.ents[index-s.snapIdx:]...)
	} else {
		s.ents = nil
	}
	s.snapIdx, s.snapTerm = index, term
}

// takeSnapshot records a snapshot of id at index and compacts its log.
func (tc *testCluster) takeSnapshot(id NodeID, index uint64) {
	c := tc.cores[id]
	if index > c.log.applied {
		tc.t.Fatalf("snapshot of %s at %d beyond applied %d", id, index, c.log.applied)
	}
	term, err := c.log.term(index)
	if err != nil {
		tc.t.Fatalf("snapshot %s at %d: %v", id, index, err)
	}
	tc.snaps[id] = SnapshotMeta{Index: index, Term: term, Configuration: c.conf.cfg.Clone(), ConfigIndex: c.conf.index}
	c.snapshotCreated(index, term)
	tc.logs[id].compact(index, term)
}

// testCluster is a set of cores exchanging messages synchronously through a
// queue the test controls.
type testCluster struct {
	t     *testing.T
	ids   []NodeID
	cores map[NodeID]*core
	logs  map[NodeID]*testLog
	queue []Message
	cut   map[[2]NodeID]bool // directed links that drop messages
	down  map[NodeID]bool
	apply map[NodeID][]Entry
	// snaps is each node's newest snapshot (metadata only: core tests do
	// not model state machine data).
	snaps map[NodeID]SnapshotMeta
	// snapSends counts MsgSnap messages sent.
	snapSends int
	// reads collects each node's ReadStates.
	reads map[NodeID][]ReadState
	// keepStartLease keeps a started core's refusal to vote for its first
	// election timeout.
	keepStartLease bool
}

func newTestCluster(t *testing.T, n int, opts ...func(*CoreConfig)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, cores: map[NodeID]*core{}, logs: map[NodeID]*testLog{},
		cut: map[[2]NodeID]bool{}, down: map[NodeID]bool{}, apply: map[NodeID][]Entry{},
		snaps: map[NodeID]SnapshotMeta{}, reads: map[NodeID][]ReadState{}}
	var servers []Server
	for i := 1; i <= n; i++ {
		id := NodeID(fmt.Sprintf("n%d", i))
		tc.ids = append(tc.ids, id)
		servers = append(servers, Server{ID: id, Addr: string(id)})
	}
	boot := Entry{Index: 1, Term: 1, Type: EntryConfig, Data: encodeConfiguration(Configuration{Servers: servers})}
	for i, id := range tc.ids {
		tc.logs[id] = &testLog{hs: HardState{Term: 1}, ents: []Entry{boot}}
		tc.start(id, int64(i), opts...)
	}
	return tc
}

func (tc *testCluster) start(id NodeID, seed int64, opts ...func(*CoreConfig)) {
	cfg := CoreConfig{ID: id}
	for _, o := range opts {
		o(&cfg)
	}
	l := tc.logs[id]
	c, err := newCore(cfg, l, l.hs, SnapshotMeta{}, rand.New(rand.NewPCG(uint64(seed), 7)))
	if err != nil {
		tc.t.Fatalf("start %s: %v", id, err)
	}
	// Tests campaign at tick 0, which a real node cannot (its election
	// timeout is at least an election timeout): the refusal to vote just
	// after start (startLease) would get in their way. Tests of it set
	// keepStartLease.
	if !tc.keepStartLease {
		c.startLease = false
	}
	tc.cores[id] = c
}

// process carries out every core's ready, queueing messages.
func (tc *testCluster) process() {
	for _, id := range tc.ids {
		c := tc.cores[id]
		if tc.down[id] {
			continue
		}
		for c.hasReady() {
			rd := c.ready()
			tc.queue = append(tc.queue, rd.Messages...)
			tc.reads[id] = append(tc.reads[id], rd.ReadStates...)
			if rd.Snapshot != nil {
				tc.logs[id].compact(rd.Snapshot.Index, rd.Snapshot.Term)
				tc.snaps[id] = *rd.Snapshot
				tc.apply[id] = append(tc.apply[id], Entry{Index: rd.Snapshot.Index, Type: EntryNoop, Data: []byte("snapshot")})
			}
			for _, to := range rd.SnapshotsToSend {
				meta := tc.snaps[id]
				tc.queue = append(tc.queue, Message{Type: MsgSnap, From: id, To: to, Term: c.term, Snapshot: &meta})
				tc.snapSends++
				c.snapshotDone(to, 0, true)
			}
			if rd.MustSave {
				tc.logs[id].save(rd.HardState, rd.Entries)
			}
			tc.queue = append(tc.queue, rd.MessagesAfter...)
			tc.apply[id] = append(tc.apply[id], rd.Committed...)
			c.advance(rd, false)
			if err := c.err(); err != nil {
				tc.t.Fatalf("%s: %v", id, err)
			}
		}
	}
}

// deliver processes readies and delivers messages until none remain.
func (tc *testCluster) deliver() {
	for i := 0; i < 10000; i++ {
		tc.process()
		if len(tc.queue) == 0 {
			return
		}
		q := tc.queue
		tc.queue = nil
		for _, m := range q {
			if tc.down[m.To] || tc.down[m.From] || tc.cut[[2]NodeID{m.From, m.To}] {
				continue
			}
			tc.cores[m.To].step(m)
		}
	}
	tc.t.Fatal("messages never quiesced")
}

// isolate cuts id off from every other node in both directions.
func (tc *testCluster) isolate(id NodeID) {
	for _, o := range tc.ids {
		if o != id {
			tc.cut[[2]NodeID{id, o}] = true
			tc.cut[[2]NodeID{o, id}] = true
		}
	}
}

func (tc *testCluster) heal() { tc.cut = map[[2]NodeID]bool{} }

// tickAll ticks every live node n times, delivering after each tick.
func (tc *testCluster) tickAll(n int) {
	for i := 0; i < n; i++ {
		for _, id := range tc.ids {
			if !tc.down[id] {
				tc.cores[id].tick()
			}
		}
		tc.deliver()
	}
}

// elect makes id campaign and delivers until the election settles.
func (tc *testCluster) elect(id NodeID) {
	tc.cores[id].campaign(false)
	tc.deliver()
	if tc.cores[id].state != Leader {
		tc.t.Fatalf("%s did not become leader (state %s)", id, tc.cores[id].state)
	}
}

func (tc *testCluster) leader() NodeID {
	var lead NodeID
	for _, id := range tc.ids {
		if !tc.down[id] && tc.cores[id].state == Leader {
			if lead != "" && tc.cores[lead].term == tc.cores[id].term {
				tc.t.Fatalf("two leaders in term %d: %s and %s", tc.cores[id].term, lead, id)
			}
			if lead == "" || tc.cores[id].term > tc.cores[lead].term {
				lead = id
			}
		}
	}
	return lead
}

func (tc *testCluster) propose(id NodeID, data string) (uint64, error) {
	idx, _, err := tc.cores[id].propose([]Entry{{Type: EntryCommand, Data: []byte(data)}})
	tc.deliver()
	return idx, err
}

func (tc *testCluster) appliedData(id NodeID) []string {
	var out []string
	for _, e := range tc.apply[id] {
		if e.Type == EntryCommand {
			out = append(out, string(e.Data))
		}
	}
	return out
}

func (tc *testCluster) requireSameLogs() {
	tc.t.Helper()
	// Compare from the highest first index: compaction may have removed
	// different prefixes on different nodes.
	var from uint64
	for _, id := range tc.ids {
		from = max(from, tc.cores[id].log.firstIndex())
	}
	suffix := func(id NodeID) []string {
		c := tc.cores[id]
		ents, err := c.log.slice(from, c.log.lastIndex()+1, 0)
		if err != nil {
			tc.t.Fatalf("read log of %s: %v", id, err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, fmt.Sprintf("%d/%d/%s:%s", e.Index, e.Term, e.Type, e.Data))
		}
		return out
	}
	want := suffix(tc.ids[0])
	for _, id := range tc.ids[1:] {
		if got := suffix(id); !slices.Equal(got, want) {
			tc.t.Fatalf("log of %s from %d = %v, want %v (as %s)", id, from, got, want, tc.ids[0])
		}
	}
}
