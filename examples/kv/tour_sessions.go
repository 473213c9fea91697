package main

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/typedraft/typedraft/raft"
)

// exactlyOnce is the tour's seventh step: over HTTP, a follower opens a
// session and takes a write with an Idempotency-Key (forwarding both to
// the leader), and the same request sent again to another node, as a
// client retries after losing an answer, gets the original answer
// without being applied again (the key's revision does not move).
func (tc *tourCluster) exactlyOnce(ctx context.Context, out io.Writer) error {
	leader, _, err := tc.waitLeader(ctx, "")
	if err != nil {
		return err
	}
	f := tc.followerOf(leader.id)
	if err := knowsLeader(ctx, f, leader.id); err != nil {
		return err
	}
	other := leader
	if n := tc.runningOtherThan(leader.id, f.id); n != nil {
		other = n
	}
	base := "http://" + f.httpAddr
	sess, err := tourCall(ctx, http.MethodPost, base+"/sessions", "", nil)
	id, _ := sess.body["session"].(float64)
	if err != nil || sess.status != http.StatusCreated || id < 1 {
		return fmt.Errorf("POST /sessions on %s: %d %v: %v", f.id, sess.status, sess.body, err)
	}
	key := map[string]string{IdempotencyKeyHeader: formatKey(raft.Seq{Session: raft.SessionID(id), N: 1})}
	put, err := tourCall(ctx, http.MethodPut, base+"/kv/visits", "2", key)
	if err != nil || put.status != http.StatusOK {
		return fmt.Errorf("PUT visits on %s with %v: %d %v: %v", f.id, key, put.status, put.body, err)
	}
	again, err := tourCall(ctx, http.MethodPut, "http://"+other.httpAddr+"/kv/visits", "2", key)
	if err != nil || again.status != http.StatusOK || again.body["revision"] != put.body["revision"] {
		return fmt.Errorf("PUT visits again on %s with %v: %d %v, want revision %v: %v", other.id, key, again.status, again.body, put.body["revision"], err)
	}
	res, err := raft.Query(ctx, leader.raft, raft.ReadLinearizable, func() Response { r, _ := leader.kv.Get("visits"); return r })
	if err != nil || float64(res.Revision) != put.body["revision"] {
		return fmt.Errorf("visits after the retry: %+v, want revision %v: %v", res, put.body["revision"], err)
	}
	fmt.Fprintf(out, "\n7. Writes on any node, exactly once: POST /sessions on follower %s -> %d session %d\n", f.id, sess.status, uint64(id))
	fmt.Fprintf(out, "   PUT /kv/visits=2 on %s, Idempotency-Key: %s -> %d revision %v (forwarded to the leader %s)\n",
		f.id, key[IdempotencyKeyHeader], put.status, put.body["revision"], leader.id)
	fmt.Fprintf(out, "   the same request on %s, as a retry after a lost answer -> %d revision %v: the original answer, applied once\n",
		other.id, again.status, again.body["revision"])
	return nil
}

// runningOtherThan returns a running node that is neither a nor b, if any.
func (tc *tourCluster) runningOtherThan(a, b raft.NodeID) *kvNode {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for _, p := range tc.peers {
		if n := tc.nodes[p.ID]; n != nil && p.ID != a && p.ID != b {
			return n
		}
	}
	return nil
}
