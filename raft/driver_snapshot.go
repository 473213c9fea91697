package raft

import (
	"errors"
	"fmt"
	"io"
)

// Snapshots on the driver side: streaming the newest snapshot to followers
// behind compaction, receiving one from the leader, installing it, and
// compacting the log after a local snapshot.
//
// snapMu serializes every commit to the snapshot store and every install,
// so the store's newest snapshot never moves backwards and the state
// machine is restored from exactly the snapshot the core installed.

type snapResult struct {
	id  NodeID
	seq uint64 // the core's send number (progress.snapSeq)
	ok  bool
}

// startSnapshotSends streams the newest snapshot to each of ids, each on its
// own goroutine, reporting the outcome back to the core.
func (d *driver) startSnapshotSends(ids []NodeID) {
	started := make(map[NodeID]bool, len(ids))
	term := d.core.Status().Term
	for _, id := range ids {
		seq, sending := d.core.SnapshotSend(id)
		if started[id] || !sending {
			continue
		}
		started[id] = true
		peer := d.peer(id)
		d.bg.Add(1)
		go func() {
			defer d.bg.Done()
			meta, err := d.sendSnapshot(peer, term)
			if err != nil {
				d.metrics.add(&d.metrics.snapshotSendFailed, 1)
				d.log.Warn("snapshot send failed", "peer", string(peer.ID), "error", err)
			} else {
				d.metrics.add(&d.metrics.snapshotsSent, 1)
			}
			d.emit(Event{Kind: EventSnapshotSent, Peer: peer.ID, Snapshot: meta, Err: err})
			d.snapResults.push(snapResult{id: peer.ID, seq: seq, ok: err == nil})
		}()
	}
}

func (d *driver) sendSnapshot(peer Peer, term uint64) (SnapshotMeta, error) {
	meta, rc, err := d.store.OpenSnapshot()
	if err != nil {
		return meta, fmt.Errorf("raft: open snapshot for %s: %w", peer.ID, err)
	}
	defer rc.Close()
	m := Message{Type: MsgSnap, From: d.cfg.ID, To: peer.ID, Term: term, Snapshot: &meta}
	d.log.Info("sending snapshot", "peer", string(peer.ID), "index", meta.Index, "size", meta.Size)
	return meta, d.trans.SendSnapshot(d.ctx, peer, m, rc)
}

// HandleSnapshot receives a snapshot from the leader: it stores it, steps
// the announcing message into the core and waits until the core has
// installed it (or ignored it as stale) and the state machine is restored.
func (h handler) HandleSnapshot(m Message, r io.Reader) error {
	d := h.d
	if m.Type != MsgSnap || m.Snapshot == nil || m.Snapshot.Index == 0 {
		return fmt.Errorf("raft: snapshot from %s: malformed announcement", m.From)
	}
	if m.To != d.cfg.ID {
		return fmt.Errorf("raft: snapshot from %s addressed to %s, not %s", m.From, m.To, d.cfg.ID)
	}
	meta := *m.Snapshot
	if st := d.status.Load(); len(st.Configuration.Servers) > 0 && m.From != st.Leader {
		if _, member := st.Configuration.Server(m.From); !member {
			// The core acts on no message from a non-member; its snapshot
			// must not reach the store either.
			return fmt.Errorf("raft: snapshot %d from %s refused: %s is not a member of %s's configuration", meta.Index, m.From, m.From, d.cfg.ID)
		}
	}
	d.snapMu.Lock()
	defer d.snapMu.Unlock()
	// A snapshot is stored only if it can be installed: one older than the
	// commit index, or from a leader of an older term (which the core will
	// ignore), would otherwise sit in the store as its newest snapshot and
	// disagree with the one the core installs next.
	st := d.status.Load()
	stale := meta.Index <= st.Commit || m.Term < st.Term
	// snapMu is held, so the store's newest snapshot changes only below.
	latest, lerr := d.store.LatestSnapshot()
	haveNewer := lerr == nil && latest.Index > meta.Index
	if haveNewer || (lerr == nil && latest.Index == meta.Index) {
		stale = true
	}
	if !stale {
		sink, err := d.store.CreateSnapshot(meta)
		if err != nil {
			return fmt.Errorf("raft: snapshot %d from %s: create: %w", meta.Index, m.From, err)
		}
		n, err := io.Copy(sink, r)
		if err != nil {
			_ = sink.Abort()
			return fmt.Errorf("raft: snapshot %d from %s: receive after %d bytes: %w", meta.Index, m.From, n, err)
		}
		if meta.Size > 0 && n != meta.Size {
			_ = sink.Abort()
			return fmt.Errorf("raft: snapshot %d from %s: got %d bytes, announced %d", meta.Index, m.From, n, meta.Size)
		}
		if err := sink.Commit(); err != nil {
			return fmt.Errorf("raft: snapshot %d from %s: commit: %w", meta.Index, m.From, err)
		}
	}
	// The core must install what the store holds as its newest snapshot. If
	// a newer one is already stored (the core may not have installed it
	// yet: the term or commit index can move between this check and the
	// step below), the core is told about that one instead: every snapshot
	// covers only committed entries, so it is safe to install whichever
	// leader produced it.
	if haveNewer {
		m.Snapshot = &latest
	}
	// A stale snapshot is still stepped: the core answers with its commit
	// index, which moves the leader on instead of resending.
	var restored chan struct{}
	err := d.do(d.ctx, func() {
		d.restored = nil
		d.core.Step(m)
		if err := d.processReady(); err != nil {
			d.stop(err)
			return
		}
		restored = d.restored
		d.publishStatus()
	})
	if err != nil {
		return err
	}
	if restored != nil {
		select {
		case <-restored:
		case <-d.done:
			return ErrShutdown
		}
	}
	return nil
}

// installSnapshot installs a snapshot the core accepted: the log is reset to
// start after it and the state machine is restored from it (in order with
// the committed entries already handed to the apply goroutine).
func (d *driver) installSnapshot(meta SnapshotMeta) error {
	if err := d.waitSave(true); err != nil {
		return err
	}
	if err := d.store.Compact(meta.Index, meta.Term); err != nil {
		return fmt.Errorf("raft: install snapshot %d: compact log: %w", meta.Index, err)
	}
	done := make(chan struct{})
	d.restored = done
	d.restoresQueued.Add(1)
	d.applyq.push(applyTask{restore: &meta, restored: done})
	select {
	case d.restoreWake <- struct{}{}:
	default:
	}
	d.failPending(indeterminate(ErrLeadershipLost))
	d.metrics.add(&d.metrics.snapshotsInstalled, 1)
	d.emit(Event{Kind: EventSnapshotInstalled, Snapshot: meta})
	d.log.Info("installed snapshot", "index", meta.Index, "term", meta.Term)
	return nil
}

// snapshotCreated runs on the driver goroutine after a local snapshot was
// committed: the core learns of it and the log is compacted behind it,
// keeping TrailingLogs entries.
func (d *driver) snapshotCreated(meta SnapshotMeta) error {
	d.core.ReportSnapshotCreated(meta.Index, meta.Term)
	trailing := d.cfg.trailingLogs()
	if meta.Index <= trailing {
		return nil
	}
	to := meta.Index - trailing
	first, err := d.store.FirstIndex()
	if err != nil {
		return fmt.Errorf("raft: compact: read first index: %w", err)
	}
	if to < first {
		return nil
	}
	term, err := d.core.Term(to)
	if err != nil {
		if errors.Is(err, ErrCompacted) {
			return nil
		}
		return fmt.Errorf("raft: compact to %d: %w", to, err)
	}
	if err := d.waitSave(false); err != nil {
		return err
	}
	if err := d.store.Compact(to, term); err != nil {
		return fmt.Errorf("raft: compact log to %d: %w", to, err)
	}
	d.log.Debug("compacted log", "index", to)
	return nil
}

// commitSnapshot commits a locally written snapshot unless a newer one is
// already in the store, and tells the driver.
func (d *driver) commitSnapshot(meta SnapshotMeta, sink SnapshotSink) (bool, error) {
	d.snapMu.Lock()
	defer d.snapMu.Unlock()
	if latest, err := d.store.LatestSnapshot(); err == nil && latest.Index >= meta.Index {
		return false, sink.Abort()
	}
	if err := sink.Commit(); err != nil {
		return false, fmt.Errorf("raft: commit snapshot %d: %w", meta.Index, err)
	}
	d.snapCreated.push(meta)
	return true, nil
}

// reconcileSnapshot finishes an install interrupted by a crash: if the
// newest snapshot is ahead of the log, or the log disagrees with it, the log
// is reset to start after it.
func reconcileSnapshot(store Storage) (SnapshotMeta, error) {
	meta, err := store.LatestSnapshot()
	if errors.Is(err, ErrNoSnapshot) {
		first, err := store.FirstIndex()
		if err != nil {
			return SnapshotMeta{}, fmt.Errorf("raft: read first index: %w", err)
		}
		if first > 1 {
			return SnapshotMeta{}, fmt.Errorf("raft: log is compacted to %d but the snapshot store is empty", first-1)
		}
		return SnapshotMeta{}, nil
	}
	if err != nil {
		return SnapshotMeta{}, fmt.Errorf("raft: read latest snapshot: %w", err)
	}
	t, err := store.Term(meta.Index)
	if err == nil && t == meta.Term {
		return meta, nil
	}
	if errors.Is(err, ErrCompacted) {
		return SnapshotMeta{}, fmt.Errorf("raft: snapshot %d is older than the compacted log: %w", meta.Index, ErrCorrupt)
	}
	if err != nil && !errors.Is(err, ErrUnavailable) {
		return SnapshotMeta{}, fmt.Errorf("raft: read term %d: %w", meta.Index, err)
	}
	if err := store.Compact(meta.Index, meta.Term); err != nil {
		return SnapshotMeta{}, fmt.Errorf("raft: reset log to snapshot %d: %w", meta.Index, err)
	}
	return meta, nil
}
