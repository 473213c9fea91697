package raft

import "github.com/typedraft/typedraft/raft/internal/bugs"

// quorumSets returns the voter sets whose majorities decide commits and
// elections: C(new) and, while joint, C(old).
func (c *core) quorumSets() (incoming, outgoing []NodeID) {
	in, out := c.conf.voterSets()
	if bugs.Enabled && c.cfg.bugs.JointNewMajorityOnly {
		out = nil
	}
	return in, out
}
