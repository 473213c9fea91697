package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// confTracker follows the cluster configuration through the log. A
// configuration takes effect as soon as its entry is appended (§6), so an
// uncommitted one can be truncated away; history keeps the configurations
// appended since the last committed one so that truncation can revert.
type confTracker struct {
	cfg     Configuration
	index   uint64
	history []confAt
	// pendingIndex is, on a leader, the index of the newest configuration
	// entry it appended; a new change waits until it is committed.
	pendingIndex uint64
	err          error
	// in and out cache cfg's voter sets (recomputed on every change).
	in, out []NodeID

	// Removal of this node (self), judged on committed configurations
	// only, each once, in log order (judged is the newest index judged):
	// wasMember says the last one judged included self, and removedAt is
	// the index of a committed configuration that left self out after one
	// that included it (0 once self is added back). A node that joins
	// through the log first sees configurations from before it was added:
	// those leave it out but do not remove it.
	self      NodeID
	judged    uint64
	wasMember bool
	removedAt uint64
	removedBy Configuration
}

// judge records a committed configuration for the removal of self.
func (t *confTracker) judge(ca confAt) {
	if ca.index <= t.judged || ca.index == 0 {
		return
	}
	t.judged = ca.index
	if _, member := ca.cfg.Server(t.self); member {
		t.wasMember, t.removedAt, t.removedBy = true, 0, Configuration{}
	} else if t.wasMember {
		t.wasMember, t.removedAt, t.removedBy = false, ca.index, ca.cfg
	}
}

// set makes cfg (created by the entry at index) the configuration in force.
func (t *confTracker) set(cfg Configuration, index uint64) {
	t.cfg, t.index = cfg, index
	t.in, t.out = cfg.Voters(), cfg.OldVoters()
}

type confAt struct {
	index uint64
	cfg   Configuration
}

// reset makes cfg, the committed configuration of a snapshot, the one in
// force and the only one in the history.
func (t *confTracker) reset(cfg Configuration, index uint64) {
	t.set(cfg.Clone(), index)
	t.history = []confAt{{index, t.cfg}}
	t.judge(t.history[0])
}

func (t *confTracker) push(index uint64, cfg Configuration) {
	t.history = append(t.history, confAt{index, cfg})
	t.set(cfg, index)
}

// scan replays configuration entries of the durable log in [lo, hi].
func (t *confTracker) scan(l *raftLog, lo, hi, committed uint64) error {
	for lo <= hi && lo > 0 {
		ents, err := l.slice(lo, hi+1, 8<<20)
		if err != nil {
			return fmt.Errorf("raft: scan log for configuration [%d,%d]: %w", lo, hi, err)
		}
		if len(ents) == 0 {
			break
		}
		t.appended(ents)
		lo = ents[len(ents)-1].Index + 1
	}
	t.committed(committed)
	return t.err
}

// appended records configuration entries among ents.
func (t *confTracker) appended(ents []Entry) {
	for i := range ents {
		if ents[i].Type != EntryConfig {
			continue
		}
		cfg, err := decodeConfiguration(ents[i].Data)
		if err != nil {
			if t.err == nil {
				t.err = fmt.Errorf("raft: configuration entry %d: %w", ents[i].Index, err)
			}
			continue
		}
		t.push(ents[i].Index, cfg)
	}
}

// truncate forgets configurations at or after index from.
func (t *confTracker) truncate(from uint64) {
	for len(t.history) > 0 && t.history[len(t.history)-1].index >= from {
		t.history = t.history[:len(t.history)-1]
	}
	if n := len(t.history); n > 0 {
		t.set(t.history[n-1].cfg, t.history[n-1].index)
	} else {
		t.set(Configuration{}, 0)
	}
}

// committed judges the configurations committed at ci and drops history
// that can no longer be truncated away.
func (t *confTracker) committed(ci uint64) {
	k := 0 // the newest committed configuration in the history
	for i, ca := range t.history {
		if ca.index > ci {
			break
		}
		t.judge(ca)
		k = i
	}
	if k > 0 {
		t.history = append(t.history[:0], t.history[k:]...)
	}
}

// members returns every server of C(new) and C(old), sorted.
func (t *confTracker) members() []NodeID {
	var ids []NodeID
	for _, s := range t.cfg.Servers {
		ids = append(ids, s.ID)
	}
	for _, s := range t.cfg.Old {
		if !slices.Contains(ids, s.ID) {
			ids = append(ids, s.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// voters returns the union of C(new)'s and C(old)'s voters, sorted.
func (t *confTracker) voters() []NodeID {
	in, out := t.voterSets()
	ids := append([]NodeID(nil), in...)
	for _, id := range out {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// voterSets returns C(new)'s and C(old)'s voters; the slices are shared and
// must not be modified.
func (t *confTracker) voterSets() (incoming, outgoing []NodeID) {
	return t.in, t.out
}

// isMember reports whether id is in C(new) or C(old), voter or learner.
func (t *confTracker) isMember(id NodeID) bool {
	_, ok := t.cfg.Server(id)
	return ok
}

func (t *confTracker) isVoter(id NodeID) bool {
	in, out := t.voterSets()
	return slices.Contains(in, id) || slices.Contains(out, id)
}

// syncProgress makes the leader's progress map match the configuration.
func (c *core) syncProgress() {
	if c.state != Leader {
		return
	}
	members := c.conf.members()
	last := c.log.lastIndex()
	for _, id := range members {
		pr := c.prs[id]
		if pr == nil {
			pr = &progress{next: last + 1, recentActive: true}
			c.prs[id] = pr
		}
		pr.learner = !c.conf.isVoter(id)
	}
	for id, pr := range c.prs {
		if id != c.id && !slices.Contains(members, id) {
			// Keep replicating to a departing node until it holds the
			// configuration that removes it, so that it learns it was removed
			// and stops campaigning.
			pr.removed = true
			pr.learner = true
			if pr.departed(c.conf.index) {
				delete(c.prs, id)
			}
		} else {
			pr.removed = false
		}
	}
	if c.prs[c.id] == nil {
		c.prs[c.id] = &progress{match: c.durableLastIndex(), next: last + 1, state: progressReplicate, recentActive: true}
	}
	c.refreshPeers()
}

// refreshPeers recomputes c.peers after c.prs changed.
func (c *core) refreshPeers() {
	// A fresh slice: a caller may be ranging over the old one.
	peers := make([]NodeID, 0, len(c.prs))
	for id := range c.prs {
		if id != c.id {
			peers = append(peers, id)
		}
	}
	slices.Sort(peers)
	c.peers = peers
}

// afterCommitLeader finishes a joint change and retires a leader that is not
// part of the committed configuration.
func (c *core) afterCommitLeader() {
	ci := c.log.committed
	if c.conf.index > ci || c.conf.pendingIndex > ci {
		return
	}
	if c.conf.cfg.Joint() {
		// C(old,new) is committed: move on to C(new) (§6).
		next := Configuration{Servers: append([]Server(nil), c.conf.cfg.Servers...)}
		c.appendEntries([]Entry{{Type: EntryConfig, Data: encodeConfiguration(next)}})
		c.conf.pendingIndex = c.log.lastIndex()
		c.syncProgress()
		return
	}
	if !c.conf.isVoter(c.id) {
		// A leader removed from the configuration steps down once the
		// configuration without it is committed (thesis §4.2.2), handing
		// over at once to the most up-to-date voter if one is caught up.
		var best NodeID
		for _, id := range c.conf.voters() {
			if pr := c.prs[id]; pr != nil && pr.match == c.log.lastIndex() {
				best = id
				break
			}
		}
		if best != "" {
			c.sendTimeoutNow(best)
		}
		c.becomeFollower(c.term, "")
	}
}

// Configuration wire format (inside EntryConfig data and snapshots):
//
//	version byte (1)
//	uvarint n, then n servers; uvarint m, then m old servers
//	server: suffrage byte, uvarint len + ID bytes, uvarint len + Addr bytes
const configurationVersion = 1

// maxConfigServers bounds decoding of untrusted configuration data.
const maxConfigServers = 1 << 12

// EncodeConfiguration returns the bytes of an EntryConfig entry holding c.
// Custom drivers and simulators use it to write the bootstrap entry.
func EncodeConfiguration(c Configuration) []byte { return encodeConfiguration(c) }

// DecodeConfiguration parses the data of an EntryConfig entry. It returns an
// error (never panics) on malformed data.
func DecodeConfiguration(data []byte) (Configuration, error) { return decodeConfiguration(data) }

func encodeConfiguration(c Configuration) []byte {
	b := []byte{configurationVersion}
	put := func(ss []Server) {
		b = binary.AppendUvarint(b, uint64(len(ss)))
		for _, s := range ss {
			b = append(b, byte(s.Suffrage))
			b = binary.AppendUvarint(b, uint64(len(s.ID)))
			b = append(b, s.ID...)
			b = binary.AppendUvarint(b, uint64(len(s.Addr)))
			b = append(b, s.Addr...)
		}
	}
	put(c.Servers)
	put(c.Old)
	return b
}

var errBadConfiguration = errors.New("malformed configuration")

func decodeConfiguration(b []byte) (Configuration, error) {
	if len(b) == 0 || b[0] != configurationVersion {
		return Configuration{}, fmt.Errorf("%w: unknown version", errBadConfiguration)
	}
	b = b[1:]
	readStr := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	get := func() ([]Server, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > maxConfigServers || n > uint64(len(b)) {
			return nil, fmt.Errorf("%w: bad server count", errBadConfiguration)
		}
		b = b[k:]
		var ss []Server
		for i := uint64(0); i < n; i++ {
			if len(b) == 0 {
				return nil, fmt.Errorf("%w: truncated", errBadConfiguration)
			}
			s := Server{Suffrage: Suffrage(b[0])}
			if s.Suffrage > Learner {
				return nil, fmt.Errorf("%w: bad suffrage %d", errBadConfiguration, b[0])
			}
			b = b[1:]
			id, ok1 := readStr()
			addr, ok2 := readStr()
			if !ok1 || !ok2 || id == "" {
				return nil, fmt.Errorf("%w: bad server %d", errBadConfiguration, i)
			}
			s.ID, s.Addr = NodeID(id), addr
			ss = append(ss, s)
		}
		return ss, nil
	}
	servers, err := get()
	if err != nil {
		return Configuration{}, err
	}
	old, err := get()
	if err != nil {
		return Configuration{}, err
	}
	if len(b) != 0 {
		return Configuration{}, fmt.Errorf("%w: %d trailing bytes", errBadConfiguration, len(b))
	}
	return Configuration{Servers: servers, Old: old}, nil
}
