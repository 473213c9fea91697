package raft

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// changeMembership computes the new membership from the current one on the
// driver goroutine, appends it, and waits until the final (non-joint)
// configuration containing it is committed.
func (d *driver) changeMembership(ctx context.Context, edit func(cur Configuration) ([]Server, error)) error {
	var idx uint64
	var err error
	if e := d.do(ctx, func() {
		var servers []Server
		servers, err = edit(d.core.conf.cfg.Clone())
		if err != nil {
			return
		}
		if err = validateConfiguration(Configuration{Servers: servers}); err != nil {
			return
		}
		idx, err = d.core.proposeConfChange(servers, d.cfg.MaxCatchUpLag)
		switch {
		case errors.Is(err, errNotLeaderCore):
			err = d.notLeader()
		case errors.Is(err, errTransferring):
			err = ErrTransferInProgress
		case errors.Is(err, errConfChangePending):
			err = ErrConfigChangePending
		case errors.Is(err, errNotCaughtUp):
			err = fmt.Errorf("%w: %w", ErrNotCaughtUp, err)
		}
		d.publishStatus()
	}); e != nil {
		return e
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
		out = d.core.progressOf()
		if out == nil {
			err = d.notLeader()
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
