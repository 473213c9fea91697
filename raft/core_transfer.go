package raft

import (
	"fmt"
)

// transferLeadership starts handing leadership to to (thesis §3.10): the
// leader stops accepting proposals, brings to up to date and then tells it
// to campaign at once. An empty to picks the most up-to-date voter. The
// transfer is abandoned after an election timeout.
func (c *core) transferLeadership(to NodeID) (NodeID, error) {
	if c.state != Leader {
		return "", ErrNotLeader
	}
	if to == "" {
		var best uint64
		for _, id := range c.conf.voters() {
			if pr := c.prs[id]; id != c.id && pr != nil && (to == "" || pr.match > best) {
				to, best = id, pr.match
			}
		}
		if to == "" {
			return "", fmt.Errorf("%w: no other voter to transfer leadership to", ErrInvalidConfig)
		}
	}
	if to == c.id {
		return to, nil
	}
	if !c.conf.isVoter(to) || c.prs[to] == nil {
		return "", fmt.Errorf("%w: leadership transfer target %s is not a voter", ErrInvalidConfig, to)
	}
	c.leadTransferee = to
	c.transferElapsed = 0
	// Keep the transfer from being cut short by the check-quorum round.
	c.electionElapsed = 0
	if c.prs[to].match == c.log.lastIndex() {
		c.sendTimeoutNow(to)
	} else {
		c.sendAppend(to, true)
	}
	return to, nil
}

func (c *core) abortTransfer() {
	c.leadTransferee = ""
	c.transferElapsed = 0
}
