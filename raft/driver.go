package raft

import (
	"context"
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
	// core is the Raft state machine, used only through its exported
	// surface (TestDriverUsesOnlyCoreAPI).
	core *Core

	props   *queue[pendingEntry]
	inbox   *queue[Message]
	unreach *queue[NodeID]
	ctrl    chan func()

	// Reads (driver_read.go): queued requests, those handed to the core by
	// request ID, and the apply goroutine's queue of reads to run.
	reads       *queue[*readReq]
	readSeq     uint64
	readWaiting map[uint64]*readReq
	readq       *queue[*readTask]
	// confirmed collects the reads of one Ready for the apply goroutine.
	confirmed []*readTask
	// coreStart is when the core was created: its lease clock's origin.
	coreStart time.Time
	// strangersLogged is the core's count of dropped stranger messages at
	// the last warning, strangersAt its time (driver_warn.go).
	strangersLogged  uint64
	strangersCounted uint64
	strangersAt      time.Time
	// peersKey is what the peer set last passed to a PeerSetter was built
	// from (driver_ops.go).
	peersKey peersKey

	// Events and per-peer status (events.go, driver_events.go).
	events              eventHub
	peerStatus          atomic.Pointer[[]PeerStatus]
	peerHealth          map[NodeID]peerHealth
	configCommitted     uint64
	lastCommittedConfig Configuration
	// removedAt is the core's RemovedAt last reported (driver_events.go).
	removedAt uint64
	metrics   *metrics
	campaigns uint64
	// storeFailed is closed when the store reports a fatal failure found
	// outside any call (FailureNotifier); nil if it cannot.
	storeFailed <-chan struct{}

	applyq    *queue[applyTask]
	applied   *atomic.Uint64
	applyWake chan struct{}
	// leaderTerm is the term in which this node leads (0 if it does not).
	leaderTerm uint64

	// Proposal forwarding (forward.go): the follower's forwards waiting
	// for answers, the forwarded proposals this leader serves, and the
	// typed layer that handles both messages.
	fwd        forwarded
	fwdServing atomic.Int64
	fwdHooks   forwardHooks
	// fwdq holds forwards for the driver to send, batched; replies the
	// leader's answers, batched (forward_batch.go); fwdWarnAt is when a
	// malformed batch of answers was last logged (UnixNano).
	fwdq      *queue[fwdOut]
	replies   replyBatch
	fwdWarnAt atomic.Int64

	// pending holds the waiters of appended entries, in index order.
	pending []pendingWaiter

	// The leader's asynchronous log writes (driver_persist.go).
	saveq      chan saveJob
	saveDone   chan saveResult
	writerDone chan struct{}
	saving     bool
	// inlineSaves: the store's Save does not wait on a device
	// (InlineSaver), so log writes are never handed to the writer.
	inlineSaves bool
	// writeDone is the last index of a write that completed while a Ready
	// was out, told to the core once it is advanced.
	writeDone uint64
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
	watched  bool // watchers was handed out since it was made

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
	// at is when the proposal was appended (for the commit latency);
	// timed says the latency was recorded, so each proposal counts once.
	at    time.Time
	timed bool
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

func newDriver(cfg Config, store Storage, trans Transport, applyq *queue[applyTask], readq *queue[*readTask], applied *atomic.Uint64) (*driver, error) {
	d := &driver{
		cfg:     cfg,
		log:     cfg.Logger.Named("raft").With("id", string(cfg.ID)),
		store:   store,
		trans:   trans,
		props:   newQueue[pendingEntry](cfg.MaxPendingProposals),
		inbox:   newQueue[Message](1 << 16),
		unreach: newQueue[NodeID](1024),
		fwdq:    newQueue[fwdOut](0),
		ctrl:    make(chan func()),
		applyq:  applyq,

		reads:       newQueue[*readReq](cfg.MaxPendingProposals),
		readWaiting: map[uint64]*readReq{},
		peerHealth:  map[NodeID]peerHealth{},
		metrics:     newMetrics(!cfg.DisableMetrics),
		readq:       readq,

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
	if fn, ok := store.(FailureNotifier); ok {
		d.storeFailed = fn.Failed()
	}
	if is, ok := store.(InlineSaver); ok {
		d.inlineSaves = is.SavesInline()
	}
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
	c, err := NewCore(d.cfg.Core(), d.store, hs, snap, newSeededRand(d.cfg.Seed))
	if err != nil {
		return err
	}
	d.core = c
	d.coreStart = time.Now()
	// The applied index is the apply goroutine's: it reaches the newest
	// snapshot's index once that is restored, after New returns.
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
		case <-d.storeFailed:
			err := d.store.(FailureNotifier).FailureErr()
			d.stop(fmt.Errorf("raft: storage failed: %w", err))
			return
		case <-ticker.C:
			d.core.Tick()
			d.checkPeers()
			d.fwd.expire(time.Now(), d.status.Load().Leader, false)
		case <-d.props.ready():
		case <-d.fwdq.ready():
		case <-d.inbox.ready():
		case <-d.unreach.ready():
		case <-d.reads.ready():
		case <-d.applyWake:
		case <-d.snapResults.ready():
		case <-d.snapCreated.ready():
		case r := <-d.saveDone:
			if err := d.finishSave(r, true); err != nil {
				d.stop(err)
				return
			}
		case f := <-d.ctrl:
			f()
		}
		// Let the goroutines that woke us add what they have: one batch,
		// one Save and one round of sends then carry all of it.
		runtime.Gosched()
		d.syncClock()
		for _, r := range d.snapResults.drain() {
			d.core.ReportSnapshotSent(r.id, r.seq, r.ok)
		}
		for _, meta := range d.snapCreated.drain() {
			if err := d.snapshotCreated(meta); err != nil {
				d.stop(err)
				return
			}
		}
		for _, id := range d.unreach.drain() {
			d.core.ReportUnreachable(id)
		}
		for _, m := range d.inbox.drain() {
			d.core.Step(m)
		}
		d.warnStrangers()
		d.handleReads()
		d.handleProposals()
		d.sendForwards()
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
		d.core.ReportApplied(d.applied.Load())
		if !d.core.HasReady() {
			return d.core.Err()
		}
		if err := d.core.Err(); err != nil {
			return err
		}
		rd := d.core.Ready()
		d.sendAll(rd.Messages)
		for _, rs := range rd.ReadStates {
			d.readDone(rs)
		}
		d.handConfirmed()
		if rd.Snapshot != nil {
			if err := d.installSnapshot(*rd.Snapshot); err != nil {
				return err
			}
		}
		async := false
		if rd.MustSave {
			if rd.Snapshot == nil && !d.saving && len(rd.Entries) > 0 && !d.inlineSaves {
				d.submitSave(rd)
				async = true
			} else {
				if err := d.waitSave(true); err != nil {
					return err
				}
				t0 := time.Now()
				if err := d.store.Save(rd.HardState, rd.Entries); err != nil {
					return fmt.Errorf("raft: save hard state and %d entries: %w", len(rd.Entries), err)
				}
				d.metrics.since(d.metrics.save, t0)
				d.metrics.observe(d.metrics.batch, float64(len(rd.Entries)))
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
		if async {
			d.core.AdvanceAsync(rd)
		} else {
			d.core.Advance(rd)
		}
		d.reportWriteDone()
		d.resolveCommitted()
	}
}

// sendAll hands msgs to the transport, one Send per destination, keeping
// each destination's messages in order. The driver owns msgs (a Ready's);
// they are grouped in place, so each destination's batch is a sub-slice
// and no per-destination slice is allocated.
func (d *driver) sendAll(msgs []Message) {
	if len(msgs) == 0 {
		return
	}
	d.countSent(msgs)
	eachDest(msgs, func(b []Message) { d.sendTo(b[0].To, b) })
}

// eachDest reorders msgs so that each destination's messages are
// contiguous, in their original order (a stable insertion by first
// appearance: few destinations, few messages), and calls f with each run,
// capped so that an append by its new owner cannot overwrite the next.
func eachDest(msgs []Message, f func([]Message)) {
	start := 0
	for start < len(msgs) {
		to := msgs[start].To
		end := start + 1
		for i := end; i < len(msgs); i++ {
			if msgs[i].To != to {
				continue
			}
			if i != end {
				// Rotate msgs[end..i] right by one: the message moves to
				// end, the others keep their order.
				m := msgs[i]
				copy(msgs[end+1:i+1], msgs[end:i])
				msgs[end] = m
			}
			end++
		}
		f(msgs[start:end:end])
		start = end
	}
}

// countSent counts msgs in the metrics by type. Safe from any goroutine.
func (d *driver) countSent(msgs []Message) {
	if d.metrics.on {
		for i := range msgs {
			if t := msgs[i].Type; int(t) < len(d.metrics.sent) {
				d.metrics.sent[t].Add(1)
			}
		}
	}
}

// group splits msgs by destination (in place, see eachDest),
// keeping each one's order, with the destinations' addresses.
func (d *driver) group(msgs []Message) []outbound {
	if len(msgs) == 0 {
		return nil
	}
	var out []outbound
	eachDest(msgs, func(b []Message) { out = append(out, outbound{to: d.peer(b[0].To), msgs: b}) })
	return out
}

func (d *driver) sendTo(to NodeID, batch []Message) {
	d.trans.Send(d.peer(to), batch)
}

// peerAddr is peer for any goroutine: the address from the published
// status.
func (d *driver) peerAddr(id NodeID) Peer {
	srv, _ := d.status.Load().Configuration.Server(id)
	return Peer{ID: id, Addr: srv.Addr}
}

// isMember reports whether id is in the published configuration (either
// half of a joint one). Safe from any goroutine.
func (d *driver) isMember(id NodeID) bool {
	_, ok := d.status.Load().Configuration.Server(id)
	return ok
}

// sendDirect sends one message from any goroutine: the forwarding
// messages, which bypass the core.
func (d *driver) sendDirect(m Message) {
	m.From = d.cfg.ID
	if d.metrics.on && int(m.Type) < len(d.metrics.sent) {
		d.metrics.sent[m.Type].Add(1)
	}
	d.trans.Send(d.peerAddr(m.To), []Message{m})
}

// peer returns id with its address in the configuration in force.
func (d *driver) peer(id NodeID) Peer {
	srv, _ := d.core.Status().Configuration.Server(id)
	return Peer{ID: id, Addr: srv.Addr}
}

// handleProposals appends every queued proposal, in batches of MaxBatch.
func (d *driver) handleProposals() {
	ps := d.props.drain()
	for len(ps) > 0 {
		n := min(len(ps), d.cfg.MaxBatch)
		batch := ps[:n]
		ps = ps[n:]
		ents := make([]Entry, 0, n)
		// Filtered in place: live never overtakes the batch it reads.
		live := batch[:0]
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
		first, term, err := d.core.Propose(ents)
		if err != nil {
			d.metrics.add(&d.metrics.proposalsFailed, uint64(len(live)))
			for _, p := range live {
				p.w.fail(d.coreError(err))
			}
			continue
		}
		now := time.Now()
		for i, p := range live {
			idx := first + uint64(i)
			p.w.markAppended(idx, term)
			d.pending = append(d.pending, pendingWaiter{index: idx, term: term, w: p.w, at: now})
		}
	}
}

// coreError maps an error of the core to the API's: ErrNotLeader becomes a
// *NotLeaderError naming the leader; the core's other errors already are
// the exported sentinels.
func (d *driver) coreError(err error) error {
	if err == ErrNotLeader {
		return d.notLeader()
	}
	return err
}

func (d *driver) notLeader() error {
	lead := d.core.Status().Leader
	return &NotLeaderError{LeaderID: lead, LeaderAddr: d.peer(lead).Addr}
}

// handCommitted resolves Committed-mode waiters and passes the entries to
// the apply goroutine with their Applied-mode waiters.
func (d *driver) handCommitted(ents []Entry) {
	// A caller woken by its Applied answer must find the commit index
	// in Status already: the apply goroutine may answer before this
	// loop iteration ends.
	d.publishStatus()
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
		if p.term == e.Term && !p.timed {
			d.metrics.since(d.metrics.commit, p.at)
		}
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
	d.metrics.add(&d.metrics.committed, uint64(len(ents)))
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
	d.metrics.add(&d.metrics.proposals, 1)
	switch d.props.push(p) {
	case pushFull:
		d.metrics.add(&d.metrics.proposalsFailed, 1)
		p.w.fail(ErrTooManyProposals)
	case pushClosed:
		d.metrics.add(&d.metrics.proposalsFailed, 1)
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
	d.failReads()
	d.fwd.expire(time.Now(), "", true)
	// Their waits were failed just above, as indeterminate.
	d.fwdq.close()
	s := *d.status.Load()
	s.State = Shutdown
	d.status.Store(&s)
	d.peerStatus.Store(nil)
	d.notifyWatchers()
	d.events.stop(Event{Kind: EventStopped, Term: s.Term, State: Shutdown, Err: d.stopErr()})
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
	switch m.Type {
	case MsgPropose:
		// Forwarded proposals never reach the core: decoded and proposed
		// here, on the transport's goroutine.
		if h.d.fwdHooks != nil {
			h.d.fwdHooks.handlePropose(m)
		}
		return
	case MsgProposeResp:
		if h.d.fwdHooks != nil {
			h.d.fwdHooks.handleProposeResp(m)
		}
		return
	}
	// A full inbox drops the message; Raft retransmits.
	if h.d.inbox.push(m) != pushed {
		h.d.metrics.add(&h.d.metrics.inboxDropped, 1)
	}
}

func (h handler) ReportUnreachable(id NodeID) { h.d.unreach.push(id) }
