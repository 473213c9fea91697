package tcp

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// logSummaryInterval is how often rate-limited log lines are summarized.
// Listen copies it into the Transport (tests shorten it before Listen).
var logSummaryInterval = 10 * time.Second

// maxLogKinds bounds the kinds a logLimiter remembers; occurrences of
// further kinds are counted together under overflowKind.
const (
	maxLogKinds  = 256
	overflowKind = "other repeated warnings"
)

// logLimiter rate-limits log lines by kind, so that a flood of hostile
// connections or a peer that stays down cannot fill the log: the first
// occurrence of a kind is logged at once, in full; later occurrences are
// only counted, and at the end of every interval in which some were
// suppressed, one summary line is logged with the count and the fields of
// the latest occurrence (key "repeated"). A kind not seen for a whole
// interval is forgotten, so its next occurrence is logged in full again.
//
// A kind is a key chosen by the caller: a fixed string for inbound
// problems (never derived from what a remote sends, which is unbounded),
// possibly with a configured peer's ID appended for outbound ones.
//
// Concurrency: safe for concurrent use; flush runs on the transport's
// summary goroutine.
type logLimiter struct {
	log   hclog.Logger
	every time.Duration

	mu    sync.Mutex
	kinds map[string]*logKind
}

type logKind struct {
	level      hclog.Level
	msg        string
	args       []any // of the latest suppressed occurrence
	suppressed int
	seen       bool // occurred during the current interval
}

func newLogLimiter(log hclog.Logger, every time.Duration) *logLimiter {
	return &logLimiter{log: log, every: every, kinds: make(map[string]*logKind)}
}

// warn logs msg with args at Warn level, rate-limited by kind.
func (l *logLimiter) warn(kind, msg string, args ...any) { l.emit(hclog.Warn, kind, msg, args) }

// error logs msg with args at Error level, rate-limited by kind.
func (l *logLimiter) error(kind, msg string, args ...any) { l.emit(hclog.Error, kind, msg, args) }

func (l *logLimiter) emit(level hclog.Level, kind, msg string, args []any) {
	if (level == hclog.Warn && !l.log.IsWarn()) || (level == hclog.Error && !l.log.IsError()) {
		return // silent logger: skip the bookkeeping too
	}
	l.mu.Lock()
	k := l.kinds[kind]
	if k == nil && len(l.kinds) >= maxLogKinds {
		kind, msg = overflowKind, overflowKind
		k = l.kinds[kind]
	}
	if k == nil {
		l.kinds[kind] = &logKind{level: level, msg: msg, seen: true}
		l.mu.Unlock()
		l.log.Log(level, msg, args...)
		return
	}
	k.seen = true
	k.suppressed++
	k.args = args
	l.mu.Unlock()
}

// flush logs one summary per kind with suppressed occurrences and forgets
// kinds that did not occur since the previous flush.
func (l *logLimiter) flush() {
	type summary struct {
		level hclog.Level
		msg   string
		args  []any
	}
	var out []summary
	l.mu.Lock()
	for key, k := range l.kinds {
		switch {
		case k.suppressed > 0:
			args := append(append([]any(nil), k.args...), "repeated", k.suppressed, "interval", l.every)
			out = append(out, summary{k.level, k.msg, args})
			k.suppressed, k.args, k.seen = 0, nil, false
		case !k.seen:
			delete(l.kinds, key)
		default:
			k.seen = false
		}
	}
	l.mu.Unlock()
	for _, s := range out {
		l.log.Log(s.level, s.msg, s.args...)
	}
}

// summarize flushes the limiter every interval until the transport closes,
// then once more.
func (t *Transport) summarize() {
	defer t.wg.Done()
	tick := time.NewTicker(t.warn.every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.warn.flush()
		case <-t.ctx.Done():
			t.warn.flush()
			return
		}
	}
}
