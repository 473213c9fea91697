package raft

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// EventKind says what an Event reports.
type EventKind uint8

const (
	// EventLeaderChanged: the node learned of a new leader (Leader, Term);
	// Leader is empty when it no longer knows one.
	EventLeaderChanged EventKind = iota + 1
	// EventStateChanged: the node's role changed (State, Term).
	EventStateChanged
	// EventTermChanged: the node moved to a new term (Term).
	EventTermChanged
	// EventConfigChanged: the configuration in force changed (it takes
	// effect when appended, before it commits): OldConfig, Config,
	// ConfigIndex.
	EventConfigChanged
	// EventConfigCommitted: the configuration in force was committed
	// (Config, ConfigIndex).
	EventConfigCommitted
	// EventRemoved: a committed configuration (Config, ConfigIndex) no
	// longer includes this node, after one that did; reported once per
	// removal, even when the commit index moved past several changes at
	// once. With Config.ShutdownOnRemove the node then stops with
	// ErrRemoved.
	EventRemoved
	// EventSnapshotTaken: a local snapshot was stored (Snapshot).
	EventSnapshotTaken
	// EventSnapshotInstalled: a snapshot from the leader was installed
	// (Snapshot).
	EventSnapshotInstalled
	// EventSnapshotSent: the leader finished streaming a snapshot to Peer
	// (Snapshot; Err says why it failed, nil on success).
	EventSnapshotSent
	// EventPeerUnreachable: the leader has heard nothing from Peer for an
	// election timeout (or the transport reports messages to it lost).
	EventPeerUnreachable
	// EventPeerLagging: Peer's log is more than Config.MaxCatchUpLag
	// entries behind the leader's commit index (Lag entries).
	EventPeerLagging
	// EventPeerHealthy: Peer, reported unreachable or lagging before, is
	// answering and within MaxCatchUpLag again.
	EventPeerHealthy
	// EventStopped: the node stopped (Err: ErrShutdown after Shutdown, or
	// the fatal error). It is the last event; the channel is closed after.
	EventStopped
)

// String returns the kind's name.
func (k EventKind) String() string {
	switch k {
	case EventLeaderChanged:
		return "leader-changed"
	case EventStateChanged:
		return "state-changed"
	case EventTermChanged:
		return "term-changed"
	case EventConfigChanged:
		return "config-changed"
	case EventConfigCommitted:
		return "config-committed"
	case EventRemoved:
		return "removed"
	case EventSnapshotTaken:
		return "snapshot-taken"
	case EventSnapshotInstalled:
		return "snapshot-installed"
	case EventSnapshotSent:
		return "snapshot-sent"
	case EventPeerUnreachable:
		return "peer-unreachable"
	case EventPeerLagging:
		return "peer-lagging"
	case EventPeerHealthy:
		return "peer-healthy"
	case EventStopped:
		return "stopped"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one thing that happened to a node. Which fields are set depends
// on Kind (see the EventKind constants); Term, State and Leader always
// describe the node when the event was emitted.
//
// Ownership: the configurations are copies; the event is the receiver's.
type Event struct {
	Kind   EventKind
	Term   uint64
	State  State
	Leader NodeID
	// OldConfig and Config are the configurations before and after a
	// change; ConfigIndex the index of the entry that created Config.
	OldConfig, Config Configuration
	ConfigIndex       uint64
	Snapshot          SnapshotMeta
	Peer              NodeID
	Lag               uint64
	Err               error
	// Missed is how many events this observer lost since the one before,
	// because its channel was full.
	Missed uint64
}

// String renders the event for logs.
func (e Event) String() string {
	s := fmt.Sprintf("%s term=%d state=%s leader=%q", e.Kind, e.Term, e.State, e.Leader)
	switch e.Kind {
	case EventConfigChanged:
		s += fmt.Sprintf(" %s -> %s at %d", e.OldConfig, e.Config, e.ConfigIndex)
	case EventConfigCommitted, EventRemoved:
		s += fmt.Sprintf(" %s at %d", e.Config, e.ConfigIndex)
	case EventSnapshotTaken, EventSnapshotInstalled:
		s += fmt.Sprintf(" snapshot=%d", e.Snapshot.Index)
	case EventSnapshotSent, EventPeerUnreachable, EventPeerLagging, EventPeerHealthy:
		s += fmt.Sprintf(" peer=%s lag=%d", e.Peer, e.Lag)
	}
	if e.Err != nil {
		s += " err=" + e.Err.Error()
	}
	if e.Missed > 0 {
		s += fmt.Sprintf(" missed=%d", e.Missed)
	}
	return s
}

// Observer receives a node's events (Raft.Observe).
//
// Concurrency: the node never blocks on an observer: an event that finds
// the channel full is dropped for this observer and counted, and the next
// event it receives says how many it missed (Event.Missed). Methods are
// safe for concurrent use.
type Observer struct {
	ch      chan Event
	mu      sync.Mutex // guards closed and the send
	closed  bool
	pending uint64 // missed since the last delivered event (under mu)
	missed  atomic.Uint64
	hub     *eventHub
}

// Events returns the channel events arrive on, in the order they happened.
// It is closed after EventStopped or Close.
func (o *Observer) Events() <-chan Event { return o.ch }

// Missed returns how many events this observer lost in all.
func (o *Observer) Missed() uint64 { return o.missed.Load() }

// Close unsubscribes the observer and closes its channel. It is safe to
// call more than once.
func (o *Observer) Close() {
	o.hub.remove(o)
	o.close()
}

func (o *Observer) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.closed {
		o.closed = true
		close(o.ch)
	}
}

// deliver offers e without blocking.
func (o *Observer) deliver(e Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	e.Missed = o.pending
	select {
	case o.ch <- e:
		o.pending = 0
	default:
		o.pending++
		o.missed.Add(1)
	}
}

// eventHub fans events out to the observers; the list is replaced, never
// modified, so emitting takes no lock.
type eventHub struct {
	mu        sync.Mutex // serializes changes of list
	list      atomic.Pointer[[]*Observer]
	stopped   bool
	stopEvent Event
}

func (h *eventHub) add(o *Observer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		o.deliver(h.stopEvent)
		o.close()
		return
	}
	var next []*Observer
	if l := h.list.Load(); l != nil {
		next = append(next, *l...)
	}
	next = append(next, o)
	h.list.Store(&next)
}

func (h *eventHub) remove(o *Observer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.list.Load()
	if l == nil {
		return
	}
	var next []*Observer
	for _, x := range *l {
		if x != o {
			next = append(next, x)
		}
	}
	h.list.Store(&next)
}

// emit delivers e to every observer. Safe from any goroutine.
func (h *eventHub) emit(e Event) {
	if l := h.list.Load(); l != nil {
		for _, o := range *l {
			o.deliver(e)
		}
	}
}

// stop delivers the final event and closes every observer.
func (h *eventHub) stop(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped, h.stopEvent = true, e
	if l := h.list.Load(); l != nil {
		for _, o := range *l {
			o.deliver(e)
			o.close()
		}
	}
	h.list.Store(nil)
}

// Observe subscribes to the node's events with a channel buffer of buffer
// events (at least 1; a few dozen keep a reader that is sometimes slow
// from missing any). Close it when done. Observing a stopped node yields
// its EventStopped and a closed channel.
func (r *Raft[C, R, E]) Observe(buffer int) *Observer {
	o := &Observer{ch: make(chan Event, max(buffer, 1)), hub: &r.d.events}
	r.d.events.add(o)
	return o
}

// WaitFor waits until cond holds for the node's Status and returns that
// Status, or ctx's error, or ErrShutdown once the node has stopped. cond is
// called on the caller's goroutine, after every status change.
func (r *Raft[C, R, E]) WaitFor(ctx context.Context, cond func(Status) bool) (Status, error) {
	for {
		w := r.d.watch()
		s := r.Status()
		if cond(s) {
			return s, nil
		}
		if s.State == Shutdown {
			return s, ErrShutdown
		}
		select {
		case <-w:
		case <-ctx.Done():
			return s, ctx.Err()
		}
	}
}

// WaitLeader waits until the node knows a leader (itself or another) and
// returns its ID and address, or ctx's error, or ErrShutdown.
func (r *Raft[C, R, E]) WaitLeader(ctx context.Context) (NodeID, string, error) {
	s, err := r.WaitFor(ctx, func(s Status) bool { return s.Leader != "" })
	return s.Leader, s.LeaderAddr, err
}
