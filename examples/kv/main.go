// Command kv is a replicated key-value service on typedraft, with an HTTP
// API on every node.
//
// With no flags it starts three nodes in this process, on loopback TCP
// with Pebble storage in a temporary directory, walks through a short tour
// (an election, typed writes, a typed rejection, the leader stopped and a
// new one elected, reads on a follower that see every acknowledged write
// without going through the log, and a stale one, the stopped node
// restarted from its directory, a fourth node joining, a write through a
// follower with an Idempotency-Key and its retry through another node),
// and then keeps serving until Ctrl-C, when it removes the directory:
//
//	go run ./examples/kv
//
// # One node per process
//
// With -id it runs one node of a real cluster, one process per node (on
// one machine or several). Every node gets the same -peers list, which
// names each node's raft address and, after a slash, its HTTP address
// (used to redirect clients to the leader: membership changes, and writes
// that ask for the redirect):
//
//	go run ./examples/kv -id n1 -addr 127.0.0.1:7001 -http 127.0.0.1:8001 -dir /tmp/kv1 \
//	    -peers n1=127.0.0.1:7001/127.0.0.1:8001,n2=127.0.0.1:7002/127.0.0.1:8002,n3=127.0.0.1:7003/127.0.0.1:8003
//	(and the same for n2 and n3)
//
//	curl -X PUT --data-binary hello http://127.0.0.1:8001/kv/greeting
//	curl http://127.0.0.1:8002/kv/greeting
//	curl -X POST -d '{"old":"hello","new":"hi"}' http://127.0.0.1:8003/cas/greeting
//	curl http://127.0.0.1:8001/status
//
// # Writes on any node, exactly once
//
// Every node takes writes: a follower forwards a PUT, DELETE or CAS to the
// leader through raft and answers with the leader's result, the same JSON
// the leader gives. ?redirect=true (or the header "Prefer: redirect") asks
// a follower for the older behaviour instead, a 307 redirect to the
// leader's HTTP address (curl -L follows it). A node that knows no leader
// answers 503 "no_leader".
//
// A write whose answer is lost (a client timeout, a 504 "indeterminate")
// may or may not have been applied. To retry it safely, open a session
// once, on any node, and number the writes in it:
//
//	curl -X POST http://127.0.0.1:8002/sessions
//	{"session":17,"first_key":"17:1"}
//	curl -X PUT -H 'Idempotency-Key: 17:1' --data-binary 1 http://127.0.0.1:8002/kv/counter
//	curl -X PUT -H 'Idempotency-Key: 17:1' --data-binary 1 http://127.0.0.1:8003/kv/counter   # a retry
//	curl -X PUT -H 'Idempotency-Key: 17:2' --data-binary 2 http://127.0.0.1:8001/kv/counter   # the next write
//
// A retry with the same key, through any node and after any node
// restarted, is applied at most once and answered with the original
// result (the same "revision" and body): the session is a raft client
// session (raft.Raft.OpenSession), part of the replicated state. Keys are
// "<session>:<seq>", seq from 1 up, one write at a time per session
// (open more sessions for concurrent writes). An older seq answers 422
// "session_seq_old", a key reused for a different request 422
// "idempotency_key_reused", an unknown, closed (DELETE /sessions/{id}) or
// expired session 422 "session_expired" (open a new one), and a
// malformed key 400; none of them applies the request. See the API's
// openSession for the details.
//
// # Reads
//
// Every node serves GET /kv/{key} itself, followers and learners included,
// without a redirect and without a log entry; ?consistency= says how
// fresh the answer must be:
//
//	curl http://127.0.0.1:8002/kv/greeting                           # linearizable (the default)
//	curl 'http://127.0.0.1:8002/kv/greeting?consistency=lease'       # linearizable under a clock-drift bound
//	curl 'http://127.0.0.1:8002/kv/greeting?consistency=stale'       # this node's copy; may lag
//
// A linearizable read (raft.Query with raft.ReadLinearizable) sees every
// write acknowledged before it was sent: the leader confirms with a quorum
// that it still leads and names its commit index, and the node that got
// the request (the leader itself, or a follower that asked it) reads its
// own copy once it has applied that index. A lease read skips the
// leader's quorum round while its lease holds, which assumes the nodes'
// clocks drift apart by at most raft.Config.MaxClockDrift. A stale read
// sends no message and may miss recent writes (?stale=true is an alias
// kept from earlier versions). A read that cannot be confirmed (no leader,
// or the leader lost its quorum) is answered 503 and one that runs out of
// time 504; both are safe to retry, since a read changes nothing. The read
// runs on the node's apply goroutine, so the state machine takes no lock
// for it. CAS conflicts (409) are linearizable too: the leader's Validate
// rejects a CAS whose expectation fails before it enters the log, and the
// node answers only after confirming the rejection with a read index.
//
// Node IDs are 1 to 255 letters, digits, '.', '_' or '-'; addresses in
// -peers must be dialable host:port (not 0.0.0.0, not port 0).
//
// # A three-process cluster over mutual TLS
//
// Without TLS flags the raft traffic between nodes is plaintext, which kv
// (like transport/tcp) allows on loopback addresses only: any process that
// reaches a raft port could claim to be any node. -insecure-plaintext lifts
// that restriction, for a network where every host is trusted; a node
// given a non-loopback -addr or peer without TLS or that flag refuses to
// start and says so. With -tls-cert, -tls-key and -tls-ca the nodes authenticate
// each other with certificates bound to their node IDs (transport/tcp's
// mutual TLS; a certificate proves node X with the URI SAN
// typedraft://node/X). Step by step, on one machine:
//
// Step 1: make a development CA and one certificate per node (crypto/x509
// only; the keys are written with mode 0600):
//
//	go run ./examples/kv/certs -out /tmp/kv-certs -nodes n1,n2,n3
//
// Step 2: choose a token for the membership endpoints (optional, see
// below), the same on every node:
//
//	export KV_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
//
// Step 3: start the three nodes, in three terminals, each with its own
// certificate and key and the common CA:
//
//	go run ./examples/kv -id n1 -addr 127.0.0.1:7001 -http 127.0.0.1:8001 -dir /tmp/kv1 \
//	    -tls-cert /tmp/kv-certs/n1.crt -tls-key /tmp/kv-certs/n1.key -tls-ca /tmp/kv-certs/ca.crt \
//	    -peers n1=127.0.0.1:7001/127.0.0.1:8001,n2=127.0.0.1:7002/127.0.0.1:8002,n3=127.0.0.1:7003/127.0.0.1:8003
//	go run ./examples/kv -id n2 -addr 127.0.0.1:7002 -http 127.0.0.1:8002 -dir /tmp/kv2 \
//	    -tls-cert /tmp/kv-certs/n2.crt -tls-key /tmp/kv-certs/n2.key -tls-ca /tmp/kv-certs/ca.crt \
//	    -peers n1=127.0.0.1:7001/127.0.0.1:8001,n2=127.0.0.1:7002/127.0.0.1:8002,n3=127.0.0.1:7003/127.0.0.1:8003
//	go run ./examples/kv -id n3 -addr 127.0.0.1:7003 -http 127.0.0.1:8003 -dir /tmp/kv3 \
//	    -tls-cert /tmp/kv-certs/n3.crt -tls-key /tmp/kv-certs/n3.key -tls-ca /tmp/kv-certs/ca.crt \
//	    -peers n1=127.0.0.1:7001/127.0.0.1:8001,n2=127.0.0.1:7002/127.0.0.1:8002,n3=127.0.0.1:7003/127.0.0.1:8003
//
// Each prints "kv node n1: raft 127.0.0.1:7001 (mutual TLS raft), ...". A
// node refuses to start if its certificate does not name its -id, does not
// match its key or is not signed by the CA.
//
// Step 4: use it as before:
//
//	curl -X PUT --data-binary hello http://127.0.0.1:8001/kv/greeting
//	curl http://127.0.0.1:8003/kv/greeting
//
// Step 5 (later): to add a fourth node, make its certificate with the same
// CA (the certs command reuses the CA it finds in -out) and start it with
// -join:
//
//	go run ./examples/kv/certs -out /tmp/kv-certs -nodes n4
//	go run ./examples/kv -id n4 -addr 127.0.0.1:7004 -http 127.0.0.1:8004 -dir /tmp/kv4 \
//	    -tls-cert /tmp/kv-certs/n4.crt -tls-key /tmp/kv-certs/n4.key -tls-ca /tmp/kv-certs/ca.crt \
//	    -join 127.0.0.1:8001
//
// The certs command is for development; in production use your own CA,
// with node certificates carrying the URI SAN and both the serverAuth and
// clientAuth extended key usages. TLS covers the raft transport only: the
// HTTP API (and the token in it) is plaintext, so on a real network put it
// behind a TLS-terminating proxy or keep it on a private network.
//
// # Joining and leaving
//
// A node can join a running cluster instead of being listed in -peers:
// start it with -join naming any member's HTTP address (and no -peers).
// The leader records its HTTP address in the replicated state, adds it as
// a learner, waits until it has caught up and promotes it to voter. The
// wait is bounded by -join-timeout (default 30s; give a large state more):
// a node that has not caught up by then, because it is unreachable from
// the leader, say, is removed again, and the join fails with a JSON body
// saying why:
//
//	go run ./examples/kv -id n4 -addr 127.0.0.1:7004 -http 127.0.0.1:8004 -dir /tmp/kv4 -join 127.0.0.1:8001
//	curl -X DELETE -L http://127.0.0.1:8001/members/n4   # and to remove it
//
// With a token (-token, or the KV_TOKEN environment variable, which keeps
// it out of the process list), POST /members and DELETE /members/{id}
// require "Authorization: Bearer <token>" and -join sends it; give every
// node the same token:
//
//	curl -X DELETE --location-trusted -H "Authorization: Bearer $KV_TOKEN" http://127.0.0.1:8001/members/n4
//
// # Observability
//
// Every node serves, next to its API:
//
//	curl http://127.0.0.1:8001/metrics   # Prometheus text: typedraft_* (raft/raftprom), go_*, process_*
//	curl http://127.0.0.1:8001/healthz   # 200 while the node runs, 503 once it has stopped
//	curl http://127.0.0.1:8001/readyz    # 200 once it knows a leader and has applied what it saw committed
//	curl http://127.0.0.1:8001/status    # term, leader, commit, applied, configuration, removed;
//	                                     # on the leader each peer's match, next, lag and last contact
//
// A node not ready answers 503 with the reason in JSON ("no_leader",
// "removed", "not_caught_up", "stopped"). A node prints each leader change
// it sees (from its events, raft.Raft.Observe) on standard output.
// -log-level (trace, debug, info, warn, error; default off, info with -v)
// logs raft, Pebble and the transport to standard error.
//
// # Limits
//
// The HTTP server bounds each client: -http-read-timeout (10s) to read a
// request, body included, -http-write-timeout (15s) to answer it
// (membership changes extend their own), -http-idle-timeout (60s) for a
// keep-alive connection between requests, -http-max-conns (1024)
// connections at once (more wait, unaccepted), and request bodies to
// MaxBodyBytes.
//
// The HTTP API is described on API; every error is JSON in one shape.
// SIGINT or SIGTERM shuts the node(s) down gracefully. A startup error is
// printed as "kv: <cause>" and exits with status 1 (2 for a malformed
// command line).
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
	"strings"
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
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError marks an error in the command line itself (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

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
	// logLevel is -log-level: "" (not given), off, trace, debug, info,
	// warn or error.
	logLevel string

	tlsCert, tlsKey, tlsCA string
	insecurePlaintext      bool
	// token is -token, else $KV_TOKEN.
	token       string
	joinTimeout time.Duration
	limits      httpLimits
}

// parseFlags parses args; getenv looks up KV_TOKEN when -token is absent.
// Usage and flag errors go to out.
func parseFlags(out io.Writer, args []string, getenv func(string) string) (options, error) {
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
	fs.BoolVar(&o.verbose, "v", false, "log raft, storage and transport events to stderr (the same as -log-level info)")
	fs.StringVar(&o.logLevel, "log-level", "", "log raft, storage and transport events to stderr from this level on: trace, debug, info, warn, error or off (default off; info with -v)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "this node's certificate (PEM), naming its node ID; turns on mutual TLS between nodes with -tls-key and -tls-ca")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the private key of -tls-cert (PEM)")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "the CA certificate(s) (PEM) that sign every node's certificate")
	fs.BoolVar(&o.insecurePlaintext, "insecure-plaintext", false, "allow plaintext raft traffic on non-loopback addresses (unauthenticated: any host that reaches the port can claim any node ID; only on a network where every host is trusted)")
	fs.StringVar(&o.token, "token", "", "bearer token that POST and DELETE /members require, and that -join sends (default: $KV_TOKEN)")
	fs.DurationVar(&o.joinTimeout, "join-timeout", DefaultJoinTimeout, "how long the leader waits for a joining node to catch up before removing it again (use the same value on every node)")
	fs.DurationVar(&o.limits.ReadTimeout, "http-read-timeout", defaultHTTPLimits.ReadTimeout, "HTTP: time to read a request, headers and body")
	fs.DurationVar(&o.limits.WriteTimeout, "http-write-timeout", defaultHTTPLimits.WriteTimeout, "HTTP: time to answer a request (membership changes take up to -join-timeout more)")
	fs.DurationVar(&o.limits.IdleTimeout, "http-idle-timeout", defaultHTTPLimits.IdleTimeout, "HTTP: time a keep-alive connection may wait for its next request")
	fs.IntVar(&o.limits.MaxConns, "http-max-conns", defaultHTTPLimits.MaxConns, "HTTP: connections open at once (more wait to be accepted)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.token == "" {
		o.token = getenv("KV_TOKEN")
	}
	for name, d := range map[string]time.Duration{"-join-timeout": o.joinTimeout, "-http-read-timeout": o.limits.ReadTimeout,
		"-http-write-timeout": o.limits.WriteTimeout, "-http-idle-timeout": o.limits.IdleTimeout} {
		if d <= 0 {
			return o, fmt.Errorf("%s must be positive, not %v", name, d)
		}
	}
	if o.limits.MaxConns <= 0 {
		return o, fmt.Errorf("-http-max-conns must be positive, not %d", o.limits.MaxConns)
	}
	if _, err := parseLogLevel(o.logLevel, o.verbose); err != nil {
		return o, err
	}
	return o, nil
}

// parseLogLevel returns the level of -log-level s (off if s is empty,
// info if it is and verbose is set).
func parseLogLevel(s string, verbose bool) (hclog.Level, error) {
	switch s = strings.ToLower(strings.TrimSpace(s)); s {
	case "":
		if verbose {
			return hclog.Info, nil
		}
		return hclog.Off, nil
	case "off":
		return hclog.Off, nil
	case "trace", "debug", "info", "warn", "error":
		return hclog.LevelFromString(s), nil
	}
	return hclog.NoLevel, fmt.Errorf("-log-level %q: want trace, debug, info, warn, error or off", s)
}

// newLogger returns the logger of o's -log-level and -v: silent at off,
// else to stderr. raft, the stores and the transports log through it.
func newLogger(o options) hclog.Logger {
	level, _ := parseLogLevel(o.logLevel, o.verbose) // checked by parseFlags
	if level == hclog.Off {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: "kv", Level: level, Output: os.Stderr})
}

// run is the whole program: it parses args, runs the tour or one node, and
// returns when ctx ends (or, with -tour-only, when the tour is over),
// having stopped everything it started.
func run(ctx context.Context, out io.Writer, args []string) error {
	o, err := parseFlags(out, args, os.Getenv)
	if err != nil {
		return usageError{err}
	}
	logger := newLogger(o)
	if o.id == "" {
		if o.addr != "" || o.http != "" || o.dir != "" || o.peers != "" || o.join != "" || o.tlsCert != "" || o.tlsKey != "" || o.tlsCA != "" || o.insecurePlaintext {
			return errors.New("-addr, -http, -dir, -peers, -join, -tls-* and -insecure-plaintext need -id (without -id kv runs the in-process tour)")
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
	if err := validateNodeID(raft.NodeID(o.id)); err != nil {
		return fmt.Errorf("-id: %w", err)
	}
	tlsConfig, err := loadTLS(o.tlsCert, o.tlsKey, o.tlsCA, raft.NodeID(o.id))
	if err != nil {
		return err
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
	if err := checkSecurity(tlsConfig, o.insecurePlaintext, peers); err != nil {
		return err
	}
	tr, err := tcp.Listen(o.addr, &tcp.Options{LocalID: raft.NodeID(o.id), ClusterID: clusterID, TLS: tlsConfig,
		InsecurePlaintext: o.insecurePlaintext, Logger: logger.Named("tcp")})
	if err != nil {
		return listenError(err)
	}
	ln, err := net.Listen("tcp", o.http)
	if err != nil {
		tr.Close()
		return fmt.Errorf("http listener: %w", err)
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Leader changes, from the node's events, are printed by this
	// goroutine (below); the observer never waits for it.
	leaders := make(chan raft.Event, eventBuffer)
	onEvent := func(_ raft.NodeID, e raft.Event) {
		if e.Kind == raft.EventLeaderChanged || e.Kind == raft.EventRemoved {
			select {
			case leaders <- e:
			default:
			}
		}
	}
	n, err := startNode(startCtx, nodeSpec{ID: raft.NodeID(o.id), Dir: o.dir, Peers: peers, Join: o.join != "", Transport: tr, HTTP: ln, Logger: logger,
		API: APIOptions{Token: o.token, JoinTimeout: o.joinTimeout}, Limits: o.limits, OnEvent: onEvent})
	if err != nil {
		return err
	}
	security := "plaintext raft, loopback only"
	switch {
	case tlsConfig != nil:
		security = "mutual TLS raft"
	case o.insecurePlaintext:
		security = "INSECURE plaintext raft: any host that reaches it can claim any node ID"
	}
	fmt.Fprintf(out, "kv node %s: raft %s (%s), http http://%s, data %s\n", o.id, tr.Addr(), security, n.httpAddr, o.dir)
	if o.join != "" {
		fmt.Fprintf(out, "joining the cluster at %s ...\n", o.join)
		// Time to find a leader, then one whole join on the leader's side.
		joinCtx, cancel := context.WithTimeout(ctx, 30*time.Second+o.joinTimeout+3*changeTimeout)
		err := joinCluster(joinCtx, o.join, joinRequest{ID: raft.NodeID(o.id), RaftAddr: o.addr, HTTPAddr: o.http}, o.token)
		cancel()
		if err != nil {
			stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return errors.Join(err, n.stop(stopCtx))
		}
		fmt.Fprintf(out, "joined: %s is a voter\n", o.id)
	}
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-n.raft.Done():
			fmt.Fprintf(out, "node stopped: %v\n", n.raft.Err())
			break wait
		case e := <-leaders:
			printEvent(out, raft.NodeID(o.id), e)
		}
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

// printEvent prints a leader change or a removal of node id.
func printEvent(out io.Writer, id raft.NodeID, e raft.Event) {
	switch {
	case e.Kind == raft.EventRemoved:
		fmt.Fprintf(out, "removed from the configuration %v at index %d\n", e.Config, e.ConfigIndex)
	case e.Leader == "":
		fmt.Fprintf(out, "no leader known (term %d)\n", e.Term)
	case e.Leader == id:
		fmt.Fprintf(out, "leader: %s, this node (term %d)\n", e.Leader, e.Term)
	default:
		fmt.Fprintf(out, "leader: %s (term %d)\n", e.Leader, e.Term)
	}
}
