package raft

import (
	"fmt"
	"sort"
)

// A leader writes its own log on a writer goroutine (thesis §10.2.1): while
// one Save is in flight, the driver keeps stepping acknowledgements,
// committing (a quorum of followers suffices), applying and accepting
// proposals; the proposals that arrive meanwhile go out to the followers at
// once and into the leader's next Save together. Followers and candidates
// save synchronously: they must persist before they answer, and their Saves
// may truncate. At most one write is in flight, and every other write to
// the log store (a synchronous Save, Compact) first waits for it, so the
// store sees Save and Compact calls one at a time and in order.

// saveJob is one asynchronous Save.
type saveJob struct {
	hs      HardState
	entries []Entry
	// after are messages to send once the write is durable.
	after []Message
}

// saveResult reports a finished saveJob.
type saveResult struct {
	job saveJob
	err error
}

// writer runs Saves handed to it until saveq is closed.
func (d *driver) writer() {
	defer close(d.writerDone)
	for job := range d.saveq {
		err := d.store.Save(job.hs, job.entries)
		d.saveDone <- saveResult{job: job, err: err}
	}
}

// submitSave hands rd's write to the writer goroutine.
func (d *driver) submitSave(rd Ready) {
	d.saving = true
	d.saveq <- saveJob{hs: rd.HardState, entries: rd.Entries, after: rd.MessagesAfter}
}

// finishSave carries out what waited for a finished write.
func (d *driver) finishSave(r saveResult) error {
	d.saving = false
	if r.err != nil {
		return fmt.Errorf("raft: save hard state and %d entries: %w", len(r.job.entries), r.err)
	}
	if n := len(r.job.entries); n > 0 {
		d.core.writeDone(r.job.entries[n-1].Index)
	}
	d.sendAll(r.job.after)
	return nil
}

// waitSave waits for the write in flight, if any, and finishes it.
func (d *driver) waitSave() error {
	if !d.saving {
		return nil
	}
	return d.finishSave(<-d.saveDone)
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
	ci := d.core.log.committed
	if ci <= d.commitScanned {
		return
	}
	from := d.commitScanned
	d.commitScanned = ci
	i := sort.Search(len(d.pending), func(k int) bool { return d.pending[k].index > from })
	for ; i < len(d.pending) && d.pending[i].index <= ci; i++ {
		p := d.pending[i]
		// The same index and term as proposed: the entry is ours, and a
		// committed entry never changes.
		if t, err := d.core.log.term(p.index); err == nil && t == p.term {
			p.w.committedAt(p.index, p.term)
		}
	}
}
