package rafttest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/typedraft/typedraft/raft"
)

// TestClusterTryLater pins which errors the membership fault tolerates:
// the "try later" ones only; anything else fails the run.
func TestClusterTryLater(t *testing.T) {
	c := &cluster[int, int, error]{}
	live, ended := context.Background(), func() context.Context {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx
	}()
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		act     uint64
		err     error
		stopped bool
		want    bool
	}{
		{"pending", live, actPromote, raft.ErrConfigChangePending, false, true},
		{"not caught up", live, actReplace, fmt.Errorf("%w: lag", raft.ErrNotCaughtUp), false, true},
		{"transfer in progress", live, actAddLearner, raft.ErrTransferInProgress, false, true},
		{"not leader", live, actRemoveVoter, &raft.NotLeaderError{LeaderID: "n2"}, false, true},
		{"indeterminate", live, actRemoveLeader, fmt.Errorf("%w (%w)", raft.ErrLeadershipLost, raft.ErrIndeterminate), false, true},
		{"deadline", live, actAddLearner, context.DeadlineExceeded, false, true},
		{"transfer timeout", live, actTransfer, raft.ErrTransferTimeout, false, true},
		{"transfer timeout on a change", live, actPromote, raft.ErrTransferTimeout, false, false},
		{"canceled at the end of the run", ended, actPromote, context.Canceled, false, true},
		{"canceled during the run", live, actPromote, context.Canceled, false, false},
		{"shutdown of a crashed node", live, actPromote, raft.ErrShutdown, true, true},
		{"shutdown of a running node", live, actPromote, raft.ErrShutdown, false, false},
		{"invalid", live, actAddLearner, fmt.Errorf("%w: n4 is already a member", raft.ErrInvalidConfig), false, false},
		{"dropped", live, actPromote, raft.ErrProposalDropped, false, false},
		{"other", live, actTransfer, errors.New("boom"), false, false},
	} {
		if got := c.tryLater(tc.ctx, tc.act, tc.err, tc.stopped); got != tc.want {
			t.Errorf("%s: tryLater(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestClusterSampleConfig shows the voter-bound check has teeth: a
// committed configuration outside the operator's bounds fails the run,
// while joint or uncommitted ones are not sampled.
func TestClusterSampleConfig(t *testing.T) {
	voters := func(n int) raft.Configuration {
		var cfg raft.Configuration
		for i := range n {
			cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.NodeID(fmt.Sprintf("n%d", i+1)), Suffrage: raft.Voter})
		}
		return cfg
	}
	for _, tc := range []struct {
		name     string
		st       raft.Status
		wantFail bool
	}{
		{"3 voters", raft.Status{ID: "n1", Configuration: voters(3), ConfigIndex: 5, Commit: 5}, false},
		{"5 voters", raft.Status{ID: "n1", Configuration: voters(5), ConfigIndex: 5, Commit: 9}, false},
		{"2 voters", raft.Status{ID: "n1", Configuration: voters(2), ConfigIndex: 5, Commit: 5}, true},
		{"6 voters", raft.Status{ID: "n1", Configuration: voters(6), ConfigIndex: 5, Commit: 5}, true},
		{"2 voters, uncommitted", raft.Status{ID: "n1", Configuration: voters(2), ConfigIndex: 6, Commit: 5}, false},
		{"2 voters, joint", raft.Status{ID: "n1", Configuration: raft.Configuration{Servers: voters(2).Servers, Old: voters(3).Servers},
			ConfigIndex: 5, Commit: 5}, false},
	} {
		c := &cluster[int, int, error]{minVoters: 3, maxVoters: 5}
		c.sampleConfig(tc.st)
		if got := c.fail != nil; got != tc.wantFail {
			t.Errorf("%s: failed = %v (%v), want %v", tc.name, got, c.fail, tc.wantFail)
		}
		if c.fail != nil && c.fail.Invariant != InvariantMembership {
			t.Errorf("%s: invariant %s, want %s", tc.name, c.fail.Invariant, InvariantMembership)
		}
	}
}
