package rafttest

import (
	"context"
	"errors"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/typedraft/typedraft/raft"
)

// client runs operations from work until it is empty or ctx ends. Each
// operation is proposed to the node the client believes leads; its outcome
// decides how it enters the history.
func (c *cluster[C, R, E]) client(ctx context.Context, id int, work <-chan int) {
	guess := id % len(c.nodes)
	// Every client but the first proposes in a session and retries
	// indeterminate outcomes with the same sequence number (cluster_sessions.go).
	sc := &sessionClient{on: !c.o.NoSessions && id != 0}
	for range work {
		c.mu.Lock()
		think := time.Duration(c.rng.Int64N(int64(c.o.Think) + 1))
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(think):
		}
		for ctx.Err() == nil && !c.failed() {
			c.mu.Lock()
			cmd := c.w.NextCommand(c.rng, id)
			n := c.nodes[guess]
			node := n.node
			c.mu.Unlock()
			if node == nil {
				guess = c.randomNode()
				continue
			}
			if c.w.IsRead != nil && c.w.Read != nil && c.w.IsRead(cmd) {
				if done, ok := c.typedRead(ctx, id, cmd, &guess); ok {
					if done {
						break
					}
					continue
				}
			}
			if sc.on {
				if c.sessionOp(ctx, id, cmd, sc, &guess) {
					break
				}
				continue
			}
			var opts []raft.ProposeOption
			c.mu.Lock()
			if c.rng.IntN(4) == 0 || c.o.NoForward {
				// Some plain proposals are not forwarded: the client
				// follows the *NotLeaderError instead.
				opts = append(opts, raft.NoForward)
			}
			c.mu.Unlock()
			opCtx, cancel := context.WithTimeout(ctx, c.o.OpTimeout)
			call := c.now()
			f := node.Propose(opCtx, cmd, opts...)
			res, err := f.Wait(opCtx)
			ret := c.now()
			cancel()
			if c.record(id, cmd, call, ret, f, res, err) {
				break
			}
			// The command did not happen: find the leader and try again.
			var nl *raft.NotLeaderError
			if errors.As(err, &nl) && nl.LeaderID != "" {
				guess = c.index(nl.LeaderID)
			} else {
				guess = c.randomNode()
			}
			if errors.As(err, &nl) {
				// Give an election time to finish rather than spin.
				c.pause(ctx)
			}
		}
	}
}

// typedRead sends a read-only command as a typed read (raft.Query), on
// three of four draws: linearizable or lease, on the node the client
// believes leads or on another one. ok is false when the draw sends it
// through the log instead; done reports whether the read was answered.
func (c *cluster[C, R, E]) typedRead(ctx context.Context, client int, cmd C, guess *int) (done, ok bool) {
	c.mu.Lock()
	draw := c.rng.IntN(4)
	target := *guess
	if draw == 3 {
		target = c.rng.IntN(len(c.nodes))
	}
	n := c.nodes[target]
	node, sm := n.node, n.sm
	c.mu.Unlock()
	if draw == 0 {
		return false, false
	}
	if node == nil {
		*guess = c.randomNode()
		return false, true
	}
	mode := raft.ReadLinearizable
	if draw == 2 {
		mode = raft.ReadLease
	}
	opCtx, cancel := context.WithTimeout(ctx, c.o.OpTimeout)
	defer cancel()
	call := c.now()
	out, err := raft.Query(opCtx, node, mode, func() Outcome[R, E] {
		v, e := c.w.Read(sm, cmd)
		return Outcome[R, E]{Value: v, Err: e}
	})
	ret := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		// A read that failed changed nothing: try again, elsewhere.
		c.rep.ReadsFailed++
		var nl *raft.NotLeaderError
		if errors.As(err, &nl) && nl.LeaderID != "" {
			*guess = c.index(nl.LeaderID)
		} else {
			*guess = c.rng.IntN(len(c.nodes))
		}
		c.mu.Unlock()
		c.pause(ctx)
		c.mu.Lock()
		return false, true
	}
	c.hist = append(c.hist, porcupine.Operation{ClientId: client, Input: cmd, Call: call, Output: out, Return: ret})
	c.rep.Reads++
	return true, true
}

func (c *cluster[C, R, E]) randomNode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rng.IntN(len(c.nodes))
}

func (c *cluster[C, R, E]) index(id raft.NodeID) int {
	for i, x := range c.ids {
		if x == id {
			return i
		}
	}
	return 0
}

// record adds an operation to the history and reports whether it counts
// (false: it definitely did not happen and the client should retry).
func (c *cluster[C, R, E]) record(client int, cmd C, call, ret int64, f *raft.Future[R, E], res raft.Result[R, E], err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil && res.Index == 0 && res.Rejected():
		// Rejected by Validate before entering the log: the rejection is a
		// read of the state, and must be linearizable like one.
		c.hist = append(c.hist, porcupine.Operation{ClientId: client, Input: cmd, Call: call,
			Output: Outcome[R, E]{Err: res.Err}, Return: ret})
		c.rep.Rejected++
		return true
	case err == nil:
		c.hist = append(c.hist, porcupine.Operation{ClientId: client, Input: cmd, Call: call,
			Output: Outcome[R, E]{Value: res.Value, Err: res.Err}, Return: ret})
		c.acked = append(c.acked, res)
		c.rep.Acked++
		return true
	case errors.Is(err, raft.ErrIndeterminate):
		c.unknown[len(c.hist)] = f
		c.hist = append(c.hist, porcupine.Operation{ClientId: client, Input: cmd, Call: call,
			Output: c.app.unknown, Return: maxReturn})
		c.rep.Unknown++
		return true
	default:
		c.rep.Failed++
		return false
	}
}

// injectFaults draws one fault action every FaultInterval until ctx ends.
func (c *cluster[C, R, E]) injectFaults(ctx context.Context) {
	f := c.o.Faults
	total := f.Partition + f.OneWay + f.Lossy + f.Isolate + f.Crash
	if total == 0 {
		return
	}
	t := time.NewTicker(f.FaultInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.net.Heal()
			return
		case <-t.C:
		}
		c.mu.Lock()
		x := c.rng.Float64() * (total + 1)
		victim := c.nodes[c.rng.IntN(len(c.nodes))]
		minority := c.rng.IntN(max(1, (c.o.Nodes-1)/2)) + 1
		perm := c.rng.Perm(len(c.nodes))
		drop := c.rng.Float64() * f.MaxDrop
		delay := time.Duration(c.rng.Int64N(int64(f.MaxDelay) + 1))
		down := time.Duration(c.rng.Int64N(int64(f.Downtime) + 1))
		c.rep.Faults++
		c.mu.Unlock()
		var group []raft.NodeID
		for _, i := range perm[:minority] {
			group = append(group, c.ids[i])
		}
		switch {
		case x < 1:
			c.net.Heal()
		case x < 1+f.Partition:
			_ = c.net.Partition(group)
		case x < 1+f.Partition+f.OneWay:
			for _, id := range c.ids {
				if id != victim.id {
					c.net.Cut(victim.id, id)
				}
			}
		case x < 1+f.Partition+f.OneWay+f.Lossy:
			_ = c.net.SetDropRateAll(drop)
			_ = c.net.SetDelayAll(0, delay)
			c.net.SetReorder(true)
		case x < 1+f.Partition+f.OneWay+f.Lossy+f.Isolate:
			c.net.Isolate(victim.id)
		default:
			c.crash(ctx, victim, down)
		}
	}
}

// crash stops n and restarts it on the same store after down, unless the
// membership fault retires it or starts it again meanwhile.
func (c *cluster[C, R, E]) crash(ctx context.Context, n *liveNode[C, R, E], down time.Duration) {
	n.life.Lock()
	c.mu.Lock()
	skip := n.retired || n.node == nil
	c.mu.Unlock()
	if !skip {
		c.stopNode(n)
	}
	n.life.Unlock()
	if skip {
		return
	}
	c.mu.Lock()
	c.rep.Crashes++
	c.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-time.After(down):
	}
	n.life.Lock()
	defer n.life.Unlock()
	c.mu.Lock()
	skip = n.retired || n.node != nil
	c.mu.Unlock()
	if skip {
		return
	}
	if err := c.startNode(n); err != nil {
		c.failf(InvariantLiveness, "restart %s: %v", n.id, err)
	}
}

// verify checks that every acknowledged operation is in the log of every
// member of the settled configuration at its index and term (unless
// compacted away) and applied there.
func (c *cluster[C, R, E]) verify() {
	for _, res := range c.acked {
		for _, n := range c.members {
			t, err := n.store.Term(res.Index)
			if errors.Is(err, raft.ErrCompacted) {
				continue
			}
			if err != nil || t != res.Term {
				c.failf(InvariantAckedWritesDurable, "acknowledged entry %d term %d: %s holds term %d (%v)", res.Index, res.Term, n.id, t, err)
				return
			}
			if a := n.node.Status().Applied; a < res.Index {
				c.failf(InvariantAckedWritesDurable, "acknowledged entry %d is not applied on %s (applied %d)", res.Index, n.id, a)
				return
			}
		}
	}
	// An unknown operation never appended, appended beyond the settled
	// commit index, or appended where another entry or command was
	// applied, never happened. One whose entry (its index and term) is in
	// the settled log happened, and its output is what the state machine
	// returned there; its client still never saw it, so it stays open
	// to the end. The others stay as possibly applied. A forwarded one
	// that failed does not know whether or where the leader appended it.
	keep := c.hist[:0]
	for i, op := range c.hist {
		if f, ok := c.unknown[i]; ok {
			idx, term := f.Index()
			t, known := c.settledTerm(idx)
			out, recorded, same := c.applied.at(idx, op.Input)
			switch {
			case idx == 0 && f.Forwarded():
			case idx == 0 || idx > c.final || (known && t != term) || (recorded && !same):
				c.rep.Unknown--
				c.rep.Failed++
				continue
			case known && recorded:
				op.Output = out
			}
		}
		keep = append(keep, op)
	}
	c.hist = keep
}

// settledTerm returns the term of the entry at index in the settled log,
// if a member still holds it (not compacted).
func (c *cluster[C, R, E]) settledTerm(index uint64) (uint64, bool) {
	if index == 0 {
		return 0, false
	}
	for _, n := range c.members {
		if t, err := n.store.Term(index); err == nil {
			return t, true
		}
	}
	return 0, false
}

func (c *cluster[C, R, E]) checkHistory() {
	c.rep.Ops = len(c.hist)
	switch porcupine.CheckOperationsTimeout(c.app.model, c.hist, c.o.CheckTimeout) {
	case porcupine.Ok:
	case porcupine.Unknown:
		c.failf(InvariantLinearizability, "the checker did not finish within %v on %d operations (%d unknown); a timeout counts as a failure",
			c.o.CheckTimeout, len(c.hist), c.rep.Unknown)
	default:
		c.failf(InvariantLinearizability, "the history of %d operations (%d acknowledged, %d unknown) is not linearizable%s",
			len(c.hist), c.rep.Acked, c.rep.Unknown, describeHistory(c.app.model, c.hist, c.o.CheckTimeout))
	}
}
