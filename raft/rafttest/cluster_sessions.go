package rafttest

import (
	"context"
	"errors"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/typedraft/typedraft/raft"
)

// sessionClient is one RunCluster client's session.
type sessionClient struct {
	on   bool
	sess *raft.Session
}

// sessionOp runs cmd in the client's session (opening one first if it
// has none) and reports whether the operation entered the history (false:
// it definitely did not happen; the caller draws another). An
// indeterminate outcome is retried with the same Seq, on another node
// when the client does not know the leader, until an attempt gives a
// definite answer: the operation then enters the history once, with the
// outcome of the attempt that applied it. Only a run out of time (three
// OpTimeouts) or an expired session leaves it unknown.
func (c *cluster[C, R, E]) sessionOp(ctx context.Context, client int, cmd C, sc *sessionClient, guess *int) bool {
	if sc.sess == nil {
		node := c.nodeAt(*guess)
		if node == nil {
			*guess = c.randomNode()
			return false
		}
		opCtx, cancel := context.WithTimeout(ctx, c.o.OpTimeout)
		s, err := node.OpenSession(opCtx)
		cancel()
		if err != nil {
			c.follow(err, guess)
			c.pause(ctx)
			return false
		}
		c.mu.Lock()
		c.rep.SessionsOpened++
		c.mu.Unlock()
		sc.sess = s
	}
	seq := sc.sess.Next()
	call := c.now()
	deadline := time.Now().Add(3 * c.o.OpTimeout)
	mayHaveApplied := false
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			c.mu.Lock()
			c.rep.SessionRetries++
			c.mu.Unlock()
		}
		var res raft.Result[R, E]
		var err error
		if node := c.nodeAt(*guess); node == nil {
			err = raft.ErrShutdown
		} else {
			opCtx, cancel := context.WithTimeout(ctx, c.o.OpTimeout)
			res, err = node.Propose(opCtx, cmd, seq).Wait(opCtx)
			cancel()
		}
		ret := c.now()
		switch {
		case err == nil:
			c.mu.Lock()
			c.hist = append(c.hist, porcupine.Operation{ClientId: client, Input: cmd, Call: call,
				Output: Outcome[R, E]{Value: res.Value, Err: res.Err}, Return: ret})
			c.acked = append(c.acked, res)
			c.rep.Acked++
			c.rep.SessionOps++
			c.mu.Unlock()
			return true
		case errors.Is(err, raft.ErrSessionExpired) || errors.Is(err, raft.ErrSessionSeqOld):
			// Gone with the session: an earlier attempt may have applied it.
			sc.sess = nil
			if !mayHaveApplied {
				c.failedOp()
				return false
			}
			c.unknownOp(client, cmd, call)
			return true
		case errors.Is(err, raft.ErrIndeterminate):
			mayHaveApplied = true
		case !mayHaveApplied && !errors.Is(err, raft.ErrShutdown):
			// A definite failure of the only attempt: it did not happen.
			c.follow(err, guess)
			c.failedOp()
			c.pause(ctx)
			return false
		}
		if time.Now().After(deadline) || ctx.Err() != nil || c.failed() {
			if !mayHaveApplied {
				c.failedOp()
				return false
			}
			c.unknownOp(client, cmd, call)
			return true
		}
		c.follow(err, guess)
		c.pause(ctx)
	}
}

// pause waits a tick (or until ctx ends) before a client tries again, so
// that a cluster without a leader is not flooded.
func (c *cluster[C, R, E]) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(c.o.TickInterval):
	}
}

// nodeAt returns the running node at index i (nil if it is down).
func (c *cluster[C, R, E]) nodeAt(i int) *raft.Raft[C, R, E] {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].node
}

// follow points guess at the leader err names, or at a random node.
func (c *cluster[C, R, E]) follow(err error, guess *int) {
	var nl *raft.NotLeaderError
	if errors.As(err, &nl) && nl.LeaderID != "" {
		*guess = c.index(nl.LeaderID)
		return
	}
	*guess = c.randomNode()
}

func (c *cluster[C, R, E]) failedOp() {
	c.mu.Lock()
	c.rep.Failed++
	c.mu.Unlock()
}

// unknownOp records a session operation whose outcome stayed unknown.
func (c *cluster[C, R, E]) unknownOp(client int, cmd C, call int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hist = append(c.hist, porcupine.Operation{ClientId: client, Input: cmd, Call: call,
		Output: c.app.unknown, Return: maxReturn})
	c.rep.Unknown++
	c.rep.SessionOps++
}
