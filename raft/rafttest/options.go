package rafttest

import (
	"errors"
	"fmt"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// ErrInvalidOptions is matched (errors.Is) by the error Run returns for
// invalid Options or an incomplete Workload; the message names the field.
var ErrInvalidOptions = errors.New("rafttest: invalid options")

// Options configures one simulated run. Zero fields take the defaults
// noted, so the zero Options run seed 0 on three nodes with DefaultFaults.
type Options struct {
	// Seed drives every choice the simulator makes: which event runs next,
	// which message is dropped, which node crashes, what the clients send and
	// each node's election timeouts. The same Seed and Options give the same
	// run, bit for bit.
	Seed uint64
	// Nodes is the cluster size at the start: every node is a voter of the
	// bootstrap configuration (default 3, at most 9).
	Nodes int
	// Pool is the number of node IDs the membership fault may use: the
	// Nodes initial voters plus Pool-Nodes spare nodes, which start with
	// empty storage and no configuration and join only when a leader adds
	// them as learners (default 7, or Nodes if larger, when
	// Faults.Membership is non-zero; Nodes otherwise; at most 9).
	Pool int
	// Clients is the number of concurrent clients; each has at most one
	// operation outstanding (default 5).
	Clients int
	// Ops is the number of client operations the run submits, counting every
	// operation a leader accepted whatever its outcome (default 1000).
	Ops int
	// Core is the template configuration of every node; ID is set per node.
	// Times are in ticks. Zero fields take raft.CoreConfig's defaults.
	Core raft.CoreConfig
	// Faults says which faults are injected and how often. Nil means
	// DefaultFaults(); NoFaults() injects none.
	Faults *Faults
	// Vary lets the seed also vary the run's shape: each fault rate is scaled
	// by a random factor in [0, 2], and pre-vote, check-quorum, the heartbeat
	// interval, the append size, the in-flight window and the snapshot
	// interval and trailing log are chosen at random (non-zero numbers and
	// disabled features set explicitly are kept). A soak with Vary covers far more
	// interleavings than one fixed mix.
	Vary bool
	// SnapshotInterval makes each node snapshot its state machine (if it
	// implements raft.Snapshotter) once it has applied that many entries
	// since its last snapshot, then compact its log keeping TrailingLogs
	// entries behind the snapshot. Zero or negative: no snapshots (with
	// Vary, zero lets the seed choose; -1 rules snapshots out).
	SnapshotInterval int
	TrailingLogs     int
	// ReportLoss makes the simulated transport tell a sender's core about
	// lost messages (Core.ReportUnreachable) before its next batch: every
	// message dropped by a fault or a partition, and every peer that crashed
	// (its connections break). This is what a TCP transport sees when its
	// queue overflows or a connection resets. When false, every loss is
	// silent, as on a lossy datagram network, and the core must recover from
	// timeouts alone.
	ReportLoss bool
	// ClientTimeout is how many ticks a client waits for an outcome before it
	// gives up and records the operation as unknown (default
	// 3*ElectionTicks).
	ClientTimeout int
	// MaxTicks bounds the workload phase: if the clients have not submitted
	// Ops operations by then, the run stops submitting and settles (default
	// 40*Ops).
	MaxTicks int
	// SettleTicks bounds the final phase, after every fault is healed, in
	// which the cluster must elect a leader and bring every member up to
	// date (default 60*ElectionTicks). Exceeding it is a Liveness failure.
	SettleTicks int
	// RecoverTicks bounds the time, from the moment faults stop, until
	// exactly one node leads and its configuration is not joint (default
	// 10*ElectionTicks). Exceeding it is a Recover failure.
	RecoverTicks int
	// CheckTimeout bounds the linearizability check; running out counts as a
	// failure, never as a pass (default 30s).
	CheckTimeout time.Duration
	// TraceTail is how many of the last events a Failure carries (default
	// 200).
	TraceTail int
	// Trace, if set, receives every event as one line, as it happens.
	Trace func(line string)

	// skip lists invariants not to fail on (tests of the harness only).
	skip map[string]bool
	// readSkipsApply and noClockSync make the simulated driver serve a
	// confirmed read without waiting for its index to be applied, and
	// never tell the core the time it did not see (teeth of the harness).
	readSkipsApply, noClockSync bool
}

// Faults sets how often the simulator injects each fault. Probabilities are
// in [0, 1]; durations are in ticks. The zero value injects nothing.
type Faults struct {
	// Drop is the probability that a message is lost.
	Drop float64
	// Duplicate is the probability that a message is delivered twice (the
	// copy takes its own, possibly long, delay).
	Duplicate float64
	// MaxDelay is the largest ordinary delay of a message. Ordinary delays
	// keep each link first-in first-out.
	MaxDelay int
	// Reorder is the probability that a message leaves its link's order and
	// is delayed by up to ReorderTicks, overtaken by later messages.
	Reorder      float64
	ReorderTicks int

	// Partition is the probability, per tick, that a partition starts while
	// none is in force. It isolates a minority (holding the leader or not,
	// chosen at random) from the majority for up to PartitionTicks;
	// OneWay is the fraction of partitions that cut only one direction.
	Partition      float64
	PartitionTicks int
	OneWay         float64
	// PartialPartition is the fraction of partitions that cut only the
	// link between the leader and one other member, both ways: that node
	// stops hearing the leader but still reaches every other node.
	PartialPartition float64

	// Crash is the probability, per scheduling step, that a running node
	// crashes, losing everything it had not saved; it is often chosen while
	// the node has sent a batch's messages but not saved the batch yet. It
	// restarts from its durable state after up to CrashTicks.
	Crash      float64
	CrashTicks int
	// CrashLeader is the probability, per tick, that the current leader
	// crashes (restarting after up to CrashTicks). High rates make the
	// leader churn of the Raft paper's Figure 8.
	CrashLeader float64
	// RestartAll is the probability, per tick, that every node crashes at
	// once; they restart after up to CrashTicks.
	RestartAll float64

	// Pause is the probability, per tick, that a running node is paused (no
	// ticks, no delivery, no disk) for between one and two election timeouts
	// plus up to PauseTicks.
	Pause      float64
	PauseTicks int

	// SlowDisk is the probability that a save is delayed by up to
	// SlowDiskTicks, leaving a window in which the batch's early messages
	// are out but the batch is not durable.
	SlowDisk      float64
	SlowDiskTicks int

	// Burst is the probability, per tick, that every idle client submits at
	// once, so one leader receives a burst of proposals in the same step.
	Burst float64

	// Membership is the probability, per tick, that the leader is asked to
	// change the membership (Core.ProposeMembership): add a spare or a
	// removed node as a learner, promote learners, remove or demote voters
	// (the leader among them), replace a voter by a learner in one joint
	// change, remove a learner, or shut down a node that is no longer a
	// member. The number of voters stays between min(3, Nodes) and
	// max(5, Nodes). Refused changes (another one pending, a learner not
	// caught up) are retried at a later tick.
	Membership float64
	// Transfer is the probability, per tick, that the leader is asked to
	// hand leadership to another voter (Core.TransferLeadership).
	Transfer float64
	// CrashSnapshot is the probability that a node crashes in the middle of
	// taking a snapshot (before or after the snapshot is stored, before the
	// core learns of it and the log is compacted) or of installing one sent
	// by the leader (after it is stored, after the core accepted it, or
	// after the log was compacted but before the batch's hard state and
	// entries are saved). It is drawn once per snapshot taken and once per
	// window of every install.
	CrashSnapshot float64

	// ClockDrift makes each node's clock run at its own rate, drawn once
	// per node in [1-ClockDrift, 1+ClockDrift] ticks per simulated tick.
	// Keep (1+ClockDrift)/(1-ClockDrift) within 1 + Core.MaxClockDrift, the
	// bound lease reads assume; beyond it, lease reads are expected to go
	// wrong (a tooth shows the simulator catches that).
	ClockDrift float64

	// Rogue is the probability, per tick, that a node outside the cluster
	// sends a forged message of a random kind to a random member (see
	// InvariantRogue).
	Rogue float64
}

// NoFaults returns a Faults that injects nothing.
func NoFaults() *Faults { return &Faults{} }

// DefaultFaults returns the fault mix of the package's default soak: every
// fault enabled at a rate that still lets the workload make progress.
func DefaultFaults() *Faults {
	return &Faults{
		Drop:             0.02,
		Duplicate:        0.02,
		MaxDelay:         2,
		Reorder:          0.02,
		ReorderTicks:     25,
		Partition:        0.01,
		PartitionTicks:   60,
		OneWay:           0.4,
		PartialPartition: 0.2,
		Crash:            0.0005,
		CrashTicks:       40,
		RestartAll:       0.0007,
		Pause:            0.003,
		PauseTicks:       10,
		SlowDisk:         0.05,
		SlowDiskTicks:    3,
		Burst:            0.02,
		Membership:       0.01,
		Transfer:         0.002,
		CrashSnapshot:    0.02,
		ClockDrift:       0.04,
		Rogue:            0.05,
	}
}

func (f *Faults) validate() error {
	probs := []struct {
		name string
		p    float64
	}{
		{"Drop", f.Drop}, {"Duplicate", f.Duplicate}, {"Reorder", f.Reorder},
		{"Partition", f.Partition}, {"OneWay", f.OneWay}, {"PartialPartition", f.PartialPartition}, {"Crash", f.Crash}, {"CrashLeader", f.CrashLeader},
		{"RestartAll", f.RestartAll}, {"Pause", f.Pause}, {"SlowDisk", f.SlowDisk},
		{"Burst", f.Burst}, {"Membership", f.Membership}, {"Transfer", f.Transfer}, {"CrashSnapshot", f.CrashSnapshot},
		{"ClockDrift", f.ClockDrift}, {"Rogue", f.Rogue},
	}
	for _, p := range probs {
		if !(p.p >= 0 && p.p <= 1) {
			return fmt.Errorf("%w: Faults.%s = %v, want a probability in [0, 1]", ErrInvalidOptions, p.name, p.p)
		}
	}
	if f.Drop >= 0.5 {
		return fmt.Errorf("%w: Faults.Drop = %v leaves too little traffic; keep it below 0.5", ErrInvalidOptions, f.Drop)
	}
	durs := []struct {
		name string
		n    int
	}{
		{"MaxDelay", f.MaxDelay}, {"ReorderTicks", f.ReorderTicks}, {"PartitionTicks", f.PartitionTicks},
		{"CrashTicks", f.CrashTicks}, {"PauseTicks", f.PauseTicks}, {"SlowDiskTicks", f.SlowDiskTicks},
	}
	for _, d := range durs {
		if d.n < 0 || d.n > 1<<20 {
			return fmt.Errorf("%w: Faults.%s = %d, want ticks in [0, 2^20]", ErrInvalidOptions, d.name, d.n)
		}
	}
	return nil
}

const maxNodes = 9

// withDefaults validates o and fills in defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 1 || o.Nodes > maxNodes {
		return o, fmt.Errorf("%w: Nodes = %d, want 1..%d", ErrInvalidOptions, o.Nodes, maxNodes)
	}
	if o.Clients == 0 {
		o.Clients = 5
	}
	if o.Clients < 1 || o.Clients > 1000 {
		return o, fmt.Errorf("%w: Clients = %d, want 1..1000", ErrInvalidOptions, o.Clients)
	}
	if o.Ops == 0 {
		o.Ops = 1000
	}
	if o.Ops < 0 || o.Ops > 10_000_000 {
		return o, fmt.Errorf("%w: Ops = %d, want 1..10000000", ErrInvalidOptions, o.Ops)
	}
	if o.Core.ElectionTicks == 0 {
		o.Core.ElectionTicks = 10
	}
	if o.Core.ElectionTicks < 2 || o.Core.ElectionTicks > 10_000 {
		return o, fmt.Errorf("%w: Core.ElectionTicks = %d, want 2..10000", ErrInvalidOptions, o.Core.ElectionTicks)
	}
	if o.Core.HeartbeatTicks < 0 || o.Core.HeartbeatTicks >= o.Core.ElectionTicks {
		return o, fmt.Errorf("%w: Core.HeartbeatTicks = %d, want less than ElectionTicks (%d)",
			ErrInvalidOptions, o.Core.HeartbeatTicks, o.Core.ElectionTicks)
	}
	if o.Faults == nil {
		o.Faults = DefaultFaults()
	}
	if err := o.Faults.validate(); err != nil {
		return o, err
	}
	f := *o.Faults
	o.Faults = &f
	if o.Pool == 0 {
		o.Pool = o.Nodes
		if f.Membership > 0 {
			o.Pool = max(o.Nodes, 7)
		}
	}
	if o.Pool < o.Nodes || o.Pool > maxNodes {
		return o, fmt.Errorf("%w: Pool = %d, want Nodes (%d) to %d", ErrInvalidOptions, o.Pool, o.Nodes, maxNodes)
	}
	et := o.Core.ElectionTicks
	if o.ClientTimeout == 0 {
		o.ClientTimeout = 3 * et
	}
	if o.MaxTicks == 0 {
		o.MaxTicks = 40 * o.Ops
	}
	if o.SettleTicks == 0 {
		o.SettleTicks = 60 * et
	}
	if o.RecoverTicks == 0 {
		o.RecoverTicks = 10 * et
	}
	if o.ClientTimeout < 1 || o.MaxTicks < 1 || o.SettleTicks < 1 || o.RecoverTicks < 1 {
		return o, fmt.Errorf("%w: ClientTimeout, MaxTicks, SettleTicks and RecoverTicks must be positive", ErrInvalidOptions)
	}
	if o.TrailingLogs < 0 || o.SnapshotInterval > 1<<30 || o.TrailingLogs > 1<<30 {
		return o, fmt.Errorf("%w: SnapshotInterval = %d, TrailingLogs = %d, want at most 2^30 and TrailingLogs not negative",
			ErrInvalidOptions, o.SnapshotInterval, o.TrailingLogs)
	}
	if o.CheckTimeout == 0 {
		o.CheckTimeout = 30 * time.Second
	}
	if o.CheckTimeout < 0 {
		return o, fmt.Errorf("%w: CheckTimeout = %v, want positive", ErrInvalidOptions, o.CheckTimeout)
	}
	if o.TraceTail == 0 {
		o.TraceTail = 200
	}
	if o.TraceTail < 0 || o.TraceTail > 1<<20 {
		return o, fmt.Errorf("%w: TraceTail = %d, want 1..2^20", ErrInvalidOptions, o.TraceTail)
	}
	return o, nil
}
