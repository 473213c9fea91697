package rafttest

import (
	"fmt"

	"github.com/typedraft/typedraft/raft"
)

// The rogue fault (Faults.Rogue): a node that is no member of anything,
// with a valid identity on the network, sends forged messages of every
// kind — any type, terms above and below the target's, invented log
// positions and entries, snapshot announcements naming itself, leader
// hints, transfer and lease flags. A member must act on none of it: its
// role, term, leader, commit index and log are the same after the message
// as before (InvariantRogue). The target's answers to the rogue (a stale
// leader is told the term; a pre-vote is refused) leave the cluster.

// rogueID is the rogue's node ID; it is never a member.
const rogueID raft.NodeID = "rogue"

// rogueMessage forges one message to a random running member that has a
// configuration (a node waiting to be added accepts appends from anyone:
// it cannot tell its future leader from a forger).
func (s *sim) rogueMessage() {
	var targets []*node
	for _, i := range s.targets() {
		n := s.nodes[i]
		if !n.canStep(s.tick) {
			continue
		}
		if cfg, _ := n.core.Configuration(); len(cfg.Servers) == 0 {
			continue
		}
		targets = append(targets, n)
	}
	if len(targets) == 0 {
		return
	}
	n := targets[s.rng.IntN(len(targets))]
	st, term, lead, commit, _, last := n.core.Basic()
	m := raft.Message{
		Type: raft.MessageType(1 + s.rng.IntN(int(raft.MsgReadIndexResp))),
		From: rogueID, To: n.id,
		Term:    max(1, term+uint64(s.rng.IntN(8))) - uint64(s.rng.IntN(2)),
		Index:   last + uint64(s.rng.IntN(5)) - min(last, uint64(s.rng.IntN(5))),
		LogTerm: term + uint64(s.rng.IntN(3)) - min(term, uint64(s.rng.IntN(3))),
		Commit:  commit + uint64(s.rng.IntN(20)),
		Reject:  s.rng.IntN(2) == 0, Transfer: s.rng.IntN(2) == 0, Lease: s.rng.IntN(2) == 0,
		Context: s.rng.Uint64N(1 << 20),
	}
	if s.rng.IntN(2) == 0 {
		m.Leader = rogueID
	}
	for k := 0; k < s.rng.IntN(4); k++ {
		m.Entries = append(m.Entries, raft.Entry{Index: m.Index + 1 + uint64(k), Term: m.Term, Type: raft.EntryCommand,
			Data: []byte(fmt.Sprintf("forged-%d", s.rng.Uint32()))})
	}
	if m.Type == raft.MsgSnap {
		m.Snapshot = &raft.SnapshotMeta{Index: last + 10, Term: m.Term,
			Configuration: raft.Configuration{Servers: []raft.Server{{ID: rogueID}, {ID: n.id}}}, ConfigIndex: last + 10}
	}
	s.rep.RogueMessages++
	s.record(event{kind: evDeliver, node: n.idx, msg: m, hasM: true, a: uint64(len(m.Entries))})
	s.syncClock(n)
	n.core.Step(m)
	st2, term2, lead2, commit2, _, last2 := n.core.Basic()
	if st2 != st || term2 != term || lead2 != lead || commit2 != commit || last2 != last {
		s.failf(InvariantRogue, "%s acted on a forged message from a non-member (%s): role %s->%s term %d->%d leader %q->%q commit %d->%d last %d->%d",
			n.id, m, st, st2, term, term2, lead, lead2, commit, commit2, last, last2)
		return
	}
	n.dirty = true
	s.maybeReadyNow(n)
}
