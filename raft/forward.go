package raft

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Forwarding proposals from followers to the leader (MsgPropose and
// MsgProposeResp). A follower or learner that is asked to propose while it
// knows a leader sends the encoded command to it; the leader proposes it
// like any other (validated, appended, answered in the asked mode) and
// sends back the typed outcome, encoded with the node's codec, which the
// follower's future resolves with. The messages travel through the
// Transport but never reach the core. Errors keep their meaning across the
// hop: a command the leader refused before appending fails as it would
// have there (not indeterminate); one whose outcome is unknown (the hop
// failed after sending, the leader lost leadership, no answer within
// ForwardTimeout) fails with ErrIndeterminate.

// ErrForwarding: a forwarded proposal could not be decoded or answered;
// the error says why.
var ErrForwarding = errors.New("raft: forwarded proposal")

// Error codes of a rejected MsgProposeResp.
const (
	fwdNotLeader uint64 = iota + 1
	fwdIndeterminate
	fwdDropped
	fwdTooMany
	fwdShutdown
	fwdTransfer
	fwdInvalid
	fwdSessionExpired
	fwdSessionSeqOld
	fwdNotConfirmed
	fwdOther
)

// fwdCode classifies an infrastructure error for the wire.
func fwdCode(err error) uint64 {
	switch {
	case errors.Is(err, ErrIndeterminate):
		return fwdIndeterminate
	case errors.Is(err, ErrNotLeader):
		return fwdNotLeader
	case errors.Is(err, ErrProposalDropped):
		return fwdDropped
	case errors.Is(err, ErrTooManyProposals):
		return fwdTooMany
	case errors.Is(err, ErrShutdown):
		return fwdShutdown
	case errors.Is(err, ErrTransferInProgress):
		return fwdTransfer
	case errors.Is(err, ErrEncode), errors.Is(err, ErrEntryTooLarge), errors.Is(err, ErrInvalidArgument):
		return fwdInvalid
	case errors.Is(err, ErrNotConfirmed):
		return fwdNotConfirmed
	case errors.Is(err, ErrSessionExpired):
		return fwdSessionExpired
	case errors.Is(err, ErrSessionSeqOld):
		return fwdSessionSeqOld
	}
	return fwdOther
}

// fwdError turns a rejected MsgProposeResp back into an error matching what
// the leader's error matched.
func fwdError(m Message) error {
	text := ""
	if len(m.Entries) > 0 {
		text = string(m.Entries[0].Data)
	}
	// answered wraps sentinel with the leader's text, without repeating
	// the sentinel's own words when the text starts with them.
	answered := func(sentinel error) error {
		t := strings.TrimPrefix(strings.TrimPrefix(text, sentinel.Error()), ": ")
		return fmt.Errorf("%w: the leader (%s) answered: %s", sentinel, m.From, t)
	}
	switch m.Hint {
	case fwdNotLeader:
		return &NotLeaderError{LeaderID: m.Leader}
	case fwdIndeterminate:
		return indeterminate(fmt.Errorf("%w: the leader (%s) answered: %s", ErrLeadershipLost, m.From, text))
	case fwdDropped:
		return answered(ErrProposalDropped)
	case fwdTooMany:
		return fmt.Errorf("%w at the leader (%s)", ErrTooManyProposals, m.From)
	case fwdShutdown:
		return indeterminate(fmt.Errorf("%w: the leader (%s) is shutting down", ErrShutdown, m.From))
	case fwdTransfer:
		return ErrTransferInProgress
	case fwdInvalid:
		return fmt.Errorf("%w: the leader (%s) refused it: %s", ErrInvalidArgument, m.From, text)
	case fwdNotConfirmed:
		return answered(ErrNotConfirmed)
	case fwdSessionExpired:
		return answered(ErrSessionExpired)
	case fwdSessionSeqOld:
		return answered(ErrSessionSeqOld)
	}
	return indeterminate(fmt.Errorf("%w: the leader (%s) answered: %s", ErrForwarding, m.From, text))
}

// forwardHooks is what the driver's handler needs from the typed layer.
type forwardHooks interface {
	// handlePropose is the leader receiving a forwarded proposal.
	handlePropose(m Message)
	// handleProposeResp is the follower receiving the leader's answer.
	handleProposeResp(m Message)
}

// forwarded tracks a follower's proposals waiting for the leader's answer.
type forwarded struct {
	mu      sync.Mutex
	seq     uint64
	pending map[uint64]*fwdWait
	// closed is set once the node stopped: nothing more is forwarded.
	closed bool
}

type fwdWait struct {
	leader   NodeID
	deadline time.Time
	// done resolves the future with the answer, or fails it.
	done func(m *Message, err error)
}

// add registers a forward to leader and returns its Context. It fails
// when max are already waiting (ErrTooManyProposals) or the node stopped
// (ErrShutdown).
func (f *forwarded) add(leader NodeID, timeout time.Duration, max int, done func(*Message, error)) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, ErrShutdown
	}
	if len(f.pending) >= max {
		return 0, fmt.Errorf("%w: %d proposals are already forwarded and waiting (Config.MaxForwarded)", ErrTooManyProposals, max)
	}
	if f.pending == nil {
		f.pending = map[uint64]*fwdWait{}
		// Numbers start at random: an answer meant for an earlier
		// incarnation of this node (before a restart) must not match a
		// new forward.
		f.seq = rand.Uint64() >> 1
	}
	f.seq++
	f.pending[f.seq] = &fwdWait{leader: leader, deadline: time.Now().Add(timeout), done: done}
	return f.seq, nil
}

// take removes and returns the forward id answered by from.
func (f *forwarded) take(id uint64, from NodeID) *fwdWait {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.pending[id]
	if w == nil || w.leader != from {
		return nil
	}
	delete(f.pending, id)
	return w
}

// expire fails the forwards whose answer did not come in time, and those
// sent to a node that is no longer the leader (lead), as indeterminate:
// the leader may have proposed them. stopping fails every forward and
// refuses later ones (add returns ErrShutdown).
func (f *forwarded) expire(now time.Time, lead NodeID, stopping bool) {
	f.mu.Lock()
	if stopping {
		f.closed = true
	}
	var gone []*fwdWait
	if len(f.pending) == 0 {
		f.mu.Unlock()
		return
	}
	for id, w := range f.pending {
		// A leader unknown for a moment keeps the forwards waiting: the
		// old leader may still answer.
		if stopping || now.After(w.deadline) || (lead != "" && w.leader != lead) {
			gone = append(gone, w)
			delete(f.pending, id)
		}
	}
	f.mu.Unlock()
	for _, w := range gone {
		var err error
		switch {
		case stopping:
			err = indeterminate(ErrShutdown)
		case w.leader != lead:
			err = indeterminate(fmt.Errorf("%w: forwarded to %s, which is no longer the leader", ErrLeadershipLost, w.leader))
		default:
			err = indeterminate(fmt.Errorf("%w: no answer from the leader (%s) in time", ErrForwarding, w.leader))
		}
		w.done(nil, err)
	}
}
