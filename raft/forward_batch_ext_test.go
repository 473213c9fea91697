package raft_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// Many proposals forwarded at once from one follower, in both modes,
// with Validate and Apply rejections among them, travel in batches and
// each comes back with its own typed outcome.
func TestForwardConcurrentBatches(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	f := c.followerOf(lead)
	c.mustPut("cas", "x")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 400
	type outcome struct {
		res raft.Result[string, *kvError]
		err error
	}
	outs := make([]outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cmd kvCmd
			mode := raft.Applied
			switch i % 4 {
			case 0, 1:
				cmd = kvCmd{Op: "put", Key: fmt.Sprint("k", i), Val: fmt.Sprint(i)}
			case 2:
				cmd = kvCmd{Op: "invalid", Key: fmt.Sprint("z", i)} // Validate refuses
			case 3:
				cmd = kvCmd{Op: "cas", Key: "cas", Old: "wrong", Val: "y"} // Apply refuses
			}
			if i%8 == 1 {
				mode = raft.Committed
			}
			res, err := c.nodes[f].Propose(ctx, cmd, mode).Wait(ctx)
			outs[i] = outcome{res, err}
		}()
	}
	wg.Wait()
	for i, o := range outs {
		if o.err != nil {
			t.Fatalf("proposal %d: %v", i, o.err)
		}
		r := o.res
		switch {
		case i%8 == 1: // put, Committed
			if r.Index == 0 || r.Rejected() || r.Value != "" {
				t.Fatalf("committed put %d: %+v", i, r)
			}
		case i%4 == 0 || i%4 == 1:
			if r.Index == 0 || r.Rejected() || r.Value != fmt.Sprint(i) {
				t.Fatalf("put %d: %+v", i, r)
			}
		case i%4 == 2:
			if r.Index != 0 || r.Err == nil || r.Err.Code != "invalid" || r.Err.Key != fmt.Sprint("z", i) {
				t.Fatalf("invalid %d: %+v (err %+v)", i, r, r.Err)
			}
		case i%4 == 3:
			if r.Index == 0 || r.Err == nil || r.Err.Code != "conflict" || r.Value != "x" {
				t.Fatalf("cas %d: %+v (err %+v)", i, r, r.Err)
			}
		}
	}
	fm := c.nodes[f].Metrics()
	fwd, _ := metric(fm, "proposals_forwarded_total", "")
	msgs, _ := metric(fm, "messages_sent_total", "Propose")
	served, _ := metric(c.nodes[lead].Metrics(), "forwarded_served_total", "")
	if fwd.Value != n || served.Value != n {
		t.Fatalf("forwarded %v, served %v, want %d each", fwd.Value, served.Value, n)
	}
	if msgs.Value < 1 || msgs.Value > n {
		t.Fatalf("%v MsgPropose for %d forwards", msgs.Value, n)
	}
	t.Logf("%d forwards in %v MsgPropose", n, msgs.Value)
}

// A member's batched MsgPropose with malformed entries among valid ones:
// the malformed ones are refused, entries without an ID are ignored, and
// exactly the valid ones are appended and answered.
func TestForwardHostileBatch(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	seat, tr, evil := c.rogueSeat(lead)
	c.mustPut("k", "v")
	last := c.nodes[lead].Status().LastIndex
	put := func(k string) []byte { return mustEncode(t, kvCmd{Op: "put", Key: k, Val: "1"}) }
	batch := raft.Message{Type: raft.MsgPropose, From: seat, To: lead, Entries: []raft.Entry{
		{Index: 21, Type: raft.EntryCommand, Data: put("b1")},
		{Index: 22, Type: raft.EntryCommand, Data: []byte{0xc1}}, // does not decode
		{Index: 0, Type: raft.EntryCommand, Data: put("noid")},   // no ID: ignored
		{Index: 23, Type: raft.EntryConfig, Data: []byte{1}},     // not a command
		{Index: 24, Type: raft.EntryCommand, Data: put("b2")},
	}}
	tr.Send(raft.Peer{ID: lead, Addr: string(lead)}, []raft.Message{batch})
	waitFor(t, "the two valid entries to be applied on the leader", 5*time.Second, func() bool {
		_, ok1 := c.sms[lead].get("b1")
		_, ok2 := c.sms[lead].get("b2")
		return ok1 && ok2
	})
	// Four answers (in one or more messages), two refusals and two
	// entries appended; none for the entry without an ID. A batched
	// answer carries each entry's index in Entry.Index (0 if refused).
	refused, accepted := 0, 0
	waitFor(t, "four answers to the batch", 5*time.Second, func() bool {
		for {
			select {
			case m := <-evil.got:
				switch {
				case m.Type != raft.MsgProposeResp:
				case m.Context != 0 && m.Reject:
					refused++
				case m.Context != 0:
					accepted++
				default:
					for _, e := range m.Entries {
						if e.Index == 0 {
							refused++
						} else {
							accepted++
						}
					}
				}
			default:
				return refused+accepted >= 4
			}
		}
	})
	if refused != 2 || accepted != 2 {
		t.Fatalf("%d refusals and %d acceptances, want 2 and 2", refused, accepted)
	}
	if got := c.nodes[lead].Status().LastIndex; got != last+2 {
		t.Fatalf("last index %d -> %d: want exactly the two valid entries", last, got)
	}
	if _, ok := c.sms[lead].get("noid"); ok {
		t.Fatal("an entry without a forward ID was proposed")
	}
}
