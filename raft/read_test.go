package raft_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// Cluster tests of the read path (thesis §6.4): real goroutines over
// transport/inmem.

func readCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// get reads key on id's state machine with mode, through Query.
func (c *cluster) get(ctx context.Context, id raft.NodeID, mode raft.ReadMode, key string) (string, error) {
	sm := c.sms[id]
	return raft.Query(ctx, c.nodes[id], mode, func() string { v, _ := sm.get(key); return v })
}

// §6.4: a linearizable read on any node (leader, follower) sees every write
// acknowledged before it was issued, without a log entry.
func TestReadSeesAcknowledgedWritesOnEveryNode(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	for _, mode := range []raft.ReadMode{raft.ReadLinearizable, raft.ReadLease} {
		for i := 0; i < 5; i++ {
			val := fmt.Sprintf("%s-%d", mode, i)
			c.mustPut("k", val)
			last := c.nodes[lead].Status().LastIndex
			for _, id := range c.ids {
				got, err := c.get(readCtx(t), id, mode, "k")
				if err != nil {
					t.Fatalf("%s read on %s: %v", mode, id, err)
				}
				if got != val {
					t.Fatalf("%s read on %s = %q after write %q was acknowledged", mode, id, got, val)
				}
			}
			if got := c.nodes[lead].Status().LastIndex; got != last {
				t.Fatalf("reads appended to the log: last index %d -> %d", last, got)
			}
		}
	}
}

// ReadIndex, WaitApplied and Barrier: the primitives advanced users build on.
func TestReadIndexWaitAppliedBarrier(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	idx := c.mustPut("a", "1")
	var follower raft.NodeID
	for _, id := range c.ids {
		if id != lead {
			follower = id
			break
		}
	}
	ri, err := c.nodes[follower].ReadIndex(readCtx(t), raft.ReadLinearizable)
	if err != nil {
		t.Fatal(err)
	}
	if ri < idx {
		t.Fatalf("follower's read index %d is below the acknowledged write at %d", ri, idx)
	}
	if err := c.nodes[follower].WaitApplied(readCtx(t), ri); err != nil {
		t.Fatal(err)
	}
	if got := c.nodes[follower].Status().Applied; got < ri {
		t.Fatalf("WaitApplied returned with applied %d < %d", got, ri)
	}
	idx = c.mustPut("a", "2")
	if err := c.nodes[follower].Barrier(readCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got := c.nodes[follower].Status().Applied; got < idx {
		t.Fatalf("Barrier returned with applied %d before the acknowledged write %d", got, idx)
	}
	// A wait that cannot finish ends with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.nodes[follower].WaitApplied(ctx, 1<<40); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied beyond the log: %v, want context.DeadlineExceeded", err)
	}
}

// Stale reads answer at once from the local state, even with no leader.
func TestStaleReadNeedsNoLeader(t *testing.T) {
	c := newCluster(t, 3)
	c.leader()
	c.mustPut("k", "v")
	c.waitApplied(c.nodes[c.leader()].Status().Commit)
	for _, id := range c.ids {
		c.net.Isolate(id)
	}
	for _, id := range c.ids {
		got, err := c.get(readCtx(t), id, raft.ReadStale, "k")
		if err != nil || got != "v" {
			t.Fatalf("stale read on %s = %q, %v", id, got, err)
		}
	}
}

// A leader cut off from its followers cannot confirm a read: the read
// fails (ErrNotConfirmed once it steps down, or the caller's deadline),
// it never answers from the isolated leader's state.
func TestIsolatedLeaderDoesNotServeReads(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	c.mustPut("k", "old")
	c.net.Isolate(lead)
	for _, mode := range []raft.ReadMode{raft.ReadLinearizable, raft.ReadLease} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := c.get(ctx, lead, mode, "k")
		cancel()
		if err == nil {
			t.Fatalf("%s read on an isolated leader succeeded", mode)
		}
		if !errors.Is(err, raft.ErrNotConfirmed) && !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s read on an isolated leader: %v", mode, err)
		}
	}
}

// Many concurrent reads share heartbeat rounds and all see the write that
// preceded them.
func TestConcurrentReadsBatch(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	c.mustPut("k", "v")
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := c.get(readCtx(t), lead, raft.ReadLinearizable, "k")
			if err == nil && got != "v" {
				err = fmt.Errorf("read %q, want v", got)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// §6.4 with Validate: a rejection is a read of the state. On a leader that
// was cut off while another leader committed a write, a command its own
// stale state would reject gets an infrastructure error or is judged on the
// new state — never the stale E.
func TestValidateRejectionIsLinearizable(t *testing.T) {
	// Without check-quorum the cut-off leader keeps believing it leads:
	// only the confirmation round stands between it and a stale answer.
	c := newCluster(t, 3, func(cfg *raft.Config) { cfg.DisableCheckQuorum = true })
	old := c.leader()
	c.mustPut("flag", "off")
	c.waitApplied(c.nodes[old].Status().Commit)
	c.net.Isolate(old)
	var others []raft.NodeID
	for _, id := range c.ids {
		if id != old {
			others = append(others, id)
		}
	}
	lead := c.leader(others...)
	// The new leader deletes the reason for the rejection: "invalid" is
	// rejected by Validate only when the key's value is not "on".
	for _, sm := range c.sms {
		sm.rejectUnless("flag", "on")
	}
	if res, err := c.put(lead, "flag", "on"); err != nil || res.Rejected() {
		t.Fatalf("put on new leader: %v %v", err, res.Err)
	}
	ctx := readCtx(t)
	f := c.nodes[old].Propose(ctx, kvCmd{Op: "put", Key: "guarded", Val: "x"})
	// The old leader's state still says "off": its Validate rejects. The
	// answer must wait for a confirmation that cannot come while it is cut
	// off; once it hears the new term it fails the command.
	select {
	case <-f.Done():
		res, err := f.Wait(ctx)
		t.Fatalf("isolated leader answered at once: %+v %v", res, err)
	case <-time.After(100 * time.Millisecond):
	}
	c.net.Heal()
	res, err := f.Wait(ctx)
	if err == nil && res.Rejected() {
		t.Fatalf("stale leader answered a rejection %v from its stale state", res.Err)
	}
	if err == nil {
		t.Fatalf("stale leader accepted a write while isolated: %+v", res)
	}
	if errors.Is(err, raft.ErrIndeterminate) {
		t.Fatalf("a command that never entered the log is reported indeterminate: %v", err)
	}
	// On the new leader the command is judged on the current state.
	res, err = c.nodes[lead].Propose(ctx, kvCmd{Op: "put", Key: "guarded", Val: "x"}).Wait(ctx)
	if err != nil || res.Rejected() {
		t.Fatalf("new leader: %v %v", err, res.Err)
	}
}

// A rejection on a healthy leader is still answered with the typed E, after
// the confirmation round.
func TestValidateRejectionAnswered(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	ctx := readCtx(t)
	res, err := c.nodes[lead].Propose(ctx, kvCmd{Op: "invalid", Key: "k"}).Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Err == nil || res.Err.Code != "invalid" || res.Index != 0 {
		t.Fatalf("result %+v, want the typed rejection with index 0", res)
	}
}

// A panicking read function fails that read, not the node.
func TestReadPanicIsAnError(t *testing.T) {
	c := newCluster(t, 1)
	lead := c.leader()
	err := c.nodes[lead].Read(readCtx(t), raft.ReadLinearizable, func() error { panic("read boom") })
	if !errors.Is(err, raft.ErrReadPanic) {
		t.Fatalf("read panic: %v", err)
	}
	if err := c.nodes[lead].Err(); err != nil {
		t.Fatalf("node stopped: %v", err)
	}
	c.mustPut("k", "v")
}

// ReadLease needs check-quorum.
func TestLeaseReadModeNeedsCheckQuorum(t *testing.T) {
	cfg := testConfig("n1")
	cfg.ReadMode, cfg.DisableCheckQuorum = raft.ReadLease, true
	if err := cfg.Validate(); !errors.Is(err, raft.ErrInvalidConfig) {
		t.Fatalf("ReadLease without check-quorum: %v", err)
	}
}
