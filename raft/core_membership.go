package raft

import (
	"fmt"
	"slices"
)

// Membership changes by joint consensus (§6): a change of the voter set is
// appended as C(old,new); once that commits the leader appends C(new). A
// change that only adds or removes learners needs no joint phase.

// proposeConfChange appends the configuration servers (the complete new
// membership, voters and learners) and returns the entry's index. maxLag
// bounds how far behind the leader's log a new voter may be.
func (c *core) proposeConfChange(servers []Server, maxLag uint64) (uint64, error) {
	if c.state != Leader {
		return 0, ErrNotLeader
	}
	if c.leadTransferee != "" {
		return 0, ErrTransferInProgress
	}
	if c.conf.cfg.Joint() || c.conf.pendingIndex > c.log.committed || c.conf.index > c.log.committed {
		return 0, ErrConfigChangePending
	}
	next := Configuration{Servers: slices.Clone(servers)}
	if len(next.Voters()) == 0 {
		return 0, fmt.Errorf("%w: the change would leave no voters", ErrInvalidConfig)
	}
	cur := c.conf.cfg
	last := c.log.lastIndex()
	for _, id := range next.Voters() {
		if slices.Contains(cur.Voters(), id) {
			continue
		}
		pr := c.prs[id]
		if pr == nil {
			return 0, fmt.Errorf("%w: %s is not a member; add it as a learner first", ErrNotCaughtUp, id)
		}
		// It must hold the configuration that made it a learner: a node that
		// never answered (match 0) is not caught up, however short the log.
		if pr.match < c.conf.index || last-min(pr.match, last) > maxLag {
			return 0, fmt.Errorf("%w: %s matches %d of %d (allowed lag %d, configuration at %d)", ErrNotCaughtUp, id, pr.match, last, maxLag, c.conf.index)
		}
	}
	if !sameIDs(next.Voters(), cur.Voters()) {
		for _, s := range cur.Servers {
			if s.Suffrage == Voter {
				next.Old = append(next.Old, s)
			}
		}
	}
	c.appendEntries([]Entry{{Type: EntryConfig, Data: encodeConfiguration(next)}})
	idx := c.log.lastIndex()
	c.conf.pendingIndex = idx
	c.bcastAppend()
	return idx, nil
}

func sameIDs(a, b []NodeID) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
