package rafttest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/typedraft/typedraft/raft"
)

// Run simulates one cluster of opts.Nodes raft.Cores replicating w's state
// machine while clients send w's commands and the faults of opts.Faults
// strike, all chosen by opts.Seed. It checks the safety invariants (the
// Invariant* constants) after every step, heals every fault at the end and
// checks that the cluster settles with every acknowledged write in place,
// then checks the client history for linearizability against w.Model.
//
// Run is deterministic: the same Seed, Options and Workload give the same
// run, event for event (Report.TraceHash), provided w draws its randomness
// only from the rng it is handed. It returns a *Failure (test with
// errors.As) when a check fails, or an error matching ErrInvalidOptions.
//
// Concurrency: Run uses no goroutines of its own other than porcupine's
// checker; independent runs may proceed in parallel.
func Run[C any, R any, E raft.ErrorType](opts Options, w Workload[C, R, E]) (Report, error) {
	a, err := w.app()
	if err != nil {
		return Report{}, err
	}
	o, err := opts.withDefaults()
	if err != nil {
		return Report{}, err
	}
	s := newSim(o, a)
	return s.run()
}

// readyNow is the probability that a node carries out its Ready right after
// it was stepped; otherwise it may take more input first (batching).
const readyNow = 0.75

// maxStepsPerTick bounds the scheduling steps within one tick.
const maxStepsPerTick = 20000

type cand struct {
	kind eventKind
	node int
	// link (for a link delivery) or stray index; -1 if unused.
	link, stray int
}

// sim is one simulated run. It is owned by one goroutine.
type sim struct {
	o Options
	f Faults
	// f0 is the fault mix of the workload phase (f is cleared to settle).
	f0    Faults
	app   app
	rng   *rand.Rand
	cfg   raft.CoreConfig
	ids   []raft.NodeID
	index map[raft.NodeID]int
	nodes []*node
	net   *network
	tr    *tracer
	g     *ghost
	wl    *workload
	step  int64
	tick  int
	fail  *Failure
	rep   Report
	cands []cand
	// settling: faults are off and clients submit nothing new.
	settling bool
	// bootConf is the cluster's configuration (written at index 1).
	bootConf raft.Configuration
	// snapInterval and trailing are the effective snapshot settings.
	snapInterval, trailing int
	// minVoters and maxVoters bound the voters the membership fault leaves.
	minVoters, maxVoters int
	// settleStart is the tick at which faults stopped; recovered is set
	// once exactly one node led with a non-joint configuration after it.
	settleStart int
	recovered   bool
	// members are the members of the configuration the cluster settled in.
	members []raft.NodeID
	// readSeq numbers read requests (reads.go).
	readSeq uint64
}

func newSim(o Options, a app) *sim {
	s := &sim{o: o, f: *o.Faults, app: a, cfg: o.Core, index: map[raft.NodeID]int{}}
	s.rng = rand.New(rand.NewPCG(o.Seed, 0x5eed5eed5eed5eed))
	s.snapInterval, s.trailing = o.SnapshotInterval, o.TrailingLogs
	if o.Vary {
		s.vary()
	}
	s.f0 = s.f
	for i := 0; i < o.Pool; i++ {
		id := raft.NodeID(fmt.Sprintf("n%d", i+1))
		s.ids = append(s.ids, id)
		s.index[id] = i
	}
	s.minVoters, s.maxVoters = min(3, o.Nodes), min(max(5, o.Nodes), o.Pool)
	s.net = newNetwork(o.Pool)
	s.tr = newTracer(o.TraceTail, s.ids, o.Trace)
	s.g = newGhost()
	s.wl = newWorkload(o.Clients, s.rng, o.Nodes)
	s.rep = Report{Seed: o.Seed, Nodes: o.Nodes}
	return s
}

// vary scales the fault rates and picks core knobs at random (Options.Vary).
func (s *sim) vary() {
	f := &s.f
	scale := func(p *float64, limit float64) { *p = min(*p*2*s.rng.Float64(), limit) }
	scale(&f.Drop, 0.45)
	scale(&f.Duplicate, 1)
	scale(&f.Reorder, 1)
	scale(&f.Partition, 1)
	scale(&f.Crash, 1)
	scale(&f.CrashLeader, 1)
	scale(&f.RestartAll, 1)
	scale(&f.Pause, 1)
	scale(&f.SlowDisk, 1)
	scale(&f.Burst, 1)
	scale(&f.Membership, 1)
	scale(&f.Transfer, 1)
	scale(&f.CrashSnapshot, 1)
	c := &s.cfg
	if !c.DisablePreVote {
		c.DisablePreVote = s.rng.IntN(4) == 0
	}
	if !c.DisableCheckQuorum {
		c.DisableCheckQuorum = s.rng.IntN(4) == 0
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1 + s.rng.IntN(max(1, min(3, c.ElectionTicks/3)))
	}
	if c.MaxMsgEntries == 0 {
		c.MaxMsgEntries = []int{1, 2, 3, 8, 64, 4096}[s.rng.IntN(6)]
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = []int{1, 2, 4, 16, 256}[s.rng.IntN(5)]
	}
	if s.snapInterval == 0 {
		s.snapInterval = []int{0, 0, 10, 30, 100}[s.rng.IntN(5)]
	}
	if s.trailing == 0 {
		s.trailing = []int{0, 2, 10, 50}[s.rng.IntN(4)]
	}
}

func (s *sim) failf(invariant, format string, args ...any) {
	if s.fail != nil || s.o.skip[invariant] {
		return
	}
	s.fail = &Failure{
		Seed: s.o.Seed, Step: s.step, Tick: s.tick, Invariant: invariant,
		Detail: fmt.Sprintf(format, args...), Trace: s.tr.tail(), Setup: s.setup(),
	}
}

// setup describes the effective settings of the run.
func (s *sim) setup() string {
	c, f := s.cfg, s.f0
	return fmt.Sprintf("nodes=%d pool=%d clients=%d election=%d heartbeat=%d prevote=%v checkquorum=%v maxmsgentries=%d maxinflight=%d snapshot=%d/%d reportloss=%v "+
		"drop=%.3f dup=%.3f delay=%d reorder=%.3f/%d partition=%.4f/%d oneway=%.2f crash=%.5f/%d crashleader=%.4f restartall=%.5f pause=%.4f/%d slowdisk=%.3f/%d burst=%.3f "+
		"membership=%.4f transfer=%.4f crashsnapshot=%.3f",
		s.o.Nodes, s.o.Pool, s.o.Clients, c.ElectionTicks, c.HeartbeatTicks, !c.DisablePreVote, !c.DisableCheckQuorum, c.MaxMsgEntries, c.MaxInflight,
		s.snapInterval, s.trailing, s.o.ReportLoss,
		f.Drop, f.Duplicate, f.MaxDelay, f.Reorder, f.ReorderTicks, f.Partition, f.PartitionTicks, f.OneWay, f.Crash, f.CrashTicks, f.CrashLeader,
		f.RestartAll, f.Pause, f.PauseTicks, f.SlowDisk, f.SlowDiskTicks, f.Burst, f.Membership, f.Transfer, f.CrashSnapshot)
}

func (s *sim) record(e event) {
	s.step++
	e.step, e.tick = s.step, s.tick
	s.tr.record(e)
}

func (s *sim) run() (Report, error) {
	s.boot()
	for s.fail == nil && !s.wl.done(s.o.Ops) && s.tick < s.o.MaxTicks {
		s.beginTick()
		s.drain()
	}
	if s.fail == nil {
		s.settle()
	}
	if s.fail == nil {
		s.verifyAcked()
	}
	if s.fail == nil {
		s.pruneUnknown()
	}
	if s.fail == nil {
		s.checkHistory()
	}
	s.rep.Steps, s.rep.Ticks, s.rep.TraceHash = s.step, s.tick, s.tr.h.Sum64()
	s.rep.Submitted = s.wl.submitted
	if s.fail != nil {
		return s.rep, s.fail
	}
	return s.rep, nil
}

// boot writes the bootstrap configuration entry and term 1 to the disks of
// the first Nodes nodes and starts every node of the pool: the spares start
// with empty storage and no configuration, as a process does before it is
// added to a cluster.
func (s *sim) boot() {
	var servers []raft.Server
	for _, id := range s.ids[:s.o.Nodes] {
		servers = append(servers, raft.Server{ID: id, Addr: string(id), Suffrage: raft.Voter})
	}
	s.bootConf = raft.Configuration{Servers: servers}
	boot := raft.Entry{Index: 1, Term: 1, Type: raft.EntryConfig, Data: raft.EncodeConfiguration(s.bootConf)}
	for i, id := range s.ids {
		d := &disk{}
		n := &node{idx: i, id: id, disk: d, rate: 1}
		if i < s.o.Nodes {
			if err := d.save(raft.HardState{Term: 1}, []raft.Entry{boot}); err != nil {
				s.failf(InvariantCoreError, "bootstrap %s: %v", id, err)
				return
			}
			n.everMember = true
		}
		s.nodes = append(s.nodes, n)
	}
	// Clock rates spread evenly over [1-ClockDrift, 1+ClockDrift], dealt
	// to the nodes at random: the slowest and the fastest clock are always
	// there.
	if dr := s.f.ClockDrift; dr > 0 && len(s.nodes) > 1 {
		for k, i := range s.rng.Perm(len(s.nodes)) {
			s.nodes[i].rate = 1 - dr + 2*dr*float64(k)/float64(len(s.nodes)-1)
		}
	}
	for _, n := range s.nodes {
		s.restart(n)
	}
	s.g.entries[entryKey{1, 1}] = s.nodes[0].disk.prefixHash(1)
}

// beginTick advances the virtual clock: scheduled restarts, resumes and
// heals, new faults, client activity, then one tick for every node.
func (s *sim) beginTick() {
	s.tick++
	s.record(event{kind: evTick})
	due := make([]int, len(s.nodes))
	for i, n := range s.nodes {
		due[i] = s.tickNode(n)
		if !n.up && !n.off && n.downUntil <= s.tick {
			s.restart(n)
		}
		if n.up && n.pausedUntil == s.tick {
			s.record(event{kind: evResume, node: n.idx})
			// The driver measures the time it did not see before it answers
			// anything: a lease is never trusted across the pause.
			if n.phase == phaseIdle {
				s.syncClock(n)
			}
		}
	}
	s.expireReads()
	if s.net.healAt != 0 && s.net.healAt <= s.tick {
		s.net.heal()
		s.record(event{kind: evHeal, node: -1})
	}
	if !s.settling {
		s.injectTickFaults()
	}
	s.clientTick()
	start := s.rng.IntN(len(s.nodes))
	for k := range s.nodes {
		n := s.nodes[(start+k)%len(s.nodes)]
		if s.fail != nil {
			return
		}
		if !n.canStep(s.tick) {
			continue
		}
		for k := 0; k < due[n.idx]; k++ {
			n.core.Tick()
		}
		s.syncClock(n)
		n.dirty = true
		s.maybeReadyNow(n)
		s.checkAll()
	}
}

// drain runs scheduling steps until nothing more can happen in this tick.
func (s *sim) drain() {
	for iter := 0; iter < maxStepsPerTick && s.fail == nil; iter++ {
		s.collect()
		if len(s.cands) == 0 {
			return
		}
		if s.f.Crash > 0 && s.rng.Float64() < s.f.Crash {
			s.crashSome()
			continue
		}
		c := s.cands[s.rng.IntN(len(s.cands))]
		s.exec(c)
		s.checkAll()
	}
}

// collect lists every step that can run now.
func (s *sim) collect() {
	s.cands = s.cands[:0]
	for _, n := range s.nodes {
		if !n.up || n.paused(s.tick) {
			continue
		}
		switch n.phase {
		case phaseIdle:
			if n.dirty {
				s.cands = append(s.cands, cand{kind: evReady, node: n.idx, link: -1, stray: -1})
			}
			if n.snapPending != nil {
				s.cands = append(s.cands, cand{kind: evSnapCreated, node: n.idx, link: -1, stray: -1})
			}
		case phaseSave:
			if n.saveAt <= s.tick {
				s.cands = append(s.cands, cand{kind: evSave, node: n.idx, link: -1, stray: -1})
			}
		case phaseAfter:
			s.cands = append(s.cands, cand{kind: evAfter, node: n.idx, link: -1, stray: -1})
		}
		if n.write != nil && n.phase == phaseIdle && n.write.doneAt <= s.tick {
			s.cands = append(s.cands, cand{kind: evWriteDone, node: n.idx, link: -1, stray: -1})
		}
	}
	for k, q := range s.net.links {
		if len(q) > 0 && q[0].at <= s.tick && s.nodes[q[0].to].canStep(s.tick) {
			s.cands = append(s.cands, cand{kind: evDeliver, node: q[0].to, link: k, stray: -1})
		}
	}
	for i, e := range s.net.strays {
		if e.at <= s.tick && s.nodes[e.to].canStep(s.tick) {
			s.cands = append(s.cands, cand{kind: evDeliver, node: e.to, link: -1, stray: i})
		}
	}
}

func (s *sim) exec(c cand) {
	n := s.nodes[c.node]
	switch c.kind {
	case evReady:
		s.takeReady(n)
	case evSave:
		s.save(n)
	case evAfter:
		s.after(n)
	case evWriteDone:
		s.finishWrite(n)
	case evSnapCreated:
		s.snapshotCreated(n)
	case evDeliver:
		var e envelope
		if c.link >= 0 {
			e = s.net.popLink(c.link)
		} else {
			e = s.net.popStray(c.stray)
		}
		s.deliver(e)
	}
}

func (s *sim) maybeReadyNow(n *node) {
	if s.rng.Float64() < readyNow {
		s.takeReady(n)
	}
}

// sortByDestination stably sorts msgs by their destination.
func sortByDestination(msgs []raft.Message) {
	slices.SortStableFunc(msgs, func(a, b raft.Message) int { return strings.Compare(string(a.To), string(b.To)) })
}
