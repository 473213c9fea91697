package rafttest

import (
	"fmt"

	"github.com/typedraft/typedraft/raft"
)

// phase is where a node is in carrying out its current Ready. Each phase
// boundary is a separate scheduling step, so a crash can fall between any
// two: after the early messages are out but before the save, or after the
// save but before the acknowledgements leave.
type phase uint8

const (
	// phaseIdle: no Ready in progress; the core may be stepped.
	phaseIdle phase = iota
	// phaseSave: Ready.Messages are sent; HardState and Entries must be
	// saved next.
	phaseSave
	// phaseAfter: the batch is durable; MessagesAfter must be sent, Committed
	// applied, and the Ready advanced.
	phaseAfter
)

// node is one simulated server.
type node struct {
	idx  int
	id   raft.NodeID
	disk *disk

	// The volatile half, lost on a crash.
	up   bool
	core *raft.Core
	sm   machine
	// inc counts incarnations: it changes on every crash.
	inc   int
	phase phase
	rd    raft.Ready
	// rdHash holds the prefix hashes of rd.Entries (the core's unstable
	// tail) while the batch is not saved.
	rdHash []uint64
	// saveAt is the tick from which a slow save may run.
	saveAt int
	// dirty: the core was stepped since its last Ready was taken.
	dirty bool
	// Per-incarnation high-water marks (Monotonic).
	term, commit, applied uint64
	// leading is whether the node was leader (of term) at the last check.
	leading bool
	// appliedIdx is the last index this incarnation applied.
	appliedIdx uint64
	// pending maps log index to the client operation proposed there through
	// this incarnation.
	pending map[uint64]*pendingOp

	// lostTo is a bit set of peers the transport reports unreachable at
	// the node's next batch (Options.ReportLoss).
	lostTo uint64

	pausedUntil int
	downUntil   int
}

func (n *node) paused(tick int) bool { return n.pausedUntil > tick }

// canStep reports whether the node can take a message, tick or proposal now.
func (n *node) canStep(tick int) bool { return n.up && !n.paused(tick) && n.phase == phaseIdle }

// viewLast returns the last index of the core's log as of its latest Ready:
// the durable log with the unsaved tail laid over it.
func (n *node) viewLast() uint64 {
	if n.phase == phaseSave && len(n.rd.Entries) > 0 {
		return n.rd.Entries[len(n.rd.Entries)-1].Index
	}
	return n.disk.last()
}

// viewHash returns the prefix hash at i of the core's log as of its latest
// Ready (0 if i is beyond it).
func (n *node) viewHash(i uint64) uint64 {
	if n.phase == phaseSave && len(n.rd.Entries) > 0 {
		first := n.rd.Entries[0].Index
		if i >= first {
			if k := i - first; k < uint64(len(n.rdHash)) {
				return n.rdHash[k]
			}
			return 0
		}
	}
	return n.disk.prefixHash(i)
}

// viewEntry returns the entry at i of the core's log as of its latest Ready.
func (n *node) viewEntry(i uint64) (raft.Entry, bool) {
	if n.phase == phaseSave && len(n.rd.Entries) > 0 {
		first := n.rd.Entries[0].Index
		if i >= first {
			if k := i - first; k < uint64(len(n.rd.Entries)) {
				return n.rd.Entries[k], true
			}
			return raft.Entry{}, false
		}
	}
	if i == 0 || i > n.disk.last() {
		return raft.Entry{}, false
	}
	return n.disk.ents[i-1], true
}

// hashReady computes rdHash for the Ready just taken.
func (n *node) hashReady() error {
	n.rdHash = n.rdHash[:0]
	if len(n.rd.Entries) == 0 {
		return nil
	}
	first := n.rd.Entries[0].Index
	if first < 1 || first > n.disk.last()+1 {
		return fmt.Errorf("ready entries start at %d but the durable log ends at %d", first, n.disk.last())
	}
	prev := n.disk.prefixHash(first - 1)
	for k, e := range n.rd.Entries {
		if e.Index != first+uint64(k) {
			return fmt.Errorf("ready entry %d has index %d, want %d", k, e.Index, first+uint64(k))
		}
		prev = chainHash(prev, e)
		n.rdHash = append(n.rdHash, prev)
	}
	return nil
}
