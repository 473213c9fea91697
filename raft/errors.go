package raft

import (
	"errors"
	"fmt"
)

// Infrastructure errors. They are returned (possibly wrapped) by the node's
// methods and futures; test for them with errors.Is. Application rejections
// never appear here: they arrive as the application's own E in a Result.
var (
	// ErrIndeterminate marks an outcome that may or may not have happened:
	// the command may still be committed and applied (leadership lost after
	// append, shutdown or context expiry while waiting). A caller that must
	// know retries idempotently or reads the state.
	ErrIndeterminate = errors.New("raft: outcome indeterminate")
	// ErrNotLeader: the node is not the leader. The error is a
	// *NotLeaderError naming the leader when one is known.
	ErrNotLeader = errors.New("raft: not leader")
	// ErrLeadershipLost: the node stopped being leader before the command's
	// outcome was known. It is always paired with ErrIndeterminate.
	ErrLeadershipLost = errors.New("raft: leadership lost")
	// ErrShutdown: the node has shut down (or is shutting down).
	ErrShutdown = errors.New("raft: node shut down")
	// ErrProposalDropped: the command was definitely not committed, e.g. its
	// log entry was replaced by another leader's.
	ErrProposalDropped = errors.New("raft: proposal dropped")
	// ErrTransferInProgress: a leadership transfer is under way; the leader
	// accepts no proposals until it ends.
	ErrTransferInProgress = errors.New("raft: leadership transfer in progress")
	// ErrTransferTimeout: a leadership transfer did not complete in time.
	ErrTransferTimeout = errors.New("raft: leadership transfer timed out")
	// ErrBootstrapped: Bootstrap was called on a node whose storage already
	// holds a different cluster configuration or log.
	ErrBootstrapped = errors.New("raft: already bootstrapped with a different configuration")
	// ErrInvalidConfig: a Config or Configuration is invalid; the error says
	// which field and why.
	ErrInvalidConfig = errors.New("raft: invalid configuration")
	// ErrEncode: a command could not be encoded by the codec, or its
	// encoding does not decode back (it is then never proposed).
	ErrEncode = errors.New("raft: encode command")
	// ErrDecode: a committed command does not decode with the node's
	// codec; the node stops (Err says at which index and what to do).
	ErrDecode = errors.New("raft: decode committed command")
	// ErrTooManyProposals: the proposal queue is full; retry later.
	ErrTooManyProposals = errors.New("raft: too many pending proposals")
	// ErrNothingToSnapshot: nothing was applied since the last snapshot.
	ErrNothingToSnapshot = errors.New("raft: nothing to snapshot")
	// ErrConfigChangePending: a membership change is still in progress
	// (at most one uncommitted configuration entry exists). A change asked
	// of a leader that has not yet committed an entry of its own term waits
	// for that commit instead of returning this error.
	ErrConfigChangePending = errors.New("raft: membership change already in progress")
	// ErrNotCaughtUp: a new voter's log is too far behind the leader's.
	ErrNotCaughtUp = errors.New("raft: server has not caught up")
	// ErrEntryTooLarge: an encoded command exceeds Config.MaxEntryBytes.
	ErrEntryTooLarge = errors.New("raft: command too large")
	// ErrInvalidArgument: a call's arguments are invalid (the error says
	// which).
	ErrInvalidArgument = errors.New("raft: invalid argument")
	// ErrApplyPanic: the state machine panicked in Apply; the node stopped.
	ErrApplyPanic = errors.New("raft: state machine panicked")
)

// NotLeaderError is returned when a request that needs the leader reaches
// another node. LeaderID and LeaderAddr name the leader this node knows of
// (empty if none). Reason, when set, says why a proposal was not
// forwarded to that leader. It matches ErrNotLeader with errors.Is.
type NotLeaderError struct {
	LeaderID   NodeID
	LeaderAddr string
	Reason     string
}

// Error describes the error and the known leader.
func (e *NotLeaderError) Error() string {
	s := "raft: not leader (leader unknown)"
	if e.LeaderID != "" {
		s = fmt.Sprintf("raft: not leader (leader is %s at %s)", e.LeaderID, e.LeaderAddr)
	}
	if e.Reason != "" {
		s += "; " + e.Reason
	}
	return s
}

// Is reports whether target is ErrNotLeader.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// indeterminate marks err as ErrIndeterminate too.
func indeterminate(err error) error {
	if errors.Is(err, ErrIndeterminate) {
		return err
	}
	return fmt.Errorf("%w (%w)", err, ErrIndeterminate)
}
