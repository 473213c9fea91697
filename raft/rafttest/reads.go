package rafttest

import (
	"slices"

	"github.com/anishathalye/porcupine"

	"github.com/typedraft/typedraft/raft"
)

// Reads in the simulation: a client's read-only command (Workload.IsRead)
// is sent as a read on one of four paths, chosen by the seed: through the
// log as an ordinary command, as a ReadIndex read on the node the client
// believes leads, as a lease read there, or as a follower read on another
// member (which asks its leader for the read index). The simulator plays
// the driver: it hands the read to the node's Core (Core.ReadIndex), takes
// the outcome from a Ready's ReadStates, and runs Workload.Read on the
// node's state machine once that has applied the read index. A read that
// fails, times out or whose node crashes leaves no trace in the history:
// it changed nothing.

// readPath says how a read travels.
type readPath uint8

const (
	readViaLog readPath = iota
	readIndexPath
	readLeasePath
	readFollowerPath
)

// String names the path.
func (p readPath) String() string {
	switch p {
	case readIndexPath:
		return "ReadIndex"
	case readLeasePath:
		return "lease"
	case readFollowerPath:
		return "follower"
	}
	return "log"
}

// pendingRead is a read a node's core was asked for.
type pendingRead struct {
	client   int
	node     int
	inc      int
	id       uint64
	path     readPath
	call     int64
	input    any
	data     []byte
	deadline int
	// index is the read index, once confirmed.
	index uint64
	// fresh is the highest index any leader had committed when the read
	// was issued: the state it is served from must include it.
	fresh uint64
}

// submitRead hands a client's read to node n's core.
func (s *sim) submitRead(c *client, n *node, path readPath, data []byte, input any) {
	s.readSeq++
	r := &pendingRead{client: c.id, node: n.idx, inc: n.inc, id: s.readSeq, path: path, call: s.step,
		input: input, data: data, deadline: s.tick + s.o.ClientTimeout, fresh: s.g.leaderCommit}
	n.reads[r.id] = r
	c.read = r
	s.syncClock(n)
	n.core.ReadIndex(r.id, path == readLeasePath)
	s.record(event{kind: evRead, node: n.idx, a: uint64(c.id), b: uint64(path)})
	n.dirty = true
	s.maybeReadyNow(n)
	s.checkAll()
}

// readStates takes the outcomes of a Ready's reads.
func (s *sim) readStates(n *node, states []raft.ReadState) {
	for _, rs := range states {
		r := n.reads[rs.ID]
		if r == nil {
			continue
		}
		delete(n.reads, rs.ID)
		if rs.Err != nil {
			s.record(event{kind: evReadFailed, node: n.idx, a: uint64(r.client)})
			s.rep.ReadsFailed++
			s.wl.submitted--
			s.endRead(r, true)
			continue
		}
		r.index = rs.Index
		if s.o.readSkipsApply {
			r.index = 0
		}
		n.readWait = append(n.readWait, r)
	}
	s.serveReads(n)
}

// serveReads runs every confirmed read whose index n has applied.
func (s *sim) serveReads(n *node) {
	if len(n.readWait) == 0 || s.fail != nil {
		return
	}
	keep := n.readWait[:0]
	for _, r := range n.readWait {
		if r.index > n.appliedIdx {
			keep = append(keep, r)
			continue
		}
		if n.appliedIdx < r.fresh {
			s.failf(InvariantStaleRead, "%s serves a %s read of client %d (read index %d) with entries up to %d applied, but a leader had committed %d when the read was issued",
				n.id, r.path, r.client, r.index, n.appliedIdx, r.fresh)
			return
		}
		out, err := n.sm.read(r.data)
		if err != nil {
			s.failf(InvariantApplication, "%s: %v", n.id, err)
			return
		}
		s.record(event{kind: evReadServed, node: n.idx, a: uint64(r.client), b: r.index})
		s.wl.history = append(s.wl.history, porcupine.Operation{
			ClientId: r.client, Input: r.input, Call: r.call, Output: out, Return: s.step,
		})
		switch r.path {
		case readLeasePath:
			s.rep.LeaseReads++
		case readFollowerPath:
			s.rep.FollowerReads++
		default:
			s.rep.IndexReads++
		}
		s.wl.clients[r.client].read = nil
	}
	n.readWait = keep
}

// endRead forgets a read that will not be served; the client tries again
// elsewhere.
func (s *sim) endRead(r *pendingRead, retry bool) {
	c := s.wl.clients[r.client]
	if c.read == r {
		c.read = nil
		if retry {
			c.guess = s.randomTarget()
			c.wakeAt = s.tick + 1
		}
	}
}

// expireReads drops reads whose client gave up.
func (s *sim) expireReads() {
	for _, c := range s.wl.clients {
		r := c.read
		if r == nil || s.tick < r.deadline {
			continue
		}
		if n := s.nodes[r.node]; n.inc == r.inc {
			delete(n.reads, r.id)
			n.readWait = removeRead(n.readWait, r)
		}
		s.record(event{kind: evReadFailed, node: r.node, a: uint64(r.client)})
		s.rep.ReadsFailed++
		s.wl.submitted--
		s.endRead(r, true)
	}
}

func removeRead(rs []*pendingRead, r *pendingRead) []*pendingRead {
	out := rs[:0]
	for _, x := range rs {
		if x != r {
			out = append(out, x)
		}
	}
	return out
}

// dropNodeReads forgets every read of a node that crashed.
func (s *sim) dropNodeReads(n *node) {
	ids := make([]uint64, 0, len(n.reads))
	for id := range n.reads {
		ids = append(ids, id)
	}
	slices.Sort(ids) // map order would make the run irreproducible
	for _, id := range ids {
		s.wl.submitted--
		s.endRead(n.reads[id], true)
	}
	for _, r := range n.readWait {
		s.wl.submitted--
		s.endRead(r, true)
	}
	n.reads, n.readWait = map[uint64]*pendingRead{}, nil
}

// syncClock tells n's core how much time its clock has seen since the core
// started, as the driver does before reads and after a pause.
func (s *sim) syncClock(n *node) {
	if s.o.noClockSync {
		return
	}
	n.core.SyncClock(int64(n.clock) - n.clockBase)
}

// tickNode advances n's clock by its rate and delivers the ticks it passed
// (none while the node is busy or paused: a ticker drops ticks its reader
// is too slow for).
func (s *sim) tickNode(n *node) int {
	before := int64(n.clock)
	n.clock += n.rate
	return int(int64(n.clock) - before)
}

// clientRead sends a client's read on path: to the node it believes leads,
// or, for a follower read, to another running member.
func (s *sim) clientRead(c *client, path readPath, data []byte, input any) {
	n := s.nodes[c.guess]
	if path == readFollowerPath {
		var others []int
		for _, i := range s.targets() {
			if i != c.guess && s.nodes[i].canStep(s.tick) {
				others = append(others, i)
			}
		}
		if len(others) == 0 {
			return
		}
		n = s.nodes[others[s.rng.IntN(len(others))]]
	}
	s.wl.submitted++
	s.submitRead(c, n, path, data, input)
}
