package pebble

import (
	"errors"
	"fmt"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
)

// DefaultWriteTimeout is the Options.WriteTimeout used when none is given.
const DefaultWriteTimeout = 10 * time.Second

// committer runs every commit of the log database on one goroutine owned by
// the store, so that the writer (Save, Compact, BindNode) can stop waiting:
// Pebble can block a commit indefinitely (a write stall behind flushes that
// keep failing on a full disk, a commit pipeline wedged by a fatal error),
// and nothing can interrupt it. The committer takes ownership of each batch
// and closes it after its commit. It exits when reqs is closed.
func (s *Store) committer() {
	defer close(s.committerExit)
	for req := range s.commitReqs {
		err := s.runCommit(req.b, req.opts)
		_ = req.b.Close()
		s.commitDone <- err
	}
}

// runCommit commits b. A panic inside Pebble — Fatalf after a failed WAL
// write or sync, or any other — becomes the returned error and fails the
// store for writes.
func (s *Store) runCommit(b *pebbledb.Batch, opts *pebbledb.WriteOptions) (err error) {
	defer func() {
		if r := recover(); r != nil {
			cause, ok := r.(error)
			if !ok {
				cause = fmt.Errorf("panic: %v", r)
			}
			err = s.writeFailure("commit", cause)
			s.failWith(err, false)
		}
	}()
	return b.Commit(opts)
}

// commitReq is a batch for the committer and its write options.
type commitReq struct {
	b    *pebbledb.Batch
	opts *pebbledb.WriteOptions
}

// commitBatch commits b with opts (s.wopts for log writes, as configured by
// Options.NoSync; pebbledb.Sync for what must be durable even then) and
// takes ownership of b. The caller holds wmu. It returns by deadline (the
// caller's start plus the write timeout):
//
//   - if the store has failed, at once, with the failure;
//   - if the commit fails, with its error (a fatal one also fails the store);
//   - if the store fails while the commit waits (Pebble reported a full disk
//     or corruption on a background goroutine), at once, with that failure;
//   - if the commit has not finished by deadline, with an error saying so (wrapping the last background failure, if any), and
//     the store refuses further writes.
//
// In the last two cases the commit may still complete later: the write is
// indeterminate, as after a crash.
func (s *Store) commitBatch(b *pebbledb.Batch, opts *pebbledb.WriteOptions, deadline time.Time) error {
	if err := s.fail.writeErr(); err != nil {
		_ = b.Close()
		return err
	}
	s.commitReqs <- commitReq{b, opts} // the committer is idle: wmu is held and the store has not failed
	s.commitTimer.Reset(time.Until(deadline))
	defer s.commitTimer.Stop()
	select {
	case err := <-s.commitDone:
		return err
	case <-s.fail.ch:
		select {
		case err := <-s.commitDone:
			return err // finished meanwhile: report what the commit did
		default:
		}
		return s.fail.writeErr()
	case <-s.commitTimer.C:
		err := fmt.Errorf("pebble: %s: commit did not finish within the write timeout (%v): Pebble is stalled; "+
			"the store refuses further writes", s.dir, s.writeTimeout)
		if cause := s.fail.writeErr(); cause != nil {
			err = fmt.Errorf("%w: %w", err, cause)
		}
		s.failWith(err, false)
		return s.fail.writeErr()
	}
}

// stopCommitter stops the committer and reports whether it exited within
// the write timeout (it has not if a commit is stuck inside Pebble). The
// caller holds closeMu exclusively, so no commit is being sent.
func (s *Store) stopCommitter() bool {
	close(s.commitReqs)
	select {
	case <-s.committerExit:
		return true
	default:
	}
	t := time.NewTimer(s.writeTimeout)
	defer t.Stop()
	select {
	case <-s.committerExit:
		return true
	case <-t.C:
		return false
	}
}

// errStuck is returned by Close when a commit stayed stuck in Pebble.
var errStuck = errors.New("a commit is still stuck inside Pebble; the database will be closed when it returns")

// newStoppedTimer returns a stopped timer, to be started with Reset.
func newStoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}
