package raft

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// proposeMembership runs on the driver goroutine: it computes the new
// membership with edit and appends it. settling reports that the change was
// refused only because this leader has not yet committed an entry of its own
// term, so the caller should retry once the commit index moves.
func (d *driver) proposeMembership(edit func(cur Configuration) ([]Server, error)) (idx uint64, settling bool, err error) {
	servers, err := edit(d.core.Status().Configuration.Clone())
	if err != nil {
		return 0, false, err
	}
	if err = validateConfiguration(Configuration{Servers: servers}); err != nil {
		return 0, false, err
	}
	idx, err = d.core.ProposeMembership(servers, d.cfg.maxCatchUpLag())
	if errors.Is(err, ErrConfigChangePending) && !d.core.Status().OwnTermCommitted {
		return 0, true, nil
	}
	return idx, false, d.coreError(err)
}

// changeMembership computes the new membership from the current one on the
// driver goroutine, appends it, and waits until the final (non-joint)
// configuration containing it is committed.
func (d *driver) changeMembership(ctx context.Context, edit func(cur Configuration) ([]Server, error)) error {
	var idx uint64
	var err error
	for {
		// A new leader treats every configuration entry it inherited as
		// pending until an entry of its own term commits. A change requested
		// in that window waits for it rather than failing: the window is an
		// artefact of the election, not a change someone else is making.
		var settling bool
		w := d.watch()
		if e := d.do(ctx, func() {
			idx, settling, err = d.proposeMembership(edit)
			d.publishStatus()
		}); e != nil {
			return e
		}
		if !settling {
			break
		}
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err != nil {
		return err
	}
	d.log.Info("membership change proposed", "index", idx)
	for {
		w := d.watch()
		s := d.status.Load()
		switch {
		case s.ConfigIndex >= idx && !s.Configuration.Joint() && s.Commit >= s.ConfigIndex:
			return nil
		case s.State == Shutdown:
			return indeterminate(ErrShutdown)
		case s.State != Leader && !(s.ConfigIndex >= idx && s.Commit >= idx):
			// A new leader finishes (or, if C(old,new) never committed,
			// abandons) the change.
			return indeterminate(ErrLeadershipLost)
		}
		select {
		case <-w:
		case <-ctx.Done():
			return indeterminate(ctx.Err())
		}
	}
}

// progress returns the leader's view of each member's match index.
func (d *driver) progress(ctx context.Context) (map[NodeID]uint64, error) {
	var out map[NodeID]uint64
	var err error
	if e := d.do(ctx, func() {
		prs := d.core.Progress()
		if prs == nil {
			err = d.notLeader()
			return
		}
		out = make(map[NodeID]uint64, len(prs))
		for _, p := range prs {
			out[p.ID] = p.Match
		}
	}); e != nil {
		return nil, e
	}
	return out, err
}

func withServer(cur []Server, s Server) ([]Server, error) {
	if slices.ContainsFunc(cur, func(x Server) bool { return x.ID == s.ID }) {
		return nil, fmt.Errorf("%w: %s is already a member", ErrInvalidConfig, s.ID)
	}
	return append(slices.Clone(cur), s), nil
}
