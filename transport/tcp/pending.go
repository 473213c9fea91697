package tcp

import (
	"time"
)

// The handshake stage of inbound admission.
//
// Before its handshake completes nothing is known about a connection, and
// a flood of sockets (silent, slow, or redialling the moment they are
// closed) must not keep a real peer from completing its own handshake,
// which takes a few round trips. Accepting into a fixed budget and evicting
// the oldest does not work: a redialling flood arrives faster than the
// handshake goroutines run, so whatever was accepted, the real peer
// included, is evicted before it is read. Instead:
//
//   - the accept loop never blocks and never reads: a connection beyond
//     the pending budget (MaxPendingConns overall, MaxConnsPerIP per source
//     IP) is parked, holding only its file descriptor, in a per-IP queue;
//   - a freed pending slot goes to the head of a parked queue, the IP with
//     the fewest pending connections first, so parked connections are
//     served in arrival order per IP and fairly across IPs;
//   - while connections are parked, a pending connection that has kept
//     this side waiting for its bytes for minPendingAge (longer once it has
//     sent a hello's worth) is evicted, the one that has sent the fewest
//     bytes first, to let the next one in: a flood only delays a real peer
//     by its place in the queue, and the real peer's hello has arrived by
//     the time it is served;
//   - parked connections older than HandshakeTimeout are closed (their
//     dialer has given up), and beyond the parking bounds new connections
//     are closed at once.

const (
	// minPendingAge is how long a pending connection may keep this side
	// waiting for its bytes before it can be evicted in favour of a parked
	// one (at most HandshakeTimeout); progressGraceFactor times longer once
	// it has sent progressBytes (a TLS ClientHello, a hello frame). A real
	// handshake waits on the peer for a round trip and its computing at a
	// time, and its first bytes have arrived by the time it is served.
	minPendingAge       = 50 * time.Millisecond
	progressBytes       = 32
	progressGraceFactor = 4
	// parkedPerPending and parkedPerPendingPerIP size the parking:
	// parkedPerPending x MaxPendingConns overall (2048 by default) and
	// parkedPerPendingPerIP x MaxConnsPerIP per IP (512). A parked
	// connection costs a file descriptor and a small record, nothing else;
	// a flood that fits is held in order and cannot outrun a real peer,
	// while one that does not is closed on arrival beyond the bound.
	parkedPerPending      = 16
	parkedPerPendingPerIP = 8
)

// accept records ic, just accepted. It returns ic as start (to be served
// now) or as drop (to be closed: the parking is full), or neither (ic is
// parked).
func (a *admission) accept(ic *inConn, now time.Time) (start, drop *inConn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ic.accepted = now
	if len(a.parked[ic.ip]) == 0 && a.canStartLocked(ic.ip) {
		a.startLocked(ic, now)
		return ic, nil
	}
	if a.parkedN >= a.maxParked || len(a.parked[ic.ip]) >= a.maxParkedPerIP {
		ic.state = stateGone
		return nil, ic
	}
	ic.state = stateParked
	a.parked[ic.ip] = append(a.parked[ic.ip], ic)
	a.parkedN++
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return nil, nil
}

func (a *admission) canStartLocked(ip string) bool {
	return len(a.pending) < a.maxPending && a.pendingByIP[ip] < a.perIP
}

func (a *admission) startLocked(ic *inConn, now time.Time) {
	ic.state = statePending
	ic.started = now
	a.pending = append(a.pending, ic)
	a.pendingByIP[ic.ip]++
}

// promoteLocked moves parked connections into free pending slots and
// returns them: each time the head of the queue of the IP with the fewest
// pending connections (ties: the longest-waiting head).
func (a *admission) promoteLocked(now time.Time) []*inConn {
	var out []*inConn
	for a.parkedN > 0 && len(a.pending) < a.maxPending {
		best := ""
		for ip, q := range a.parked {
			if a.pendingByIP[ip] >= a.perIP {
				continue
			}
			if best == "" || a.pendingByIP[ip] < a.pendingByIP[best] ||
				a.pendingByIP[ip] == a.pendingByIP[best] && q[0].accepted.Before(a.parked[best][0].accepted) {
				best = ip
			}
		}
		if best == "" {
			break
		}
		ic := a.parked[best][0]
		a.removeLocked(ic)
		a.startLocked(ic, now)
		out = append(out, ic)
	}
	return out
}

// sweep, run every few milliseconds while connections are parked, closes
// parked connections older than the handshake timeout, evicts pending
// connections that kept this side waiting past their grace (see
// evictableLocked) where parked ones wait for their slots, and promotes
// parked connections. It returns the connections to
// close (stale: parked too long; evicted: pending) and those to serve.
func (a *admission) sweep(now time.Time) (stale, evicted, start []*inConn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for ip := range a.parked {
		for {
			q := a.parked[ip] // re-read: removeLocked shifts the queue
			if len(q) == 0 || now.Sub(q[0].accepted) < a.handshakeTimeout {
				break
			}
			c := q[0]
			a.removeLocked(c)
			stale = append(stale, c)
		}
	}
	for {
		start = append(start, a.promoteLocked(now)...)
		if a.parkedN == 0 {
			break
		}
		v := a.pressureVictimLocked(now)
		if v == nil {
			break
		}
		a.removeLocked(v)
		evicted = append(evicted, v)
	}
	return stale, evicted, start
}

// pressureVictimLocked returns the pending connection to evict so that a
// parked one can start, or nil: from an IP whose parked connections wait
// on its per-IP limit, or, when the overall limit blocks them, from the IP
// holding the most pending connections.
func (a *admission) pressureVictimLocked(now time.Time) *inConn {
	overall := len(a.pending) >= a.maxPending
	heaviest, most := "", 0
	for ip, n := range a.pendingByIP {
		if n > most || n == most && ip < heaviest {
			heaviest, most = ip, n
		}
	}
	for ip := range a.parked {
		if a.pendingByIP[ip] >= a.perIP {
			if v := a.evictableLocked(ip, now); v != nil {
				return v
			}
		} else if overall {
			if v := a.evictableLocked(heaviest, now); v != nil {
				return v
			}
		}
	}
	return nil
}

// evictableLocked returns ip's pending connection that is the cheapest to
// lose among those whose read has waited for the peer for at least their
// grace (minAge, or progressGraceFactor x minAge once the peer has sent
// progressBytes): the one that has sent the fewest bytes (a real peer
// sends its whole TLS ClientHello or hello at once), the longest waiting
// among equals. A connection whose goroutine has not run yet, or that is
// busy on this side, is never evictable.
func (a *admission) evictableLocked(ip string, now time.Time) *inConn {
	var victim *inConn
	var least int64
	var longest time.Duration
	for _, c := range a.pending {
		if c.ip != ip {
			continue
		}
		w := c.waiting.Load()
		if w == 0 {
			continue
		}
		n := c.received.Load()
		grace := a.minAge
		if n >= progressBytes {
			grace *= progressGraceFactor
		}
		idle := now.Sub(time.Unix(0, w))
		if idle < grace {
			continue
		}
		if victim == nil || n < least || n == least && idle > longest {
			victim, least, longest = c, n, idle
		}
	}
	return victim
}

// hasParked reports whether connections are parked.
func (a *admission) hasParked() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.parkedN > 0
}

// sweepLoop runs admission.sweep every minAge/5 while connections are
// parked, until the transport closes.
func (t *Transport) sweepLoop() {
	defer t.wg.Done()
	every := max(t.adm.minAge/5, time.Millisecond)
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.adm.wake:
		}
		tick := time.NewTicker(every)
		for t.adm.hasParked() {
			select {
			case <-t.ctx.Done():
				tick.Stop()
				return
			case <-tick.C:
			}
			stale, evicted, start := t.adm.sweep(time.Now())
			for _, c := range stale {
				t.warn.warn("parked-timeout", "closing an inbound connection that waited for a handshake slot past the handshake timeout",
					"remote", c.raw.RemoteAddr().String(), "max_pending", t.opts.MaxPendingConns, "max_per_ip", t.opts.MaxConnsPerIP)
				t.closeInbound(c)
			}
			for _, c := range evicted {
				t.warn.warn("evict-pending", "closing a pending inbound connection to make room",
					"remote", c.raw.RemoteAddr().String(), "pending_for", time.Since(c.started).Round(time.Millisecond),
					"max_pending", t.opts.MaxPendingConns, "max_per_ip", t.opts.MaxConnsPerIP)
				_ = c.raw.Close() // its goroutine untracks it
			}
			t.serve(start)
		}
		tick.Stop()
	}
}

// serve starts the handshake goroutine of each promoted connection (or
// closes it once the transport is closing).
func (t *Transport) serve(conns []*inConn) {
	for _, c := range conns {
		if t.ctx.Err() != nil {
			t.closeInbound(c)
			continue
		}
		t.wg.Add(1)
		go t.serveInbound(c)
	}
}

// closeInbound closes and untracks an inbound connection that has no
// goroutine serving it.
func (t *Transport) closeInbound(c *inConn) {
	_ = c.raw.Close()
	t.untrack(c.raw)
}
