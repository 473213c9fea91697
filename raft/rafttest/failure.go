package rafttest

import (
	"encoding/binary"
	"fmt"
	"hash"
	"hash/fnv"
	"strings"

	"github.com/typedraft/typedraft/raft"
)

// Failure is the error Run returns when a run breaks an invariant or its
// history is not linearizable. It carries everything needed to replay it:
// the same Seed and Options reproduce the same run, event for event.
type Failure struct {
	// Seed is the run's seed.
	Seed uint64
	// Step is the scheduling step (every event is one step) at which the
	// violation was seen, and Tick the virtual time (both 0 for RunCluster,
	// which runs in real time).
	Step int64
	Tick int
	// Invariant names what broke: one of the Invariant* constants.
	Invariant string
	// Detail describes the violation.
	Detail string
	// Setup describes the run's effective settings (after Options.Vary).
	Setup string
	// Trace holds the last events before the failure, oldest first.
	Trace []string
}

// Error renders the failure with its trace tail.
func (f *Failure) Error() string {
	var b strings.Builder
	if f.Step > 0 {
		fmt.Fprintf(&b, "rafttest: invariant %s violated (seed %d, step %d, tick %d): %s",
			f.Invariant, f.Seed, f.Step, f.Tick, f.Detail)
	} else {
		fmt.Fprintf(&b, "rafttest: invariant %s violated (seed %d): %s", f.Invariant, f.Seed, f.Detail)
	}
	if f.Setup != "" {
		fmt.Fprintf(&b, "\nsetup: %s", f.Setup)
	}
	if len(f.Trace) > 0 {
		fmt.Fprintf(&b, "\nlast %d events:\n  %s", len(f.Trace), strings.Join(f.Trace, "\n  "))
	}
	return b.String()
}

// The invariants a run checks; Failure.Invariant is one of them.
const (
	// InvariantElectionSafety: at most one leader per term (§5.2).
	InvariantElectionSafety = "ElectionSafety"
	// InvariantVoteOncePerTerm: a node grants its vote to at most one
	// candidate per term, across restarts (§5.2, Figure 2).
	InvariantVoteOncePerTerm = "VoteOncePerTerm"
	// InvariantVoteStable: once a vote for a term is durable, no later save
	// changes it.
	InvariantVoteStable = "VoteStable"
	// InvariantDurableBeforeSend: a node asks for votes only once its own
	// vote is durable, grants a vote only once the grant is durable, and
	// acknowledges appended entries only once they are durable (Figure 2:
	// persist before responding to RPCs).
	InvariantDurableBeforeSend = "DurableBeforeSend"
	// InvariantLogMatching: two logs holding an entry with the same index
	// and term are identical up to it, and hold the same entry (§5.3).
	InvariantLogMatching = "LogMatching"
	// InvariantLeaderCompleteness: a leader's log holds every entry
	// committed in an earlier term (§5.4).
	InvariantLeaderCompleteness = "LeaderCompleteness"
	// InvariantCommittedStable: an entry, once committed, never changes:
	// every node's committed prefix agrees with every other's.
	InvariantCommittedStable = "CommittedStable"
	// InvariantStateMachineSafety: every node applies the same entry at a
	// given index (§5.4.3), applies in order, and applies only committed
	// entries from its durable log.
	InvariantStateMachineSafety = "StateMachineSafety"
	// InvariantCurrentTermCommit: a leader advances its commit index only
	// to an entry of its own term; earlier entries commit indirectly
	// (§5.4.2, Figure 8).
	InvariantCurrentTermCommit = "CurrentTermCommit"
	// InvariantCommitDurable: when a leader advances its commit index, the
	// entry there is durably stored by a majority of the voters of its
	// configuration (of both voter sets while it is joint); every node's
	// commit index stays durably stored by a majority of the voters of the
	// configuration in force at that index (see checkCommitDurable); and no
	// node commits beyond what a leader committed.
	InvariantCommitDurable = "CommitDurable"
	// InvariantOnlyVotersCampaign: a node campaigns (pre-candidate or
	// candidate) only while it is a voter of its own configuration:
	// learners, spare nodes not yet added and removed nodes that know it
	// never do.
	InvariantOnlyVotersCampaign = "OnlyVotersCampaign"
	// InvariantMonotonic: term, commit and applied never decrease within a
	// node's lifetime, and the durable term and commit never decrease
	// across restarts.
	InvariantMonotonic = "Monotonic"
	// InvariantCoreError: a Core stopped with an error (e.g. it refused to
	// overwrite a committed entry), or broke its contract with its driver
	// (a Ready that does not fit the durable log, a message to an unknown
	// node, a snapshot to send that was never taken).
	InvariantCoreError = "CoreError"
	// InvariantLinearizability: the client history is not linearizable
	// against the workload's model, or the checker ran out of time.
	InvariantLinearizability = "Linearizability"
	// InvariantAckedWritesDurable: after healing, every operation a client
	// saw succeed is applied at its index on every node.
	InvariantAckedWritesDurable = "AckedWritesDurable"
	// InvariantLiveness: once every fault is healed, the cluster elects a
	// leader and brings every member up to date within Options.SettleTicks.
	InvariantLiveness = "Liveness"
	// InvariantRecover: within Options.RecoverTicks of the moment faults
	// stop, exactly one node leads and its configuration is not joint.
	InvariantRecover = "Recover"
	// InvariantApplication: the workload's state machine or codec failed
	// (e.g. a committed command did not decode).
	InvariantApplication = "Application"
	// InvariantMembership: RunCluster's membership API refused a valid
	// change for a reason other than "try later", or a committed
	// configuration is not one the operator could have asked for (voters
	// outside the bounds it keeps).
	InvariantMembership = "Membership"
	// InvariantStaleRead: a read (ReadIndex, lease or follower read) was
	// served from a state machine that had not applied every entry a
	// leader had committed when the read was issued.
	InvariantStaleRead = "StaleRead"
	// InvariantRogue: a member acted on a forged message from a node that
	// is no member (Faults.Rogue): its role, term, leader, commit index or
	// log changed.
	InvariantRogue = "Rogue"
)

// Report summarizes a successful run.
type Report struct {
	Seed uint64
	// Nodes is the number of voters the cluster started with.
	Nodes int
	// Steps and Ticks are the scheduling steps and virtual ticks the run
	// took, including the final settling.
	Steps int64
	Ticks int
	// Submitted counts the client operations a leader accepted (Options.Ops
	// once the workload completes), less those whose clients saw them
	// dropped. Ops is the number of operations in the checked history:
	// Acked ones with a known outcome plus Unknown ones. Dropped counts
	// operations definitely not applied (their entry was replaced, seen by
	// the client or after settling) and left out of the history.
	Submitted, Ops, Acked, Unknown, Dropped int
	// Leaders counts distinct (term, leader) pairs; Crashes, RestartAlls,
	// Partitions and Pauses count injected faults; Messages counts messages
	// sent and Lost those dropped by faults or partitions.
	Leaders, Crashes, RestartAlls, Partitions, Pauses int
	// Snapshots counts snapshots taken, Installs snapshots installed from a
	// leader; SnapshotCrashes and InstallCrashes count crashes in the middle
	// of taking and of installing one (injected by Faults.CrashSnapshot or
	// by an ordinary crash that fell there).
	Snapshots, Installs             int
	SnapshotCrashes, InstallCrashes int
	// Membership counts the membership and leadership-transfer faults.
	Membership MembershipReport
	// RecoverTicks is how long, after faults stopped, the cluster took to
	// have exactly one leader with a non-joint configuration.
	RecoverTicks int
	// IndexReads, LeaseReads and FollowerReads count reads served on each
	// path (ReadIndex on the leader, a lease read, a read on a follower
	// or learner); ReadsFailed those that failed or timed out.
	IndexReads, LeaseReads, FollowerReads, ReadsFailed int
	// AsyncWrites counts the leaders' log writes done in flight, in
	// parallel with replication.
	AsyncWrites int
	// PartialPartitions counts the partitions that cut a single link;
	// RogueMessages the forged messages of the rogue fault.
	PartialPartitions, RogueMessages int
	Messages, Lost                   int64
	// TraceHash is a hash of every event of the run; two runs with the same
	// Seed and Options have the same TraceHash.
	TraceHash uint64
}

// ChangeCounts counts accepted membership changes by kind: AddLearner
// learners added; Promote changes that made learners voters; RemoveVoter
// removals of a follower voter; RemoveLeader removals of the leader itself;
// Demote voters made learners; Replace changes that removed a voter and
// promoted a learner at once; RemoveLearner learners removed.
type ChangeCounts struct {
	AddLearner, Promote, RemoveVoter, RemoveLeader, Demote, Replace, RemoveLearner int
}

// count counts one accepted change of kind act (an act* constant); other
// kinds are not counted here.
func (c *ChangeCounts) count(act uint64) {
	switch act {
	case actAddLearner:
		c.AddLearner++
	case actPromote:
		c.Promote++
	case actRemoveVoter:
		c.RemoveVoter++
	case actRemoveLeader:
		c.RemoveLeader++
	case actDemote:
		c.Demote++
	case actReplace:
		c.Replace++
	case actRemoveLearner:
		c.RemoveLearner++
	}
}

// MembershipReport counts what the membership fault (Faults.Membership)
// and the leadership-transfer fault (Faults.Transfer) did in a run. Each
// change counts once, when the leader accepted it, under the kind the fault
// asked for.
type MembershipReport struct {
	// Accepted and Refused count proposed changes; Refused ones were
	// rejected by the core (another change pending, a learner not caught up,
	// a transfer in progress).
	Accepted, Refused int
	// ChangeCounts counts the accepted changes by kind; Rejoined counts the
	// learners added that had been members before.
	ChangeCounts
	Rejoined int
	// Committed counts configuration entries committed (the bootstrap one
	// excluded); Joint those of them that were joint; MinVoters and
	// MaxVoters the range of voter counts of committed configurations.
	Committed, Joint, MinVoters, MaxVoters int
	// Shutdowns counts removed nodes shut down for good.
	Shutdowns int
	// Transfers and TransfersRefused count leadership transfers the leader
	// started and refused.
	Transfers, TransfersRefused int
}

// Changes reports whether any membership change was accepted.
func (m MembershipReport) Changes() bool { return m.Accepted > 0 }

// String renders the report on one line.
func (r Report) String() string {
	m := r.Membership
	return fmt.Sprintf("seed=%d nodes=%d steps=%d ticks=%d submitted=%d ops=%d acked=%d unknown=%d dropped=%d leaders=%d crashes=%d restart-alls=%d partitions=%d pauses=%d snapshots=%d installs=%d snapshot-crashes=%d install-crashes=%d "+
		"reads=%d/%d/%d failed-reads=%d conf-changes=%d/%d (add=%d rejoin=%d promote=%d remove=%d remove-leader=%d demote=%d replace=%d remove-learner=%d) committed-confs=%d joint=%d voters=%d..%d shutdowns=%d transfers=%d/%d recover=%d msgs=%d lost=%d hash=%016x",
		r.Seed, r.Nodes, r.Steps, r.Ticks, r.Submitted, r.Ops, r.Acked, r.Unknown, r.Dropped, r.Leaders, r.Crashes,
		r.RestartAlls, r.Partitions, r.Pauses, r.Snapshots, r.Installs, r.SnapshotCrashes, r.InstallCrashes,
		r.IndexReads, r.LeaseReads, r.FollowerReads, r.ReadsFailed, m.Accepted, m.Accepted+m.Refused, m.AddLearner, m.Rejoined, m.Promote, m.RemoveVoter, m.RemoveLeader, m.Demote, m.Replace, m.RemoveLearner,
		m.Committed, m.Joint, m.MinVoters, m.MaxVoters, m.Shutdowns, m.Transfers, m.Transfers+m.TransfersRefused,
		r.RecoverTicks, r.Messages, r.Lost, r.TraceHash)
}

// eventKind names one kind of scheduling step.
type eventKind uint8

const (
	evTick eventKind = iota + 1
	evDeliver
	evDrop
	evReady
	evSave
	evAfter
	evPropose
	evReject
	evCrash
	evRestart
	evPause
	evResume
	evPartition
	evHeal
	evResolve
	evTimeout
	evSettle
	evUnreachable
	evSnapReport
	evSnapshot
	evInstall
	evSnapCreated
	evConfChange
	evTransfer
	evShutdown
	evRecovered
	evRead
	evReadFailed
	evReadServed
	evWriteStart
	evWriteDone
)

var eventNames = [...]string{
	evTick: "tick", evDeliver: "deliver", evDrop: "drop", evReady: "ready", evSave: "save",
	evAfter: "after", evPropose: "propose", evReject: "reject", evCrash: "crash", evRestart: "restart",
	evPause: "pause", evResume: "resume", evPartition: "partition", evHeal: "heal",
	evResolve: "resolve", evTimeout: "timeout", evSettle: "settle", evUnreachable: "unreachable",
	evSnapReport: "snapshot-report", evSnapshot: "snapshot", evInstall: "install",
	evSnapCreated: "snapshot-created", evConfChange: "conf-change", evTransfer: "transfer", evShutdown: "shutdown",
	evRecovered: "recovered", evRead: "read", evReadFailed: "read-failed", evReadServed: "read-served",
	evWriteStart: "write-start", evWriteDone: "write-done",
}

// event is one recorded step. Fields not relevant to the kind are zero.
type event struct {
	step  int64
	tick  int
	kind  eventKind
	node  int
	a, b  uint64
	msg   raft.Message
	hasM  bool
	state raft.State
	term  uint64
}

// tracer hashes every event and keeps the last few for failure reports.
type tracer struct {
	h    hash.Hash64
	buf  [64]byte
	ring []event
	next int
	full bool
	ids  []raft.NodeID
	sink func(string)
}

func newTracer(tail int, ids []raft.NodeID, sink func(string)) *tracer {
	return &tracer{h: fnv.New64a(), ring: make([]event, tail), ids: ids, sink: sink}
}

func (t *tracer) record(e event) {
	b := t.buf[:0]
	b = binary.AppendVarint(b, e.step)
	b = append(b, byte(e.kind), byte(e.node), byte(e.state))
	b = binary.AppendUvarint(b, e.a)
	b = binary.AppendUvarint(b, e.b)
	b = binary.AppendUvarint(b, e.term)
	if e.hasM {
		m := &e.msg
		b = append(b, byte(m.Type))
		b = append(b, m.From...)
		b = append(b, m.To...)
		b = binary.AppendUvarint(b, m.Term)
		b = binary.AppendUvarint(b, m.Index)
		b = binary.AppendUvarint(b, m.LogTerm)
		b = binary.AppendUvarint(b, m.Commit)
		b = binary.AppendUvarint(b, uint64(len(m.Entries)))
		if m.Reject {
			b = append(b, 1)
		}
	}
	t.h.Write(b)
	e.msg.Entries = nil
	if len(t.ring) > 0 {
		t.ring[t.next] = e
		t.next++
		if t.next == len(t.ring) {
			t.next, t.full = 0, true
		}
	}
	if t.sink != nil {
		t.sink(t.format(e))
	}
}

func (t *tracer) tail() []string {
	var out []string
	if t.full {
		for _, e := range t.ring[t.next:] {
			out = append(out, t.format(e))
		}
	}
	for _, e := range t.ring[:t.next] {
		out = append(out, t.format(e))
	}
	return out
}

func (t *tracer) name(i int) string {
	if i >= 0 && i < len(t.ids) {
		return string(t.ids[i])
	}
	return "-"
}

func (t *tracer) format(e event) string {
	s := fmt.Sprintf("#%d t%d %s %s", e.step, e.tick, eventNames[e.kind], t.name(e.node))
	switch e.kind {
	case evDeliver, evDrop:
		s += " " + e.msg.String()
		if e.a > 0 && len(e.msg.Entries) == 0 {
			s += fmt.Sprintf(" ents=%d", e.a)
		}
	case evReady:
		s += fmt.Sprintf(" %s term=%d ents=%d msgs=%d commit=%d", e.state, e.term, e.a, e.b, e.msg.Commit)
	case evSave:
		s += fmt.Sprintf(" term=%d ents=%d last=%d", e.term, e.a, e.b)
	case evAfter:
		s += fmt.Sprintf(" msgs=%d applied-to=%d", e.a, e.b)
	case evPropose, evResolve, evTimeout:
		s += fmt.Sprintf(" client=%d index=%d term=%d", e.a, e.b, e.term)
	case evReject:
		s += fmt.Sprintf(" client=%d (not leader)", e.a)
	case evRestart:
		s += fmt.Sprintf(" term=%d last=%d", e.term, e.a)
	case evPartition:
		s += fmt.Sprintf(" minority=%b one-way=%v link-only=%v", e.a, e.b == 1, e.b == 2)
	case evSnapReport:
		s += fmt.Sprintf(" peer=%s ok=%v", t.name(int(e.a)), e.b == 1)
	case evSnapshot, evInstall, evSnapCreated:
		s += fmt.Sprintf(" index=%d term=%d", e.a, e.term)
	case evConfChange:
		s += fmt.Sprintf(" %s %s index=%d", confActionNames[e.a>>8], t.name(int(e.a&0xff)), e.b)
		if e.b == 0 {
			s += " (refused)"
		}
	case evTransfer:
		s += fmt.Sprintf(" to=%s started=%v", t.name(int(e.a)), e.b == 1)
	case evUnreachable:
		s += fmt.Sprintf(" peers=%b", e.a)
	case evPause:
		s += fmt.Sprintf(" until=t%d", e.a)
	case evCrash:
		switch e.a {
		case crashUnsaved:
			s += " (batch sent, not saved)"
		case crashSnapshot:
			s += " (taking a snapshot)"
		case crashInstall:
			s += " (installing a snapshot)"
		}
	case evTick:
		s = fmt.Sprintf("#%d t%d tick", e.step, e.tick)
	}
	return s
}
