package raft

import (
	"fmt"
	"sort"
	"time"
)

// Every node writes its log on a writer goroutine (thesis §10.2.1 for the
// leader; etcd's asynchronous storage writes for followers): while one Save
// is in flight the driver keeps stepping messages, committing, applying and
// accepting proposals. The core hands out no more entries until the write
// completes (what arrives meanwhile goes into the next write together) and
// holds every message that must wait for durability (acknowledgements,
// votes) until then; the writer itself sends the messages that waited for
// its write, as soon as it is durable, without a trip through the driver.
// At most one write is in flight, and every other write to the log store (a
// synchronous Save, Compact) first waits for it, so the store sees Save and
// Compact calls one at a time and in order.

// saveJob is one asynchronous Save.
type saveJob struct {
	hs      HardState
	entries []Entry
	// after are the messages to send once the write is durable, grouped by
	// destination (the driver resolved the peers' addresses).
	after []outbound
}

// outbound is a batch of messages for one peer.
type outbound struct {
	to   Peer
	msgs []Message
}

// saveResult reports a finished saveJob.
type saveResult struct {
	job saveJob
	err error
}

// writer runs Saves handed to it until saveq is closed, and sends what
// waited for each.
func (d *driver) writer() {
	defer close(d.writerDone)
	for job := range d.saveq {
		t0 := time.Now()
		err := d.store.Save(job.hs, job.entries)
		d.metrics.since(d.metrics.save, t0)
		d.metrics.observe(d.metrics.batch, float64(len(job.entries)))
		if err == nil {
			for _, o := range job.after {
				d.countSent(o.msgs)
				d.trans.Send(o.to, o.msgs)
			}
		}
		d.saveDone <- saveResult{job: job, err: err}
	}
}

// submitSave hands rd's write to the writer goroutine.
func (d *driver) submitSave(rd Ready) {
	d.saving = true
	d.saveq <- saveJob{hs: rd.HardState, entries: rd.Entries, after: d.group(rd.MessagesAfter)}
}

// finishSave carries out what waited for a finished write. It tells the
// core at once, or (now false: inside a Ready, which must not be
// interrupted) once the Ready is advanced.
func (d *driver) finishSave(r saveResult, now bool) error {
	d.saving = false
	if r.err != nil {
		return fmt.Errorf("raft: save hard state and %d entries: %w", len(r.job.entries), r.err)
	}
	if n := len(r.job.entries); n > 0 {
		d.writeDone = max(d.writeDone, r.job.entries[n-1].Index)
	}
	if now {
		d.reportWriteDone()
	}
	return nil
}

// reportWriteDone tells the core of a completed write (outside a Ready).
func (d *driver) reportWriteDone() {
	if d.writeDone != 0 {
		d.core.WriteDone(d.writeDone)
		d.writeDone = 0
	}
}

// waitSave waits for the write in flight, if any, and finishes it; inside
// a Ready (inReady) the core is told after the Ready is advanced.
func (d *driver) waitSave(inReady bool) error {
	if !d.saving {
		return nil
	}
	return d.finishSave(<-d.saveDone, !inReady)
}

// stopWriter waits for the write in flight (its result no longer matters:
// the node is stopping) and stops the writer goroutine, so that the store
// is not written after Shutdown returns.
func (d *driver) stopWriter() {
	if d.saving {
		<-d.saveDone
		d.saving = false
	}
	close(d.saveq)
	<-d.writerDone
}

// resolveCommitted answers Committed-mode proposals as soon as the commit
// index covers them: a quorum of followers may commit an entry before the
// leader's own write of it completes, and well before it is applied.
func (d *driver) resolveCommitted() {
	ci := d.core.Status().Commit
	if ci <= d.commitScanned {
		return
	}
	from := d.commitScanned
	d.commitScanned = ci
	// A caller woken by its Committed answer must find the commit index
	// in Status already.
	d.publishStatus()
	i := sort.Search(len(d.pending), func(k int) bool { return d.pending[k].index > from })
	for ; i < len(d.pending) && d.pending[i].index <= ci; i++ {
		p := d.pending[i]
		// The same index and term as proposed: the entry is ours, and a
		// committed entry never changes.
		if t, err := d.core.Term(p.index); err == nil && t == p.term {
			d.metrics.since(d.metrics.commit, p.at)
			d.pending[i].timed = true
			p.w.committedAt(p.index, p.term)
		}
	}
}
