package raft_test

import (
	"fmt"
	"slices"
	"strings"

	"github.com/typedraft/typedraft/raft"
)

// itLog is one node's durable log for the interaction tests: what a
// LogStore holds after the Saves and compactions the test driver carried
// out. The Core reads it through raft.LogReader; only the test driver
// writes it, between Ready and Advance (or at write-done).
type itLog struct {
	hs raft.HardState
	// snapIndex and snapTerm describe the last compacted entry.
	snapIndex, snapTerm uint64
	ents                []raft.Entry // ents[i].Index == snapIndex+1+i
}

func (l *itLog) FirstIndex() (uint64, error) { return l.snapIndex + 1, nil }
func (l *itLog) LastIndex() (uint64, error)  { return l.snapIndex + uint64(len(l.ents)), nil }

func (l *itLog) last() uint64 { return l.snapIndex + uint64(len(l.ents)) }

func (l *itLog) Term(i uint64) (uint64, error) {
	switch {
	case i == l.snapIndex:
		return l.snapTerm, nil
	case i < l.snapIndex:
		return 0, raft.ErrCompacted
	case i > l.last():
		return 0, raft.ErrUnavailable
	}
	return l.ents[i-l.snapIndex-1].Term, nil
}

func (l *itLog) Entries(lo, hi, maxBytes uint64) ([]raft.Entry, error) {
	if lo <= l.snapIndex {
		return nil, raft.ErrCompacted
	}
	if hi > l.last()+1 {
		return nil, raft.ErrUnavailable
	}
	var out []raft.Entry
	var size uint64
	for i := lo; i < hi; i++ {
		e := l.ents[i-l.snapIndex-1]
		size += e.Size()
		if maxBytes > 0 && len(out) > 0 && size > maxBytes {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

// save is LogStore.Save: the hard state and entries in one atomic write,
// truncating any conflicting suffix first.
func (l *itLog) save(hs raft.HardState, ents []raft.Entry) error {
	if len(ents) > 0 {
		at := ents[0].Index
		if at <= l.snapIndex || at > l.last()+1 {
			return fmt.Errorf("save entries from %d: log holds (%d,%d]", at, l.snapIndex, l.last())
		}
		l.ents = append(slices.Clip(l.ents[:at-l.snapIndex-1]), ents...)
	}
	l.hs = hs
	return nil
}

// compact is LogStore.Compact: it discards the entries up to index, or the
// whole log if it does not hold (index, term).
func (l *itLog) compact(index, term uint64) {
	if index <= l.snapIndex {
		return
	}
	if t, err := l.Term(index); err == nil && t == term {
		l.ents = slices.Clone(l.ents[index-l.snapIndex:])
	} else {
		l.ents = nil
	}
	l.snapIndex, l.snapTerm = index, term
}

// Formatting. Entries print as index@tterm:what, messages as
// from->to Type tterm and the fields that matter for the type.

func itEntry(e raft.Entry) string {
	var what string
	switch e.Type {
	case raft.EntryCommand:
		what = string(e.Data)
	case raft.EntryNoop:
		what = "noop"
	case raft.EntryConfig:
		cfg, err := raft.DecodeConfiguration(e.Data)
		if err != nil {
			what = "conf(" + err.Error() + ")"
		} else {
			what = "conf" + cfg.String()
		}
	default:
		what = e.Type.String()
	}
	return fmt.Sprintf("%d@t%d:%s", e.Index, e.Term, what)
}

func itEntries(ents []raft.Entry) string {
	s := make([]string, len(ents))
	for i, e := range ents {
		s[i] = itEntry(e)
	}
	return strings.Join(s, " ")
}

func itMsgText(m raft.Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s->%s %s t%d", m.From, m.To, m.Type, m.Term)
	switch m.Type {
	case raft.MsgVote, raft.MsgPreVote:
		fmt.Fprintf(&b, " last=%d@t%d", m.Index, m.LogTerm)
		if m.Transfer {
			b.WriteString(" transfer")
		}
	case raft.MsgVoteResp, raft.MsgPreVoteResp:
		if m.Reject {
			b.WriteString(" rejected")
			if m.Leader != "" {
				fmt.Fprintf(&b, " (leader %s)", m.Leader)
			}
		} else {
			b.WriteString(" granted")
		}
	case raft.MsgApp:
		fmt.Fprintf(&b, " prev=%d@t%d commit=%d", m.Index, m.LogTerm, m.Commit)
		if len(m.Entries) > 0 {
			fmt.Fprintf(&b, " [%s]", itEntries(m.Entries))
		}
	case raft.MsgAppResp:
		if m.Reject {
			fmt.Fprintf(&b, " rejected prev=%d hint=%d@t%d", m.Index, m.Hint, m.HintTerm)
		} else {
			fmt.Fprintf(&b, " index=%d", m.Index)
		}
	case raft.MsgHeartbeat:
		fmt.Fprintf(&b, " commit=%d seq=%d", m.Commit, m.Context)
	case raft.MsgHeartbeatResp:
		fmt.Fprintf(&b, " seq=%d", m.Context)
	case raft.MsgSnap:
		if s := m.Snapshot; s != nil {
			fmt.Fprintf(&b, " snapshot=%d@t%d conf%s", s.Index, s.Term, s.Configuration)
		}
	case raft.MsgReadIndex:
		// Context numbers the follower's batch of reads from a random
		// start; it is left out so that the output does not depend on it.
		if m.Lease {
			b.WriteString(" lease")
		}
	case raft.MsgReadIndexResp:
		if m.Reject {
			b.WriteString(" rejected")
		} else {
			fmt.Fprintf(&b, " index=%d", m.Index)
		}
	}
	return b.String()
}

func itHardState(hs raft.HardState) string {
	vote := string(hs.Vote)
	if vote == "" {
		vote = "-"
	}
	return fmt.Sprintf("term=%d vote=%s commit=%d", hs.Term, vote, hs.Commit)
}

func itReadState(rs raft.ReadState) string {
	if rs.Err != nil {
		return fmt.Sprintf("read %d failed: %v", rs.ID, rs.Err)
	}
	return fmt.Sprintf("read %d ok at index %d", rs.ID, rs.Index)
}

// itSortByDestination orders messages by destination, keeping each
// destination's messages in the order the core produced them.
func itSortByDestination(msgs []raft.Message) {
	slices.SortStableFunc(msgs, func(a, b raft.Message) int { return strings.Compare(string(a.To), string(b.To)) })
}
