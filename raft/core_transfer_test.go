package raft

import "testing"

// A TimeoutNow that is lost, or dropped by a target that has not yet
// heard from the leader in this term (it just restarted), is sent again
// when the target answers a heartbeat: the transfer completes instead of
// timing out.
func TestTransferResendsLostTimeoutNow(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.elect("n1")
	n1 := tc.cores["n1"]
	if _, err := n1.transferLeadership("n3"); err != nil {
		t.Fatal(err)
	}
	// The first TimeoutNow is lost.
	tc.process()
	kept := tc.queue[:0]
	dropped := 0
	for _, m := range tc.queue {
		if m.Type == MsgTimeoutNow {
			dropped++
			continue
		}
		kept = append(kept, m)
	}
	tc.queue = kept
	if dropped != 1 {
		t.Fatalf("%d TimeoutNow sent at the start of the transfer, want 1", dropped)
	}
	tc.deliver()
	if n1.state != Leader {
		t.Fatalf("n1 %s before the retry", n1.state)
	}
	tc.tickAll(n1.cfg.HeartbeatTicks)
	if lead := tc.leader(); lead != "n3" {
		t.Fatalf("leader %q after a heartbeat round, want n3 (TimeoutNow sent again)", lead)
	}
}
