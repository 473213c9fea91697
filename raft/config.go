package raft

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/codec"
	"github.com/typedraft/typedraft/raft/internal/bugs"
)

// Config configures a node. Zero fields take the defaults noted; Validate
// reports invalid combinations.
type Config struct {
	// ID is this node's ID (required). It must match the ID the node has in
	// the cluster configuration and must never change for its storage.
	ID NodeID

	// TickInterval is the length of one logical tick (default 50ms).
	TickInterval time.Duration
	// ElectionTicks is the minimum election timeout in ticks; followers wait
	// a random timeout in [ElectionTicks, 2*ElectionTicks) (default 10).
	ElectionTicks int
	// HeartbeatTicks is the leader's heartbeat interval in ticks; it must be
	// smaller than ElectionTicks (default 2).
	HeartbeatTicks int
	// DisablePreVote turns pre-vote off (on by default, thesis §9.6).
	DisablePreVote bool
	// DisableCheckQuorum turns check-quorum and the election lease off (on by
	// default, thesis §6.2 and §4.2.3).
	DisableCheckQuorum bool

	// MaxInflight bounds the appends in flight to one follower (default 256).
	MaxInflight int
	// MaxInflightBytes bounds the payload of the appends in flight to one
	// follower (default 64 MiB).
	MaxInflightBytes uint64
	// MaxAppendEntries and MaxAppendBytes bound one append message (defaults
	// 4096 entries, 1 MiB).
	MaxAppendEntries int
	MaxAppendBytes   uint64
	// MaxEntryBytes bounds one encoded command (default 8 MiB); larger
	// proposals fail with ErrEntryTooLarge. Keep it well below the
	// transport's maximum frame size. Decoding a command may allocate more
	// than its size: the default msgpack codec allows up to
	// codec.MsgpackMaxAmplification (32) times, 256 MiB for an 8 MiB
	// command, and refuses input that would need more.
	MaxEntryBytes int
	// MaxBatch bounds the proposals written in one Save (default 4096).
	MaxBatch int
	// MaxPendingProposals bounds the proposals queued for the driver;
	// beyond it Propose fails fast with ErrTooManyProposals (default 65536).
	MaxPendingProposals int
	// MaxApplyBacklog bounds the committed entries handed to the apply
	// goroutine and not yet applied (default 65536).
	MaxApplyBacklog int
	// MaxApplyBytes bounds the committed entries handed to the apply
	// goroutine in one batch (default 64 MiB).
	MaxApplyBytes uint64

	// SnapshotThreshold is how many applied entries trigger an automatic
	// snapshot, for state machines that implement Snapshotter (default 8192;
	// a threshold of zero means nothing, so 0 is the default: turn automatic
	// snapshots off with DisableAutoSnapshot).
	// Snapshots are written while Apply goes on; if one write is still
	// running when another threshold's worth of entries has been applied,
	// Apply waits for it, so the applied part of the log stays within
	// TrailingLogs + 2*SnapshotThreshold (plus one apply batch).
	SnapshotThreshold uint64
	// DisableAutoSnapshot turns automatic snapshots off (Snapshot still
	// works).
	DisableAutoSnapshot bool
	// TrailingLogs is how many entries stay in the log behind a snapshot, so
	// that slightly lagging followers catch up from the log (default 1024;
	// Zero keeps none).
	TrailingLogs uint64

	// MaxCatchUpLag is how many entries a learner may be behind the leader
	// and still count as caught up for promotion (default 1024; Zero
	// requires it to hold every entry).
	MaxCatchUpLag uint64

	// ReadMode is how Read, Query and ReadIndex read when the call says
	// ReadDefault, and how Validate rejections are confirmed (default
	// ReadLinearizable; ReadLease needs check-quorum). See ReadMode.
	ReadMode ReadMode
	// MaxClockDrift bounds, as a fraction, how much faster one node's
	// clock may run than another's; lease reads assume it (default 0.1,
	// DefaultMaxClockDrift). The lease lasts
	// (ElectionTicks-1)/(1+MaxClockDrift) ticks.
	MaxClockDrift float64

	// DisableForwarding stops a follower or learner from forwarding
	// proposals to the leader (forwarding is on by default; the Forward
	// and NoForward options override this per proposal). A forwarded
	// proposal travels to the leader over the Transport as a MsgPropose,
	// is validated and proposed there like a local one, in the response
	// mode asked, and the leader's typed outcome (R and E, encoded by the
	// Codec) resolves the follower's future. Failures keep their meaning:
	// a *NotLeaderError only when no leader is known (or the answers kept
	// naming another node); ErrTooManyProposals, ErrTransferInProgress
	// and the like when the leader refused it before appending; and
	// ErrIndeterminate when the outcome is unknown (the leader lost
	// leadership, the follower learned of a new leader, or no answer came
	// within ForwardTimeout). Forwarding needs R and E that the Codec can
	// decode: with an interface E (such as error) or R it is off, and a
	// *NotLeaderError's Reason says why.
	DisableForwarding bool
	// ForwardTimeout bounds how long a follower waits for the leader's
	// answer to a forwarded proposal before it fails as indeterminate
	// (default 10 election timeouts).
	ForwardTimeout time.Duration
	// MaxForwarded bounds the proposals a follower has forwarded and
	// waits on, and those a leader serves for followers (default 4096).
	MaxForwarded int
	// SessionTTL is how many log entries a client session may go unused
	// before it expires (default DefaultSessionTTL; Zero: never by age).
	// MaxSessions bounds the session table: opening a session beyond it
	// evicts the least recently used (default 4096). Both are taken from
	// the leader that opens a session and recorded in the log, so every
	// node expires and evicts the same sessions.
	SessionTTL  uint64
	MaxSessions int

	// Codec encodes commands into log entries (default codec.Msgpack()).
	Codec codec.Codec
	// Logger receives the node's logs (default: silent).
	Logger hclog.Logger
	// Seed seeds the random election timeouts (default: from the clock).
	Seed uint64
	// ShutdownOnRemove stops the node (Err: ErrRemoved) once a committed
	// configuration no longer includes it (off by default: a removed node
	// keeps running, inert, until it is shut down or added back). A node
	// restarted on a store that already holds its removal does not stop
	// at once (so that it can be added back); Status.Removed tells.
	ShutdownOnRemove bool
	// DisableMetrics stops the node from counting its metrics
	// (Raft.Metrics then reports zeros); they cost a few atomic additions
	// per batch.
	DisableMetrics bool

	// bugs injects known bugs into the core and the driver (raftbugs
	// builds only, for the teeth of the simulation harnesses).
	bugs bugs.Set
}

func (c Config) withDefaults() Config {
	setInt := func(p *int, d int) {
		if *p <= 0 {
			*p = d
		}
	}
	setU64 := func(p *uint64, d uint64) {
		if *p == 0 {
			*p = d
		}
	}
	if c.TickInterval <= 0 {
		c.TickInterval = DefaultTickInterval
	}
	setInt(&c.ElectionTicks, DefaultElectionTicks)
	setInt(&c.HeartbeatTicks, DefaultHeartbeatTicks)
	setInt(&c.MaxInflight, DefaultMaxInflight)
	setU64(&c.MaxInflightBytes, DefaultMaxInflightBytes)
	setInt(&c.MaxAppendEntries, DefaultMaxAppendEntries)
	setU64(&c.MaxAppendBytes, DefaultMaxAppendBytes)
	setU64(&c.MaxApplyBytes, DefaultMaxApplyBytes)
	setInt(&c.MaxEntryBytes, DefaultMaxEntryBytes)
	setInt(&c.MaxBatch, DefaultMaxBatch)
	setInt(&c.MaxPendingProposals, DefaultMaxPendingProposals)
	setInt(&c.MaxApplyBacklog, DefaultMaxApplyBacklog)
	setU64(&c.SnapshotThreshold, DefaultSnapshotThreshold)
	setU64(&c.TrailingLogs, DefaultTrailingLogs)
	setU64(&c.MaxCatchUpLag, DefaultMaxCatchUpLag)
	setInt(&c.MaxForwarded, DefaultMaxForwarded)
	setU64(&c.SessionTTL, DefaultSessionTTL)
	setInt(&c.MaxSessions, DefaultMaxSessions)
	if c.ForwardTimeout <= 0 {
		c.ForwardTimeout = 10 * time.Duration(c.ElectionTicks) * c.TickInterval
	}
	if c.ReadMode == ReadDefault {
		c.ReadMode = ReadLinearizable
	}
	if c.MaxClockDrift <= 0 {
		c.MaxClockDrift = DefaultMaxClockDrift
	}
	if c.Codec == nil {
		c.Codec = codec.Msgpack()
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	return c
}

// Validate reports the first invalid field as an error matching
// ErrInvalidConfig.
func (c Config) Validate() error {
	d := c.withDefaults()
	switch {
	case c.ID == "":
		return fmt.Errorf("%w: ID must not be empty", ErrInvalidConfig)
	case d.HeartbeatTicks >= d.ElectionTicks:
		return fmt.Errorf("%w: HeartbeatTicks (%d) must be less than ElectionTicks (%d)",
			ErrInvalidConfig, d.HeartbeatTicks, d.ElectionTicks)
	case d.ReadMode > ReadStale:
		return fmt.Errorf("%w: unknown ReadMode %d", ErrInvalidConfig, d.ReadMode)
	case d.ReadMode == ReadLease && d.DisableCheckQuorum:
		return fmt.Errorf("%w: ReadMode ReadLease needs check-quorum (DisableCheckQuorum is set)", ErrInvalidConfig)
	case c.ElectionTicks < 0 || c.HeartbeatTicks < 0 || c.MaxInflight < 0 || c.MaxAppendEntries < 0 ||
		c.MaxEntryBytes < 0 || c.MaxBatch < 0 || c.MaxPendingProposals < 0 || c.MaxApplyBacklog < 0 || c.TickInterval < 0 ||
		c.ForwardTimeout < 0 || c.MaxForwarded < 0 || c.MaxSessions < 0:
		return fmt.Errorf("%w: a negative count or duration (0 means the default)", ErrInvalidConfig)
	case d.MaxClockDrift >= 1:
		return fmt.Errorf("%w: MaxClockDrift %.2f must be below 1", ErrInvalidConfig, d.MaxClockDrift)
	}
	return nil
}

// Core returns the CoreConfig of a node configured by c (with defaults).
func (c Config) Core() CoreConfig {
	c = c.withDefaults()
	return CoreConfig{
		ID:                 c.ID,
		ElectionTicks:      c.ElectionTicks,
		HeartbeatTicks:     c.HeartbeatTicks,
		DisablePreVote:     c.DisablePreVote,
		DisableCheckQuorum: c.DisableCheckQuorum,
		MaxInflight:        c.MaxInflight,
		MaxInflightBytes:   c.MaxInflightBytes,
		MaxMsgEntries:      c.MaxAppendEntries,
		MaxMsgBytes:        c.MaxAppendBytes,
		MaxApplyBytes:      c.MaxApplyBytes,
		MaxApplyBacklog:    uint64(c.MaxApplyBacklog),
		MaxClockDrift:      c.MaxClockDrift,
		bugs:               c.bugs,
	}
}

// validateConfiguration checks a cluster configuration for Bootstrap and
// membership changes.
func validateConfiguration(cfg Configuration) error {
	seen := map[NodeID]bool{}
	voters := 0
	for _, s := range cfg.Servers {
		switch {
		case s.ID == "":
			return fmt.Errorf("%w: server with empty ID", ErrInvalidConfig)
		case seen[s.ID]:
			return fmt.Errorf("%w: server %s listed twice", ErrInvalidConfig, s.ID)
		case s.Suffrage > Learner:
			return fmt.Errorf("%w: server %s has unknown suffrage %d", ErrInvalidConfig, s.ID, s.Suffrage)
		}
		seen[s.ID] = true
		if s.Suffrage == Voter {
			voters++
		}
	}
	if voters == 0 {
		return fmt.Errorf("%w: configuration has no voters", ErrInvalidConfig)
	}
	return nil
}
