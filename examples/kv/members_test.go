package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// A node that is added but never receives the log (nothing listens at its
// raft address) stays a learner: the join answers 503 when its deadline
// ends instead of promoting it, which would leave the cluster one failure
// closer to losing its quorum. The same holds when the HTTP address given
// belongs to another node, which answers GET /status under its own ID.
func TestJoinDoesNotPromoteAnUnresponsiveNode(t *testing.T) {
	tc, leader := startTestCluster(t)
	api := NewAPI(leader.raft, leader.kv, nil) // nil: NewAPI documents it (once panicked in join)
	free := freeAddrs(t, 2)
	other := tc.followerOf(leader.id)
	for _, c := range []struct {
		id       raft.NodeID
		httpAddr string
	}{
		{"n9", free[1]},         // nothing listens
		{"n10", other.httpAddr}, // answers as another node
	} {
		body, _ := json.Marshal(joinRequest{ID: c.id, RaftAddr: free[0], HTTPAddr: c.httpAddr})
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/members", strings.NewReader(string(body)))
		rec := httptest.NewRecorder()
		api.Handler().ServeHTTP(rec, req) // returns once the handler is done
		cancel()
		var eb errorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
			t.Fatalf("join %s: body %q: %v", c.id, rec.Body.String(), err)
		}
		if rec.Code != http.StatusServiceUnavailable || eb.Error != "unavailable" {
			t.Fatalf("join %s: %d %+v, want 503 unavailable", c.id, rec.Code, eb)
		}
		role, ok := leader.raft.Status().Role(c.id)
		if !ok || role != raft.Learner {
			t.Fatalf("join %s: role %v (member %v), want learner; configuration %v", c.id, role, ok, leader.raft.Status().Configuration)
		}
		t.Logf("join %s: %d %s", c.id, rec.Code, eb.Message)
	}
}
