package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/pebble"
	"github.com/typedraft/typedraft/transport/tcp"
)

// Peer is one member of the static cluster: its ID, the address its raft
// transport is reached at, and its HTTP host:port (may be empty).
type Peer struct {
	ID       raft.NodeID
	RaftAddr string
	HTTPAddr string
}

// parsePeers parses -peers: comma-separated id=raftaddr/httpaddr entries,
// the /httpaddr part being optional.
func parsePeers(s string) ([]Peer, error) {
	var out []Peer
	seen := map[raft.NodeID]bool{}
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		id, addrs, ok := strings.Cut(entry, "=")
		if !ok || id == "" || addrs == "" {
			return nil, fmt.Errorf("-peers: %q is not id=raftaddr[/httpaddr]", entry)
		}
		raftAddr, httpAddr, _ := strings.Cut(addrs, "/")
		for _, a := range []string{raftAddr, httpAddr} {
			if a == "" {
				continue
			}
			if _, _, err := net.SplitHostPort(a); err != nil {
				return nil, fmt.Errorf("-peers: %s: bad address %q: %w", id, a, err)
			}
		}
		if seen[raft.NodeID(id)] {
			return nil, fmt.Errorf("-peers: %s listed twice", id)
		}
		seen[raft.NodeID(id)] = true
		out = append(out, Peer{ID: raft.NodeID(id), RaftAddr: raftAddr, HTTPAddr: httpAddr})
	}
	return out, nil
}

// nodeSpec says how to start one node.
type nodeSpec struct {
	ID    raft.NodeID
	Dir   string // Pebble directory
	Peers []Peer // the founding cluster, this node included; empty when joining
	// Join starts the node without Bootstrap: it waits to be added to a
	// running cluster (see joinCluster).
	Join bool
	// Transport and HTTP are already listening; the node takes them over
	// and closes them when it stops.
	Transport *tcp.Transport
	HTTP      net.Listener
	Logger    hclog.Logger
}

// kvNode is a running node: raft, its storage, transport and HTTP server.
type kvNode struct {
	id       raft.NodeID
	raft     *Node
	kv       *KV
	store    *pebble.Store
	tr       *tcp.Transport
	srv      *http.Server
	httpAddr string
	served   chan error
}

// clusterID names the cluster in transport handshakes.
const clusterID = "typedraft-kv"

// startNode opens the node's Pebble store, starts raft (bootstrapping the
// static cluster of spec.Peers, a no-op on restart) and serves HTTP. On
// error it closes everything, including spec.Transport and spec.HTTP.
func startNode(ctx context.Context, spec nodeSpec) (n *kvNode, err error) {
	n = &kvNode{id: spec.ID, tr: spec.Transport, kv: NewKV(), httpAddr: spec.HTTP.Addr().String(), served: make(chan error, 1)}
	defer func() {
		if err != nil {
			spec.HTTP.Close()
			n.stop(context.Background())
			n = nil
		}
	}()
	httpAddrs := map[raft.NodeID]string{}
	var servers []raft.Server
	for _, p := range spec.Peers {
		servers = append(servers, raft.Server{ID: p.ID, Addr: p.RaftAddr})
		httpAddrs[p.ID] = p.HTTPAddr
	}
	if n.store, err = pebble.Open(spec.Dir, &pebble.Options{Logger: spec.Logger}); err != nil {
		return nil, fmt.Errorf("node %s: %w", spec.ID, err)
	}
	cfg := raft.Config{ID: spec.ID, Logger: spec.Logger}
	if n.raft, err = raft.New(cfg, n.kv, n.store, n.tr); err != nil {
		return nil, fmt.Errorf("node %s: %w", spec.ID, err)
	}
	// Every founding node bootstraps with the same servers; on restart the
	// stored configuration is kept (Bootstrap with the same servers is a
	// no-op; after membership changes it reports ErrBootstrapped). A node
	// that joins a running cluster starts empty and never bootstraps: the
	// leader adds it (AddLearner, then PromoteLearner) and replicates the
	// log or a snapshot to it. Until the configuration reaches it, the new
	// node does not know the leader's raft address; its replies still get
	// through because the TCP transport learns the address from the
	// leader's handshake (tcp.Options.AdvertiseAddr).
	if !spec.Join {
		if err := n.raft.Bootstrap(ctx, servers); err != nil {
			if !errors.Is(err, raft.ErrBootstrapped) {
				return nil, fmt.Errorf("node %s: bootstrap: %w", spec.ID, err)
			}
			spec.Logger.Info("storage holds a later configuration; keeping it", "dir", spec.Dir)
		}
	}
	n.srv = &http.Server{
		Handler:           NewAPI(n.raft, n.kv, httpAddrs).Handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { n.served <- n.srv.Serve(spec.HTTP) }()
	return n, nil
}

// stop shuts the node down gracefully: HTTP first (in-flight requests
// finish, bounded by ctx), then raft, the transport and the store. It
// returns the first error.
func (n *kvNode) stop(ctx context.Context) error {
	var errs []error
	if n.srv != nil {
		if err := n.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("node %s: http shutdown: %w", n.id, err))
		}
		if err := <-n.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("node %s: http: %w", n.id, err))
		}
	}
	if n.raft != nil {
		if err := n.raft.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("node %s: raft shutdown: %w", n.id, err))
		}
	}
	if n.tr != nil {
		if err := n.tr.Close(); err != nil {
			errs = append(errs, fmt.Errorf("node %s: transport: %w", n.id, err))
		}
	}
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("node %s: store: %w", n.id, err))
		}
	}
	return errors.Join(errs...)
}
