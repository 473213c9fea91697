package raft

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// publishStatus stores a new Status if anything changed and wakes watchers.
func (d *driver) publishStatus() {
	c := d.core.Status()
	if c.Campaigns > d.campaigns {
		d.metrics.add(&d.metrics.elections, c.Campaigns-d.campaigns)
		d.campaigns = c.Campaigns
	}
	s := Status{
		ID:          d.cfg.ID,
		State:       c.State,
		Term:        c.Term,
		Leader:      c.Leader,
		Commit:      c.Commit,
		LastIndex:   c.LastIndex,
		ConfigIndex: c.ConfigIndex,
		Transferee:  c.Transferee,
		Applied:     d.applied.Load(),
	}
	old := d.status.Load()
	if old != nil && old.ConfigIndex == s.ConfigIndex && old.Configuration.Servers != nil {
		s.Configuration = old.Configuration
	} else {
		s.Configuration = c.Configuration.Clone()
	}
	if key := (peersKey{s.ConfigIndex, s.Leader, len(d.core.Peers())}); key != d.peersKey {
		d.peersKey = key
		d.setPeers(s.Configuration)
	}
	if srv, ok := s.Configuration.Server(s.Leader); ok {
		s.LeaderAddr = srv.Addr
	}
	if old != nil && old.State == s.State && old.Term == s.Term && old.Leader == s.Leader &&
		old.Commit == s.Commit && old.LastIndex == s.LastIndex && old.ConfigIndex == s.ConfigIndex &&
		old.Transferee == s.Transferee && old.Applied == s.Applied && old.Removed == c.Removed &&
		d.removedAt == c.RemovedAt {
		return
	}
	s.Removed = c.Removed
	// Copied to the heap only when published: s stays on the stack for
	// the many calls that change nothing.
	ps := new(Status)
	*ps = s
	d.status.Store(ps)
	d.statusEvents(old, ps)
	d.removalEvents(old != nil, c)
	d.notifyWatchers()
}

// peersKey identifies what the peer set passed to a PeerSetter depends on.
type peersKey struct {
	configIndex uint64
	leader      NodeID
	progress    int
}

// setPeers tells a transport that restricts who may connect
// (PeerSetter) the nodes this node acts on messages from: the members of
// the configuration in force, the leader it follows (which a follower that
// missed a configuration change may not have in it), and on a leader the
// peers it still replicates to (a departing node, until it holds the
// configuration that removes it).
func (d *driver) setPeers(cfg Configuration) {
	ps, ok := d.trans.(PeerSetter)
	if !ok || len(cfg.Servers) == 0 {
		return
	}
	var peers []Peer
	add := func(id NodeID, addr string) {
		if id != "" && !slices.ContainsFunc(peers, func(p Peer) bool { return p.ID == id }) {
			peers = append(peers, Peer{ID: id, Addr: addr})
		}
	}
	for _, s := range cfg.Servers {
		add(s.ID, s.Addr)
	}
	for _, s := range cfg.Old {
		add(s.ID, s.Addr)
	}
	add(d.core.Status().Leader, "")
	for _, id := range d.core.Peers() {
		add(id, "")
	}
	ps.SetPeers(peers)
}

// notifyWatchers wakes the callers of watch. The channel is replaced only
// if someone took it: at thousands of status changes a second, a channel
// per change that nobody waits on is pure garbage.
func (d *driver) notifyWatchers() {
	d.watchMu.Lock()
	if d.watched {
		close(d.watchers)
		d.watchers = make(chan struct{})
		d.watched = false
	}
	d.watchMu.Unlock()
}

// watch returns a channel closed at the next status change.
func (d *driver) watch() <-chan struct{} {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	d.watched = true
	return d.watchers
}

// bootstrap writes cfg as entry 1 of a pristine log, or checks that an
// already bootstrapped log holds the same configuration.
func (d *driver) bootstrap(ctx context.Context, cfg Configuration) error {
	if err := validateConfiguration(cfg); err != nil {
		return err
	}
	if srv, ok := cfg.Server(d.cfg.ID); !ok || srv.Suffrage != Voter {
		return fmt.Errorf("%w: bootstrap configuration must include this node (%s) as a voter", ErrInvalidConfig, d.cfg.ID)
	}
	var err error
	if e := d.do(ctx, func() { err = d.doBootstrap(cfg) }); e != nil {
		return e
	}
	return err
}

func (d *driver) doBootstrap(cfg Configuration) error {
	hs, err := d.store.InitialState()
	if err != nil {
		return fmt.Errorf("raft: bootstrap: read hard state: %w", err)
	}
	last, err := d.store.LastIndex()
	if err != nil {
		return fmt.Errorf("raft: bootstrap: read last index: %w", err)
	}
	_, snapErr := d.store.LatestSnapshot()
	if last == 0 && hs.IsZero() && errors.Is(snapErr, ErrNoSnapshot) {
		ent := Entry{Index: 1, Term: 1, Type: EntryConfig, Data: encodeConfiguration(cfg)}
		if err := d.store.Save(HardState{Term: 1}, []Entry{ent}); err != nil {
			return fmt.Errorf("raft: bootstrap: save configuration: %w", err)
		}
		if err := d.restore(); err != nil {
			return err
		}
		d.log.Info("bootstrapped", "configuration", cfg.String())
		return nil
	}
	ents, err := d.store.Entries(1, 2, 0)
	if err != nil || len(ents) != 1 || ents[0].Type != EntryConfig {
		return fmt.Errorf("%w: storage holds %d entries", ErrBootstrapped, last)
	}
	have, err := decodeConfiguration(ents[0].Data)
	if err != nil {
		return fmt.Errorf("%w: entry 1: %w", ErrBootstrapped, err)
	}
	if !sameServers(have.Servers, cfg.Servers) {
		return fmt.Errorf("%w: stored %s, requested %s", ErrBootstrapped, have, cfg)
	}
	return nil
}

func sameServers(a, b []Server) bool {
	key := func(s []Server) []Server {
		out := slices.Clone(s)
		slices.SortFunc(out, func(x, y Server) int {
			switch {
			case x.ID < y.ID:
				return -1
			case x.ID > y.ID:
				return 1
			}
			return 0
		})
		return out
	}
	return slices.Equal(key(a), key(b))
}

// transferLeadership starts a transfer on the driver goroutine and waits
// for its outcome by watching the status.
func (d *driver) transferLeadership(ctx context.Context, to NodeID) error {
	var target NodeID
	var err error
	if e := d.do(ctx, func() {
		target, err = d.core.TransferLeadership(to)
		err = d.coreError(err)
		// Publish the transfer now, so the wait below never sees the
		// status from before it started.
		d.publishStatus()
	}); e != nil {
		return e
	}
	if err != nil {
		return err
	}
	for {
		w := d.watch()
		s := d.status.Load()
		switch {
		case s.Leader == target:
			return nil
		case s.State == Shutdown:
			return ErrShutdown
		case s.State == Leader && s.Transferee == "":
			return fmt.Errorf("%w: %s did not take over", ErrTransferTimeout, target)
		case s.State != Leader && s.Leader != "" && s.Leader != target:
			return fmt.Errorf("%w: leadership went to %s instead of %s", ErrTransferTimeout, s.Leader, target)
		}
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
