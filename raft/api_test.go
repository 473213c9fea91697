package raft_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// A validation rejection arrives as the application's concrete E with index
// 0, and the command never enters any node's log.
func TestValidationRejectionIsTypedAndNeverLogged(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	ctx := context.Background()
	res, err := c.nodes[lead].Propose(ctx, kvCmd{Op: "invalid", Key: "nope"}).Wait(ctx)
	if err != nil {
		t.Fatalf("infrastructure error %v, want a typed rejection", err)
	}
	var e *kvError = res.Err // statically typed: no assertion needed
	if e == nil || e.Code != "invalid" || e.Key != "nope" {
		t.Fatalf("rejection %+v, want invalid/nope", e)
	}
	if res.Index != 0 {
		t.Fatalf("rejected command got index %d", res.Index)
	}
	idx := c.mustPut("after", "1")
	c.waitApplied(idx)
	for _, id := range c.ids {
		for _, line := range c.sms[id].log() {
			if strings.Contains(line, "invalid") {
				t.Fatalf("%s applied the rejected command: %s", id, line)
			}
		}
	}
}

// An Apply rejection arrives as E together with its log index.
func TestApplyRejectionCarriesIndex(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	c.mustPut("k", "v1")
	ctx := context.Background()
	res, err := c.nodes[lead].Propose(ctx, kvCmd{Op: "cas", Key: "k", Old: "wrong", Val: "v2"}).Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Err == nil || res.Err.Code != "conflict" || res.Index == 0 || res.Value != "v1" {
		t.Fatalf("cas result %+v err %v, want conflict with index and current value", res, res.Err)
	}
	v, appErr, err := c.nodes[lead].Apply(ctx, kvCmd{Op: "cas", Key: "k", Old: "v1", Val: "v2"})
	if err != nil || appErr != nil || v != "v2" {
		t.Fatalf("cas = %q %v %v, want v2", v, appErr, err)
	}
}

func TestResponseModes(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	ctx := context.Background()
	fc := c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: "m", Val: "c"}, raft.Committed)
	rc, err := fc.Wait(ctx)
	if err != nil || rc.Index == 0 || rc.Term == 0 || rc.Value != "" {
		t.Fatalf("committed-mode result %+v %v: want index and term, no value", rc, err)
	}
	if i, tm := fc.Index(); i != rc.Index || tm != rc.Term {
		t.Fatalf("Index() = %d/%d, result %d/%d", i, tm, rc.Index, rc.Term)
	}
	if s := c.nodes[lead].Status(); s.Commit < rc.Index {
		t.Fatalf("committed-mode resolved before commit (%d < %d)", s.Commit, rc.Index)
	}
	fa := c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: "m", Val: "a"})
	ra, err := fa.Wait(ctx)
	if err != nil || ra.Value != "a" || ra.Index <= rc.Index {
		t.Fatalf("applied-mode result %+v %v", ra, err)
	}
	if s := c.nodes[lead].Status(); s.Applied < ra.Index {
		t.Fatalf("applied-mode resolved before apply (%d < %d)", s.Applied, ra.Index)
	}
}

// With forwarding off for the call, a follower refuses and names the
// leader.
func TestProposeToFollowerNamesLeader(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	var follower raft.NodeID
	for _, id := range c.ids {
		if id != lead {
			follower = id
		}
	}
	waitFor(t, "follower to know the leader", 5*time.Second, func() bool {
		return c.nodes[follower].Status().Leader == lead
	})
	ctx := context.Background()
	_, err := c.nodes[follower].Propose(ctx, kvCmd{Op: "put", Key: "k", Val: "v"}, raft.NoForward).Wait(ctx)
	var nl *raft.NotLeaderError
	if !errors.As(err, &nl) || !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("error %v, want *NotLeaderError", err)
	}
	if nl.LeaderID != lead || nl.LeaderAddr != string(lead) {
		t.Fatalf("not-leader error names %s at %q, want %s", nl.LeaderID, nl.LeaderAddr, lead)
	}
}

func TestApplyPanicStopsNode(t *testing.T) {
	c := newCluster(t, 1)
	lead := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.nodes[lead].Propose(ctx, kvCmd{Op: "panic", Key: "here"}).Wait(ctx)
	if err == nil {
		t.Fatal("proposal that panicked in Apply succeeded")
	}
	if !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("proposal error %v does not say Apply panicked", err)
	}
	select {
	case <-c.nodes[lead].Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("node did not stop after a panic in Apply (propose error: %v, status %+v)", err, c.nodes[lead].Status())
	}
	if err := c.nodes[lead].Err(); !errors.Is(err, raft.ErrApplyPanic) || !strings.Contains(err.Error(), "boom at here") {
		t.Fatalf("Err() = %v, want ErrApplyPanic naming the panic", err)
	}
	_, err = c.nodes[lead].Propose(ctx, kvCmd{Op: "put"}).Wait(ctx)
	if !errors.Is(err, raft.ErrShutdown) {
		t.Fatalf("propose after stop: %v, want ErrShutdown", err)
	}
}

func TestBootstrapIdempotentAndMismatch(t *testing.T) {
	c := newCluster(t, 3)
	c.leader()
	ctx := context.Background()
	same := []raft.Server{{ID: "n3", Addr: "n3"}, {ID: "n1", Addr: "n1"}, {ID: "n2", Addr: "n2"}}
	if err := c.nodes["n1"].Bootstrap(ctx, same); err != nil {
		t.Fatalf("repeat bootstrap with the same servers: %v", err)
	}
	other := []raft.Server{{ID: "n1", Addr: "n1"}, {ID: "n9", Addr: "n9"}}
	if err := c.nodes["n1"].Bootstrap(ctx, other); !errors.Is(err, raft.ErrBootstrapped) {
		t.Fatalf("bootstrap with other servers: %v, want ErrBootstrapped", err)
	}
	if err := c.nodes["n1"].Bootstrap(ctx, []raft.Server{{ID: "n2", Addr: "n2"}}); !errors.Is(err, raft.ErrInvalidConfig) {
		t.Fatalf("bootstrap without self: %v, want ErrInvalidConfig", err)
	}
}

func TestStatusReportsMembership(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	s := c.nodes[lead].Status()
	if s.ID != lead || s.State != raft.Leader || s.Term == 0 || s.LastIndex < 2 || s.Joint() {
		t.Fatalf("status %+v", s)
	}
	if len(s.Configuration.Servers) != 3 {
		t.Fatalf("configuration %v, want 3 servers", s.Configuration)
	}
	if role, ok := s.Role("n2"); !ok || role != raft.Voter {
		t.Fatalf("role of n2 = %v %v", role, ok)
	}
}

func TestConfigValidation(t *testing.T) {
	if err := (raft.Config{}).Validate(); !errors.Is(err, raft.ErrInvalidConfig) {
		t.Fatalf("empty config: %v", err)
	}
	if err := (raft.Config{ID: "a", ElectionTicks: 2, HeartbeatTicks: 2}).Validate(); !errors.Is(err, raft.ErrInvalidConfig) {
		t.Fatalf("heartbeat >= election: %v", err)
	}
}

func TestProposeTooLarge(t *testing.T) {
	c := newCluster(t, 1, func(cfg *raft.Config) { cfg.MaxEntryBytes = 1024 })
	lead := c.leader()
	ctx := context.Background()
	_, err := c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: "k", Val: strings.Repeat("x", 2000)}).Wait(ctx)
	if !errors.Is(err, raft.ErrEntryTooLarge) {
		t.Fatalf("oversized command: %v, want ErrEntryTooLarge", err)
	}
}

// Propose takes at most one mode; a context that has already ended means
// the command was never proposed (not indeterminate).
func TestProposeArgumentsAndCancelledContext(t *testing.T) {
	c := newCluster(t, 1)
	lead := c.leader()
	ctx := context.Background()
	_, err := c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: "k"}, raft.Committed, raft.Applied).Wait(ctx)
	if !errors.Is(err, raft.ErrInvalidArgument) {
		t.Fatalf("two modes: %v, want ErrInvalidArgument", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err = c.nodes[lead].Apply(done, kvCmd{Op: "put", Key: "k", Val: "v"})
	if !errors.Is(err, context.Canceled) || errors.Is(err, raft.ErrIndeterminate) || !strings.Contains(err.Error(), "not proposed") {
		t.Fatalf("Apply with a cancelled context: %v, want a not-proposed context error", err)
	}
	if v, ok := c.sms[lead].get("k"); ok {
		t.Fatalf("the command was applied (%q)", v)
	}
}
