package raft_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/typedraft/typedraft/raft"
)

// itEnv is the cluster of an interaction test: Cores, their durable logs,
// state machines and snapshot stores, and a network the script controls.
// It is a complete driver for raft.Core, written against the exported API
// only, and carries out every Ready in the order raft.Ready documents.
type itEnv struct {
	out   *strings.Builder
	cfg   raft.CoreConfig // template; ID is set per node
	nodes map[raft.NodeID]*itNode
	ids   []raft.NodeID
	// queue holds the messages in flight, oldest first.
	queue []itMsg
	// cut holds the directed links that lose every message.
	cut map[[2]raft.NodeID]bool
	// async: a leader's new entries go to a log write that completes only
	// at write-done (thesis §10.2.1).
	async bool
}

// itMsg is a message in flight; snapshot streams carry the snapshot and
// the send's number for ReportSnapshotSent.
type itMsg struct {
	m    raft.Message
	snap *itSnapshot
	seq  uint64
}

// itSnapshot is a snapshot in a snapshot store: its metadata and the state
// machine it captures (the commands applied up to its index).
type itSnapshot struct {
	meta raft.SnapshotMeta
	data []string
}

// itWrite is a leader's log write in flight.
type itWrite struct {
	hs    raft.HardState
	ents  []raft.Entry
	after []raft.Message
}

type itNode struct {
	id   raft.NodeID
	core *raft.Core
	log  *itLog
	src  *itSource
	// sm is the state machine: the commands applied, with their indexes.
	sm      []itApplied
	applied uint64
	// snap is the newest snapshot in the node's snapshot store; received
	// is the one the leader streamed last, not yet installed.
	snap     itSnapshot
	received *itSnapshot
	write    *itWrite
	down     bool
	// now counts ticks of real time since the Core was created (the lease
	// clock, raft.Core.SyncClock).
	now int64
	// lastHS is the hard state last printed.
	lastHS raft.HardState
}

type itApplied struct {
	index uint64
	cmd   string
}

// itSource is the random source of a node's Core: a seeded PCG, or while
// pinned, the largest value (the longest election timeout).
type itSource struct {
	pcg    *rand.PCG
	pinned bool
}

func (s *itSource) Uint64() uint64 {
	if s.pinned {
		return math.MaxUint64
	}
	return s.pcg.Uint64()
}

func (e *itEnv) printf(format string, args ...any) { fmt.Fprintf(e.out, format, args...) }

func (e *itEnv) node(id raft.NodeID) (*itNode, error) {
	n := e.nodes[id]
	if n == nil {
		return nil, fmt.Errorf("no node %s", id)
	}
	return n, nil
}

func (e *itEnv) liveNode(id raft.NodeID) (*itNode, error) {
	n, err := e.node(id)
	if err == nil && n.down {
		err = fmt.Errorf("node %s is down", id)
	}
	return n, err
}

// start creates n's Core from its durable state, as a process does at
// start.
func (e *itEnv) start(n *itNode) error {
	cfg := e.cfg
	cfg.ID = n.id
	rng := rand.New(n.src)
	c, err := raft.NewCore(cfg, n.log, n.log.hs, n.snap.meta, rng)
	if err != nil {
		return err
	}
	n.core, n.down, n.now = c, false, 0
	n.sm = slices.Clone(n.snap.data2applied())
	n.applied = n.snap.meta.Index
	n.lastHS = n.log.hs
	return nil
}

func (s itSnapshot) data2applied() []itApplied {
	out := make([]itApplied, len(s.data))
	for i, d := range s.data {
		out[i] = itApplied{index: 0, cmd: d}
	}
	return out
}

// tick advances n's clock by one tick.
func (e *itEnv) tick(n *itNode) {
	n.now++
	n.core.Tick()
}

type itRole struct {
	state  raft.State
	term   uint64
	leader raft.NodeID
}

func roleOf(n *itNode) itRole {
	st := n.core.Status()
	return itRole{st.State, st.Term, st.Leader}
}

func (r itRole) String() string {
	s := fmt.Sprintf("%s t%d", r.state, r.term)
	if r.leader != "" && r.state != raft.Leader {
		s += " leader=" + string(r.leader)
	}
	return s
}

// handleReady carries out one Ready of n, printing it.
func (e *itEnv) handleReady(n *itNode) error {
	rd := n.core.Ready()
	itSortByDestination(rd.Messages)
	itSortByDestination(rd.MessagesAfter)
	e.printf("ready %s: %s\n", n.id, itRole{rd.State, rd.Term, rd.Leader})
	if rd.HardState != n.lastHS {
		e.printf("  hard state: %s\n", itHardState(rd.HardState))
		n.lastHS = rd.HardState
	}
	async := e.async && rd.MustSave && rd.State == raft.Leader && rd.Snapshot == nil &&
		len(rd.Entries) > 0 && n.write == nil
	if len(rd.Entries) > 0 {
		if async {
			e.printf("  entries (to the write in flight): %s\n", itEntries(rd.Entries))
		} else {
			e.printf("  entries: %s\n", itEntries(rd.Entries))
		}
	}
	// 1. Messages go out at once.
	if len(rd.Messages) > 0 {
		e.printf("  messages:\n")
		for _, m := range rd.Messages {
			e.printf("    %s\n", itMsgText(m))
			e.queue = append(e.queue, itMsg{m: m})
		}
	}
	for _, rs := range rd.ReadStates {
		e.printf("  %s\n", itReadState(rs))
	}
	// Every in-line save and install waits for the write in flight; only
	// a node that is no longer leader needs one, and processReadies
	// completed its write before taking the Ready (WriteDone must not come
	// between Ready and Advance).
	if n.write != nil && (rd.Snapshot != nil || (rd.MustSave && !async)) {
		return fmt.Errorf("%s: a %s's Ready needs an in-line save while a write is in flight", n.id, rd.State)
	}
	// 2. Install a snapshot from the leader.
	if s := rd.Snapshot; s != nil {
		if n.received == nil || n.received.meta.Index != s.Index || n.received.meta.Term != s.Term {
			return fmt.Errorf("%s: Ready installs snapshot %d@t%d, the store holds no such snapshot", n.id, s.Index, s.Term)
		}
		n.snap = *n.received
		n.received = nil
		n.log.compact(s.Index, s.Term)
		n.sm = n.snap.data2applied()
		n.applied = s.Index
		e.printf("  install snapshot %d@t%d conf%s: state machine %v\n", s.Index, s.Term, s.Configuration, n.snap.data)
	}
	// 3. Persist, or hand the entries to the write in flight.
	if async {
		n.write = &itWrite{hs: rd.HardState, ents: rd.Entries, after: rd.MessagesAfter}
	} else if rd.MustSave {
		if err := n.log.save(rd.HardState, rd.Entries); err != nil {
			return fmt.Errorf("%s: %w", n.id, err)
		}
	}
	// 4. Messages that need this Ready durable.
	if len(rd.MessagesAfter) > 0 {
		if async {
			e.printf("  messages after the write in flight:\n")
		} else {
			e.printf("  messages after save:\n")
		}
		for _, m := range rd.MessagesAfter {
			e.printf("    %s\n", itMsgText(m))
			if !async {
				e.queue = append(e.queue, itMsg{m: m})
			}
		}
	}
	// 5. Apply.
	if len(rd.Committed) > 0 {
		e.printf("  apply: %s\n", itEntries(rd.Committed))
		for _, ent := range rd.Committed {
			if ent.Index != n.applied+1 {
				return fmt.Errorf("%s: applies %d after %d", n.id, ent.Index, n.applied)
			}
			n.applied = ent.Index
			if ent.Type == raft.EntryCommand {
				n.sm = append(n.sm, itApplied{index: ent.Index, cmd: string(ent.Data)})
			}
		}
		n.core.ReportApplied(n.applied)
	}
	// 6. Stream the newest snapshot to followers behind the log.
	for _, to := range rd.SnapshotsToSend {
		seq, ok := n.core.SnapshotSend(to)
		if !ok {
			return fmt.Errorf("%s: Ready sends a snapshot to %s, SnapshotSend says none", n.id, to)
		}
		snap := n.snap
		meta := snap.meta
		m := raft.Message{Type: raft.MsgSnap, From: n.id, To: to, Term: rd.Term, Snapshot: &meta}
		e.printf("  send snapshot: %s\n", itMsgText(m))
		e.queue = append(e.queue, itMsg{m: m, snap: &snap, seq: seq})
	}
	// 7. Advance.
	if async {
		n.core.AdvanceAsync(rd)
	} else {
		n.core.Advance(rd)
	}
	if err := n.core.Err(); err != nil {
		e.printf("  core error: %v\n", err)
	}
	return nil
}

// finishWrite completes n's write in flight: the entries and hard state
// become durable, the messages that waited go out, and the core is told.
func (e *itEnv) finishWrite(n *itNode, indent string) error {
	w := n.write
	n.write = nil
	if err := n.log.save(w.hs, w.ents); err != nil {
		return fmt.Errorf("%s: %w", n.id, err)
	}
	last := w.ents[len(w.ents)-1].Index
	e.printf("%swrite done %s: %s durable\n", indent, n.id, itEntries(w.ents))
	for _, m := range w.after {
		e.printf("%s  send %s\n", indent, itMsgText(m))
		e.queue = append(e.queue, itMsg{m: m})
	}
	n.core.WriteDone(last)
	return nil
}

// processReadies carries out the Readies of the given nodes until they
// have none.
func (e *itEnv) processReadies(ids []raft.NodeID) (bool, error) {
	did := false
	for _, id := range ids {
		n := e.nodes[id]
		for i := 0; !n.down && n.core.HasReady(); i++ {
			if i > 100 {
				return did, fmt.Errorf("%s: Ready never runs out", id)
			}
			if n.write != nil && n.core.Status().State != raft.Leader {
				// A node that stopped leading saves in line again, after
				// the write in flight.
				e.printf("%s stopped leading: its write in flight completes first\n", id)
				if err := e.finishWrite(n, "  "); err != nil {
					return did, err
				}
			}
			if err := e.handleReady(n); err != nil {
				return did, err
			}
			did = true
		}
	}
	return did, nil
}

// lost reports why m cannot arrive ("" if it can).
func (e *itEnv) lost(m raft.Message) string {
	switch to, from := e.nodes[m.To], e.nodes[m.From]; {
	case to == nil:
		return "no such node"
	case to.down:
		return string(m.To) + " is down"
	case from != nil && from.down && m.Type == raft.MsgSnap:
		return string(m.From) + " is down"
	case e.cut[[2]raft.NodeID{m.From, m.To}]:
		return "link cut"
	}
	return ""
}

// deliver steps one message into its destination, or drops it.
func (e *itEnv) deliver(im itMsg, verbose bool) {
	m := im.m
	if why := e.lost(m); why != "" {
		e.printf("dropped (%s): %s\n", why, itMsgText(m))
		if m.Type == raft.MsgSnap {
			e.snapshotOutcome(im, false)
		}
		return
	}
	if verbose {
		e.printf("deliver %s\n", itMsgText(m))
	}
	to := e.nodes[m.To]
	if m.Type == raft.MsgSnap {
		// The snapshot's data reaches the receiver's snapshot store, then
		// the announcement is stepped (raft.Handler.HandleSnapshot).
		s := *im.snap
		to.received = &s
	}
	to.core.Step(m)
	if err := to.core.Err(); err != nil {
		e.printf("  %s: core error: %v\n", m.To, err)
	}
	if m.Type == raft.MsgSnap {
		e.snapshotOutcome(im, true)
	}
}

// snapshotOutcome tells the sender how streaming a snapshot went.
func (e *itEnv) snapshotOutcome(im itMsg, ok bool) {
	if from := e.nodes[im.m.From]; from != nil && !from.down {
		from.core.ReportSnapshotSent(im.m.To, im.seq, ok)
	}
}

// deliverTo delivers the queued messages addressed to ids (all if empty),
// in the order they were sent; messages sent meanwhile wait.
func (e *itEnv) deliverTo(ids []raft.NodeID, verbose bool) int {
	var keep, now []itMsg
	for _, im := range e.queue {
		if len(ids) == 0 || slices.Contains(ids, im.m.To) {
			now = append(now, im)
		} else {
			keep = append(keep, im)
		}
	}
	e.queue = keep
	for _, im := range now {
		e.deliver(im, verbose)
	}
	return len(now)
}

// stabilize carries out Readies and delivers messages until the cluster
// is quiet.
func (e *itEnv) stabilize(ids []raft.NodeID) error {
	for i := 0; ; i++ {
		if i > 1000 {
			return fmt.Errorf("the cluster never quiesces")
		}
		did, err := e.processReadies(ids)
		if err != nil {
			return err
		}
		n := e.deliverTo(ids, false)
		if !did && n == 0 {
			return nil
		}
	}
}
