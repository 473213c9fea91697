package raft

import "time"

// strangerWarnEvery is how often, at most, the driver logs messages
// dropped from non-members: the first one at once, then one summary per
// period with the count, so a flood never floods the log.
const strangerWarnEvery = 10 * time.Second

// warnStrangers logs, rate-limited, the messages the core dropped because
// their sender is not a member (core_strangers.go).
func (d *driver) warnStrangers() {
	st := d.core.Status()
	n := st.Strangers
	if n > d.strangersCounted {
		d.metrics.add(&d.metrics.inboxDropped, n-d.strangersCounted)
		d.strangersCounted = n
	}
	if n == d.strangersLogged {
		return
	}
	now := time.Now()
	if d.strangersLogged != 0 && now.Sub(d.strangersAt) < strangerWarnEvery {
		return
	}
	m := st.LastStranger
	d.log.Warn("dropped messages from a node that is not a member",
		"count", n-d.strangersLogged, "peer", string(m.From), "type", m.Type.String(), "term", m.Term)
	d.strangersLogged, d.strangersAt = n, now
}
