package tcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// shortSummaries makes transports opened by this test summarize repeated
// warnings every d.
func shortSummaries(t *testing.T, d time.Duration) {
	old := logSummaryInterval
	logSummaryInterval = d
	t.Cleanup(func() { logSummaryInterval = old })
}

var repeatedRE = regexp.MustCompile(`repeated=(\d+)`)

// logAccount returns, for the log lines mentioning every one of parts, how
// many there are and how many occurrences they account for (a summary
// line counts its repeated= value, any other line one).
func logAccount(logs *logBuffer, parts ...string) (lines, occurrences int) {
	for _, line := range strings.Split(logs.String(), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if !ok {
			continue
		}
		lines++
		if m := repeatedRE.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			occurrences += n
		} else {
			occurrences++
		}
	}
	return lines, occurrences
}

// TestHostileFloodLogsAreRateLimited: 500 connections with a bad handshake
// produce one full warning and then periodic summaries whose counts
// account for every one of them, not 500 lines.
func TestHostileFloodLogsAreRateLimited(t *testing.T) {
	const n, every = 500, 100 * time.Millisecond
	shortSummaries(t, every)
	b, _, logs := loggedNode(t, testOptions("b"))
	start := time.Now()
	var wg sync.WaitGroup
	var sent atomic.Int64
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / 10 {
				c, err := net.Dial("tcp", b.Addr())
				if err != nil {
					t.Errorf("dial %d: %v", g, err)
					return
				}
				_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
				_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
				_, _ = io.Copy(io.Discard, c) // until the listener hangs up
				_ = c.Close()
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	const msg = "refused inbound connection: bad handshake"
	waitFor(t, "the summaries to account for every refusal", func() bool {
		_, occ := logAccount(logs, msg)
		return occ == n
	})
	lines, _ := logAccount(logs, msg)
	took := time.Since(start)
	t.Logf("%d refused connections in %v logged in %d lines", sent.Load(), took, lines)
	if limit := 2 + int(took/every); lines > limit {
		t.Fatalf("%d lines for %d refusals in %v; want at most %d (one, then a summary per %v)", lines, n, took, limit, every)
	}
	logs.waitLog(t, msg, "repeated=")
}

// TestDialFailuresRateLimited: a peer that stays down is logged once and
// then summarized; every failed dial is still counted and reported
// unreachable.
func TestDialFailuresRateLimited(t *testing.T) {
	const every = 100 * time.Millisecond
	shortSummaries(t, every)
	o := testOptions("a")
	o.BackoffMin, o.BackoffMax = time.Millisecond, 2*time.Millisecond
	logger, logs := newLogger("a")
	o.Logger = logger
	a := listen(t, o)
	h := newHandler()
	a.Register(h)
	var dials atomic.Int64
	a.dial = func(context.Context, string, string) (net.Conn, error) {
		dials.Add(1)
		return nil, errors.New("test: connection refused")
	}
	start := time.Now()
	for i := uint64(0); time.Since(start) < 300*time.Millisecond; i++ {
		a.Send(raft.Peer{ID: "b", Addr: "127.0.0.1:1"}, []raft.Message{heartbeat("a", "b", i)})
		time.Sleep(100 * time.Microsecond) // pace the sender, as a raft node's ticks do
	}
	a.Send(raft.Peer{ID: "b", Addr: "127.0.0.1:1"}, []raft.Message{heartbeat("a", "b", 0)})
	stopped := dials.Load()
	waitFor(t, "the summaries to account for every failed dial", func() bool {
		_, occ := logAccount(logs, "dial failed", "peer=b")
		return int64(occ) >= stopped && int64(occ) == dials.Load()
	})
	lines, occ := logAccount(logs, "dial failed", "peer=b")
	took := time.Since(start)
	t.Logf("%d failed dials in %v logged in %d lines", occ, took, lines)
	if occ < 20 {
		t.Fatalf("only %d dials failed; the test needs a flood of them", occ)
	}
	if limit := 2 + int(took/every); lines > limit {
		t.Fatalf("%d lines for %d failed dials in %v; want at most %d", lines, occ, took, limit)
	}
	if n := h.unreachableCount("b"); int64(n) < int64(occ) {
		t.Fatalf("%d failed dials but %d unreachable reports", occ, n)
	}
}

// TestCleanPeerRestartLoggedAtDebug: a peer that closes its connections
// normally (it is shutting down to restart) is logged at Debug, not Warn,
// and reached again once it is back; in plaintext and over TLS.
func TestCleanPeerRestartLoggedAtDebug(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", secure), func(t *testing.T) {
			ao, bo := testOptions("a"), testOptions("b")
			if secure {
				ca := newCA(t, "ca")
				ao.TLS, bo.TLS = nodeTLS(t, ca, ca, "a"), nodeTLS(t, ca, ca, "b")
			}
			logger, logs := newLogger("a")
			ao.Logger = logger
			a := listen(t, ao)
			b := listen(t, bo)
			addr := b.Addr()
			hb := newHandler()
			b.Register(hb)
			a.Send(peerOf(b), []raft.Message{heartbeat("a", "b", 1)})
			waitFor(t, "the first message", func() bool { return hb.count() == 1 })
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			logs.waitLog(t, "[DEBUG]", "connection closed by peer", "peer=b")
			b2, err := Listen(addr, bo)
			if err != nil {
				t.Fatalf("relisten on %s: %v", addr, err)
			}
			t.Cleanup(func() { _ = b2.Close() })
			hb2 := newHandler()
			b2.Register(hb2)
			a.Send(raft.Peer{ID: "b", Addr: addr}, []raft.Message{heartbeat("a", "b", 2)})
			waitFor(t, "a message to the restarted peer", func() bool { return hb2.count() == 1 })
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, "[WARN]") || strings.Contains(line, "[ERROR]") {
					t.Errorf("a clean restart of b logged: %s", line)
				}
			}
		})
	}
}

func TestLogLimiterForgetsQuietKinds(t *testing.T) {
	logger, logs := newLogger("x")
	l := newLogLimiter(logger, time.Hour)
	l.warn("k", "first kind", "n", 1)
	l.warn("k", "first kind", "n", 2)
	l.warn("k", "first kind", "n", 3)
	l.flush() // a summary of the 2 suppressed, with the latest fields
	l.flush() // nothing since: the kind is forgotten
	l.flush()
	l.warn("k", "first kind", "n", 4) // logged in full again
	lines, occ := logAccount(logs, "first kind")
	if lines != 3 || occ != 4 || !logs.contains("n=3 repeated=2") || !logs.contains("n=4") {
		t.Fatalf("%d lines for %d occurrences:\n%s", lines, occ, logs.String())
	}
}
