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
	// phaseSave: Ready.Messages are sent; the Snapshot must be installed
	// and HardState and Entries saved next.
	phaseSave
	// phaseAfter: the batch is durable; MessagesAfter must be sent, Committed
	// applied, and the Ready advanced.
	phaseAfter
)

// snapReport is the outcome of streaming a snapshot to peer.
type snapReport struct {
	peer int
	ok   bool
}

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
	// tail) while the batch is not saved; rdSnapHash that of rd.Snapshot.
	rdHash     []uint64
	rdSnapHash uint64
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

	// snapReports are outcomes of snapshot transfers the node started, to
	// report to its core before its next batch.
	snapReports []snapReport
	// snapAt is the applied index of the node's last snapshot.
	snapAt uint64
	// lostTo is a bit set of peers the transport reports unreachable at
	// the node's next batch (Options.ReportLoss).
	lostTo uint64

	pausedUntil int
	downUntil   int
	// off: shut down for good by the membership fault (it was no longer a
	// member); it restarts only if it is added again.
	off bool
	// everMember: the node has been a member of a configuration (a spare
	// added later counts as rejoining only after that).
	everMember bool

	// appliedConf is the configuration in force at appliedIdx (the latest
	// configuration entry applied, or the installed snapshot's), which a
	// snapshot taken now records; appliedConfIdx is its index.
	appliedConf    raft.Configuration
	appliedConfIdx uint64
	// conf is, while the node leads, its configuration as of the last check
	// (refreshed whenever its log grows), the configuration its commit
	// decisions of the next step are made with; confLast is the last index
	// at which it was read.
	conf     raft.Configuration
	confLast uint64
	// campaignKey remembers the (term, state, last index) at which the
	// node's right to campaign was last checked.
	campaignKey [3]uint64

	// snapPending is a snapshot the node stored that its core has not been
	// told of yet (the log is compacted behind it at the same step).
	snapPending *snapshot
	// installed: the current Ready's Snapshot is installed, its hard state
	// and entries not yet saved.
	installed bool

	// write is the leader's own log write in flight (write.go); async
	// marks the current Ready as saved by it.
	write *asyncWrite
	async bool
	// writeDone is the last index of a write that completed while a Ready
	// was out, reported after Advance.
	writeDone uint64
	// tail caches coreTail for the core's last index and term and the
	// durable log's last index.
	tail     []raft.Entry
	tailHash []uint64
	tailAt   uint64
	tailTerm uint64
	tailDisk uint64
	tailKeep uint64

	// reads are read requests handed to the core, by request ID; readWait
	// the confirmed ones waiting until appliedIdx reaches their index
	// (reads.go).
	reads    map[uint64]*pendingRead
	readWait []*pendingRead
	// clock is the node's own clock in ticks, advancing by rate per tick of
	// the simulation (rate != 1 models clock drift); clockBase is its value
	// (whole ticks) when the current core was created.
	clock     float64
	rate      float64
	clockBase int64
}

func (n *node) paused(tick int) bool { return n.pausedUntil > tick }

// canStep reports whether the node can take a message, tick or proposal now.
func (n *node) canStep(tick int) bool { return n.up && !n.paused(tick) && n.phase == phaseIdle }

// The view: the core's log as of its latest Ready is the durable log with
// the Ready's unsaved parts laid over it (a snapshot to install, entries to
// save). The simulator checks the core's log through it.

// overlay is what the core's log holds beyond its durable prefix: the
// current Ready's snapshot and entries while it is being saved, or the
// entries of a write in flight and those appended since. The view is the
// durable log up to keep, then ents (or, with snap, the snapshot alone).
type overlay struct {
	ents   []raft.Entry
	hashes []uint64
	snap   *raft.SnapshotMeta
	keep   uint64
}

func (n *node) overlay() overlay {
	if n.phase == phaseSave && (len(n.rd.Entries) > 0 || n.rd.Snapshot != nil) {
		o := overlay{ents: n.rd.Entries, hashes: n.rdHash, snap: n.rd.Snapshot, keep: n.disk.last()}
		if len(o.ents) > 0 {
			o.keep = o.ents[0].Index - 1
		}
		if o.snap != nil {
			o.keep = o.snap.Index
		}
		return o
	}
	if n.up && n.core != nil {
		return n.coreTail()
	}
	return overlay{keep: n.disk.last()}
}

// coreTail returns the part of the core's log that is not durable: a write
// in flight and what the core appended since (held back until the write
// completes), from the first index at which the core's log leaves the
// durable one. It is empty when the core's log is the durable log.
func (n *node) coreTail() overlay {
	_, _, _, _, _, last := n.core.Basic()
	lastTerm, _ := n.core.Term(last)
	dl := n.disk.last()
	if last == dl {
		if t, err := n.disk.Term(dl); err == nil && t == lastTerm {
			return overlay{keep: dl}
		}
	}
	if n.tailAt == last && n.tailTerm == lastTerm && n.tailDisk == n.disk.gen {
		return overlay{ents: n.tail, hashes: n.tailHash, keep: n.tailKeep}
	}
	k := min(dl, last)
	for k > n.disk.base {
		if t, err := n.core.Term(k); err == nil && t == n.disk.ents[k-n.disk.base-1].Term {
			break
		}
		k--
	}
	ents, err := n.core.Entries(k+1, last+1)
	if err != nil {
		ents = nil
	}
	prev := n.disk.prefixHash(k)
	n.tailHash = n.tailHash[:0]
	for _, e := range ents {
		prev = chainHash(prev, e)
		n.tailHash = append(n.tailHash, prev)
	}
	n.tail, n.tailAt, n.tailTerm, n.tailDisk, n.tailKeep = ents, last, lastTerm, n.disk.gen, k
	return overlay{ents: n.tail, hashes: n.tailHash, keep: k}
}

// viewBase returns the index up to which the view is compacted.
func (n *node) viewBase() uint64 {
	if o := n.overlay(); o.snap != nil {
		return o.snap.Index
	}
	return n.disk.base
}

// viewLast returns the last index of the view.
func (n *node) viewLast() uint64 {
	o := n.overlay()
	return o.keep + uint64(len(o.ents))
}

// viewHash returns the prefix hash at i of the view; ok is false if i is
// compacted or beyond the view.
func (n *node) viewHash(i uint64) (uint64, bool) {
	o := n.overlay()
	if i > o.keep {
		if j := i - o.keep - 1; j < uint64(len(o.hashes)) {
			return o.hashes[j], true
		}
		return 0, false
	}
	if o.snap != nil {
		return n.rdSnapHash, i == o.snap.Index
	}
	if i < n.disk.base || i > n.disk.last() {
		return 0, false
	}
	return n.disk.prefixHash(i), true
}

// viewEntry returns the entry at i of the view, if it is not compacted.
func (n *node) viewEntry(i uint64) (raft.Entry, bool) {
	o := n.overlay()
	if i > o.keep {
		if j := i - o.keep - 1; j < uint64(len(o.ents)) {
			return o.ents[j], true
		}
		return raft.Entry{}, false
	}
	if o.snap != nil {
		return raft.Entry{}, false
	}
	return n.disk.entry(i)
}

// hashReady computes rdHash (and rdSnapHash) for the Ready just taken.
func (n *node) hashReady() error {
	n.rdHash = n.rdHash[:0]
	var prev, first uint64
	if s := n.rd.Snapshot; s != nil {
		if n.disk.snap == nil || n.disk.snap.meta.Index != s.Index || n.disk.snap.meta.Term != s.Term {
			return fmt.Errorf("the core installs snapshot %d term %d, which is not the newest in the snapshot store", s.Index, s.Term)
		}
		n.rdSnapHash = n.disk.snap.phash
		prev, first = n.rdSnapHash, s.Index+1
	}
	if len(n.rd.Entries) == 0 {
		return nil
	}
	if n.rd.Snapshot == nil {
		first = n.rd.Entries[0].Index
		if first <= n.disk.base || first > n.disk.last()+1 {
			return fmt.Errorf("ready entries start at %d but the durable log holds (%d, %d]", first, n.disk.base, n.disk.last())
		}
		prev = n.disk.prefixHash(first - 1)
	}
	for k, e := range n.rd.Entries {
		if e.Index != first+uint64(k) {
			return fmt.Errorf("ready entry %d has index %d, want %d", k, e.Index, first+uint64(k))
		}
		prev = chainHash(prev, e)
		n.rdHash = append(n.rdHash, prev)
	}
	return nil
}
