package raft

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// AddLearner adds a non-voting member that receives the log but neither
// votes nor counts toward quorums. If waitCaughtUp, it returns only once the
// learner holds the configuration entry that added it and its log is within
// MaxCatchUpLag entries of the leader's commit index (or ctx ends). Call it on the leader; it returns a *NotLeaderError
// elsewhere, ErrConfigChangePending while another change is in progress,
// and an error matching ErrInvalidConfig if id is already a member.
func (r *Raft[C, R, E]) AddLearner(ctx context.Context, id NodeID, addr string, waitCaughtUp bool) error {
	err := r.d.changeMembership(ctx, func(cur Configuration) ([]Server, error) {
		return withServer(cur.Servers, Server{ID: id, Addr: addr, Suffrage: Learner})
	})
	if err != nil || !waitCaughtUp {
		return err
	}
	return r.waitCaughtUp(ctx, id)
}

// waitCaughtUp polls the leader's progress until id is within the allowed
// lag of the commit index.
func (r *Raft[C, R, E]) waitCaughtUp(ctx context.Context, id NodeID) error {
	t := time.NewTicker(r.d.cfg.TickInterval)
	defer t.Stop()
	for {
		prs, err := r.d.progress(ctx)
		if err != nil {
			return err
		}
		match, ok := prs[id]
		if !ok {
			return fmt.Errorf("%w: %s is not a member", ErrInvalidConfig, id)
		}
		// Caught up: it holds the configuration that added it (so it has
		// answered at least once) and is within the allowed lag.
		if s := r.Status(); match >= s.ConfigIndex && s.Commit <= match+r.d.cfg.maxCatchUpLag() {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-r.d.done:
			return ErrShutdown
		}
	}
}

// PromoteLearner makes the learner id a voter, by joint consensus. It is
// refused with ErrNotCaughtUp while the learner's log is more than
// MaxCatchUpLag entries behind the leader's.
func (r *Raft[C, R, E]) PromoteLearner(ctx context.Context, id NodeID) error {
	return r.d.changeMembership(ctx, func(cur Configuration) ([]Server, error) {
		out := slices.Clone(cur.Servers)
		for i := range out {
			if out[i].ID == id {
				if out[i].Suffrage == Voter {
					return nil, fmt.Errorf("%w: %s is already a voter", ErrInvalidConfig, id)
				}
				out[i].Suffrage = Voter
				return out, nil
			}
		}
		return nil, fmt.Errorf("%w: %s is not a member", ErrInvalidConfig, id)
	})
}

// RemoveServer removes id (voter or learner) from the cluster, by joint
// consensus when it is a voter. Removing the leader itself is allowed: it
// steps down once the configuration without it is committed. Removing the
// last voter is refused.
func (r *Raft[C, R, E]) RemoveServer(ctx context.Context, id NodeID) error {
	return r.d.changeMembership(ctx, func(cur Configuration) ([]Server, error) {
		out := slices.DeleteFunc(slices.Clone(cur.Servers), func(s Server) bool { return s.ID == id })
		if len(out) == len(cur.Servers) {
			return nil, fmt.Errorf("%w: %s is not a member", ErrInvalidConfig, id)
		}
		return out, nil
	})
}

// ChangeMembership replaces the membership with servers (voters and
// learners) in one change: the leader commits C(old,new), in which every
// decision needs majorities of both the old and the new voters, then C(new).
// Any number of voters may be added, removed or replaced at once; new voters
// must already be learners that have caught up (ErrNotCaughtUp otherwise).
// It returns once C(new) is committed, ErrConfigChangePending if a change is
// already in progress, or an error matching ErrIndeterminate if leadership
// was lost before the outcome was known.
func (r *Raft[C, R, E]) ChangeMembership(ctx context.Context, servers []Server) error {
	return r.d.changeMembership(ctx, func(Configuration) ([]Server, error) {
		return slices.Clone(servers), nil
	})
}

// Progress returns, on the leader, the highest log index known to be
// replicated on each member (including the leader itself).
func (r *Raft[C, R, E]) Progress(ctx context.Context) (map[NodeID]uint64, error) {
	return r.d.progress(ctx)
}
