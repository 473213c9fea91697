package raft

import (
	"errors"
	"math/rand/v2"

	"github.com/typedraft/typedraft/raft/internal/bugs"
)

// The pure core: a deterministic Raft state machine with no goroutines, no
// clock, no locks and no I/O beyond reading the durable log through the
// LogReader interface. Time is counted in ticks; randomness comes from an
// injected *rand.Rand. The driver (driver*.go, through the exported Core)
// and the simulator (raft/rafttest) feed it ticks, messages and proposals,
// and carry out the Ready batches it produces.

// core is one node's Raft state (Figure 2) plus pre-vote, check-quorum,
// flow control and leadership transfer bookkeeping.
type core struct {
	cfg  CoreConfig
	id   NodeID
	rng  *rand.Rand
	log  *raftLog
	conf confTracker

	state State
	term  uint64
	vote  NodeID
	lead  NodeID

	// prs is the leader's progress per peer (and itself).
	prs map[NodeID]*progress
	// peers is the sorted IDs in prs other than this node: messages to
	// several peers go out in this order, so a run is reproducible from its
	// seed (map order is not). Kept by refreshPeers.
	peers []NodeID
	votes map[NodeID]bool

	electionElapsed           int
	heartbeatElapsed          int
	randomizedElectionTimeout int

	// leadTransferee is the target of a leadership transfer in progress.
	leadTransferee  NodeID
	transferElapsed int

	// msgs are sent at once; msgsAfter only once this ready is persisted.
	msgs      []Message
	msgsAfter []Message

	// persisted is the hard state last handed to storage.
	persisted HardState
	// snapshotsToSend lists peers that need a snapshot (driver streams them).
	snapshotsToSend []NodeID
	// snapIndex/snapTerm describe the newest snapshot in the snapshot store
	// (0 if none), the one sent to followers that fell behind compaction.
	snapIndex, snapTerm uint64
	// appliedReported is the index the driver last reported applied
	// (ReportApplied); with MaxApplyBacklog, committed entries are held
	// back while log.applied runs that far ahead of it.
	appliedReported uint64
	// fatal records an impossible condition (e.g. a committed entry would be
	// overwritten); the driver stops the node.
	fatal error

	// now counts ticks since the core started (the leader lease's clock).
	now int64
	// ro is the read bookkeeping (core_read.go).
	ro readOnly
	// strangers counts messages dropped from non-members
	// (core_strangers.go).
	strangers strangerStats
	// leadHinted: lead was named by a member's vote rejection, not heard
	// from; it gives no lease (core_strangers.go).
	leadHinted bool
	// campaigns counts the elections (and pre-vote rounds) started.
	campaigns uint64
	// startLease: the node started less than an election timeout ago and
	// has not heard from a leader since. With check-quorum it refuses votes
	// until then, as if it had just heard from a leader: it may have
	// acknowledged a heartbeat before it restarted, and a leader's lease
	// counts on that acknowledgement.
	startLease bool
}

// newCore restores a core from durable state: the hard state, the log in
// storage, and the newest snapshot's metadata (zero if none).
func newCore(cfg CoreConfig, storage LogReader, hs HardState, snap SnapshotMeta, rng *rand.Rand) (*core, error) {
	cfg = cfg.withDefaults()
	if cfg.ID == "" {
		return nil, errors.New("raft: node ID must not be empty")
	}
	l, err := newRaftLog(storage)
	if err != nil {
		return nil, err
	}
	c := &core{cfg: cfg, id: cfg.ID, rng: rng, log: l}
	c.conf.self = cfg.ID
	c.term, c.vote = hs.Term, hs.Vote
	c.persisted = hs
	c.snapIndex, c.snapTerm = snap.Index, snap.Term
	if !snap.IsZero() {
		c.conf.reset(snap.Configuration, snap.ConfigIndex)
		l.committed = max(l.committed, snap.Index)
		l.applied = max(l.applied, snap.Index)
	}
	if hs.Commit > l.committed {
		l.committed = min(hs.Commit, l.lastIndex())
	}
	// Replay the configuration entries of the log after the snapshot: a
	// configuration takes effect as soon as it is in the log (§6).
	if err := c.conf.scan(l, max(l.firstIndex(), snap.Index+1), l.lastIndex(), l.committed); err != nil {
		return nil, err
	}
	c.becomeFollower(c.term, "")
	c.startLease = true
	c.appliedReported = c.log.applied
	// Forwarded read batches are numbered from a random point, so that a
	// late answer to a batch of an earlier incarnation of this node (before
	// a restart) cannot match one of this incarnation.
	c.ro.fwdSeq = c.rng.Uint64() >> 2
	return c, nil
}

// State is a node's role.
type State uint8

const (
	// Follower: passive; answers leaders and candidates.
	Follower State = iota
	// PreCandidate: asking whether it could win an election (pre-vote).
	PreCandidate
	// Candidate: campaigning for votes in a new term.
	Candidate
	// Leader: accepts proposals and replicates the log.
	Leader
	// Shutdown: the node has stopped.
	Shutdown
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case Follower:
		return "follower"
	case PreCandidate:
		return "pre-candidate"
	case Candidate:
		return "candidate"
	case Leader:
		return "leader"
	case Shutdown:
		return "shutdown"
	}
	return "State(?)"
}

func (c *core) hardState() HardState {
	hs := HardState{Term: c.term, Vote: c.vote, Commit: c.log.committed}
	if bugs.Enabled && c.cfg.bugs.VoteNotPersisted {
		hs.Vote = ""
	}
	return hs
}

func (c *core) resetRandomizedElectionTimeout() {
	c.randomizedElectionTimeout = c.cfg.ElectionTicks + c.rng.IntN(c.cfg.ElectionTicks)
}

func (c *core) reset(term uint64) {
	// Reads in progress were confirmed by, or forwarded to, the old term's
	// leader: they fail before the term moves on.
	c.dropReads()
	if c.term != term {
		c.term = term
		c.vote = ""
	}
	c.lead, c.leadHinted = "", false
	c.electionElapsed = 0
	c.heartbeatElapsed = 0
	c.resetRandomizedElectionTimeout()
	c.votes = nil
	c.prs = nil
	c.peers = nil
	c.leadTransferee = ""
	c.transferElapsed = 0
}

func (c *core) becomeFollower(term uint64, lead NodeID) {
	c.reset(term)
	c.state = Follower
	c.lead = lead
}

func (c *core) becomePreCandidate() {
	// Pre-vote changes neither term nor vote (thesis §9.6).
	c.state = PreCandidate
	c.lead = ""
	c.votes = map[NodeID]bool{}
	c.electionElapsed = 0
	c.resetRandomizedElectionTimeout()
}

func (c *core) becomeCandidate() {
	c.reset(c.term + 1)
	c.vote = c.id
	c.state = Candidate
	c.votes = map[NodeID]bool{}
}

func (c *core) becomeLeader() {
	c.reset(c.term)
	c.state = Leader
	c.lead = c.id
	c.prs = map[NodeID]*progress{}
	last := c.log.lastIndex()
	for _, id := range c.conf.members() {
		pr := &progress{next: last + 1, learner: !c.conf.isVoter(id)}
		if id == c.id {
			pr.match = c.durableLastIndex()
			pr.state = progressReplicate
			pr.recentActive = true
		}
		c.prs[id] = pr
	}
	c.refreshPeers()
	// Any configuration entry not yet committed is pending: no new change
	// may be proposed before it commits.
	c.conf.pendingIndex = last
	// A new leader commits an entry of its own term (§5.4.2, §8).
	c.appendEntries([]Entry{{Type: EntryNoop}})
	c.bcastAppend()
}

// durableLastIndex is the last index of the log that is on stable storage.
func (c *core) durableLastIndex() uint64 {
	if c.log.snap != nil {
		return c.log.snap.Index
	}
	return c.log.offset - 1
}

// promotable reports whether this node may campaign: it is a voter in the
// current configuration and has no snapshot waiting to be installed.
func (c *core) promotable() bool {
	return c.conf.isVoter(c.id) && c.log.snap == nil
}

// tick advances logical time by one tick.
func (c *core) tick() {
	c.now++
	if c.state == Leader {
		c.tickLeader()
		return
	}
	c.electionElapsed++
	if c.electionElapsed >= c.cfg.ElectionTicks {
		c.startLease = false
	}
	c.expireForwardedReads()
	if c.electionElapsed >= 2*c.cfg.ElectionTicks && !c.conf.isVoter(c.id) && c.configured() {
		c.probeForLeader()
	}
	if c.promotable() && c.electionElapsed >= c.randomizedElectionTimeout {
		c.electionElapsed = 0
		c.campaign(false)
	}
}

func (c *core) tickLeader() {
	c.heartbeatElapsed++
	c.electionElapsed++
	if c.leadTransferee != "" {
		c.transferElapsed++
		if c.transferElapsed >= c.cfg.ElectionTicks {
			c.abortTransfer()
		}
	}
	if c.electionElapsed >= c.cfg.ElectionTicks {
		c.electionElapsed = 0
		if !c.cfg.DisableCheckQuorum {
			if !c.quorumActive() {
				// Check-quorum: a leader that cannot reach a majority within
				// an election timeout steps down (thesis §6.2).
				c.becomeFollower(c.term, "")
				return
			}
			for id, pr := range c.prs {
				pr.recentActive = id == c.id
			}
		}
	}
	for _, id := range c.peers {
		if pr := c.prs[id]; pr.snapBackoff > 0 {
			pr.snapBackoff--
		}
	}
	c.checkStalled()
	if c.heartbeatElapsed >= c.cfg.HeartbeatTicks {
		c.heartbeatElapsed = 0
		c.bcastHeartbeat()
	}
}

func (c *core) quorumActive() bool {
	in, out := c.conf.voterSets()
	return quorumActive(in, out, func(id NodeID) bool {
		pr := c.prs[id]
		return pr != nil && pr.recentActive
	})
}

// send queues m; if afterPersist, it leaves only once the current ready is
// durable.
func (c *core) send(m Message, afterPersist bool) {
	m.From = c.id
	if m.Term == 0 {
		m.Term = c.term
	}
	// A Ready's messages usually go one or two to each peer: room for
	// them up front saves the slice's growth steps.
	if afterPersist {
		if c.msgsAfter == nil {
			c.msgsAfter = make([]Message, 0, 2*len(c.prs)+2)
		}
		c.msgsAfter = append(c.msgsAfter, m)
	} else {
		if c.msgs == nil {
			c.msgs = make([]Message, 0, 2*len(c.prs)+2)
		}
		c.msgs = append(c.msgs, m)
	}
}
