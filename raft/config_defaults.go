package raft

import (
	"math"
	"time"

	"github.com/typedraft/typedraft/raft/internal/bugs"
)

// The defaults, in one place. A zero field of Config or CoreConfig takes
// the default named here. Where a literal zero is meaningful
// (Config.TrailingLogs: keep no entries behind a snapshot;
// Config.MaxCatchUpLag: a learner must be exactly caught up;
// Config.SessionTTL: sessions never expire by age), say Zero.
//
// Zero, in a field documented to accept it, asks for the value 0, which a
// plain 0 cannot say (0 means the default).
const Zero uint64 = math.MaxUint64
const (
	DefaultTickInterval        = 50 * time.Millisecond
	DefaultElectionTicks       = 10
	DefaultHeartbeatTicks      = 2
	DefaultMaxInflight         = 256
	DefaultMaxInflightBytes    = 64 << 20
	DefaultMaxAppendEntries    = 4096
	DefaultMaxAppendBytes      = 1 << 20
	DefaultMaxApplyBytes       = 64 << 20
	DefaultMaxEntryBytes       = 8 << 20
	DefaultMaxBatch            = 4096
	DefaultMaxPendingProposals = 1 << 16
	DefaultMaxApplyBacklog     = 1 << 16
	DefaultSnapshotThreshold   = 8192
	DefaultTrailingLogs        = 1024
	DefaultMaxCatchUpLag       = 1024
	DefaultMaxForwarded        = 4096
	// DefaultSessionTTL is how many log entries an unused session lives
	// (about 28 minutes at 10,000 entries a second).
	DefaultSessionTTL  = 1 << 24
	DefaultMaxSessions = 4096
	// DefaultMaxClockDrift is the bound on clock drift between nodes that
	// lease reads assume (10%).
	DefaultMaxClockDrift = 0.1
)

// CoreConfig configures a Core: the part of Config the deterministic core
// uses, in ticks. Every field means what the Config field of the same
// name means (Config.MaxAppendEntries and Config.MaxAppendBytes are
// MaxMsgEntries and MaxMsgBytes here); zero fields take the defaults above.
// Config.Core derives it from a Config.
type CoreConfig struct {
	ID                 NodeID
	ElectionTicks      int
	HeartbeatTicks     int
	DisablePreVote     bool
	DisableCheckQuorum bool
	MaxInflight        int
	MaxInflightBytes   uint64
	MaxMsgEntries      int
	MaxMsgBytes        uint64
	MaxApplyBytes      uint64
	// MaxApplyBacklog bounds the committed entries handed out (in Ready)
	// and not yet reported applied (ReportApplied); zero means no bound,
	// for drivers that apply synchronously.
	MaxApplyBacklog uint64
	MaxClockDrift   float64

	// bugs injects known Raft bugs (raftbugs builds only).
	bugs bugs.Set
}

// withDefaults fills zero fields with the defaults.
func (c CoreConfig) withDefaults() CoreConfig {
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = DefaultElectionTicks
	}
	if c.HeartbeatTicks <= 0 {
		c.HeartbeatTicks = DefaultHeartbeatTicks
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxInflightBytes == 0 {
		c.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if c.MaxMsgEntries <= 0 {
		c.MaxMsgEntries = DefaultMaxAppendEntries
	}
	if c.MaxMsgBytes == 0 {
		c.MaxMsgBytes = DefaultMaxAppendBytes
	}
	if c.MaxApplyBytes == 0 {
		c.MaxApplyBytes = DefaultMaxApplyBytes
	}
	if c.MaxClockDrift <= 0 {
		c.MaxClockDrift = DefaultMaxClockDrift
	}
	return c
}

// orZero returns v, or 0 if v is Zero.
func orZero(v uint64) uint64 {
	if v == Zero {
		return 0
	}
	return v
}

// trailingLogs is the effective Config.TrailingLogs.
func (c Config) trailingLogs() uint64 { return orZero(c.TrailingLogs) }

// sessionTTL is the effective Config.SessionTTL (0: never by age).
func (c Config) sessionTTL() uint64 { return orZero(c.SessionTTL) }

// maxCatchUpLag is the effective Config.MaxCatchUpLag.
func (c Config) maxCatchUpLag() uint64 { return orZero(c.MaxCatchUpLag) }
