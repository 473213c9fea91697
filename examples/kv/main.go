// Command kv is a replicated key-value service on typedraft, with an HTTP
// API on every node.
//
// With no flags it starts three nodes in this process, on loopback TCP
// with Pebble storage in a temporary directory, walks through a short tour
// (an election, typed writes, a typed rejection, the leader stopped and a
// new one elected, reads that see every acknowledged write, the stopped
// node restarted from its directory, a fourth node joining), and then
// keeps serving until Ctrl-C, when it removes the directory:
//
//	go run ./examples/kv
//
// With -id it runs one node of a real cluster, one process per node (on
// one machine or several). Every node gets the same -peers list, which
// names each node's raft address and, after a slash, its HTTP address
// (used to redirect requests to the leader):
//
//	go run ./examples/kv -id n1 -addr 127.0.0.1:7001 -http 127.0.0.1:8001 -dir /tmp/kv1 \
//	    -peers n1=127.0.0.1:7001/127.0.0.1:8001,n2=127.0.0.1:7002/127.0.0.1:8002,n3=127.0.0.1:7003/127.0.0.1:8003
//	(and the same for n2 and n3)
//
//	curl -L -X PUT --data-binary hello http://127.0.0.1:8001/kv/greeting
//	curl -L http://127.0.0.1:8002/kv/greeting
//	curl -L -X POST -d '{"old":"hello","new":"hi"}' http://127.0.0.1:8003/cas/greeting
//	curl http://127.0.0.1:8001/status
//
// A node can join a running cluster instead: start it with -join naming
// any member's HTTP address (and no -peers). The leader records its HTTP
// address in the replicated state, adds it as a learner, waits until it
// has caught up and promotes it to voter:
//
//	go run ./examples/kv -id n4 -addr 127.0.0.1:7004 -http 127.0.0.1:8004 -dir /tmp/kv4 -join 127.0.0.1:8001
//	curl -X DELETE -L http://127.0.0.1:8001/members/n4   # and to remove it
//
// The HTTP API is described on API. The raft transport is plaintext TCP:
// on a real network use transport/tcp's mutual TLS. SIGINT or SIGTERM
// shuts the node(s) down gracefully.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/tcp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kv:", err)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	id       string
	addr     string
	http     string
	dir      string
	peers    string
	join     string
	tourOnly bool
	verbose  bool
}

// run is the whole program: it parses args, runs the tour or one node, and
// returns when ctx ends (or, with -tour-only, when the tour is over),
// having stopped everything it started.
func run(ctx context.Context, out io.Writer, args []string) error {
	var o options
	fs := flag.NewFlagSet("kv", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.id, "id", "", "this node's ID (one node per process; without -id: the three-node tour)")
	fs.StringVar(&o.addr, "addr", "", "raft listen address, host:port, as the other nodes dial it (not 0.0.0.0)")
	fs.StringVar(&o.http, "http", "", "HTTP listen address, host:port")
	fs.StringVar(&o.dir, "dir", "", "data directory (Pebble)")
	fs.StringVar(&o.peers, "peers", "", "the cluster: id=raftaddr/httpaddr,... (the same on every node, this node included)")
	fs.StringVar(&o.join, "join", "", "join the running cluster that has a member at this HTTP address (instead of -peers)")
	fs.BoolVar(&o.tourOnly, "tour-only", false, "run the tour and exit instead of serving")
	fs.BoolVar(&o.verbose, "v", false, "log raft and transport events to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	logger := hclog.NewNullLogger()
	if o.verbose {
		logger = hclog.New(&hclog.LoggerOptions{Name: "kv", Level: hclog.Info, Output: os.Stderr})
	}
	if o.id == "" {
		if o.addr != "" || o.http != "" || o.dir != "" || o.peers != "" || o.join != "" {
			return errors.New("-addr, -http, -dir, -peers and -join need -id (without -id kv runs the in-process tour)")
		}
		return runTour(ctx, out, logger, o.tourOnly)
	}
	return runNode(ctx, out, logger, o)
}

// runNode runs one node of a multi-process cluster until ctx ends.
func runNode(ctx context.Context, out io.Writer, logger hclog.Logger, o options) error {
	switch {
	case o.addr == "":
		return errors.New("-addr is required with -id")
	case o.http == "":
		return errors.New("-http is required with -id")
	case o.dir == "":
		return errors.New("-dir is required with -id")
	case o.peers == "" && o.join == "":
		return errors.New("-peers (to found a cluster) or -join (to join one) is required with -id")
	case o.peers != "" && o.join != "":
		return errors.New("-peers and -join exclude each other")
	}
	var peers []Peer
	if o.peers != "" {
		var err error
		if peers, err = parsePeers(o.peers); err != nil {
			return err
		}
		found := false
		for _, p := range peers {
			found = found || p.ID == raft.NodeID(o.id)
		}
		if !found {
			return fmt.Errorf("-peers does not list this node (-id %s)", o.id)
		}
	}
	tr, err := tcp.Listen(o.addr, &tcp.Options{LocalID: raft.NodeID(o.id), ClusterID: clusterID, Logger: logger})
	if err != nil {
		return fmt.Errorf("raft listener: %w", err)
	}
	ln, err := net.Listen("tcp", o.http)
	if err != nil {
		tr.Close()
		return fmt.Errorf("http listener: %w", err)
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n, err := startNode(startCtx, nodeSpec{ID: raft.NodeID(o.id), Dir: o.dir, Peers: peers, Join: o.join != "", Transport: tr, HTTP: ln, Logger: logger})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "kv node %s: raft %s, http http://%s, data %s\n", o.id, tr.Addr(), n.httpAddr, o.dir)
	if o.join != "" {
		fmt.Fprintf(out, "joining the cluster at %s ...\n", o.join)
		joinCtx, cancel := context.WithTimeout(ctx, membershipTimeout)
		err := joinCluster(joinCtx, o.join, joinRequest{ID: raft.NodeID(o.id), RaftAddr: o.addr, HTTPAddr: o.http})
		cancel()
		if err != nil {
			stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return errors.Join(err, n.stop(stopCtx))
		}
		fmt.Fprintf(out, "joined: %s is a voter\n", o.id)
	}
	select {
	case <-ctx.Done():
	case <-n.raft.Done():
		fmt.Fprintf(out, "node stopped: %v\n", n.raft.Err())
	}
	fmt.Fprintln(out, "shutting down")
	stopCtx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	stopErr := n.stop(stopCtx)
	if err := n.raft.Err(); err != nil && !errors.Is(err, raft.ErrShutdown) {
		return errors.Join(fmt.Errorf("node failed: %w", err), stopErr)
	}
	return stopErr
}
