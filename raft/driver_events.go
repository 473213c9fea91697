package raft

import (
	"errors"
	"slices"
	"time"
)

// ErrRemoved: the node stopped because a committed configuration no
// longer includes it (Config.ShutdownOnRemove).
var ErrRemoved = errors.New("raft: node removed from the configuration")

// PeerStatus is the leader's view of one peer's replication (Status.Peers).
type PeerStatus struct {
	ID NodeID
	// Match is the highest index known to be on the peer; Next the next
	// index the leader sends it; Lag how far Match is behind the leader's
	// last index.
	Match, Next, Lag uint64
	// LastContact is how long ago the peer last answered (zero for the
	// leader itself).
	LastContact time.Duration
	// Learner: the peer does not vote. Probing: the leader is looking for
	// where their logs match. SnapshotSending: a snapshot is being sent.
	Learner, Probing, SnapshotSending bool
}

// peerHealth is what the driver last reported about a peer.
type peerHealth uint8

const (
	peerOK peerHealth = iota
	peerUnreachable
	peerLagging
)

// emit sends an event describing the node as it is now.
func (d *driver) emit(e Event) {
	s := d.status.Load()
	if s != nil {
		e.Term, e.State, e.Leader = s.Term, s.State, s.Leader
	}
	d.events.emit(e)
}

// statusEvents emits and logs what changed between old and s (on the
// driver goroutine, from publishStatus).
func (d *driver) statusEvents(old, s *Status) {
	if old == nil {
		return
	}
	ev := Event{Term: s.Term, State: s.State, Leader: s.Leader}
	if old.Term != s.Term {
		ev.Kind = EventTermChanged
		d.events.emit(ev)
	}
	if old.State != s.State {
		ev.Kind = EventStateChanged
		d.events.emit(ev)
		switch {
		case s.State == Leader:
			d.log.Info("leader elected", "term", s.Term, "leader", string(d.cfg.ID))
			d.metrics.leaderChanges.Add(1)
		case old.State == Leader:
			d.log.Info("stepped down", "term", s.Term, "state", s.State.String())
		}
	}
	if old.Leader != s.Leader {
		ev.Kind = EventLeaderChanged
		d.events.emit(ev)
		if s.Leader != "" && s.Leader != d.cfg.ID {
			d.log.Info("following leader", "term", s.Term, "leader", string(s.Leader))
		}
	}
	if old.ConfigIndex != s.ConfigIndex {
		ev.Kind, ev.OldConfig, ev.Config, ev.ConfigIndex = EventConfigChanged, old.Configuration.Clone(), s.Configuration.Clone(), s.ConfigIndex
		d.events.emit(ev)
	}
	if s.ConfigIndex > d.configCommitted && s.Commit >= s.ConfigIndex && !s.Configuration.Joint() {
		d.configCommitted = s.ConfigIndex
		ev.Kind, ev.OldConfig, ev.Config, ev.ConfigIndex = EventConfigCommitted, Configuration{}, s.Configuration.Clone(), s.ConfigIndex
		d.events.emit(ev)
		if d.lastCommittedConfig.Servers != nil {
			d.log.Info("membership committed", "index", s.ConfigIndex, "configuration", s.Configuration.String(),
				"change", describeChange(d.lastCommittedConfig, s.Configuration))
		}
		d.lastCommittedConfig = s.Configuration.Clone()
	}
}

// removalEvents reports this node's removal (from publishStatus, on the
// driver goroutine). The core judges every committed configuration, so a
// removal is seen even when the commit index jumped past several changes
// between two statuses. A removal the store already held when the node
// started is not reported again (a node restarted after its removal, for
// instance to be added back, does not stop itself at once).
func (d *driver) removalEvents(started bool, c CoreStatus) {
	if c.RemovedAt == d.removedAt {
		return
	}
	d.removedAt = c.RemovedAt
	if c.RemovedAt == 0 || !started {
		return
	}
	d.emit(Event{Kind: EventRemoved, Config: c.RemovedBy.Clone(), ConfigIndex: c.RemovedAt})
	d.log.Warn("removed from the configuration", "index", c.RemovedAt, "configuration", c.RemovedBy.String())
	if d.cfg.ShutdownOnRemove {
		d.stop(ErrRemoved)
	}
}

// describeChange says what changed between two configurations, e.g.
// "added n4 (learner); removed n2; n3 learner->voter".
func describeChange(old, cur Configuration) string {
	var parts []string
	for _, s := range cur.Servers {
		if o, ok := old.Server(s.ID); !ok {
			parts = append(parts, "added "+string(s.ID)+" ("+s.Suffrage.String()+")")
		} else if o.Suffrage != s.Suffrage {
			parts = append(parts, string(s.ID)+" "+o.Suffrage.String()+"->"+s.Suffrage.String())
		}
	}
	for _, s := range old.Servers {
		if _, ok := cur.Server(s.ID); !ok {
			parts = append(parts, "removed "+string(s.ID))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	out := parts[0]
	for _, p := range parts[1:] {
		out += "; " + p
	}
	return out
}

// checkPeers refreshes the leader's per-peer status and emits peer
// unreachable / lagging / healthy events (once per tick, on the driver
// goroutine).
func (d *driver) checkPeers() {
	prs := d.core.Progress()
	if prs == nil {
		if d.peerStatus.Load() != nil {
			d.peerStatus.Store(nil)
			clear(d.peerHealth)
		}
		return
	}
	st := d.core.Status()
	out := make([]PeerStatus, 0, len(prs))
	for _, p := range prs {
		ps := PeerStatus{ID: p.ID, Match: p.Match, Next: p.Next, Lag: st.LastIndex - min(p.Match, st.LastIndex),
			LastContact: time.Duration(p.ContactAgo) * d.cfg.TickInterval,
			Learner:     p.Learner, Probing: p.Probing, SnapshotSending: p.Snapshot}
		out = append(out, ps)
		if p.ID == d.cfg.ID || p.Removed {
			continue
		}
		h := peerOK
		switch {
		case p.ContactAgo >= int64(d.cfg.ElectionTicks):
			h = peerUnreachable
		case st.Commit > p.Match+d.cfg.maxCatchUpLag():
			h = peerLagging
		}
		if prev := d.peerHealth[p.ID]; prev != h {
			d.peerHealth[p.ID] = h
			e := Event{Peer: p.ID, Lag: ps.Lag}
			switch h {
			case peerUnreachable:
				e.Kind = EventPeerUnreachable
				d.log.Warn("peer unreachable", "peer", string(p.ID), "last_contact", ps.LastContact)
			case peerLagging:
				e.Kind = EventPeerLagging
				d.log.Info("peer lagging", "peer", string(p.ID), "lag", ps.Lag)
			default:
				e.Kind = EventPeerHealthy
				d.log.Info("peer healthy again", "peer", string(p.ID))
			}
			d.emit(e)
		}
	}
	for id := range d.peerHealth {
		if !slices.ContainsFunc(prs, func(p PeerProgress) bool { return p.ID == id }) {
			delete(d.peerHealth, id)
		}
	}
	d.peerStatus.Store(&out)
	// Status.Peers changed: let WaitFor callers look again.
	d.notifyWatchers()
}
