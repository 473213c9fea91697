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
			opCtx, cancel := context.WithTimeout(ctx, c.o.OpTimeout)
			call := c.now()
			f := node.Propose(opCtx, cmd)
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
				select {
				case <-ctx.Done():
				case <-time.After(c.o.TickInterval):
				}
			}
		}
	}
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
		// Rejected by Validate before entering the log: no effect.
		c.rep.Failed++
		return false
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
	// commit index, or appended where another command was applied, never
	// happened; the others stay as possibly applied.
	keep := c.hist[:0]
	for i, op := range c.hist {
		if f, ok := c.unknown[i]; ok {
			idx, _ := f.Index()
			if idx == 0 || idx > c.final || c.applied.notApplied(idx, op.Input) {
				c.rep.Unknown--
				c.rep.Failed++
				continue
			}
		}
		keep = append(keep, op)
	}
	c.hist = keep
}

func (c *cluster[C, R, E]) checkHistory() {
	c.rep.Ops = len(c.hist)
	switch porcupine.CheckOperationsTimeout(c.app.model, c.hist, c.o.CheckTimeout) {
	case porcupine.Ok:
	case porcupine.Unknown:
		c.failf(InvariantLinearizability, "the checker did not finish within %v on %d operations; a timeout counts as a failure",
			c.o.CheckTimeout, len(c.hist))
	default:
		c.failf(InvariantLinearizability, "the history of %d operations (%d acknowledged, %d unknown) is not linearizable%s",
			len(c.hist), c.rep.Acked, c.rep.Unknown, describeHistory(c.app.model, c.hist, c.o.CheckTimeout))
	}
}
