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
// the /httpaddr part being optional. IDs and addresses are checked with
// validateNodeID and validateAddr.
func parsePeers(s string) ([]Peer, error) {
	var out []Peer
	seen := map[raft.NodeID]bool{}
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		id, addrs, ok := strings.Cut(entry, "=")
		if !ok || id == "" || addrs == "" {
			return nil, fmt.Errorf("-peers: %q is not id=raftaddr[/httpaddr]", entry)
		}
		if err := validateNodeID(raft.NodeID(id)); err != nil {
			return nil, fmt.Errorf("-peers: %w", err)
		}
		raftAddr, httpAddr, _ := strings.Cut(addrs, "/")
		if err := validateAddr(raftAddr); err != nil {
			return nil, fmt.Errorf("-peers: %s: raft %w", id, err)
		}
		if httpAddr != "" {
			if err := validateAddr(httpAddr); err != nil {
				return nil, fmt.Errorf("-peers: %s: http %w", id, err)
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
	// API configures the HTTP API (token, join timeout); zero: defaults.
	API APIOptions
	// Limits bounds the HTTP server; zero fields: defaultHTTPLimits.
	Limits httpLimits
	// OnEvent, if not nil, is called with each of the node's events
	// (raft.Raft.Observe), from the first one on: the node is observed
	// before it bootstraps. It runs on a goroutine of its own, one event
	// at a time; a slow OnEvent makes the node drop events for it (it
	// never delays raft), which the next event reports in Missed.
	OnEvent func(raft.NodeID, raft.Event)
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
	// observed is closed when the OnEvent goroutine has seen the node's
	// last event (nil without OnEvent).
	observed chan struct{}
}

// eventBuffer is the channel buffer of a node's observer: enough for the
// events of a few elections and membership changes at once.
const eventBuffer = 64

// clusterID names the cluster in transport handshakes.
const clusterID = "typedraft-kv"

// startNode opens the node's Pebble store, starts raft (bootstrapping the
// static cluster of spec.Peers, a no-op on restart) and serves HTTP. On
// error it closes everything, including spec.Transport and spec.HTTP.
func startNode(ctx context.Context, spec nodeSpec) (_ *kvNode, err error) {
	// n is never reassigned: the error returns below set the named result,
	// not n, so the cleanup always has the partly started node to close.
	if spec.Logger == nil {
		spec.Logger = hclog.NewNullLogger()
	}
	n := &kvNode{id: spec.ID, tr: spec.Transport, kv: NewKV(), httpAddr: spec.HTTP.Addr().String(), served: make(chan error, 1)}
	defer func() {
		if err != nil {
			spec.HTTP.Close()
			// The startup error is the one worth reporting; a failure to
			// close what was opened is joined to it.
			stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if stopErr := n.stop(stopCtx); stopErr != nil {
				err = errors.Join(err, fmt.Errorf("cleanup: %w", stopErr))
			}
		}
	}()
	httpAddrs := map[raft.NodeID]string{}
	var servers []raft.Server
	for _, p := range spec.Peers {
		servers = append(servers, raft.Server{ID: p.ID, Addr: p.RaftAddr})
		httpAddrs[p.ID] = p.HTTPAddr
	}
	if n.store, err = pebble.Open(spec.Dir, &pebble.Options{Logger: spec.Logger.Named("pebble")}); err != nil {
		return nil, fmt.Errorf("node %s: %w", spec.ID, err)
	}
	cfg := raft.Config{ID: spec.ID, Logger: spec.Logger} // raft names its own logger "raft"
	if n.raft, err = raft.New(cfg, n.kv, n.store, n.tr); err != nil {
		return nil, fmt.Errorf("node %s: %w", spec.ID, err)
	}
	if spec.OnEvent != nil {
		// The observer's channel is closed after the node's last event
		// (EventStopped), so this goroutine ends with the node.
		obs := n.raft.Observe(eventBuffer)
		n.observed = make(chan struct{})
		go func() {
			defer close(n.observed)
			for e := range obs.Events() {
				spec.OnEvent(spec.ID, e)
			}
		}()
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
	limits := spec.Limits.withDefaults()
	n.srv = newHTTPServer(NewAPI(n.raft, n.kv, httpAddrs, &spec.API).Handler(), limits)
	ln := newLimitListener(spec.HTTP, limits.MaxConns)
	go func() { n.served <- n.srv.Serve(ln) }()
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
		if n.observed != nil {
			select {
			case <-n.observed:
			case <-ctx.Done():
				errs = append(errs, fmt.Errorf("node %s: event observer: %w", n.id, ctx.Err()))
			}
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
