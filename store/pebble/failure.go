package pebble

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
)

// failure records the fatal failures of a Store. There are two levels:
//
//   - a write failure (the log database cannot be written: an I/O error, a
//     full disk, a commit that did not finish within Options.WriteTimeout)
//     makes every later write (Save, Compact, BindNode, CreateSnapshot,
//     snapshot commits) return it; reads still serve the data written before;
//   - a read failure (Pebble found corrupt data, or failed fatally on one of
//     its own goroutines) makes every later call return it.
//
// The first failure of either kind closes ch and is what FailureErr returns.
// Methods are safe for concurrent use; the error accessors are lock-free.
type failure struct {
	ch    chan struct{}
	write atomic.Pointer[error]
	read  atomic.Pointer[error]
	// abandoned is set when Pebble failed fatally on one of its own
	// goroutines, which now blocks forever (see pebbleLogger.Fatalf): the
	// database is then never closed, because closing it would wait for that
	// goroutine or act on the state it left half-changed.
	abandoned atomic.Bool

	mu    sync.Mutex
	first error
}

func newFailure() *failure { return &failure{ch: make(chan struct{})} }

// set records err as a write failure and, if all, as a read failure too. It
// reports whether err is the store's first failure.
func (f *failure) set(err error, all bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.write.Load() == nil {
		f.write.Store(&err)
	}
	if all && f.read.Load() == nil {
		f.read.Store(&err)
	}
	if f.first != nil {
		return false
	}
	f.first = err
	close(f.ch)
	return true
}

// writeErr returns the error every write fails with, or nil.
func (f *failure) writeErr() error {
	if p := f.write.Load(); p != nil {
		return *p
	}
	return nil
}

// readErr returns the error every call fails with, or nil.
func (f *failure) readErr() error {
	if p := f.read.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *failure) firstErr() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.first
}

// Failed implements raft.FailureNotifier: the returned channel is closed once
// the store has failed for good — a write failed (I/O error, full disk, a
// commit that did not finish within Options.WriteTimeout), or Pebble reported
// corrupt data or a fatal error, also on its own background goroutines.
// FailureErr then returns the failure. The channel is the same for every call;
// it is never closed on a healthy store, and Close does not close it.
func (s *Store) Failed() <-chan struct{} { return s.fail.ch }

// FailureErr returns the store's first fatal failure, or nil while Failed is
// open. Corruption matches raft.ErrCorrupt and names the file or record; a
// full disk matches syscall.ENOSPC (errors.Is) and says so. Safe for
// concurrent use.
func (s *Store) FailureErr() error { return s.fail.firstErr() }

// failWith records a fatal failure (see failure) and logs the first one.
func (s *Store) failWith(err error, all bool) {
	if s.fail.set(err, all) {
		s.log.Error("store failed: it refuses further writes", "dir", s.dir, "error", err.Error(), "reads_refused", all)
	}
}

// diskProblem describes the I/O failures that mean the disk cannot take
// writes, or "" for other errors.
func diskProblem(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return "the disk is full (no space left on device)"
	case errors.Is(err, syscall.EDQUOT):
		return "the disk quota is exceeded"
	case errors.Is(err, syscall.EROFS):
		return "the file system is read-only"
	case errors.Is(err, syscall.EIO):
		return "an I/O error"
	}
	return ""
}

// writeFailure returns the error of a failed write op: it names the
// directory, says when the disk is full, and wraps cause.
func (s *Store) writeFailure(op string, cause error) error {
	what := "failed"
	if p := diskProblem(cause); p != "" {
		what = "failed: " + p
	}
	return fmt.Errorf("pebble: %s: %s %s; the store refuses further writes: %w", s.dir, op, what, cause)
}

// pebbleCorruption converts an error Pebble marked as corruption into a
// CorruptError naming the damaged file when Pebble knows it.
func (s *Store) pebbleCorruption(err error) *CorruptError {
	what, reason := "log database "+s.fs.PathJoin(s.dir, logDirName), err.Error()
	if info := pebbledb.ExtractDataCorruptionInfo(err); info != nil {
		if info.Path != "" {
			what = "file " + info.Path
		}
		if info.Details != nil {
			reason = info.Details.Error()
		}
	}
	return &CorruptError{What: what, Reason: reason}
}

// readDone is deferred by every read that reaches Pebble (and by Open). A
// panic inside Pebble (which must not take the caller's process down) and an
// error Pebble marked as corruption both become an error matching
// raft.ErrCorrupt that fails the store for every later call; the panic of
// Fatalf becomes an error wrapping Pebble's (see writeFailure) that does the
// same; other errors pass through.
func (s *Store) readDone(op string, err *error) {
	if r := recover(); r != nil {
		if fe, ok := r.(*fatalError); ok {
			e := s.writeFailure(op, fe)
			s.failWith(e, true)
			*err = e
			return
		}
		e := &CorruptError{What: "log database " + s.fs.PathJoin(s.dir, logDirName),
			Reason: fmt.Sprintf("%s: Pebble panicked: %v", op, r)}
		s.log.Error("pebble panicked during a read", "op", op, "panic", fmt.Sprint(r), "stack", string(stack()))
		s.failWith(e, true)
		*err = e
		return
	}
	if *err == nil || errors.Is(*err, raft.ErrCorrupt) || !pebbledb.IsCorruptionError(*err) {
		return
	}
	e := s.pebbleCorruption(*err)
	e.Reason = op + ": " + e.Reason
	s.failWith(e, true)
	*err = e
}

func stack() []byte {
	b := make([]byte, 16<<10)
	return b[:runtime.Stack(b, false)]
}

// listener receives Pebble's events. Its handlers run on Pebble's goroutines
// (a reader's or a background one); they record failures and log, and never
// block or call into the database.
type listener struct{ s *Store }

func (l listener) eventListener() *pebbledb.EventListener {
	return &pebbledb.EventListener{
		BackgroundError: l.backgroundError,
		DataCorruption:  l.dataCorruption,
		DiskSlow: func(info pebbledb.DiskSlowInfo) {
			l.s.rlog.log(hclog.Warn, "disk slow", "disk slow", "info", info.String())
		},
		WriteStallBegin: func(info pebbledb.WriteStallBeginInfo) {
			l.s.rlog.log(hclog.Warn, "write stall", "write stall", "reason", info.Reason)
		},
	}
}

// backgroundError handles the failure of a flush, compaction or other
// background job. Pebble retries failed flushes and compactions at once and
// again and again, so the same error can arrive thousands of times a second:
// the log line is rate-limited. Corruption fails the store for every call; a
// disk that cannot take writes (full, read-only, I/O errors) fails it for
// writes, so that a Save waiting behind the stalled flush returns at once.
func (l listener) backgroundError(err error) {
	s := l.s
	// Logged before the store fails: a Save woken by the failure returns
	// with the cause already in the log.
	s.rlog.log(hclog.Error, "background error", "background error", "component", "pebble", "error", err.Error())
	switch {
	case pebbledb.IsCorruptionError(err):
		s.failWith(s.pebbleCorruption(err), true)
	case diskProblem(err) != "":
		s.failWith(s.writeFailure("background write", err), false)
	}
}

// dataCorruption is called by Pebble wherever it finds a block that fails its
// checksum: on the goroutine of a read (whose call then returns an error) or
// of a compaction. Pebble's default would call Fatalf.
func (l listener) dataCorruption(info pebbledb.DataCorruptionInfo) {
	reason := "corrupt data"
	if info.Details != nil {
		reason = info.Details.Error()
	}
	l.s.failWith(&CorruptError{What: "file " + info.Path, Reason: reason}, true)
}

// pebbleLogger adapts the store's logger to Pebble's logger interface and
// handles Pebble's fatal errors.
type pebbleLogger struct{ s *Store }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.s.log.IsDebug() {
		p.s.log.Debug(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

// Errorf logs at Error level, rate-limited per format string.
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.s.rlog.log(hclog.Error, format, fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf is called by Pebble on errors after which it must not continue (a
// failed WAL or MANIFEST write, a broken invariant). Pebble's default exits
// the process; returning would let Pebble go on with state it considers
// broken (after a failed commit it would even report the write as done).
// So Fatalf never returns:
//
//   - on the goroutine of a Store call (a commit, a read, Open or Close), it
//     panics with a *fatalError, which the call recovers and returns as its
//     error (and which fails the store, see failure);
//   - on one of Pebble's own goroutines (a flush, a compaction), it fails the
//     store for every call, marks the database abandoned and blocks that
//     goroutine forever. Blocking keeps Pebble from acting on the failed
//     job's half-applied state (installing a version, deleting files), and
//     nothing can recover a panic there. runtime.Goexit was rejected: it runs
//     the goroutine's deferred calls, which release locks and let other jobs
//     continue with the same state, while the bookkeeping Pebble does after
//     a normal return (clearing its "flushing" flag, which DB.Close waits
//     for) never runs. Close then does not close the abandoned database
//     (which would wait for the blocked goroutine forever): its goroutines
//     and directory lock remain until the process exits.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	err := newFatalError(format, args)
	s := p.s
	s.log.Error(err.Error(), "component", "pebble", "fatal", true)
	if onStoreCall() {
		panic(err)
	}
	what := "Pebble failed on a background goroutine"
	if p := diskProblem(err); p != "" {
		what += ": " + p
	}
	s.fail.abandoned.Store(true)
	s.failWith(fmt.Errorf("pebble: %s: %s; the database is abandoned and every call fails "+
		"(reopen the directory in a new process): %w", s.dir, what, err), true)
	parkForever()
}

// parkForever blocks the calling goroutine for the rest of the process.
func parkForever() { select {} }

// fatalError is the panic value of pebbleLogger.Fatalf. It keeps the errors
// among Fatalf's arguments, so that errors.Is(err, syscall.ENOSPC) works.
type fatalError struct {
	msg  string
	errs []error
}

func newFatalError(format string, args []any) *fatalError {
	e := &fatalError{msg: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if err, ok := a.(error); ok {
			e.errs = append(e.errs, err)
		}
	}
	return e
}

func (e *fatalError) Error() string   { return e.msg }
func (e *fatalError) Unwrap() []error { return e.errs }

var (
	storeMethodPrefix = reflect.TypeFor[Store]().PkgPath() + ".(*Store)."
	openFuncName      = reflect.TypeFor[Store]().PkgPath() + ".Open"
)

// onStoreCall reports whether the calling goroutine is running Open or a
// method of *Store (every one of which that reaches Pebble recovers the
// panic of Fatalf), rather than one of Pebble's own goroutines. Closures
// inside those functions do not count: the event listener's handlers run on
// Pebble's goroutines.
func onStoreCall() bool {
	pcs := make([]uintptr, 512)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		name := f.Function
		if name == openFuncName ||
			strings.HasPrefix(name, storeMethodPrefix) && !strings.Contains(name[len(storeMethodPrefix):], ".") {
			return true
		}
		if !more {
			return false
		}
	}
}
