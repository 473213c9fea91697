// Package rafttest is typedraft's deterministic simulation harness, public
// so that applications can run their own state machine under the same
// faults and checks that typedraft's own tests use.
//
// # What a run does
//
// Run builds a cluster of raft.Core instances (the pure Raft state machine
// every typedraft node runs), each with simulated stable storage, joined by
// a simulated network, and drives it with a virtual clock. One seeded random
// source chooses every event: which message is delivered next, which is
// dropped, duplicated, delayed or reordered, when a partition starts (with
// the leader in the minority or in the majority, cutting one or both
// directions, or only the link between the leader and one node), when a
// node pauses for longer than an election timeout, when a node crashes
// (often after it sent a batch's messages but before it saved the batch,
// losing what was unsaved, or while the leader's own log write is still in
// flight), when every node restarts at once, when clients send a burst of
// proposals, and when a rogue node outside the cluster forges a message of
// any kind. Each node's clock runs at its own rate (Faults.ClockDrift). The
// same seed replays the same run, event for event.
//
// # Reads and the leader's write
//
// The simulator plays the driver as typedraft ships it. A leader's new
// entries go to a write in flight (Core.AdvanceAsync) that completes as a
// step of its own (Core.WriteDone), while the leader keeps stepping
// acknowledgements and committing through followers. Clients send
// read-only commands (Workload.IsRead) as ReadIndex reads, lease reads or
// follower reads through Core.ReadIndex, and the node answers them with
// Workload.Read once it has applied the read index; the driver tells the
// core the time its clock saw (Core.SyncClock), including after a pause.
//
// # Membership
//
// With Faults.Membership the run has a pool of node IDs (Options.Pool,
// seven by default) beyond the Nodes voters it starts with. The spares run
// from the start with empty storage and no configuration, so they must
// never campaign. At random ticks the leader is asked, through
// raft.Core.ProposeMembership, to add a spare or a removed node as a
// learner, promote caught-up learners (one or several at once), remove a
// voter or itself, demote a voter, replace a voter by a learner in one
// joint change, or remove a learner, always keeping between three and five
// voters (min(3, Nodes) and max(5, Nodes)); a change of the voters goes
// through the joint configuration C(old,new), after which the leader
// appends C(new) by itself. The core refuses a change while another is
// pending and a promotion of a learner that lags; the fault tries again
// later. Removed nodes keep running, and must not disrupt the cluster,
// until the fault shuts one down for good (its storage is kept: it may be
// added back later, never under a wiped disk). With Faults.Transfer the
// leader is asked to hand leadership to another voter.
// Faults.CrashSnapshot crashes nodes in the middle of taking a snapshot
// (before it is stored, or stored but neither reported to the core nor the
// log compacted) and of installing one (stored but not announced to the
// core, accepted but not installed, installed but the batch not saved).
//
// Each node carries out its Ready batches in the order raft.Ready documents,
// with every phase a separate step, so faults land between them: early
// messages sent; snapshot installed, hard state and entries saved;
// acknowledgements sent, committed entries applied, snapshots streamed,
// Advance. If the workload's state machine implements raft.Snapshotter,
// nodes also snapshot and compact their logs, and leaders bring lagging
// followers up to date with snapshots that travel the same faulty network.
//
// Clients submit commands of the workload to the member they believe leads.
// A command whose outcome a client learns (its node applied it) enters the
// history with its response; one whose client gave up (timeout, or its node
// crashed) enters it as Unknown, possibly applied. A read enters it with
// the answer it got; a read that failed changed nothing and is left out.
// When the workload is
// done, every fault is healed and the cluster must settle: one leader with a
// non-joint configuration, every member holding, committing and applying
// the same log.
//
// # What a run checks
//
// After every step: at most one leader per term; one vote per node and term,
// across restarts; a vote or an acknowledgement leaves a node only once it is
// durable; the durable vote of a term never changes; log matching (an index
// and term name one entry and one log prefix for the whole run); leader
// completeness; a committed entry never changes; a leader commits directly
// only entries of its own term; a leader advances its commit index only
// over entries durable on a majority of the voters of its configuration
// (of both the old and the new voters while it is joint), and every
// node's commit index stays durable on a majority of the voters of the
// configuration in force at that index; no node commits beyond what a
// leader committed; only voters of their own configuration campaign;
// state machine safety (every node applies the same entry at an index, in
// order, from its durable log); no read is served from a state missing an
// entry a leader had committed when the read was issued; a member acts on
// no forged message from a non-member; snapshots hold the committed log and the
// configuration in force at their index; term, commit and applied never
// decrease. At the end, after every fault is healed: within
// Options.RecoverTicks (10 election timeouts) exactly one node leads and
// its configuration is not joint; then one leader brings every member of
// its committed configuration up to date, every acknowledged operation is
// applied on every member, and the history is linearizable against the
// workload's model (checked with github.com/anishathalye/porcupine; a
// checker timeout is a failure). A broken check stops the run with a
// *Failure naming the invariant, the seed, the step and the events leading
// up to it.
//
// # Using it for an application
//
// Provide a Workload: a constructor for the application's
// raft.StateMachine[C, R, E], a codec, a random command generator drawing
// only from the rng it is handed, and a porcupine model of the state
// machine's sequential behaviour — usually built with Spec.Model from a
// pure step function. Then call Run with a seed for each test case, or loop
// over many seeds. Package kvmodel is a complete example.
//
// The simulator runs the pure core, not the goroutines of raft.Raft; the
// application's Validate is not called.
//
// # Replaying a failure
//
// A *Failure carries the seed; the same Options with that Seed replay the
// run exactly, and Options.Trace prints every event. typedraft's own tests
// print the command that does this, e.g.
//
//	go test ./raft/rafttest -run '^TestSimulation$' -seed=1234 -v
//
// and run many seeds with -seeds=N (and -first=K) for soaks. The default
// run alternates snapshot thresholds of 10 and 100 entries by seed;
// -snapshot=N, -snapshot=vary or -snapshot=off overrides that.
//
// # The real driver
//
// RunCluster runs the same Workload on real raft.Raft[C, R, E] nodes over
// transport/inmem and store/memory, with faults injected in real time, and
// checks the outcomes of the typed futures with the same model. It cannot
// replay a run exactly (goroutine scheduling is real) but catches what only
// the typed API can get wrong, such as a future resolved with the wrong
// result. With ClusterFaults.MembershipInterval set, an operator goroutine
// also changes the membership through the typed API (AddLearner,
// PromoteLearner, RemoveServer, ChangeMembership, TransferLeadership),
// adding spare nodes that start with empty stores, and the final checks
// apply to the members of the settled configuration.
package rafttest
