package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/typedraft/typedraft/benchmarks/workload"
	"github.com/typedraft/typedraft/raft"
)

// ReadCommand is the command of a read through the log (workload.OpReadLog):
// the FSM applies an empty command as a read that changes nothing.
var ReadCommand = []byte{}

// ReadLog proposes ReadCommand to the leader, waits until it is applied
// there, and returns the count the leader's state machine answered: a read
// through the log, with the same leader handling as Apply.
func (c *Cluster) ReadLog(ctx context.Context) (uint64, error) {
	n, err := c.leaderNode(ctx)
	if err != nil {
		return 0, err
	}
	v, appErr, err := n.Apply(ctx, ReadCommand, raft.NoForward)
	if err != nil {
		c.forgetLeader(n, err)
		return 0, err
	}
	if appErr != nil {
		return 0, appErr
	}
	return v, nil
}

// Read reads the count from node i's state machine with mode (raft.Query
// on Nodes[i]). On a follower, a linearizable read asks the leader for the
// read index and is served locally.
func (c *Cluster) Read(ctx context.Context, i int, mode raft.ReadMode) (uint64, error) {
	return raft.Query(ctx, c.Nodes[i], mode, c.FSMs[i].Count)
}

// ReadLeader reads the count from the leader's state machine with mode,
// with the same leader handling as Apply.
func (c *Cluster) ReadLeader(ctx context.Context, mode raft.ReadMode) (uint64, error) {
	n, err := c.leaderNode(ctx)
	if err != nil {
		return 0, err
	}
	i := c.index(n)
	v, err := c.Read(ctx, i, mode)
	if err != nil {
		c.forgetLeader(n, err)
	}
	return v, err
}

// WaitSettled polls until every node has applied the leader's commit
// index, so that work left from earlier requests (followers catching up)
// does not spill into the next measurement. It returns ctx's error if ctx
// ends first.
func (c *Cluster) WaitSettled(ctx context.Context) error {
	for {
		lead, err := c.leaderNode(ctx)
		if err != nil {
			return err
		}
		commit, settled := lead.Status().Commit, true
		for _, n := range c.Nodes {
			if n.Status().Applied < commit {
				settled = false
			}
		}
		if settled {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: wait until settled: %w", ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Followers returns the indexes in Nodes of the nodes that are not the
// current leader (all of them before a leader is known).
func (c *Cluster) Followers() []int {
	lead := c.leader.Load()
	var out []int
	for i, n := range c.Nodes {
		if n != lead {
			out = append(out, i)
		}
	}
	return out
}

// OpFor returns the workload.Op for one of workload.Ops:
//
//   - OpWrite proposes the client's command to the leader (Apply);
//   - OpWriteFollower proposes it on the followers as they are when OpFor
//     is called, client k on the (k mod F)-th of the F followers, which
//     forward it to the leader (ApplyOn); it fails on a single-node
//     cluster;
//   - OpWriteSession proposes it to the leader in client k's session, a
//     fresh sequence number per request (ApplySession); the sessions are
//     opened by Prepare or, failing that, on the client's first request;
//   - OpReadLog proposes ReadCommand (ReadLog) and ignores the client's;
//   - OpReadIndex and OpReadLease read on the leader with
//     raft.ReadLinearizable and raft.ReadLease (ReadLeader);
//   - OpReadFollower reads with raft.ReadLinearizable on the followers as
//     they are when OpFor is called, client k on the (k mod F)-th of the F
//     followers, so the clients are spread evenly over them. It fails on a
//     single-node cluster, which has no follower.
func (c *Cluster) OpFor(op string) (workload.Op, error) {
	if fn, ok, err := c.writeOp(op); ok {
		return fn, err
	}
	switch op {
	case workload.OpReadLog:
		return func(ctx context.Context, _ int, _ []byte) error { _, err := c.ReadLog(ctx); return err }, nil
	case workload.OpReadIndex:
		return c.leaderReadOp(raft.ReadLinearizable), nil
	case workload.OpReadLease:
		return c.leaderReadOp(raft.ReadLease), nil
	case workload.OpReadFollower:
		fs := c.Followers()
		if len(fs) == 0 {
			return nil, errors.New("cluster: follower reads need a cluster of at least 2 nodes")
		}
		return func(ctx context.Context, k int, _ []byte) error {
			_, err := c.Read(ctx, fs[k%len(fs)], raft.ReadLinearizable)
			return err
		}, nil
	}
	return nil, fmt.Errorf("cluster: unknown operation %q (want one of %v)", op, workload.Ops)
}

func (c *Cluster) leaderReadOp(mode raft.ReadMode) workload.Op {
	return func(ctx context.Context, _ int, _ []byte) error { _, err := c.ReadLeader(ctx, mode); return err }
}

// leaderNode returns the node Apply sends to, looking for one if none is
// known.
func (c *Cluster) leaderNode(ctx context.Context) (*Node, error) {
	if n := c.leader.Load(); n != nil {
		return n, nil
	}
	return c.WaitLeader(ctx)
}

// forgetLeader drops n as the leader when err says it no longer leads.
func (c *Cluster) forgetLeader(n *Node, err error) {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrNotConfirmed) {
		c.leader.CompareAndSwap(n, nil)
	}
}

// index returns n's index in Nodes.
func (c *Cluster) index(n *Node) int {
	for i, m := range c.Nodes {
		if m == n {
			return i
		}
	}
	panic("cluster: node not in the cluster")
}
