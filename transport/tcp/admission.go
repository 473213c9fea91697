package tcp

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// maxConnsPerPeer bounds the established inbound connections claiming one
// node ID (messages and snapshots together). A healthy peer holds one
// message connection and at most a few snapshot connections; past the
// bound its oldest connection is closed, so a peer that restarted (and
// whose old connections have not been noticed as dead yet) always gets in.
const maxConnsPerPeer = 8

// connState is where an inbound connection is in its admission.
type connState uint8

const (
	stateParked  connState = iota // accepted, waiting for a pending slot; nothing read
	statePending                  // handshake (TLS and hello) in progress on its goroutine
	stateShared                   // established, in the shared pool (MaxInboundConns, MaxConnsPerIP)
	stateMember                   // established, in a slot reserved for a configured peer
	stateGone                     // closed, evicted or refused: counted nowhere
)

// inConn is the admission record of one inbound connection.
type inConn struct {
	raw      net.Conn
	ip       string       // source IP, the key of the per-IP limits
	accepted time.Time    // when it was accepted
	received atomic.Int64 // bytes read from it (the handshake's progress)
	waiting  atomic.Int64 // UnixNano since when a read waits for the peer; 0 when none does

	// Guarded by admission.mu.
	state   connState
	started time.Time   // when it became pending
	id      raft.NodeID // the authenticated node ID, once established
}

// progressConn records in its inConn, until the handshake is done, how
// many bytes were read and since when a read has been waiting for the
// peer, which is what the eviction of pending connections looks at (time
// this side spends computing, such as its part of a TLS handshake, never
// counts against the peer).
//
// Concurrency: Read and done are used by the connection's serving
// goroutine only (the inConn fields it sets are atomic).
type progressConn struct {
	net.Conn
	ic       *inConn
	finished bool // the handshake is done: stop recording
}

func (c *progressConn) Read(p []byte) (int, error) {
	if c.finished {
		return c.Conn.Read(p)
	}
	c.ic.waiting.CompareAndSwap(0, time.Now().UnixNano())
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.ic.received.Add(int64(n))
		c.ic.waiting.Store(0)
	}
	return n, err
}

// done stops the recording once the connection is established.
func (c *progressConn) done() { c.finished = true }

// admission enforces the inbound connection limits (see pending.go for
// the handshake stage):
//
//   - a connection is parked (accepted, nothing read, no goroutine) until a
//     pending slot is free: at most maxPending overall and perIP per source
//     IP. Parked connections are served first come, first served per IP,
//     fairly across IPs; under pressure a pending connection that has had
//     minPendingAge is evicted to make room (see sweep);
//   - once SetPeers has named the configuration, an established connection
//     must claim (and under TLS prove) a configured node ID; it then takes
//     a slot reserved for that ID (at most maxConnsPerPeer, oldest evicted)
//     that no stranger can take;
//   - until then, established connections share maxShared slots, at most
//     perIP from one source IP, and new ones beyond either are refused.
//
// Concurrency: every method is safe for concurrent use. Methods return the
// connections to close and the parked connections promoted to pending,
// whose goroutines the caller starts (both after the lock is released).
type admission struct {
	local            raft.NodeID
	maxPending       int
	maxShared        int
	perIP            int
	maxParked        int
	maxParkedPerIP   int
	minAge           time.Duration // minPendingAge, at most the handshake timeout
	handshakeTimeout time.Duration
	wake             chan struct{} // signalled when a connection is parked

	mu          sync.Mutex
	pending     []*inConn // oldest first
	pendingByIP map[string]int
	parked      map[string][]*inConn // per IP, oldest first
	parkedN     int
	shared      int
	sharedByIP  map[string]int
	byID        map[raft.NodeID][]*inConn // established, oldest first
	peers       map[raft.NodeID]struct{}  // nil until the first SetPeers
}

func newAdmission(o *Options) *admission {
	return &admission{
		local:            o.LocalID,
		maxPending:       o.MaxPendingConns,
		maxShared:        o.MaxInboundConns,
		perIP:            o.MaxConnsPerIP,
		maxParked:        parkedPerPending * o.MaxPendingConns,
		maxParkedPerIP:   parkedPerPendingPerIP * o.MaxConnsPerIP,
		minAge:           min(minPendingAge, o.HandshakeTimeout),
		handshakeTimeout: o.HandshakeTimeout,
		wake:             make(chan struct{}, 1),
		pendingByIP:      make(map[string]int),
		parked:           make(map[string][]*inConn),
		sharedByIP:       make(map[string]int),
		byID:             make(map[raft.NodeID][]*inConn),
	}
}

// sourceIP returns the IP part of a connection's remote address.
func sourceIP(c net.Conn) string {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return c.RemoteAddr().String()
}

// Refusal kinds of establish (log kinds too).
const (
	refusedEvicted   = "evicted"    // evicted while handshaking (already logged)
	refusedNotMember = "not-member" // SetPeers named the configuration; id is not in it
	refusedLimit     = "limit"      // MaxInboundConns
	refusedPerIP     = "per-ip"     // MaxConnsPerIP
)

// establish moves a pending connection that authenticated as id to an
// established slot. It returns a refusal kind and reason ("" when
// admitted), the connections evicted to make room and the parked ones
// promoted.
func (a *admission) establish(ic *inConn, id raft.NodeID) (kind, reason string, evicted, start []*inConn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ic.state != statePending {
		return refusedEvicted, "connection evicted during the handshake", nil, nil
	}
	a.removeLocked(ic)
	start = a.promoteLocked(time.Now())
	ic.id = id
	if a.peers != nil {
		if _, ok := a.peers[id]; !ok {
			return refusedNotMember, fmt.Sprintf("node %q is not a member of node %q's configuration", id, a.local), nil, start
		}
		ic.state = stateMember
	} else {
		if a.shared >= a.maxShared {
			return refusedLimit, fmt.Sprintf("inbound connection limit reached (MaxInboundConns %d)", a.maxShared), nil, start
		}
		if a.sharedByIP[ic.ip] >= a.perIP {
			return refusedPerIP, fmt.Sprintf("too many connections from %s (MaxConnsPerIP %d)", ic.ip, a.perIP), nil, start
		}
		ic.state = stateShared
		a.shared++
		a.sharedByIP[ic.ip]++
	}
	a.byID[id] = append(a.byID[id], ic)
	return "", "", a.trimPeerLocked(id), start
}

// trimPeerLocked evicts id's oldest connections beyond maxConnsPerPeer.
func (a *admission) trimPeerLocked(id raft.NodeID) []*inConn {
	var evicted []*inConn
	for len(a.byID[id]) > maxConnsPerPeer {
		old := a.byID[id][0]
		a.removeLocked(old)
		evicted = append(evicted, old)
	}
	return evicted
}

// leave forgets ic (idempotent); its goroutine calls it when it ends. It
// returns the parked connections promoted into the freed slot.
func (a *admission) leave(ic *inConn) []*inConn {
	a.mu.Lock()
	defer a.mu.Unlock()
	wasPending := ic.state == statePending
	a.removeLocked(ic)
	if !wasPending {
		return nil
	}
	return a.promoteLocked(time.Now())
}

// gone reports whether ic was evicted or has left.
func (a *admission) gone(ic *inConn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return ic.state == stateGone
}

func (a *admission) removeLocked(ic *inConn) {
	switch ic.state {
	case stateParked:
		q := a.parked[ic.ip]
		for i, c := range q {
			if c == ic {
				q = append(q[:i], q[i+1:]...)
				break
			}
		}
		if len(q) == 0 {
			delete(a.parked, ic.ip)
		} else {
			a.parked[ic.ip] = q
		}
		a.parkedN--
	case statePending:
		for i, c := range a.pending {
			if c == ic {
				a.pending = append(a.pending[:i], a.pending[i+1:]...)
				break
			}
		}
		decr(a.pendingByIP, ic.ip)
	case stateShared:
		a.shared--
		decr(a.sharedByIP, ic.ip)
		a.dropIDLocked(ic)
	case stateMember:
		a.dropIDLocked(ic)
	}
	ic.state = stateGone
}

func (a *admission) dropIDLocked(ic *inConn) {
	conns := a.byID[ic.id]
	for i, c := range conns {
		if c == ic {
			conns = append(conns[:i], conns[i+1:]...)
			break
		}
	}
	if len(conns) == 0 {
		delete(a.byID, ic.id)
	} else {
		a.byID[ic.id] = conns
	}
}

func decr(m map[string]int, k string) {
	if m[k] <= 1 {
		delete(m, k)
		return
	}
	m[k]--
}

// setPeers makes peers (minus this node) the configured node IDs. It
// returns the established connections of other IDs, now evicted; shared
// connections of configured IDs move to reserved slots.
func (a *admission) setPeers(peers []raft.Peer) []*inConn {
	set := make(map[raft.NodeID]struct{}, len(peers))
	for _, p := range peers {
		if p.ID != a.local {
			set[p.ID] = struct{}{}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.peers = set
	var evicted []*inConn
	for id, conns := range a.byID {
		if _, ok := set[id]; !ok {
			for _, c := range append([]*inConn(nil), conns...) {
				a.removeLocked(c)
				evicted = append(evicted, c)
			}
			continue
		}
		for _, c := range conns {
			if c.state == stateShared {
				a.shared--
				decr(a.sharedByIP, c.ip)
				c.state = stateMember
			}
		}
	}
	return evicted
}

// admissionCounts is a snapshot of the admission's counters.
type admissionCounts struct {
	parked, pending, shared, members int
}

func (a *admission) counts() admissionCounts {
	a.mu.Lock()
	defer a.mu.Unlock()
	members := 0
	for _, conns := range a.byID {
		for _, c := range conns {
			if c.state == stateMember {
				members++
			}
		}
	}
	return admissionCounts{parked: a.parkedN, pending: len(a.pending), shared: a.shared, members: members}
}
