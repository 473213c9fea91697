// Package quorum holds the majority arithmetic of Raft: which index a set of
// voters has committed and whether an election is won, for a simple majority
// and for the joint majorities of joint consensus (§6). It is pure: no I/O, no
// state, safe for concurrent use.
package quorum

import (
	"math"
	"slices"
)

// VoteResult is the outcome of counting votes.
type VoteResult uint8

const (
	// Pending: neither a majority of grants nor of rejections yet.
	Pending VoteResult = iota
	// Lost: a majority rejected; the election cannot be won.
	Lost
	// Won: a majority granted.
	Won
)

// String returns the result's name.
func (r VoteResult) String() string {
	switch r {
	case Pending:
		return "pending"
	case Lost:
		return "lost"
	case Won:
		return "won"
	}
	return "VoteResult(?)"
}

// Committed returns the largest index that a majority of voters has
// acknowledged, given each voter's acknowledged index. An empty voter set
// imposes no constraint and returns math.MaxUint64, so that it is neutral in
// JointCommitted.
func Committed[ID comparable](voters []ID, acked func(ID) uint64) uint64 {
	n := len(voters)
	if n == 0 {
		return math.MaxUint64
	}
	var stack [16]uint64
	idx := stack[:0]
	if n > len(stack) {
		idx = make([]uint64, 0, n)
	}
	for _, v := range voters {
		idx = append(idx, acked(v))
	}
	slices.Sort(idx)
	// With idx ascending, idx[n-q] is acknowledged by the q voters from n-q
	// to n-1, where q = n/2+1 is the majority size.
	return idx[n-(n/2+1)]
}

// JointCommitted returns the largest index acknowledged by a majority of
// incoming and a majority of outgoing voters. With no outgoing voters it is
// Committed(incoming).
func JointCommitted[ID comparable](incoming, outgoing []ID, acked func(ID) uint64) uint64 {
	return min(Committed(incoming, acked), Committed(outgoing, acked))
}

// Vote counts votes: votes maps a voter to true (granted) or false (refused);
// voters absent from votes have not answered. An empty voter set wins.
func Vote[ID comparable](voters []ID, votes map[ID]bool) VoteResult {
	if len(voters) == 0 {
		return Won
	}
	granted, rejected := 0, 0
	for _, v := range voters {
		g, ok := votes[v]
		switch {
		case !ok:
		case g:
			granted++
		default:
			rejected++
		}
	}
	q := len(voters)/2 + 1
	if granted >= q {
		return Won
	}
	if rejected >= q || len(voters)-rejected < q {
		return Lost
	}
	return Pending
}

// JointVote counts votes under joint consensus: the election is won only when
// both majorities are won, and lost as soon as either is lost.
func JointVote[ID comparable](incoming, outgoing []ID, votes map[ID]bool) VoteResult {
	a, b := Vote(incoming, votes), Vote(outgoing, votes)
	switch {
	case a == Won && b == Won:
		return Won
	case a == Lost || b == Lost:
		return Lost
	}
	return Pending
}

// Active reports whether a majority of voters (of both halves when joint) is
// active, e.g. has been heard from within an election timeout (check-quorum).
func Active[ID comparable](incoming, outgoing []ID, active func(ID) bool) bool {
	ok := func(vs []ID) bool {
		if len(vs) == 0 {
			return true
		}
		n := 0
		for _, v := range vs {
			if active(v) {
				n++
			}
		}
		return n >= len(vs)/2+1
	}
	return ok(incoming) && ok(outgoing)
}
