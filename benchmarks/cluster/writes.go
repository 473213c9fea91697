package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/typedraft/typedraft/benchmarks/workload"
	"github.com/typedraft/typedraft/raft"
)

// ApplyOn proposes cmd on node i in Applied mode with raft.Forward and
// waits for the outcome. On a follower that knows the leader the proposal
// is forwarded to it (MsgPropose) and answered with the leader's result
// once the leader applied it; on the leader it is an ordinary Apply. A
// follower that knows no leader fails with a *raft.NotLeaderError; the
// caller retries.
func (c *Cluster) ApplyOn(ctx context.Context, i int, cmd []byte) error {
	_, appErr, err := c.Nodes[i].Apply(ctx, cmd, raft.Forward)
	if err != nil {
		return err
	}
	if appErr != nil {
		return appErr
	}
	return nil
}

// ApplySession proposes cmd to the leader in session s, with s's next
// sequence number, in Applied mode and without forwarding, with the same
// leader handling as Apply. A failed attempt is not retried with its
// sequence number (the next request takes the next one, which the session
// accepts), so the session's exactly-once bookkeeping is all it measures.
func (c *Cluster) ApplySession(ctx context.Context, s *raft.Session, cmd []byte) error {
	return c.applyOnLeader(ctx, cmd, raft.NoForward, s.Next())
}

// sessions are the clients' sessions of OpWriteSession, client k's at
// index k.
type sessions struct {
	mu   sync.Mutex
	list []*raft.Session
}

// OpenSessions opens sessions on the leader until there is one for each
// of clients clients (the sessions of OpWriteSession), so that opening
// them is not measured. Each open is a log entry; call WaitSettled after
// it.
func (c *Cluster) OpenSessions(ctx context.Context, clients int) error {
	_, err := c.session(ctx, clients-1)
	return err
}

// session returns client k's session, opening it (and any missing before
// it) on the leader first.
func (c *Cluster) session(ctx context.Context, k int) (*raft.Session, error) {
	c.sess.mu.Lock()
	defer c.sess.mu.Unlock()
	for len(c.sess.list) <= k {
		n, err := c.leaderNode(ctx)
		if err != nil {
			return nil, err
		}
		s, err := n.OpenSession(ctx)
		if err != nil {
			c.forgetLeader(n, err)
			return nil, fmt.Errorf("cluster: open session %d: %w", len(c.sess.list), err)
		}
		c.sess.list = append(c.sess.list, s)
	}
	return c.sess.list[k], nil
}

// Prepare readies the cluster for clients clients of op before they are
// measured: OpWriteSession's sessions are opened (OpenSessions); the
// other operations need nothing. Call WaitSettled after it.
func (c *Cluster) Prepare(ctx context.Context, op string, clients int) error {
	if op == workload.OpWriteSession {
		return c.OpenSessions(ctx, clients)
	}
	return nil
}

// writeOp returns the workload.Op of one of the writes (see OpFor), and
// ok false for any other op.
func (c *Cluster) writeOp(op string) (fn workload.Op, ok bool, err error) {
	switch op {
	case workload.OpWrite:
		return c.Op(), true, nil
	case workload.OpWriteFollower:
		fs := c.Followers()
		if len(fs) == 0 || len(fs) == len(c.Nodes) {
			return nil, true, errors.New("cluster: follower writes need a leader and at least one follower")
		}
		return func(ctx context.Context, k int, cmd []byte) error { return c.ApplyOn(ctx, fs[k%len(fs)], cmd) }, true, nil
	case workload.OpWriteSession:
		return func(ctx context.Context, k int, cmd []byte) error {
			s, err := c.session(ctx, k)
			if err != nil {
				return err
			}
			return c.ApplySession(ctx, s, cmd)
		}, true, nil
	}
	return nil, false, nil
}
