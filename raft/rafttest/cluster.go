package rafttest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/typedraft/typedraft/codec"
	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/transport/inmem"
)

// ClusterOptions configures RunCluster. Zero fields take the defaults noted.
type ClusterOptions struct {
	// Seed drives the fault schedule, the clients' commands and the nodes'
	// election timeouts. Goroutine scheduling is real, so a seed does not
	// replay a run exactly; it does replay the same mix.
	Seed uint64
	// Nodes, Clients and Ops as in Options (defaults 3, 5, 500). Nodes are
	// the founding voters.
	Nodes, Clients, Ops int
	// Spares is the number of extra nodes started with empty stores and no
	// Bootstrap, for the membership fault to add (default 2 when
	// Faults.MembershipInterval is set, 0 otherwise). Nodes + Spares is at
	// most 9.
	Spares int
	// TickInterval and ElectionTicks configure every node (defaults 2ms and
	// 10): elections take tens of milliseconds.
	TickInterval  time.Duration
	ElectionTicks int
	// Think is the longest pause a client takes between operations (default
	// two ticks); it spreads the workload over the fault schedule.
	Think time.Duration
	// Configure, if set, adjusts each node's raft.Config before it starts.
	Configure func(*raft.Config)
	// Faults are the faults injected while the clients run. Nil means
	// DefaultClusterFaults().
	Faults *ClusterFaults
	// OpTimeout bounds each client operation; one that runs out is recorded
	// with an unknown outcome (default 20 election timeouts).
	OpTimeout time.Duration
	// SettleTimeout bounds the final phase in which, every fault healed, the
	// cluster must bring every node up to date (default 10s).
	SettleTimeout time.Duration
	// CheckTimeout bounds the linearizability check (default 30s).
	CheckTimeout time.Duration
	// NoSessions turns client sessions off. By default every client but
	// the first proposes in a raft.Session and retries an indeterminate
	// outcome with the same sequence number (on another node, forwarded,
	// when it does not know the leader), so its operations enter the
	// history once, with their real outcome; the first client proposes
	// plainly and records indeterminate outcomes as unknown.
	NoSessions bool
	// NoForward makes the clients' plain proposals never forwarded: a
	// client follows the *NotLeaderError to the leader instead, so it
	// keeps proposing to the node it believes leads (a stale leader cut
	// off by a partition, say). By default three of four are forwarded.
	NoForward bool
}

// ClusterFaults sets what RunCluster injects. Every FaultInterval the
// injector draws one action: heal everything, or (each with its weight) a
// partition, a one-way cut, message loss and delay, an isolated node (a
// pause: the node runs but hears nothing for a while) or a crash and
// restart of one node. The zero value injects nothing.
type ClusterFaults struct {
	// FaultInterval is the time between actions (default 30ms).
	FaultInterval time.Duration
	// Weights of the actions. Heal weighs 1 whenever any other weight is set.
	Partition, OneWay, Lossy, Isolate, Crash float64
	// MaxDrop is the largest drop rate of a Lossy action; MaxDelay its
	// largest delay (with reordering on).
	MaxDrop  float64
	MaxDelay time.Duration
	// Downtime is the longest a crashed node stays down (default 3 election
	// timeouts).
	Downtime time.Duration
	// MembershipInterval, if positive, turns on the membership fault: an
	// operator goroutine, after pauses of up to MembershipInterval, asks
	// the leader through the typed API to add a learner, promote learners,
	// remove a voter (sometimes the leader itself), demote or replace a
	// voter, remove a learner or transfer leadership, keeping the voters
	// within [3, 5] (or the founding count, if outside it). Removed nodes
	// keep running for a while, then are shut down; some are added back
	// with their stores. Every call waits for its outcome, bounded by
	// OpTimeout. It runs concurrently with the actions above.
	MembershipInterval time.Duration
}

// DefaultClusterFaults returns every fault at a moderate rate.
func DefaultClusterFaults() *ClusterFaults {
	return &ClusterFaults{Partition: 1, OneWay: 0.5, Lossy: 1, Isolate: 0.5, Crash: 1, MaxDrop: 0.2, MaxDelay: 5 * time.Millisecond}
}

// ClusterReport summarizes a RunCluster run.
type ClusterReport struct {
	Seed  uint64
	Nodes int
	// Ops is the number of operations in the checked history, Acked those
	// with a known outcome, Unknown those with an indeterminate one; Failed
	// counts operations that definitely did not happen (not leader, dropped)
	// and are left out.
	Ops, Acked, Unknown, Failed int
	// Reads counts typed reads answered (raft.Query), ReadsFailed those
	// that failed (and were retried); Rejected counts commands rejected by
	// Validate, which enter the history as known outcomes.
	Reads, ReadsFailed, Rejected int
	// SessionOps counts operations proposed in a session, SessionRetries
	// the attempts that repeated a sequence number after an indeterminate
	// outcome, and SessionsOpened the sessions the clients opened.
	SessionOps, SessionRetries, SessionsOpened int
	// Faults counts injected actions; Crashes the crash-restarts among them.
	Faults, Crashes int
	// Membership counts what the membership fault did (all zero without it).
	Membership ClusterMembership
	Elapsed    time.Duration
}

// ClusterMembership counts the membership fault's calls in a RunCluster
// run. The kinds count calls that returned success.
type ClusterMembership struct {
	ChangeCounts
	Transfer int
	// Retried counts calls that failed with an error meaning "try later"
	// (a change or transfer in progress, a learner not caught up, not the
	// leader, an indeterminate outcome, a timeout).
	Retried int
	// Retired counts removed nodes shut down for good; Rejoined the
	// successful additions of nodes that had been members before (on their
	// stores, restarted first if retired).
	Retired, Rejoined int
	// MinVoters and MaxVoters are the extremes of the voters of committed
	// configurations sampled on leaders; FinalVoters and FinalLearners
	// describe the settled configuration.
	MinVoters, MaxVoters, FinalVoters, FinalLearners int
}

// String renders the report on one line.
func (r ClusterReport) String() string {
	s := fmt.Sprintf("seed=%d nodes=%d ops=%d acked=%d unknown=%d failed=%d reads=%d failed-reads=%d rejected=%d session-ops=%d session-retries=%d sessions=%d faults=%d crashes=%d elapsed=%v",
		r.Seed, r.Nodes, r.Ops, r.Acked, r.Unknown, r.Failed, r.Reads, r.ReadsFailed, r.Rejected, r.SessionOps, r.SessionRetries, r.SessionsOpened,
		r.Faults, r.Crashes, r.Elapsed.Round(time.Millisecond))
	if m := r.Membership; m != (ClusterMembership{}) {
		s += fmt.Sprintf(" membership[add=%d promote=%d remove=%d remove-leader=%d demote=%d replace=%d remove-learner=%d transfer=%d retried=%d retired=%d rejoined=%d voters=%d..%d final=%d+%d]",
			m.AddLearner, m.Promote, m.RemoveVoter, m.RemoveLeader, m.Demote, m.Replace, m.RemoveLearner, m.Transfer,
			m.Retried, m.Retired, m.Rejoined, m.MinVoters, m.MaxVoters, m.FinalVoters, m.FinalLearners)
	}
	return s
}

// RunCluster runs w on a real cluster of raft.Raft[C, R, E] nodes — their
// driver and apply goroutines, typed futures and group commit — over
// transport/inmem and store/memory, with faults injected in real time, and
// checks the client history for linearizability with the same model as Run.
// It is what catches a future resolved with the wrong result, which the
// pure simulator cannot see.
//
// With Workload.IsRead and Workload.Read set, clients send read-only
// commands as typed reads (raft.Query, ReadLinearizable or ReadLease, on
// the node they believe leads or on another member) as well as through the
// log, and a read's answer is a known outcome; a read that fails changed
// nothing. A rejection by the state machine's Validate (a Result with
// Index 0) is a known outcome too: it must be linearizable.
//
// Client outcomes map onto the history as follows: a Result is a known
// outcome (including the application's own E); an error matching
// raft.ErrIndeterminate (leadership lost, shutdown, timeout) is an unknown
// outcome; any other error (not leader, dropped, too many proposals) means
// the command did not happen. Once the cluster has settled, an unknown
// outcome whose entry is not in the settled log is dropped, and one whose
// entry is there gets the output the state machine returned for it (it
// stays open to the end of the history: its client never saw it). Crashes are clean stops and restarts on the
// same store (the memory store loses nothing); crashes that lose unsynced
// writes are the pure simulator's job.
//
// Checks: at most one leader per term and no node's term, commit or applied
// going backwards (sampled), the cluster settling once healed (one leader,
// a committed configuration that is not joint, every member of it up to
// date), every acknowledged operation in the log of and applied on every
// member of that configuration, and linearizability. With the membership
// fault, also: every call fails only with an error meaning "try later",
// committed configurations keep the voters within the operator's bounds,
// and no node shut down after a committed configuration removed it is a
// member in the end. A failed check returns a *Failure (with no trace).
// ctx bounds the whole run; every goroutine RunCluster starts has exited
// when it returns.
func RunCluster[C any, R any, E raft.ErrorType](ctx context.Context, opts ClusterOptions, w Workload[C, R, E]) (ClusterReport, error) {
	a, err := w.app()
	if err != nil {
		return ClusterReport{}, err
	}
	o, err := opts.withDefaults()
	if err != nil {
		return ClusterReport{}, err
	}
	cd := w.Codec
	if cd == nil {
		cd = codec.Msgpack()
	}
	c := &cluster[C, R, E]{o: o, w: w, app: a, codec: cd, start: time.Now()}
	c.rng = rand.New(rand.NewPCG(o.Seed, 0xc1a57e5))
	return c.run(ctx)
}

func (o ClusterOptions) withDefaults() (ClusterOptions, error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Clients == 0 {
		o.Clients = 5
	}
	if o.Ops == 0 {
		o.Ops = 500
	}
	if o.TickInterval == 0 {
		o.TickInterval = 2 * time.Millisecond
	}
	if o.ElectionTicks == 0 {
		o.ElectionTicks = 10
	}
	if o.Think == 0 {
		o.Think = 2 * o.TickInterval
	}
	if o.Spares == 0 && o.Faults != nil && o.Faults.MembershipInterval > 0 {
		o.Spares = min(2, maxNodes-o.Nodes)
	}
	switch {
	case o.Nodes < 1 || o.Nodes > maxNodes:
		return o, fmt.Errorf("%w: Nodes = %d, want 1..%d", ErrInvalidOptions, o.Nodes, maxNodes)
	case o.Spares < 0 || o.Nodes+o.Spares > maxNodes:
		return o, fmt.Errorf("%w: Spares = %d, want 0..%d", ErrInvalidOptions, o.Spares, maxNodes-o.Nodes)
	case o.Clients < 1 || o.Clients > 1000:
		return o, fmt.Errorf("%w: Clients = %d, want 1..1000", ErrInvalidOptions, o.Clients)
	case o.Ops < 1 || o.Ops > 10_000_000:
		return o, fmt.Errorf("%w: Ops = %d, want 1..10000000", ErrInvalidOptions, o.Ops)
	case o.TickInterval < 0 || o.ElectionTicks < 2:
		return o, fmt.Errorf("%w: TickInterval must be positive and ElectionTicks at least 2", ErrInvalidOptions)
	case o.OpTimeout < 0 || o.SettleTimeout < 0 || o.CheckTimeout < 0 || o.Think < 0:
		return o, fmt.Errorf("%w: OpTimeout, SettleTimeout, CheckTimeout and Think must not be negative", ErrInvalidOptions)
	}
	et := o.TickInterval * time.Duration(o.ElectionTicks)
	if o.OpTimeout == 0 {
		o.OpTimeout = 20 * et
	}
	if o.SettleTimeout == 0 {
		o.SettleTimeout = 10 * time.Second
	}
	if o.CheckTimeout == 0 {
		o.CheckTimeout = 30 * time.Second
	}
	if o.Faults == nil {
		o.Faults = DefaultClusterFaults()
	}
	f := *o.Faults
	for _, p := range []float64{f.Partition, f.OneWay, f.Lossy, f.Isolate, f.Crash} {
		if !(p >= 0 && p <= 1e6) {
			return o, fmt.Errorf("%w: ClusterFaults weights must be in [0, 1e6]", ErrInvalidOptions)
		}
	}
	if !(f.MaxDrop >= 0 && f.MaxDrop < 0.5) || f.MaxDelay < 0 || f.FaultInterval < 0 || f.Downtime < 0 || f.MembershipInterval < 0 {
		return o, fmt.Errorf("%w: ClusterFaults.MaxDrop must be in [0, 0.5) and durations not negative", ErrInvalidOptions)
	}
	if f.FaultInterval == 0 {
		f.FaultInterval = 30 * time.Millisecond
	}
	if f.Downtime == 0 {
		f.Downtime = 3 * et
	}
	o.Faults = &f
	return o, nil
}

// liveNode is one node of a RunCluster cluster: a founding voter or a
// spare.
type liveNode[C any, R any, E raft.ErrorType] struct {
	id    raft.NodeID
	store *memory.Store
	// life serializes starting, stopping and retiring the node (the crash
	// fault, the membership fault and settle all do).
	life sync.Mutex
	// The fields below are guarded by cluster.mu.
	tr   *inmem.Transport
	node *raft.Raft[C, R, E]
	// sm is the current incarnation's state machine, which reads run on
	// (through the node's Read, on its apply goroutine).
	sm raft.StateMachine[C, R, E]
	// retired: shut down for good after leaving the configuration; no
	// crash restarts it.
	retired bool
	// Sampled high-water marks of the current incarnation.
	term, commit, applied uint64
}

type cluster[C any, R any, E raft.ErrorType] struct {
	o     ClusterOptions
	w     Workload[C, R, E]
	app   app
	codec codec.Codec
	start time.Time
	net   *inmem.Network
	ids   []raft.NodeID

	mu    sync.Mutex // guards everything below
	rng   *rand.Rand
	nodes []*liveNode[C, R, E]
	// leaders maps a term to the node seen leading it.
	leaders map[uint64]raft.NodeID
	hist    []porcupine.Operation
	acked   []raft.Result[R, E]
	// unknown holds the futures of operations with unknown outcomes, by
	// history position, to prune those that never entered the log.
	unknown map[int]*raft.Future[R, E]
	rep     ClusterReport
	fail    *Failure
	// applied records what every node applies; final is the settled
	// cluster's commit index and members the nodes of its configuration.
	applied *appliedLog
	final   uint64
	members []*liveNode[C, R, E]
	// minVoters and maxVoters bound the voters the membership fault keeps.
	minVoters, maxVoters int
}

func (c *cluster[C, R, E]) failf(invariant, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail == nil {
		c.fail = &Failure{Seed: c.o.Seed, Invariant: invariant, Detail: fmt.Sprintf(format, args...),
			Setup: fmt.Sprintf("RunCluster nodes=%d spares=%d clients=%d tick=%v election=%d faults=%+v",
				c.o.Nodes, c.o.Spares, c.o.Clients, c.o.TickInterval, c.o.ElectionTicks, *c.o.Faults)}
	}
}

func (c *cluster[C, R, E]) failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fail != nil
}

func (c *cluster[C, R, E]) now() int64 { return int64(time.Since(c.start)) }

func (c *cluster[C, R, E]) run(ctx context.Context) (ClusterReport, error) {
	c.net = inmem.NewNetwork(int64(c.o.Seed))
	c.leaders = map[uint64]raft.NodeID{}
	c.unknown = map[int]*raft.Future[R, E]{}
	c.rep = ClusterReport{Seed: c.o.Seed, Nodes: c.o.Nodes}
	c.applied = &appliedLog{codec: c.codec, cmds: map[uint64][]byte{}, outs: map[uint64]any{}, fail: c.failf}
	c.minVoters, c.maxVoters = min(3, c.o.Nodes), min(max(5, c.o.Nodes), c.o.Nodes+c.o.Spares)
	var servers []raft.Server
	for i := 0; i < c.o.Nodes+c.o.Spares; i++ {
		id := raft.NodeID(fmt.Sprintf("n%d", i+1))
		c.ids = append(c.ids, id)
		if i < c.o.Nodes {
			servers = append(servers, raft.Server{ID: id, Addr: string(id)})
		}
	}
	defer c.shutdownAll()
	for i, id := range c.ids {
		n := &liveNode[C, R, E]{id: id, store: memory.New()}
		// Both write paths: some nodes save on their writer goroutine, as
		// on a store that fsyncs, the others inline (raft.InlineSaver),
		// which ones depending on the seed.
		n.store.SetSavesInline((uint64(i)+uint64(c.o.Seed))%2 == 0)
		c.nodes = append(c.nodes, n)
		if err := c.startNode(n); err != nil {
			return c.rep, err
		}
		// Spares start empty: the membership fault adds them.
		if i >= c.o.Nodes {
			continue
		}
		if err := n.node.Bootstrap(ctx, servers); err != nil {
			return c.rep, fmt.Errorf("rafttest: bootstrap %s: %w", id, err)
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); c.injectFaults(runCtx) }()
	go func() { defer bg.Done(); c.watch(runCtx) }()
	if c.o.Faults.MembershipInterval > 0 {
		bg.Add(1)
		go func() { defer bg.Done(); c.operate(runCtx) }()
	}
	var clients sync.WaitGroup
	work := make(chan int, c.o.Ops)
	for i := 0; i < c.o.Ops; i++ {
		work <- i
	}
	close(work)
	for i := 0; i < c.o.Clients; i++ {
		clients.Add(1)
		go func(id int) { defer clients.Done(); c.client(runCtx, id, work) }(i)
	}
	clients.Wait()
	stop()
	bg.Wait()

	if !c.failed() {
		c.settle(ctx)
	}
	if !c.failed() {
		c.verify()
	}
	c.shutdownAll()
	c.rep.Elapsed = time.Since(c.start)
	if f := c.fail; f != nil {
		return c.rep, f
	}
	c.checkHistory()
	if c.fail != nil {
		return c.rep, c.fail
	}
	return c.rep, nil
}

// startNode starts n on its store with a fresh state machine and transport.
// The caller holds n.life (or no other goroutine runs yet) and n is down.
func (c *cluster[C, R, E]) startNode(n *liveNode[C, R, E]) error {
	c.mu.Lock()
	seed := c.rng.Uint64()
	c.mu.Unlock()
	cfg := raft.Config{ID: n.id, TickInterval: c.o.TickInterval, ElectionTicks: c.o.ElectionTicks, HeartbeatTicks: 2,
		Codec: c.codec, Seed: seed}
	if c.o.Configure != nil {
		c.o.Configure(&cfg)
	}
	tr := c.net.Join(n.id)
	sm := c.w.NewStateMachine()
	node, err := raft.New(cfg, recorder(sm, n.id, c.applied), n.store, tr)
	if err != nil {
		_ = tr.Close()
		return fmt.Errorf("rafttest: start %s: %w", n.id, err)
	}
	c.mu.Lock()
	n.tr, n.node, n.sm = tr, node, sm
	n.term, n.commit, n.applied = 0, 0, 0
	c.mu.Unlock()
	return nil
}

// stopNode shuts n down and closes its transport. The caller holds n.life
// (or every goroutine that starts nodes has exited).
func (c *cluster[C, R, E]) stopNode(n *liveNode[C, R, E]) {
	c.mu.Lock()
	node, tr := n.node, n.tr
	n.node, n.tr = nil, nil
	c.mu.Unlock()
	if node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := node.Shutdown(ctx); err != nil {
		c.failf(InvariantLiveness, "%s did not shut down: %v", n.id, err)
	}
	_ = tr.Close()
}

func (c *cluster[C, R, E]) shutdownAll() {
	for _, n := range c.nodes {
		n.life.Lock()
		c.stopNode(n)
		n.life.Unlock()
	}
}

// watch samples every node's status and checks election safety and
// monotonicity until ctx ends.
func (c *cluster[C, R, E]) watch(ctx context.Context) {
	t := time.NewTicker(c.o.TickInterval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.sample()
		}
	}
}

func (c *cluster[C, R, E]) sample() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.node == nil {
			continue
		}
		st := n.node.Status()
		if st.Term < n.term || st.Commit < n.commit || st.Applied < n.applied {
			c.setFail(InvariantMonotonic, "%s went from term %d commit %d applied %d to term %d commit %d applied %d",
				n.id, n.term, n.commit, n.applied, st.Term, st.Commit, st.Applied)
		}
		n.term, n.commit, n.applied = st.Term, st.Commit, st.Applied
		if st.State == raft.Leader {
			if l, ok := c.leaders[st.Term]; ok && l != n.id {
				c.setFail(InvariantElectionSafety, "%s and %s both lead term %d", l, n.id, st.Term)
			}
			c.leaders[st.Term] = n.id
			if c.o.Faults.MembershipInterval > 0 {
				c.sampleConfig(st)
			}
		}
	}
}

// setFail is failf with c.mu held.
func (c *cluster[C, R, E]) setFail(invariant, format string, args ...any) {
	if c.fail == nil {
		c.fail = &Failure{Seed: c.o.Seed, Invariant: invariant, Detail: fmt.Sprintf(format, args...)}
	}
}
