package raft

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/codec"
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
	// MaxAppendEntries and MaxAppendBytes bound one append message (defaults
	// 4096 entries, 1 MiB).
	MaxAppendEntries int
	MaxAppendBytes   uint64
	// MaxEntryBytes bounds one encoded command (default 8 MiB); larger
	// proposals fail with ErrEntryTooLarge. Keep it well below the
	// transport's maximum frame size.
	MaxEntryBytes int
	// MaxBatch bounds the proposals written in one Save (default 4096).
	MaxBatch int
	// MaxPendingProposals bounds the proposals queued for the driver;
	// beyond it Propose fails fast with ErrTooManyProposals (default 65536).
	MaxPendingProposals int
	// MaxApplyBacklog bounds the committed entries handed to the apply
	// goroutine and not yet applied (default 65536).
	MaxApplyBacklog int

	// SnapshotThreshold is how many applied entries trigger an automatic
	// snapshot, for state machines that implement Snapshotter (default 8192).
	// Snapshots are written while Apply goes on; if one write is still
	// running when another threshold's worth of entries has been applied,
	// Apply waits for it, so the applied part of the log stays within
	// TrailingLogs + 2*SnapshotThreshold (plus one apply batch).
	SnapshotThreshold uint64
	// DisableAutoSnapshot turns automatic snapshots off (Snapshot still
	// works).
	DisableAutoSnapshot bool
	// TrailingLogs is how many entries stay in the log behind a snapshot, so
	// that slightly lagging followers catch up from the log (default 1024).
	TrailingLogs uint64

	// MaxCatchUpLag is how many entries a learner may be behind the leader
	// and still count as caught up for promotion (default 1024).
	MaxCatchUpLag uint64

	// Codec encodes commands into log entries (default codec.Msgpack()).
	Codec codec.Codec
	// Logger receives the node's logs (default: silent).
	Logger hclog.Logger
	// Seed seeds the random election timeouts (default: from the clock).
	Seed uint64
}

func (c Config) withDefaults() Config {
	if c.TickInterval <= 0 {
		c.TickInterval = 50 * time.Millisecond
	}
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks <= 0 {
		c.HeartbeatTicks = 2
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 256
	}
	if c.MaxAppendEntries <= 0 {
		c.MaxAppendEntries = 4096
	}
	if c.MaxAppendBytes == 0 {
		c.MaxAppendBytes = 1 << 20
	}
	if c.MaxEntryBytes <= 0 {
		c.MaxEntryBytes = 8 << 20
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 4096
	}
	if c.MaxPendingProposals <= 0 {
		c.MaxPendingProposals = 1 << 16
	}
	if c.MaxApplyBacklog <= 0 {
		c.MaxApplyBacklog = 1 << 16
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 1024
	}
	if c.MaxCatchUpLag == 0 {
		c.MaxCatchUpLag = 1024
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
	}
	return nil
}

func (c Config) coreConfig() coreConfig {
	return coreConfig{
		id:                 c.ID,
		electionTicks:      c.ElectionTicks,
		heartbeatTicks:     c.HeartbeatTicks,
		disablePreVote:     c.DisablePreVote,
		disableCheckQuorum: c.DisableCheckQuorum,
		maxInflight:        c.MaxInflight,
		maxMsgEntries:      c.MaxAppendEntries,
		maxMsgBytes:        c.MaxAppendBytes,
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
