package rafttest

import (
	"math"
	"math/rand/v2"

	"github.com/anishathalye/porcupine"

	"github.com/typedraft/typedraft/raft"
)

// maxReturn is the return time of an operation whose outcome is unknown: it
// may take effect at any point after its call.
const maxReturn = math.MaxInt64

// submitChance is the probability that an idle client submits in a tick.
const submitChance = 0.5

// client is one simulated client: it talks to the node it believes leads
// and has at most one operation outstanding.
type client struct {
	id     int
	guess  int
	op     *pendingOp
	read   *pendingRead
	wakeAt int
}

// busy reports whether the client has an operation outstanding.
func (c *client) busy() bool { return c.op != nil || c.read != nil }

// pendingOp is an operation a leader accepted, awaiting its outcome.
type pendingOp struct {
	client   int
	node     int
	inc      int
	index    uint64
	term     uint64
	call     int64
	input    any
	deadline int
}

// ackedOp is an operation whose client saw it applied.
type ackedOp struct {
	index, term, hash uint64
}

// unknownRef locates an operation with an unknown outcome in the history.
type unknownRef struct {
	hist        int
	index, term uint64
}

// workload is the clients' state and the history they produced.
type workload struct {
	clients []*client
	// submitted counts operations a leader accepted, less those the client
	// later saw dropped.
	submitted int
	history   []porcupine.Operation
	acked     []ackedOp
	unknown   []unknownRef
}

func newWorkload(n int, rng *rand.Rand, nodes int) *workload {
	w := &workload{}
	for i := 0; i < n; i++ {
		w.clients = append(w.clients, &client{id: i, guess: rng.IntN(nodes)})
	}
	return w
}

// done reports whether every operation was submitted and has an outcome.
func (w *workload) done(ops int) bool {
	if w.submitted < ops {
		return false
	}
	for _, c := range w.clients {
		if c.busy() {
			return false
		}
	}
	return true
}

type submission struct {
	c     *client
	data  []byte
	input any
}

// clientTick times out overdue operations and lets idle clients submit.
// Clients that pick the same node in a tick reach it as one batch.
func (s *sim) clientTick() {
	wl := s.wl
	for _, c := range wl.clients {
		if c.op != nil && s.tick >= c.op.deadline {
			if n := s.nodes[c.op.node]; n.inc == c.op.inc {
				delete(n.pending, c.op.index)
			}
			s.unknownOp(c.op)
		}
	}
	if s.settling || wl.submitted >= s.o.Ops {
		return
	}
	burst := s.f.Burst > 0 && s.rng.Float64() < s.f.Burst
	groups := make([][]submission, len(s.nodes))
	planned := 0
	for _, c := range wl.clients {
		if c.busy() || c.wakeAt > s.tick || wl.submitted+planned >= s.o.Ops {
			continue
		}
		if !burst && s.rng.Float64() >= submitChance {
			continue
		}
		n := s.nodes[c.guess]
		if !n.up {
			// Connection refused: try another node next tick.
			c.guess, c.wakeAt = s.randomTarget(), s.tick+1
			continue
		}
		if !n.canStep(s.tick) {
			// The node is busy or frozen: the request waits; sometimes the
			// client gives up on it and tries elsewhere.
			if s.rng.IntN(5) == 0 {
				c.guess = s.randomTarget()
			}
			continue
		}
		data, input, err := s.app.next(s.rng, c.id)
		if err != nil {
			s.failf(InvariantApplication, "%v", err)
			return
		}
		if s.app.isRead != nil && s.app.isRead(input) {
			if path := readPath(s.rng.IntN(4)); path != readViaLog {
				s.clientRead(c, path, data, input)
				continue
			}
		}
		groups[c.guess] = append(groups[c.guess], submission{c: c, data: data, input: input})
		planned++
	}
	for i, g := range groups {
		if len(g) > 0 && s.fail == nil {
			s.propose(s.nodes[i], g)
		}
	}
}

// propose hands a batch of commands to n's core.
func (s *sim) propose(n *node, g []submission) {
	ents := make([]raft.Entry, len(g))
	for i, sub := range g {
		ents[i] = raft.Entry{Type: raft.EntryCommand, Data: sub.data}
	}
	first, term, err := n.core.Propose(ents)
	if err != nil {
		_, _, lead, _, _, _ := n.core.Basic()
		for _, sub := range g {
			s.record(event{kind: evReject, node: n.idx, a: uint64(sub.c.id)})
			if li, ok := s.index[lead]; ok && li != n.idx {
				sub.c.guess = li
			} else {
				sub.c.guess = s.randomTarget()
			}
			sub.c.wakeAt = s.tick + 1
		}
		return
	}
	for i, sub := range g {
		s.record(event{kind: evPropose, node: n.idx, a: uint64(sub.c.id), b: first + uint64(i), term: term})
		op := &pendingOp{client: sub.c.id, node: n.idx, inc: n.inc, index: first + uint64(i), term: term,
			call: s.step, input: sub.input, deadline: s.tick + s.o.ClientTimeout}
		n.pending[op.index] = op
		sub.c.op = op
		s.wl.submitted++
	}
	n.dirty = true
	s.maybeReadyNow(n)
	s.checkAll()
}

// randomTarget returns a random node among those faults and clients aim
// at (targets): clients know the cluster's membership, not the spares.
func (s *sim) randomTarget() int {
	t := s.targets()
	if len(t) == 0 {
		return s.rng.IntN(len(s.nodes))
	}
	return t[s.rng.IntN(len(t))]
}

// resolveOp records op's outcome, seen by its client when the node it
// proposed through applied it.
func (s *sim) resolveOp(op *pendingOp, out any, hash uint64) {
	s.record(event{kind: evResolve, node: op.node, a: uint64(op.client), b: op.index, term: op.term})
	s.wl.history = append(s.wl.history, porcupine.Operation{
		ClientId: op.client, Input: op.input, Call: op.call, Output: out, Return: s.step,
	})
	s.wl.acked = append(s.wl.acked, ackedOp{index: op.index, term: op.term, hash: hash})
	s.rep.Acked++
	s.wl.clients[op.client].op = nil
}

// unknownOp records that op's client gave up: it may or may not have been
// applied, so it stays in the history with no return.
func (s *sim) unknownOp(op *pendingOp) {
	s.record(event{kind: evTimeout, node: op.node, a: uint64(op.client), b: op.index, term: op.term})
	s.wl.unknown = append(s.wl.unknown, unknownRef{hist: len(s.wl.history), index: op.index, term: op.term})
	s.wl.history = append(s.wl.history, porcupine.Operation{
		ClientId: op.client, Input: op.input, Call: op.call, Output: s.app.unknown, Return: maxReturn,
	})
	s.rep.Unknown++
	c := s.wl.clients[op.client]
	c.op = nil
	c.guess = s.randomTarget()
}

// dropOp records that op's entry was replaced by another: it was
// definitely not applied, and it leaves the history.
func (s *sim) dropOp(op *pendingOp, n *node) {
	s.record(event{kind: evResolve, node: op.node, a: uint64(op.client), b: op.index, term: 0})
	s.rep.Dropped++
	s.wl.submitted--
	c := s.wl.clients[op.client]
	c.op = nil
	_, _, lead, _, _, _ := n.core.Basic()
	if li, ok := s.index[lead]; ok {
		c.guess = li
	}
}
