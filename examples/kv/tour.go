package main

import (
	"context"
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
// Concurrency: mu guards nodes; the tour's writer goroutine looks up the
// leader while the main goroutine stops and restarts nodes.
type tourCluster struct {
	dir    string
	peers  []Peer
	logger hclog.Logger
	mu     sync.Mutex
	nodes  map[raft.NodeID]*kvNode
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
	fmt.Fprintf(out, "\nServing. Try (curl -L follows redirects to the leader):\n")
	fmt.Fprintf(out, "  curl -L -X PUT --data-binary world http://%s/kv/greeting\n", p.HTTPAddr)
	fmt.Fprintf(out, "  curl -L http://%s/kv/greeting\n", tc.peers[1].HTTPAddr)
	fmt.Fprintf(out, "  curl -L -X POST -d '{\"old\":\"world\",\"new\":\"there\"}' http://%s/cas/greeting\n", tc.peers[2].HTTPAddr)
	fmt.Fprintf(out, "  curl -L -X DELETE http://%s/kv/greeting\n", p.HTTPAddr)
	fmt.Fprintf(out, "  curl http://%s/status\n", p.HTTPAddr)
	fmt.Fprintf(out, "Press Ctrl-C to stop.\n")
	<-ctx.Done()
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
	var ls []listeners
	closeAll := func() {
		for _, l := range ls {
			l.tr.Close()
			l.ln.Close()
		}
	}
	for i := 1; i <= 3; i++ {
		id := raft.NodeID(fmt.Sprintf("n%d", i))
		tr, err := tcp.Listen("127.0.0.1:0", &tcp.Options{LocalID: id, ClusterID: clusterID, Logger: tc.logger})
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
	return nodeSpec{ID: p.ID, Dir: filepath.Join(tc.dir, string(p.ID)), Peers: tc.peers, Transport: tr, HTTP: ln, Logger: tc.logger}
}

// restart starts a stopped node again on its old addresses and directory.
func (tc *tourCluster) restart(ctx context.Context, id raft.NodeID) (*kvNode, error) {
	i := slices.IndexFunc(tc.peers, func(p Peer) bool { return p.ID == id })
	p := tc.peers[i]
	tr, err := tcp.Listen(p.RaftAddr, &tcp.Options{LocalID: id, ClusterID: clusterID, Logger: tc.logger})
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

// waitLeader polls until a running node other than not leads.
func (tc *tourCluster) waitLeader(ctx context.Context, not raft.NodeID) (*kvNode, error) {
	for {
		if n := tc.leader(); n != nil && n.id != not {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no leader elected: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
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

// tour prints and checks the five steps.
func (tc *tourCluster) tour(ctx context.Context, out io.Writer) error {
	t0 := time.Now()
	leader, err := tc.waitLeader(ctx, "")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n1. Election: %s leads term %d (after %v)\n", leader.id, leader.raft.Status().Term, time.Since(t0).Round(time.Millisecond))

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
	fmt.Fprintf(out, "   -> *Error{Code: %q, Current: %q} at index %d: %s (rejected by Validate, never entered the log)\n",
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
	leader, err = tc.waitLeader(ctx, old)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   %s stopped; %s elected leader in term %d after %v\n", old, leader.id, leader.raft.Status().Term, time.Since(t1).Round(time.Millisecond))
	if err := w.waitAcked(ctx, before+50); err != nil {
		return err
	}
	acked, failed := w.stop()
	fmt.Fprintf(out, "   the client went on: %d writes acknowledged; %d failed while there was no leader (not acknowledged: they may or may not have happened)\n", len(acked), failed)

	// 5. Linearizable reads through the log see every acknowledged write.
	if err := tc.checkReads(ctx, out, leader, acked); err != nil {
		return err
	}
	t2 := time.Now()
	back, err := tc.restart(ctx, old)
	if err != nil {
		return err
	}
	target := leader.raft.Status().Commit
	for back.raft.Status().Applied < target {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not catch up to index %d: %w", old, target, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	fmt.Fprintf(out, "   %s restarted from its Pebble directory and caught up to index %d in %v; its local copy has %d keys (the leader's: %d)\n",
		old, target, time.Since(t2).Round(time.Millisecond), back.kv.Len(), leader.kv.Len())
	return tc.join(ctx, out, back)
}

// join starts a fourth node with an empty store and adds it through a
// follower's HTTP API (which redirects to the leader): a learner first,
// then a voter once it has caught up.
func (tc *tourCluster) join(ctx context.Context, out io.Writer, via *kvNode) error {
	id := raft.NodeID("n4")
	tr, err := tcp.Listen("127.0.0.1:0", &tcp.Options{LocalID: id, ClusterID: clusterID, Logger: tc.logger})
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
	if err := joinCluster(ctx, via.httpAddr, joinRequest{ID: id, RaftAddr: p.RaftAddr, HTTPAddr: p.HTTPAddr}); err != nil {
		return err
	}
	took := time.Since(t0).Round(time.Millisecond)
	leader, err := tc.waitLeader(ctx, "")
	if err != nil {
		return err
	}
	// The learner counts as caught up within Config.MaxCatchUpLag entries;
	// wait until it has applied everything committed so far.
	commit := leader.raft.Status().Commit
	for n.raft.Status().Applied < commit {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not catch up to index %d: %w", id, commit, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	fmt.Fprintf(out, "\n6. Membership: %s started empty and asked %s to add it (POST /members); the leader added it\n", id, via.id)
	fmt.Fprintf(out, "   as a learner, then promoted it to voter, in %v: configuration %v; it has applied index %d\n",
		took, leader.raft.Status().Configuration, commit)
	res, ok := n.kv.Local("greeting")
	if !ok || res.Value != "hello" {
		return fmt.Errorf("%s joined without the data: greeting = %+v", id, res)
	}
	return nil
}

// httpConflict sends the same conflicting CAS over HTTP to a follower and
// shows the redirect to the leader and the 409 with its JSON body.
func (tc *tourCluster) httpConflict(ctx context.Context, out io.Writer, leader raft.NodeID) error {
	f := tc.followerOf(leader)
	for f.raft.Status().Leader != leader { // it learns of the leader from its messages
		select {
		case <-ctx.Done():
			return fmt.Errorf("follower %s does not know the leader: %w", f.id, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	var hops []string
	client := &http.Client{
		Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			hops = append(hops, fmt.Sprintf("307 -> %s", req.URL))
			if len(via) > 5 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
	url := "http://" + f.httpAddr + "/cas/greeting"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"old":"hi","new":"bonjour"}`))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("http cas: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return fmt.Errorf("http cas: %w", err)
	}
	if resp.StatusCode != http.StatusConflict || len(hops) == 0 {
		return fmt.Errorf("http cas via follower %s: status %d after %v, want 409 after a redirect: %s", f.id, resp.StatusCode, hops, body)
	}
	fmt.Fprintf(out, "   over HTTP: POST %s (follower %s)\n", url, f.id)
	for _, h := range hops {
		fmt.Fprintf(out, "     %s\n", h)
	}
	fmt.Fprintf(out, "     %d %s", resp.StatusCode, body)
	return nil
}

// checkReads reads every acknowledged key (and the keys of step 2) through
// the log on leader and fails if any write is missing.
func (tc *tourCluster) checkReads(ctx context.Context, out io.Writer, leader *kvNode, acked map[string]string) error {
	want := map[string]string{"greeting": "hello", "visits": "1"}
	for k, v := range acked {
		want[k] = v
	}
	futures := map[string]*raft.Future[Response, *Error]{}
	for k := range want {
		futures[k] = leader.raft.Propose(ctx, Command{Op: OpGet, Key: k})
	}
	for k, f := range futures {
		res, err := f.Wait(ctx)
		if err != nil {
			return fmt.Errorf("read %s: %w", k, err)
		}
		if res.Err != nil || !res.Value.Found || res.Value.Value != want[k] {
			return fmt.Errorf("read %s through the log: got %+v (err %v), want %q", k, res.Value, res.Err, want[k])
		}
	}
	fmt.Fprintf(out, "\n5. Read all %d keys through the log on %s (linearizable reads): every acknowledged write is there\n", len(want), leader.id)
	return nil
}

func errorOrNil(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}
