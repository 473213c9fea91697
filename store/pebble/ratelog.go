package pebble

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// rateLogWindow is how long a rate-limited message is suppressed after it
// was logged.
const rateLogWindow = 10 * time.Second

// rateLog logs messages that can repeat at a high rate (one per failed
// flush, compaction or write) without flooding the log: the first message of
// a key is logged at once; repeats within rateLogWindow are counted, and the
// next one logged after the window carries the count ("suppressed"). flush
// logs the counts still pending. Safe for concurrent use.
type rateLog struct {
	l      hclog.Logger
	window time.Duration

	mu   sync.Mutex
	keys map[string]*rateKey
}

type rateKey struct {
	msg        string
	last       time.Time
	suppressed int
}

func newRateLog(l hclog.Logger) *rateLog {
	return &rateLog{l: l, window: rateLogWindow, keys: map[string]*rateKey{}}
}

// log logs msg with args at level unless a message with the same key was
// logged less than the window ago. Keys are a small fixed set (message kinds
// and Pebble's format strings), so the map stays small.
func (r *rateLog) log(level hclog.Level, key, msg string, args ...any) {
	now := time.Now()
	r.mu.Lock()
	k := r.keys[key]
	if k == nil {
		k = &rateKey{}
		r.keys[key] = k
	} else if now.Sub(k.last) < r.window {
		k.suppressed++
		k.msg = msg
		r.mu.Unlock()
		return
	}
	n := k.suppressed
	k.last, k.suppressed, k.msg = now, 0, msg
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	r.l.Log(level, msg, args...)
}

// flush logs a summary for every key with suppressed messages.
func (r *rateLog) flush() {
	r.mu.Lock()
	type pending struct {
		msg string
		n   int
	}
	var out []pending
	for _, k := range r.keys {
		if k.suppressed > 0 {
			out = append(out, pending{k.msg, k.suppressed})
			k.suppressed = 0
		}
	}
	r.mu.Unlock()
	for _, p := range out {
		r.l.Warn("repeated messages suppressed", "last", p.msg, "suppressed", p.n)
	}
}
