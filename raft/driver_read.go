package raft

import (
	"errors"
	"fmt"
	"time"

	"github.com/typedraft/typedraft/raft/internal/bugs"
)

// The driver's half of the read path: it numbers read requests, hands them
// to the core, and routes the core's ReadStates back: a read index to its
// caller, or a read to the apply goroutine, which runs it once it has
// applied that index (apply_read.go).

// readReq is one read waiting for its read index.
type readReq struct {
	lease bool
	// task, when set, runs on the apply goroutine once the index is
	// applied; otherwise index receives the read index.
	task  *readTask
	index chan readResult
}

type readResult struct {
	index uint64
	err   error
}

func (q *readReq) fail(err error) {
	if q.task != nil {
		q.task.finish(err)
		return
	}
	q.index <- readResult{err: err}
}

// ErrTooManyReads: too many reads are waiting for a read index; retry later.
var ErrTooManyReads = errors.New("raft: too many pending reads")

// readMode resolves ReadDefault to the node's configured mode.
func (d *driver) readMode(m ReadMode) ReadMode {
	if m == ReadDefault {
		return d.cfg.ReadMode
	}
	return m
}

// requestRead queues a read for the driver.
func (d *driver) requestRead(q *readReq) error {
	switch d.reads.push(q) {
	case pushFull:
		return ErrTooManyReads
	case pushClosed:
		return ErrShutdown
	}
	return nil
}

// syncClock tells the core how many ticks of real time have passed since it
// started, so that a lease is never trusted across time the driver did not
// see (a paused process, a blocked loop, ticks the ticker dropped).
func (d *driver) syncClock() {
	d.core.SyncClock(int64(time.Since(d.coreStart) / d.cfg.TickInterval))
}

// handleReads hands every queued read to the core. The clock is read after
// the queue is drained, so each read arrived before the instant at which a
// lease answering it is checked.
func (d *driver) handleReads() {
	qs := d.reads.drain()
	if len(qs) == 0 {
		return
	}
	d.syncClock()
	for _, q := range qs {
		if len(d.readWaiting) >= d.cfg.MaxPendingProposals {
			q.fail(ErrTooManyReads)
			continue
		}
		d.readSeq++
		d.readWaiting[d.readSeq] = q
		d.core.ReadIndex(d.readSeq, q.lease)
	}
}

// readDone routes the core's outcome of one read.
func (d *driver) readDone(rs ReadState) {
	q := d.readWaiting[rs.ID]
	if q == nil {
		return
	}
	delete(d.readWaiting, rs.ID)
	if rs.Err != nil {
		err := rs.Err
		if errors.Is(err, ErrNotLeader) {
			err = d.notLeader()
		}
		q.fail(err)
		return
	}
	if q.task == nil {
		q.index <- readResult{index: rs.Index}
		return
	}
	if bugs.Enabled && d.cfg.bugs.ReadSkipsApply {
		rs.Index = 0
	}
	q.task.index = rs.Index
	d.confirmed = append(d.confirmed, q.task)
}

// handConfirmed hands the reads confirmed by a Ready to the apply
// goroutine in one push.
func (d *driver) handConfirmed() {
	if len(d.confirmed) == 0 {
		return
	}
	if d.readq.pushAll(d.confirmed) == pushClosed {
		for _, t := range d.confirmed {
			t.finish(ErrShutdown)
		}
	}
	clear(d.confirmed)
	d.confirmed = d.confirmed[:0]
}

// failReads fails every read in progress as the node stops.
func (d *driver) failReads() {
	for _, q := range d.reads.close() {
		q.fail(ErrShutdown)
	}
	for id, q := range d.readWaiting {
		delete(d.readWaiting, id)
		q.fail(ErrShutdown)
	}
}

// String renders the request for logs.
func (q *readReq) String() string { return fmt.Sprintf("read(lease=%v)", q.lease) }
