package rafttest

import "github.com/typedraft/typedraft/raft"

// envelope is a message in flight.
type envelope struct {
	m        raft.Message
	from, to int
	at       int // earliest tick of delivery
	// snap is the snapshot a MsgSnap streams; inc the sender's incarnation
	// (the transfer's outcome is reported to that incarnation only).
	snap *snapshot
	inc  int
}

// network is the simulated network: a first-in first-out queue per directed
// link, plus a pool of strays (reordered or duplicated messages) delivered
// in any order once due. Partitions are directed cuts, checked both when a
// message is sent and when it would be delivered.
type network struct {
	n      int
	links  [][]envelope // links[from*n+to]
	lastAt []int        // latest delivery tick queued on each link
	strays []envelope
	cut    []bool // cut[from*n+to]
	// healAt is the tick at which the current partition ends (0: none).
	healAt int
}

func newNetwork(n int) *network {
	return &network{n: n, links: make([][]envelope, n*n), lastAt: make([]int, n*n), cut: make([]bool, n*n)}
}

func (nw *network) isCut(from, to int) bool { return nw.cut[from*nw.n+to] }

func (nw *network) partitioned() bool { return nw.healAt != 0 }

func (nw *network) heal() {
	clear(nw.cut)
	nw.healAt = 0
}

// enqueue adds e to its link, keeping the link's order.
func (nw *network) enqueue(e envelope) {
	k := e.from*nw.n + e.to
	if e.at < nw.lastAt[k] {
		e.at = nw.lastAt[k]
	}
	nw.lastAt[k] = e.at
	nw.links[k] = append(nw.links[k], e)
}

// purgeTo discards every message to node to (it crashed: its connections
// are gone) and returns them.
func (nw *network) purgeTo(to int) []envelope {
	var lost []envelope
	for from := 0; from < nw.n; from++ {
		k := from*nw.n + to
		lost = append(lost, nw.links[k]...)
		nw.links[k] = nil
	}
	kept := nw.strays[:0]
	for _, e := range nw.strays {
		if e.to == to {
			lost = append(lost, e)
			continue
		}
		kept = append(kept, e)
	}
	clear(nw.strays[len(kept):])
	nw.strays = kept
	return lost
}

// popLink removes and returns the head of link k.
func (nw *network) popLink(k int) envelope {
	q := nw.links[k]
	e := q[0]
	q[0] = envelope{}
	if len(q) == 1 {
		nw.links[k] = q[:0]
	} else {
		nw.links[k] = q[1:]
	}
	return e
}

// popStray removes and returns stray i.
func (nw *network) popStray(i int) envelope {
	e := nw.strays[i]
	last := len(nw.strays) - 1
	nw.strays[i] = nw.strays[last]
	nw.strays[last] = envelope{}
	nw.strays = nw.strays[:last]
	return e
}

// inFlight counts messages not yet delivered.
func (nw *network) inFlight() int {
	c := len(nw.strays)
	for _, q := range nw.links {
		c += len(q)
	}
	return c
}
