package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/tcp"
)

// tourCluster is the tour's three in-process nodes.
//
// Concurrency: mu guards nodes and what the nodes' events said
// (tour_events.go); the tour's writer goroutine looks up the leader while
// the main goroutine stops and restarts nodes, and each node's observer
// goroutine records its events.
type tourCluster struct {
	dir    string
	peers  []Peer
	logger hclog.Logger
	mu     sync.Mutex
	nodes  map[raft.NodeID]*kvNode
	// started is when startAll began.
	started time.Time
	// elections are the nodes' elections, in the order their events came;
	// follows the leader each node's last event named; changed is closed
	// (and set to nil) at the next event.
	elections []election
	follows   map[raft.NodeID]raft.NodeID
	changed   chan struct{}
}

// runTour runs the three-node tour and then serves until ctx ends (or
// returns at once with tourOnly). It removes its directory on return.
func runTour(ctx context.Context, out io.Writer, logger hclog.Logger, tourOnly bool) error {
	dir, err := os.MkdirTemp("", "typedraft-kv-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	tc := &tourCluster{dir: dir, logger: logger, nodes: map[raft.NodeID]*kvNode{}}
	defer tc.stopAll()

	if err := tc.startAll(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "typedraft kv: 3 nodes in this process, loopback TCP, Pebble in %s\n", dir)
	for _, p := range tc.peers {
		fmt.Fprintf(out, "  %s  raft %-15s  http://%s\n", p.ID, p.RaftAddr, p.HTTPAddr)
	}
	tourCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := tc.tour(tourCtx, out); err != nil {
		return fmt.Errorf("tour: %w", err)
	}
	if tourOnly {
		return nil
	}
	p := tc.peers[0]
	fmt.Fprintf(out, "\nServing. Try (every node takes writes, forwarding them to the leader, and serves reads itself):\n")
	fmt.Fprintf(out, "  curl -X PUT --data-binary world http://%s/kv/greeting\n", tc.peers[1].HTTPAddr)
	fmt.Fprintf(out, "  curl http://%s/kv/greeting\n", tc.peers[2].HTTPAddr)
	fmt.Fprintf(out, "  curl 'http://%s/kv/greeting?consistency=stale'\n", tc.peers[2].HTTPAddr)
	fmt.Fprintf(out, "  curl -X POST -d '{\"old\":\"world\",\"new\":\"there\"}' http://%s/cas/greeting\n", tc.peers[2].HTTPAddr)
	fmt.Fprintf(out, "  curl -X POST http://%s/sessions   (then retry-safe writes on any node:)\n", p.HTTPAddr)
	fmt.Fprintf(out, "  curl -X PUT -H 'Idempotency-Key: <session>:1' --data-binary 1 http://%s/kv/counter\n", tc.peers[1].HTTPAddr)
	fmt.Fprintf(out, "  curl -L -X DELETE 'http://%s/kv/greeting?redirect=true'   (a follower redirects to the leader)\n", p.HTTPAddr)
	fmt.Fprintf(out, "  curl http://%s/status\n", p.HTTPAddr)
	fmt.Fprintf(out, "  curl http://%s/metrics   (and /healthz, /readyz)\n", p.HTTPAddr)
	fmt.Fprintf(out, "Press Ctrl-C to stop. Leader changes from now on are printed as the nodes' events report them.\n")
	tc.printElections(ctx, out)
	fmt.Fprintf(out, "\nShutting down and removing %s\n", dir)
	return nil
}

// startAll opens every listener first (the addresses go into the
// configuration), then starts the nodes.
func (tc *tourCluster) startAll(ctx context.Context) error {
	type listeners struct {
		tr *tcp.Transport
		ln net.Listener
	}
	tc.mu.Lock()
	tc.started = time.Now()
	tc.mu.Unlock()
	var ls []listeners
	closeAll := func() {
		for _, l := range ls {
			l.tr.Close()
			l.ln.Close()
		}
	}
	for i := 1; i <= 3; i++ {
		id := raft.NodeID(fmt.Sprintf("n%d", i))
		tr, err := tcp.Listen("127.0.0.1:0", &tcp.Options{LocalID: id, ClusterID: clusterID, Logger: tc.nodeLogger(id).Named("tcp")})
		if err != nil {
			closeAll()
			return fmt.Errorf("raft listener: %w", err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tr.Close()
			closeAll()
			return fmt.Errorf("http listener: %w", err)
		}
		ls = append(ls, listeners{tr, ln})
		tc.peers = append(tc.peers, Peer{ID: id, RaftAddr: tr.Addr(), HTTPAddr: ln.Addr().String()})
	}
	for i, p := range tc.peers {
		n, err := startNode(ctx, tc.spec(p, ls[i].tr, ls[i].ln))
		if err != nil {
			for _, l := range ls[i+1:] {
				l.tr.Close()
				l.ln.Close()
			}
			return err
		}
		tc.mu.Lock()
		tc.nodes[p.ID] = n
		tc.mu.Unlock()
	}
	return nil
}

func (tc *tourCluster) spec(p Peer, tr *tcp.Transport, ln net.Listener) nodeSpec {
	return nodeSpec{ID: p.ID, Dir: filepath.Join(tc.dir, string(p.ID)), Peers: tc.peers, Transport: tr, HTTP: ln,
		Logger: tc.nodeLogger(p.ID), OnEvent: tc.observe}
}

// nodeLogger is the logger of node id: the tour's, named for the node.
func (tc *tourCluster) nodeLogger(id raft.NodeID) hclog.Logger {
	if tc.logger == nil {
		return hclog.NewNullLogger()
	}
	return tc.logger.Named(string(id))
}

// restart starts a stopped node again on its old addresses and directory.
func (tc *tourCluster) restart(ctx context.Context, id raft.NodeID) (*kvNode, error) {
	i := slices.IndexFunc(tc.peers, func(p Peer) bool { return p.ID == id })
	p := tc.peers[i]
	tr, err := tcp.Listen(p.RaftAddr, &tcp.Options{LocalID: id, ClusterID: clusterID, Logger: tc.nodeLogger(id).Named("tcp")})
	if err != nil {
		return nil, fmt.Errorf("restart %s: raft listener: %w", id, err)
	}
	ln, err := net.Listen("tcp", p.HTTPAddr)
	if err != nil {
		tr.Close()
		return nil, fmt.Errorf("restart %s: http listener: %w", id, err)
	}
	n, err := startNode(ctx, tc.spec(p, tr, ln))
	if err != nil {
		return nil, err
	}
	tc.mu.Lock()
	tc.nodes[id] = n
	tc.mu.Unlock()
	return n, nil
}

// stop stops one node and forgets it.
func (tc *tourCluster) stop(id raft.NodeID) error {
	tc.mu.Lock()
	n := tc.nodes[id]
	delete(tc.nodes, id)
	tc.mu.Unlock()
	if n == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return n.stop(ctx)
}

// stopAll stops every running node.
func (tc *tourCluster) stopAll() {
	tc.mu.Lock()
	ids := slices.Collect(maps.Keys(tc.nodes))
	tc.mu.Unlock()
	for _, id := range ids {
		_ = tc.stop(id)
	}
}

// leader returns the running node that believes it leads, if any.
func (tc *tourCluster) leader() *kvNode {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for _, n := range tc.nodes {
		if n.raft.Status().State == raft.Leader {
			return n
		}
	}
	return nil
}

// followerOf returns a running node other than id.
func (tc *tourCluster) followerOf(id raft.NodeID) *kvNode {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for _, p := range tc.peers {
		if n := tc.nodes[p.ID]; n != nil && p.ID != id {
			return n
		}
	}
	return nil
}

// tour prints and checks the steps of the tour (the sixth, join, and the
// seventh, exactly-once writes, last).
func (tc *tourCluster) tour(ctx context.Context, out io.Writer) error {
	leader, won, err := tc.waitLeader(ctx, "")
	if err != nil {
		return err
	}
	followers, err := tc.waitFollowed(ctx, leader.id)
	if err != nil {
		return err
	}
	tc.mu.Lock()
	t0 := tc.started
	tc.mu.Unlock()
	fmt.Fprintf(out, "\n1. Election: %s leads term %d (%v after the nodes started)\n", leader.id, won.term, won.at.Sub(t0).Round(time.Millisecond))
	fmt.Fprintf(out, "   events (node.Observe): %s state-changed to leader; %s leader-changed to %s\n", leader.id, andList(followers), leader.id)

	// 2. Typed writes: Command in, Response out; no interface{} anywhere.
	fmt.Fprintf(out, "\n2. Typed writes on the leader (Command in, Response out):\n")
	var resp Response // R, statically typed
	resp, appErr, err := leader.raft.Apply(ctx, Command{Op: OpPut, Key: "greeting", Value: "hello"})
	if err != nil || appErr != nil {
		return fmt.Errorf("put greeting: %w", errors.Join(err, errorOrNil(appErr)))
	}
	fmt.Fprintf(out, "   put greeting=hello     -> applied, revision %d\n", resp.Revision)
	res, err := leader.raft.Propose(ctx, Command{Op: OpPut, Key: "visits", Value: "1"}, raft.Committed).Wait(ctx)
	if err != nil || res.Rejected() {
		return fmt.Errorf("put visits: %w", errors.Join(err, errorOrNil(res.Err)))
	}
	fmt.Fprintf(out, "   put visits=1           -> committed at index %d, term %d (Committed mode: answered before Apply)\n", res.Index, res.Term)

	// 3. A typed rejection: the application's own *Error, no assertion.
	fmt.Fprintf(out, "\n3. Typed rejection: cas greeting from \"hi\" to \"bonjour\"\n")
	res2, err := leader.raft.Propose(ctx, Command{Op: OpCAS, Key: "greeting", Old: "hi", OldExists: true, Value: "bonjour"}).Wait(ctx)
	if err != nil {
		return fmt.Errorf("cas greeting: %w", err)
	}
	var rejection *Error = res2.Err
	if rejection == nil || rejection.Code != CodeConflict || rejection.Current == nil || *rejection.Current != "hello" {
		return fmt.Errorf("cas greeting: want a conflict with current value hello, got %+v", res2)
	}
	fmt.Fprintf(out, "   -> *Error{Code: %q, Current: %q} at index %d: %s (rejected by Validate, confirmed with a read index, never entered the log)\n",
		rejection.Code, *rejection.Current, res2.Index, rejection)
	if err := tc.httpConflict(ctx, out, leader.id); err != nil {
		return err
	}

	// 4. Stop the leader while a client keeps writing.
	w := startWriter(ctx, tc)
	if err := w.waitAcked(ctx, 50); err != nil {
		return err
	}
	old := leader.id
	before := w.ackedCount()
	fmt.Fprintf(out, "\n4. A client writes w0000, w0001, ... while the leader %s is stopped (%d writes acknowledged so far)\n", old, before)
	t1 := time.Now()
	if err := tc.stop(old); err != nil {
		return err
	}
	leader, won, err = tc.waitLeader(ctx, old)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   %s stopped; %s elected leader in term %d after %v (its state-changed event)\n", old, leader.id, won.term, won.at.Sub(t1).Round(time.Millisecond))
	if err := w.waitAcked(ctx, before+50); err != nil {
		return err
	}
	acked, failed := w.stop()
	fmt.Fprintf(out, "   the client went on: %d writes acknowledged; %d failed while there was no leader (not acknowledged: they may or may not have happened)\n", len(acked), failed)

	// 5. Linearizable reads on a follower, without the log, see every
	// acknowledged write.
	if err := tc.checkReads(ctx, out, leader, acked); err != nil {
		return err
	}
	t2 := time.Now()
	back, err := tc.restart(ctx, old)
	if err != nil {
		return err
	}
	target := leader.raft.Status().Commit
	if err := caughtUp(ctx, back, target); err != nil {
		return err
	}
	fmt.Fprintf(out, "   %s restarted from its Pebble directory and caught up to index %d in %v; its local copy has %d keys (the leader's: %d)\n",
		old, target, time.Since(t2).Round(time.Millisecond), back.kv.Len(), leader.kv.Len())
	if err := tc.join(ctx, out, back); err != nil {
		return err
	}
	return tc.exactlyOnce(ctx, out)
}

// join starts a fourth node with an empty store and adds it through a
// follower's HTTP API (which redirects to the leader): a learner first,
// then a voter once it has caught up.
func (tc *tourCluster) join(ctx context.Context, out io.Writer, via *kvNode) error {
	id := raft.NodeID("n4")
	tr, err := tcp.Listen("127.0.0.1:0", &tcp.Options{LocalID: id, ClusterID: clusterID, Logger: tc.nodeLogger(id).Named("tcp")})
	if err != nil {
		return fmt.Errorf("raft listener: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tr.Close()
		return fmt.Errorf("http listener: %w", err)
	}
	p := Peer{ID: id, RaftAddr: tr.Addr(), HTTPAddr: ln.Addr().String()}
	spec := tc.spec(p, tr, ln)
	spec.Peers, spec.Join = nil, true
	n, err := startNode(ctx, spec)
	if err != nil {
		return err
	}
	tc.mu.Lock()
	tc.nodes[id] = n
	tc.peers = append(tc.peers, p)
	tc.mu.Unlock()
	t0 := time.Now()
	if err := joinCluster(ctx, via.httpAddr, joinRequest{ID: id, RaftAddr: p.RaftAddr, HTTPAddr: p.HTTPAddr}, ""); err != nil {
		return err
	}
	took := time.Since(t0).Round(time.Millisecond)
	leader, _, err := tc.waitLeader(ctx, "")
	if err != nil {
		return err
	}
	// The learner counts as caught up within Config.MaxCatchUpLag entries;
	// wait until it has applied everything committed so far.
	commit := leader.raft.Status().Commit
	if err := caughtUp(ctx, n, commit); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n6. Membership: %s started empty and asked %s to add it (POST /members); the leader added it\n", id, via.id)
	fmt.Fprintf(out, "   as a learner, then promoted it to voter, in %v: configuration %v; it has applied index %d\n",
		took, leader.raft.Status().Configuration, commit)
	res, err := raft.Query(ctx, n.raft, raft.ReadLinearizable, func() Response { r, _ := n.kv.Get("greeting"); return r })
	if err != nil || res.Value != "hello" {
		return fmt.Errorf("%s joined without the data: greeting = %+v (%v)", id, res, err)
	}
	return nil
}

// httpConflict sends the same conflicting CAS over HTTP to a follower,
// which forwards it to the leader, and shows the leader's 409 with its
// JSON body, as the follower answers it.
func (tc *tourCluster) httpConflict(ctx context.Context, out io.Writer, leader raft.NodeID) error {
	f := tc.followerOf(leader)
	if err := knowsLeader(ctx, f, leader); err != nil {
		return err
	}
	url := "http://" + f.httpAddr + "/cas/greeting"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"old":"hi","new":"bonjour"}`))
	if err != nil {
		return err
	}
	resp, err := tourClient.Do(req)
	if err != nil {
		return fmt.Errorf("http cas: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return fmt.Errorf("http cas: %w", err)
	}
	if resp.StatusCode != http.StatusConflict {
		return fmt.Errorf("http cas via follower %s: status %d, want 409: %s", f.id, resp.StatusCode, body)
	}
	fmt.Fprintf(out, "   over HTTP: POST %s (follower %s, which forwards it to the leader %s)\n", url, f.id, leader)
	fmt.Fprintf(out, "     %d %s", resp.StatusCode, body)
	return nil
}

// checkReads reads every acknowledged key (and the keys of step 2) in one
// linearizable read on a follower, failing if any write is missing, then
// shows a follower read over HTTP right after a write (followerRead).
func (tc *tourCluster) checkReads(ctx context.Context, out io.Writer, leader *kvNode, acked map[string]string) error {
	want := map[string]string{"greeting": "hello", "visits": "1"}
	maps.Copy(want, acked)
	f := tc.followerOf(leader.id)
	if err := knowsLeader(ctx, f, leader.id); err != nil {
		return err
	}
	// One read, on f's apply goroutine: a consistent view of every key,
	// typed ([]string), and no lock on the map.
	missing, err := raft.Query(ctx, f.raft, raft.ReadLinearizable, func() []string {
		var bad []string
		for k, v := range want {
			if res, ok := f.kv.Get(k); !ok || res.Value != v {
				bad = append(bad, k)
			}
		}
		return bad
	})
	if err != nil {
		return fmt.Errorf("linearizable read on %s: %w", f.id, err)
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("linearizable read on %s: %d acknowledged writes missing, first %s", f.id, len(missing), missing[0])
	}
	fmt.Fprintf(out, "\n5. Reads without the log, on any node: one raft.Query(ReadLinearizable) on follower %s reads all %d keys: every acknowledged write is there\n", f.id, len(want))
	return followerRead(ctx, out, leader, f)
}

// followerRead writes a key over HTTP on the leader and, once the write is
// acknowledged, reads it on follower f: stale (which may or may not see
// it yet) and linearizable (which must).
func followerRead(ctx context.Context, out io.Writer, leader, f *kvNode) error {
	put, err := tourCall(ctx, http.MethodPut, "http://"+leader.httpAddr+"/kv/news", "fresh", nil)
	if err != nil || put.status != http.StatusOK {
		return fmt.Errorf("PUT news on %s: %d %v: %w", leader.id, put.status, put.body, err)
	}
	fmt.Fprintf(out, "   over HTTP: PUT /kv/news=fresh on leader %s -> 200 (revision %v); right after it, on follower %s:\n", leader.id, put.body["revision"], f.id)
	base := "http://" + f.httpAddr + "/kv/news?consistency="
	stale, err := tourCall(ctx, http.MethodGet, base+ConsistencyStale, "", nil)
	if err != nil {
		return fmt.Errorf("stale GET news on %s: %w", f.id, err)
	}
	switch {
	case stale.status == http.StatusOK && stale.body["value"] == "fresh":
		fmt.Fprintf(out, "     GET /kv/news?consistency=stale         -> 200 \"fresh\" (%s had applied it already; stale reads may lag)\n", f.id)
	case stale.status == http.StatusNotFound:
		fmt.Fprintf(out, "     GET /kv/news?consistency=stale         -> 404 (%s had not applied it yet: stale reads may lag)\n", f.id)
	default:
		return fmt.Errorf("stale GET news on %s: %d %v", f.id, stale.status, stale.body)
	}
	lin, err := tourCall(ctx, http.MethodGet, base+ConsistencyLinearizable, "", nil)
	if err != nil || lin.status != http.StatusOK || lin.body["value"] != "fresh" {
		return fmt.Errorf("linearizable GET news on %s after an acknowledged PUT: %d %v: %w", f.id, lin.status, lin.body, err)
	}
	fmt.Fprintf(out, "     GET /kv/news?consistency=linearizable  -> 200 \"fresh\" at index %v (read index from %s, served by %s once applied)\n",
		lin.body["index"], leader.id, f.id)
	return nil
}

// tourAnswer is a JSON answer of the HTTP API.
type tourAnswer struct {
	status int
	body   map[string]any
}

// tourClient is the tour's HTTP client: it does not follow redirects.
var tourClient = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// tourCall sends one request to the HTTP API, with the header h (may be
// nil), without following redirects, and decodes its JSON answer.
func tourCall(ctx context.Context, method, url, body string, h map[string]string) (tourAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return tourAnswer{}, err
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := tourClient.Do(req)
	if err != nil {
		return tourAnswer{}, err
	}
	defer resp.Body.Close()
	a := tourAnswer{status: resp.StatusCode}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&a.body); err != nil {
		return a, fmt.Errorf("%s %s: %d, body not JSON: %w", method, url, resp.StatusCode, err)
	}
	return a, nil
}

// knowsLeader waits until f has heard from leader (it learns of a leader
// from its messages).
func knowsLeader(ctx context.Context, f *kvNode, leader raft.NodeID) error {
	if _, err := f.raft.WaitFor(ctx, func(s raft.Status) bool { return s.Leader == leader }); err != nil {
		return fmt.Errorf("follower %s does not know the leader %s: %w", f.id, leader, err)
	}
	return nil
}

// caughtUp waits until n has applied index.
func caughtUp(ctx context.Context, n *kvNode, index uint64) error {
	if _, err := n.raft.WaitFor(ctx, func(s raft.Status) bool { return s.Applied >= index }); err != nil {
		return fmt.Errorf("%s did not catch up to index %d: %w", n.id, index, err)
	}
	return nil
}

func errorOrNil(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}
