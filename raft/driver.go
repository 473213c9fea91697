package raft

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// driver owns a core on one goroutine: it turns a ticker into ticks, drains
// proposals (group commit: all waiting proposals go into one batch and one
// Save) and inbound messages, and carries out each Ready.
type driver struct {
	cfg   Config
	log   hclog.Logger
	store Storage
	trans Transport
	core  *core

	props   *queue[pendingEntry]
	inbox   *queue[Message]
	unreach *queue[NodeID]
	ctrl    chan func()

	applyq    *queue[applyTask]
	applied   *atomic.Uint64
	applyWake chan struct{}
	handed    uint64
	// leaderTerm is the term in which this node leads (0 if it does not).
	leaderTerm uint64

	// pending holds the waiters of appended entries, in index order.
	pending []pendingWaiter

	// The leader's asynchronous log writes (driver_persist.go).
	saveq      chan saveJob
	saveDone   chan saveResult
	writerDone chan struct{}
	saving     bool
	// restoresQueued counts snapshot restores handed to the apply goroutine
	// and not yet carried out (the apply goroutine must not hold them back).
	restoresQueued atomic.Int32
	restoreWake    chan struct{} // wakes an apply goroutine holding back
	// commitScanned is the commit index up to which resolveCommitted has
	// looked at pending.
	commitScanned uint64

	status   atomic.Pointer[Status]
	watchMu  sync.Mutex
	watchers chan struct{}
	lastPub  Status

	// Snapshots (driver_snapshot.go).
	snapMu      sync.Mutex
	snapResults *queue[snapResult]
	snapCreated *queue[SnapshotMeta]
	restored    chan struct{}
	// ctx is cancelled when the node stops; bg tracks snapshot senders.
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup

	done     chan struct{}
	exited   chan struct{}
	stopOnce sync.Once
	errMu    sync.Mutex
	err      error
}

type pendingEntry struct {
	ctx  context.Context
	typ  EntryType
	data []byte
	w    waiter
}

type pendingWaiter struct {
	index, term uint64
	w           waiter
}

// applyTask is a batch of committed entries for the apply goroutine, with
// the waiter of each entry (nil where none, or waiters nil when no entry
// has one).
type applyTask struct {
	entries []Entry
	waiters []waiter
	// restore, when set, replaces the state with this snapshot; restored is
	// closed once done.
	restore  *SnapshotMeta
	restored chan struct{}
}

func newDriver(cfg Config, store Storage, trans Transport, applyq *queue[applyTask], applied *atomic.Uint64) (*driver, error) {
	d := &driver{
		cfg:       cfg,
		log:       cfg.Logger.Named("raft").With("id", string(cfg.ID)),
		store:     store,
		trans:     trans,
		props:     newQueue[pendingEntry](cfg.MaxPendingProposals),
		inbox:     newQueue[Message](1 << 16),
		unreach:   newQueue[NodeID](1024),
		ctrl:      make(chan func()),
		applyq:    applyq,
		applied:   applied,
		applyWake: make(chan struct{}, 1),
		watchers:  make(chan struct{}),
		done:      make(chan struct{}),
		exited:    make(chan struct{}),

		saveq:      make(chan saveJob, 1),
		saveDone:   make(chan saveResult, 1),
		writerDone: make(chan struct{}),

		restoreWake: make(chan struct{}, 1),

		snapResults: newQueue[snapResult](0),
		snapCreated: newQueue[SnapshotMeta](0),
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	if err := d.restore(); err != nil {
		return nil, err
	}
	d.publishStatus()
	return d, nil
}

// restore (re)builds the core from storage.
func (d *driver) restore() error {
	hs, err := d.store.InitialState()
	if err != nil {
		return fmt.Errorf("raft: read hard state: %w", err)
	}
	snap, err := reconcileSnapshot(d.store)
	if err != nil {
		return err
	}
	c, err := newCore(d.cfg.coreConfig(), d.store, hs, snap, newSeededRand(d.cfg.Seed))
	if err != nil {
		return err
	}
	d.core = c
	d.applied.Store(c.log.applied)
	d.handed = c.log.applied
	return nil
}

func (d *driver) run() {
	defer close(d.exited)
	defer d.cleanup()
	d.trans.Register(handler{d})
	go d.writer()
	ticker := time.NewTicker(d.cfg.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-d.done:
			return
		case <-ticker.C:
			d.core.tick()
		case <-d.props.ready():
		case <-d.inbox.ready():
		case <-d.unreach.ready():
		case <-d.applyWake:
		case <-d.snapResults.ready():
		case <-d.snapCreated.ready():
		case r := <-d.saveDone:
			if err := d.finishSave(r); err != nil {
				d.stop(err)
				return
			}
		case f := <-d.ctrl:
			f()
		}
		// Let the goroutines that woke us add what they have: one batch,
		// one Save and one round of sends then carry all of it.
		runtime.Gosched()
		for _, r := range d.snapResults.drain() {
			d.core.snapshotDone(r.id, r.seq, r.ok)
		}
		for _, meta := range d.snapCreated.drain() {
			if err := d.snapshotCreated(meta); err != nil {
				d.stop(err)
				return
			}
		}
		for _, id := range d.unreach.drain() {
			d.core.reportUnreachable(id)
		}
		for _, m := range d.inbox.drain() {
			d.core.step(m)
		}
		d.handleProposals()
		if err := d.processReady(); err != nil {
			d.stop(err)
			return
		}
		d.publishStatus()
	}
}

// processReady carries out Ready batches until the core has none.
func (d *driver) processReady() error {
	for {
		if d.saving && d.core.state != Leader {
			// A node that stopped leading saves synchronously again, after
			// the leader's last write, in order.
			if err := d.waitSave(); err != nil {
				return err
			}
		}
		d.core.applyHeld = d.handed-d.applied.Load() >= uint64(d.cfg.MaxApplyBacklog)
		if !d.core.hasReady() {
			return d.core.err()
		}
		if err := d.core.err(); err != nil {
			return err
		}
		rd := d.core.ready()
		d.sendAll(rd.Messages)
		if rd.Snapshot != nil {
			if err := d.installSnapshot(*rd.Snapshot); err != nil {
				return err
			}
		}
		async := false
		if rd.MustSave {
			if rd.State == Leader && rd.Snapshot == nil && !d.saving && len(rd.Entries) > 0 {
				d.submitSave(rd)
				async = true
			} else {
				if err := d.waitSave(); err != nil {
					return err
				}
				if err := d.store.Save(rd.HardState, rd.Entries); err != nil {
					return fmt.Errorf("raft: save hard state and %d entries: %w", len(rd.Entries), err)
				}
			}
		}
		if !async {
			d.sendAll(rd.MessagesAfter)
		}
		if len(rd.Committed) > 0 {
			d.handCommitted(rd.Committed)
		}
		if len(rd.SnapshotsToSend) > 0 {
			d.startSnapshotSends(rd.SnapshotsToSend)
		}
		if (rd.State != Leader || rd.Term != d.leaderTerm) && len(d.pending) > 0 {
			// Entries appended as leader may or may not commit now.
			d.failPending(indeterminate(ErrLeadershipLost))
			d.leaderTerm = 0
		}
		if rd.State == Leader {
			d.leaderTerm = rd.Term
		}
		d.core.advance(rd, async)
		d.resolveCommitted()
	}
}

// sendAll hands msgs to the transport, one Send per destination, keeping
// each destination's messages in order.
func (d *driver) sendAll(msgs []Message) {
	if len(msgs) == 0 {
		return
	}
	// Usually every message goes to a different follower or all to one: a
	// linear scan over the few destinations beats a map.
	var dests [8]NodeID
	var counts [8]int
	nd := 0
	for i := range msgs {
		to := msgs[i].To
		j := 0
		for j < nd && dests[j] != to {
			j++
		}
		if j == nd {
			if nd == len(dests) {
				d.sendSlow(msgs)
				return
			}
			dests[nd] = to
			nd++
		}
		counts[j]++
	}
	if nd == 1 {
		d.sendTo(dests[0], msgs)
		return
	}
	for j := 0; j < nd; j++ {
		batch := make([]Message, 0, counts[j])
		for i := range msgs {
			if msgs[i].To == dests[j] {
				batch = append(batch, msgs[i])
			}
		}
		d.sendTo(dests[j], batch)
	}
}

func (d *driver) sendSlow(msgs []Message) {
	by := map[NodeID][]Message{}
	var order []NodeID
	for _, m := range msgs {
		if _, ok := by[m.To]; !ok {
			order = append(order, m.To)
		}
		by[m.To] = append(by[m.To], m)
	}
	for _, to := range order {
		d.sendTo(to, by[to])
	}
}

func (d *driver) sendTo(to NodeID, batch []Message) {
	srv, _ := d.core.conf.cfg.Server(to)
	d.trans.Send(Peer{ID: to, Addr: srv.Addr}, batch)
}

// handleProposals appends every queued proposal, in batches of MaxBatch.
func (d *driver) handleProposals() {
	ps := d.props.drain()
	for len(ps) > 0 {
		n := min(len(ps), d.cfg.MaxBatch)
		batch := ps[:n]
		ps = ps[n:]
		ents := make([]Entry, 0, n)
		live := batch[:0:0]
		for _, p := range batch {
			if p.ctx != nil && p.ctx.Err() != nil {
				p.w.fail(p.ctx.Err())
				continue
			}
			ents = append(ents, Entry{Type: p.typ, Data: p.data})
			live = append(live, p)
		}
		if len(ents) == 0 {
			continue
		}
		first, term, err := d.core.propose(ents)
		if err != nil {
			for _, p := range live {
				p.w.fail(d.coreError(err))
			}
			continue
		}
		for i, p := range live {
			idx := first + uint64(i)
			p.w.markAppended(idx, term)
			d.pending = append(d.pending, pendingWaiter{index: idx, term: term, w: p.w})
		}
	}
}

// coreError maps an error of the core to the API's: not-leader becomes a
// *NotLeaderError naming the leader, the rest as exportCoreErr maps them.
func (d *driver) coreError(err error) error {
	if errors.Is(err, errNotLeaderCore) {
		return d.notLeader()
	}
	return exportCoreErr(err)
}

func (d *driver) notLeader() error {
	lead := d.core.lead
	srv, _ := d.core.conf.cfg.Server(lead)
	return &NotLeaderError{LeaderID: lead, LeaderAddr: srv.Addr}
}

// handCommitted resolves Committed-mode waiters and passes the entries to
// the apply goroutine with their Applied-mode waiters.
func (d *driver) handCommitted(ents []Entry) {
	task := applyTask{entries: ents}
	for i := range ents {
		e := &ents[i]
		for len(d.pending) > 0 && d.pending[0].index < e.Index {
			// Skipped over (e.g. replaced by an installed snapshot).
			d.pending[0].w.fail(indeterminate(ErrLeadershipLost))
			d.pending = d.pending[1:]
		}
		if len(d.pending) == 0 || d.pending[0].index != e.Index {
			continue
		}
		p := d.pending[0]
		d.pending = d.pending[1:]
		switch {
		case p.term != e.Term:
			// Another leader's entry was committed at this index: ours is gone.
			p.w.fail(ErrProposalDropped)
		case !p.w.committedAt(e.Index, e.Term):
			if task.waiters == nil {
				task.waiters = make([]waiter, len(ents))
			}
			task.waiters[i] = p.w
		}
	}
	if len(d.pending) == 0 {
		d.pending = nil
	}
	d.handed = ents[len(ents)-1].Index
	d.applyq.push(task)
}

func (d *driver) failPending(err error) {
	for _, p := range d.pending {
		p.w.fail(err)
	}
	d.pending = nil
}

// propose queues an encoded command for the driver.
func (d *driver) propose(p pendingEntry) {
	switch d.props.push(p) {
	case pushFull:
		p.w.fail(ErrTooManyProposals)
	case pushClosed:
		p.w.fail(ErrShutdown)
	}
}

// checkLeader returns nil if the node believes it is the leader.
func (d *driver) checkLeader() error {
	s := d.status.Load()
	switch s.State {
	case Leader:
		return nil
	case Shutdown:
		return ErrShutdown
	}
	return &NotLeaderError{LeaderID: s.Leader, LeaderAddr: s.LeaderAddr}
}

// applyProgress is called by the apply goroutine after applying a batch.
func (d *driver) applyProgress() {
	select {
	case d.applyWake <- struct{}{}:
	default:
	}
}

// stop stops the node once; err is the fatal cause (nil for Shutdown).
func (d *driver) stop(err error) {
	d.stopOnce.Do(func() {
		if err != nil {
			d.log.Error("node stopped by fatal error", "error", err)
		}
		d.errMu.Lock()
		d.err = err
		d.errMu.Unlock()
		close(d.done)
	})
}

func (d *driver) stopErr() error {
	d.errMu.Lock()
	defer d.errMu.Unlock()
	if d.err == nil {
		return ErrShutdown
	}
	return d.err
}

// cleanup runs on the driver goroutine as it exits.
func (d *driver) cleanup() {
	d.trans.Register(nil)
	d.stopWriter()
	d.cancel()
	// Snapshot senders see the cancelled context and return.
	d.bg.Wait()
	for _, p := range d.props.close() {
		p.w.fail(ErrShutdown)
	}
	d.failPending(indeterminate(ErrShutdown))
	s := *d.status.Load()
	s.State = Shutdown
	d.status.Store(&s)
	d.notifyWatchers()
}

// do runs f on the driver goroutine and waits for it.
func (d *driver) do(ctx context.Context, f func()) error {
	ran := make(chan struct{})
	select {
	case d.ctrl <- func() { f(); close(ran) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-d.done:
		return ErrShutdown
	}
	select {
	case <-ran:
		return nil
	case <-d.done:
		return ErrShutdown
	}
}

// handler receives inbound traffic from the transport.
type handler struct{ d *driver }

func (h handler) HandleMessage(m Message) {
	if m.To != "" && m.To != h.d.cfg.ID {
		return
	}
	// A full inbox drops the message; Raft retransmits.
	h.d.inbox.push(m)
}

func (h handler) ReportUnreachable(id NodeID) { h.d.unreach.push(id) }
