package rafttest

import (
	"reflect"
	"slices"
	"sort"

	"github.com/typedraft/typedraft/raft"
)

type entryKey struct{ index, term uint64 }

type grantKey struct {
	voter int
	term  uint64
}

// committedEntry is one entry of the cluster's committed log as the
// simulator has observed it.
type committedEntry struct {
	term         uint64
	ehash, phash uint64
	// commitTerm is an upper bound of the term in which the entry was
	// committed: the lowest term of any node seen with a commit index
	// covering it. It never decreases along the log.
	commitTerm uint64
}

// ghost is the simulator's omniscient record of the run, against which the
// invariants are checked. It spans every node and every incarnation.
type ghost struct {
	// leaders maps a term to the node that led in it.
	leaders map[uint64]int
	// grants maps (voter, term) to the candidate the vote went to.
	grants map[grantKey]int
	// entries maps every (index, term) ever saved to the prefix hash of
	// the log ending there.
	entries map[entryKey]uint64
	// committed is the committed log, entry i at committed[i-1].
	committed []committedEntry
	// confs are the configuration entries of the committed log, in order.
	confs []confAt
	// leaderCommit is the highest commit index a leader reached (each
	// checked against its configuration when it was reached).
	leaderCommit uint64
}

// confAt is a configuration created by the entry at index.
type confAt struct {
	index uint64
	cfg   raft.Configuration
}

func newGhost() *ghost {
	return &ghost{
		leaders: map[uint64]int{},
		grants:  map[grantKey]int{},
		entries: map[entryKey]uint64{},
	}
}

// confAt returns the configuration in force at index i of the committed log
// (created by the last configuration entry at or before i) and its index.
func (g *ghost) confAt(i uint64) (raft.Configuration, uint64) {
	k := sort.Search(len(g.confs), func(j int) bool { return g.confs[j].index > i })
	if k == 0 {
		return raft.Configuration{}, 0
	}
	return g.confs[k-1].cfg, g.confs[k-1].index
}

// committedConf returns the newest committed configuration (boot, the
// bootstrap configuration, before the first commit).
func (g *ghost) committedConf(boot raft.Configuration) raft.Configuration {
	if len(g.confs) == 0 {
		return boot
	}
	return g.confs[len(g.confs)-1].cfg
}

// checkAll runs the checks that need only each core's basic state; it runs
// after every step.
func (s *sim) checkAll() {
	for _, n := range s.nodes {
		if s.fail != nil {
			return
		}
		s.checkNode(n)
	}
}

// checkNode runs checkAll's checks on n. Every change to a core is followed
// by checkNode on it before the core changes again or is read for a Ready.
func (s *sim) checkNode(n *node) {
	if s.fail != nil || !n.up {
		return
	}
	if err := n.core.Err(); err != nil {
		s.failf(InvariantCoreError, "%s: %v", n.id, err)
		return
	}
	st, term, _, commit, applied, last := n.core.Basic()
	switch {
	case term < n.term:
		s.failf(InvariantMonotonic, "%s: term went from %d to %d", n.id, n.term, term)
	case commit < n.commit:
		s.failf(InvariantMonotonic, "%s: commit went from %d to %d", n.id, n.commit, commit)
	case applied < n.applied:
		s.failf(InvariantMonotonic, "%s: applied went from %d to %d", n.id, n.applied, applied)
	case applied > commit:
		s.failf(InvariantStateMachineSafety, "%s: applied %d is beyond commit %d", n.id, applied, commit)
	}
	// A leader's commit index moves only by its own decisions, made
	// with the configuration it had before this step (a leader that
	// steps down as it commits the configuration removing it included).
	if n.leading && term == n.term && commit > n.commit {
		if e, ok := n.viewEntry(commit); ok && e.Term != term {
			s.failf(InvariantCurrentTermCommit, "%s, leader of term %d, advanced its commit index from %d to %d, an entry of term %d",
				n.id, term, n.commit, commit, e.Term)
		}
		if s.fail != nil {
			return
		}
		s.checkLeaderCommit(n, commit)
	}
	if st == raft.Leader && (!n.leading || term != n.term || last != n.confLast) {
		n.conf, _ = n.core.Configuration()
		n.confLast = last
	}
	if (st == raft.Candidate || st == raft.PreCandidate) && n.campaignKey != [3]uint64{term, uint64(st), last} {
		n.campaignKey = [3]uint64{term, uint64(st), last}
		if cfg, idx := n.core.Configuration(); !isVoter(cfg, n.id) {
			s.failf(InvariantOnlyVotersCampaign, "%s is a %s in term %d, but it is not a voter of its configuration %v (index %d)",
				n.id, st, term, cfg, idx)
		}
	}
	n.term, n.commit, n.applied = term, commit, applied
	n.leading = st == raft.Leader
	if st == raft.Leader {
		if l, ok := s.g.leaders[term]; !ok {
			s.g.leaders[term] = n.idx
			s.rep.Leaders++
		} else if l != n.idx {
			s.failf(InvariantElectionSafety, "%s and %s both lead term %d", s.ids[l], n.id, term)
		}
	}
}

// isVoter reports whether id is a voter of either half of cfg.
func isVoter(cfg raft.Configuration, id raft.NodeID) bool {
	return slices.Contains(cfg.Voters(), id) || slices.Contains(cfg.OldVoters(), id)
}

// checkLeaderCommit checks a leader's new commit index against the
// configuration it decided with (n.conf, read before the step): a majority
// of its voters, and while it is joint a majority of the outgoing voters
// too, must hold the leader's entry at commit durably.
func (s *sim) checkLeaderCommit(n *node, commit uint64) {
	term, err := n.core.Term(commit)
	if err != nil {
		s.failf(InvariantCoreError, "%s commits %d but cannot read its term: %v", n.id, commit, err)
		return
	}
	ph, ok := s.g.entries[entryKey{commit, term}]
	if !ok && commit <= uint64(len(s.g.committed)) && s.g.committed[commit-1].term == term {
		ph, ok = s.g.committed[commit-1].phash, true
	}
	if !ok {
		s.failf(InvariantCommitDurable, "%s, leader of term %d, commits %d (term %d), which no node ever saved", n.id, n.term, commit, term)
		return
	}
	for _, half := range [][]raft.NodeID{n.conf.Voters(), n.conf.OldVoters()} {
		if len(half) == 0 {
			continue
		}
		if have := s.durableCount(half, commit, ph); 2*have <= len(half) {
			s.failf(InvariantCommitDurable, "%s, leader of term %d, commits %d, but only %d of the voters %v of its configuration %v hold it durably",
				n.id, n.term, commit, have, half, n.conf)
			return
		}
	}
	s.g.leaderCommit = max(s.g.leaderCommit, commit)
}

// durableCount counts the nodes among ids whose durable state holds the log
// prefix ending at index i with prefix hash ph (as entries, or covered by
// a compacted prefix that matches the committed log).
func (s *sim) durableCount(ids []raft.NodeID, i, ph uint64) int {
	c := s.g.committed
	count := 0
	for _, id := range ids {
		k, ok := s.index[id]
		if !ok {
			continue
		}
		d := s.nodes[k].disk
		switch b := d.base; {
		case b <= i:
			if i <= d.last() && d.prefixHash(i) == ph {
				count++
			}
		case b <= uint64(len(c)) && c[b-1].phash == d.bhash && c[i-1].phash == ph:
			count++
		}
	}
	return count
}

// checkReply checks a message as it leaves n: a vote request carries n's
// vote for itself and a grant n's vote for the candidate, each of which must
// already be durable and be n's only vote in that term; an acknowledged
// append must already be durable. A message of a term older than n's
// durable term is stale and harmless: n can never act in that term again.
func (s *sim) checkReply(n *node, to int, m raft.Message) {
	hs := n.disk.hs
	switch {
	case m.Type == raft.MsgVote || (m.Type == raft.MsgVoteResp && !m.Reject):
		voted := to
		if m.Type == raft.MsgVote {
			voted = n.idx
		}
		if hs.Term < m.Term || (hs.Term == m.Term && hs.Vote != s.ids[voted]) {
			s.failf(InvariantDurableBeforeSend, "%s sends %s voting for %s in term %d, but its durable state is term %d vote %q",
				n.id, m.Type, s.ids[voted], m.Term, hs.Term, hs.Vote)
		}
		s.checkGrant(n, voted, m.Term)
	case m.Type == raft.MsgAppResp && !m.Reject && m.Index > 0:
		// (Index 0 acknowledges nothing: it tells a stale leader the term.)
		// The acknowledged prefix must be durable. It is normally the
		// node's own log up to i; with a write in flight, the node may have
		// moved on by the time the write completes and its acknowledgement
		// leaves (a newer leader replaced the entries, or a snapshot reset
		// the log): it then still backs, durably, the prefix of the leader it
		// answers, which is what that leader counts (and, when a newer leader
		// replaced it, can no longer commit: the newer leader was elected
		// without it) — the leader's log, or the committed log it holds.
		i := m.Index
		vh, _ := n.viewHash(i)
		durable := i < n.disk.base || (i <= n.disk.last() && n.disk.prefixHash(i) == vh)
		if !durable && i <= n.disk.last() && i > n.disk.base {
			dh := n.disk.prefixHash(i)
			if lh, ok := s.nodes[to].viewHash(i); ok && s.nodes[to].up && lh == dh {
				durable = true
			} else if i <= uint64(len(s.g.committed)) && s.g.committed[i-1].phash == dh {
				durable = true
			}
		}
		if hs.Term < m.Term || (hs.Term == m.Term && !durable) {
			s.failf(InvariantDurableBeforeSend, "%s acknowledges entries up to %d in term %d, but its durable log (term %d) ends at %d or differs there",
				n.id, i, m.Term, hs.Term, n.disk.last())
		}
	}
}

// checkGrant records that voter voted for candidate in term and checks
// that it is the voter's only vote in that term, whatever crashes happened
// in between. Votes are known from the messages that carry them: a vote
// request (the candidate's vote for itself) and a granted vote.
func (s *sim) checkGrant(voter *node, candidate int, term uint64) {
	k := grantKey{voter.idx, term}
	if prev, ok := s.g.grants[k]; ok && prev != candidate {
		s.failf(InvariantVoteOncePerTerm, "%s voted for %s in term %d and then for %s", voter.id, s.ids[prev], term, s.ids[candidate])
		return
	}
	s.g.grants[k] = candidate
}

// checkReady runs the checks that need the core's whole log, which the
// simulator knows exactly right after a Ready: the durable log with the
// Ready's unsaved entries laid over it.
func (s *sim) checkReady(n *node) {
	s.checkNode(n)
	if s.fail != nil {
		return
	}
	st, term, _, commit, _, last := n.core.Basic()
	if v := n.viewLast(); v != last {
		s.failf(InvariantCoreError, "%s: its log ends at %d but the durable log plus the Ready's entries end at %d", n.id, last, v)
		return
	}
	s.observeCommit(n, commit, term)
	if s.fail != nil {
		return
	}
	if st == raft.Leader {
		s.checkLeaderCompleteness(n, term)
		if s.fail != nil {
			return
		}
	}
	s.checkCommitDurable(n, commit)
}

// viewMatches reports whether n's log (as of its latest Ready) agrees with
// the committed log up to k. A compacted prefix is compared where it ends
// (the prefix hash there covers everything before it).
func (s *sim) viewMatches(n *node, k uint64) bool {
	at := max(k, n.viewBase())
	if at == 0 {
		return true
	}
	h, ok := n.viewHash(at)
	return ok && at <= uint64(len(s.g.committed)) && h == s.g.committed[at-1].phash
}

// durableMatches reports whether n's durable state (log or compacted
// prefix) holds the committed log up to k.
func (s *sim) durableMatches(n *node, k uint64) bool {
	at := max(k, n.disk.base)
	if at == 0 {
		return true
	}
	return at <= n.disk.last() && at <= uint64(len(s.g.committed)) && n.disk.prefixHash(at) == s.g.committed[at-1].phash
}

// observeCommit checks n's committed prefix [1, commit] against the
// committed log and extends it.
func (s *sim) observeCommit(n *node, commit, term uint64) {
	g := s.g
	known := uint64(len(g.committed))
	if k := min(known, commit); k > 0 && !s.viewMatches(n, k) {
		i := s.firstDifference(n, k)
		e, _ := n.viewEntry(i)
		s.failf(InvariantCommittedStable, "%s (commit %d) holds entry %d term %d, but entry %d term %d was committed",
			n.id, commit, i, e.Term, i, g.committed[i-1].term)
		return
	}
	for i := known + 1; i <= commit; i++ {
		e, ok := n.viewEntry(i)
		h, _ := n.viewHash(i)
		if !ok {
			s.failf(InvariantCommittedStable, "%s commits %d, but entry %d is compacted or missing (log (%d, %d]) and was never seen committed",
				n.id, commit, i, n.viewBase(), n.viewLast())
			return
		}
		g.committed = append(g.committed, committedEntry{term: e.Term, ehash: entryHash(e), phash: h, commitTerm: term})
		if e.Type == raft.EntryConfig {
			s.observeConf(n, e)
		}
	}
	// Everything up to commit was committed in term `term` or earlier.
	for j := min(commit, uint64(len(g.committed))); j >= 1 && g.committed[j-1].commitTerm > term; j-- {
		g.committed[j-1].commitTerm = term
	}
}

// firstDifference returns the first index at or below k where n's log
// (where not compacted) differs from the committed log.
func (s *sim) firstDifference(n *node, k uint64) uint64 {
	for i := uint64(1); i <= k; i++ {
		e, ok := n.viewEntry(i)
		if ok && entryHash(e) != s.g.committed[i-1].ehash {
			return i
		}
	}
	return k
}

// checkLeaderCompleteness checks that the leader of term holds every entry
// committed in an earlier term (§5.4.1).
func (s *sim) checkLeaderCompleteness(n *node, term uint64) {
	c := s.g.committed
	k := uint64(sort.Search(len(c), func(i int) bool { return c[i].commitTerm >= term }))
	if s.viewMatches(n, k) {
		return
	}
	i := s.firstDifference(n, k)
	s.failf(InvariantLeaderCompleteness, "%s leads term %d but lacks entry %d (term %d, committed by term %d); its log ends at %d",
		n.id, term, i, c[i-1].term, c[i-1].commitTerm, n.viewLast())
}

// checkCommitDurable checks that n's commit index does not exceed what a
// leader committed, and that the entry there is durably stored by a
// majority of the voters of the configuration in force at that index of the
// committed log (of its incoming voters if it is joint).
//
// This holds at every moment, not only when the entry was committed:
// whichever leader commits index c uses the configuration at c or one
// appended after it. One appended after c is either a joint C(cfg,new),
// which needs a majority of cfg as well, or the C(new) that ends a joint
// cfg already committed, whose voters are cfg's incoming ones; a learner
// change keeps the voters. Durable entries of the committed log are never
// lost. The outgoing half of a joint configuration is not required: an
// entry appended after C(old,new) committed but before C(new) is committed
// by C(new)'s majority alone. checkLeaderCommit checks both halves at the
// moment of commit.
func (s *sim) checkCommitDurable(n *node, commit uint64) {
	if commit == 0 {
		return
	}
	if commit > s.g.leaderCommit {
		s.failf(InvariantCommitDurable, "%s commits %d, beyond the highest index a leader committed (%d)", n.id, commit, s.g.leaderCommit)
		return
	}
	cfg, ci := s.g.confAt(commit)
	voters := cfg.Voters()
	if ci == 0 || commit > uint64(len(s.g.committed)) {
		return // observeCommit has failed already
	}
	if have := s.durableCount(voters, commit, s.g.committed[commit-1].phash); 2*have <= len(voters) {
		s.failf(InvariantCommitDurable, "%s commits %d, but only %d of the voters %v of the configuration in force there (index %d) hold it durably",
			n.id, commit, have, voters, ci)
	}
}

// checkSave checks the hard state about to be saved against the durable one.
func (s *sim) checkSave(n *node, hs raft.HardState) {
	old := n.disk.hs
	switch {
	case hs.Term < old.Term:
		s.failf(InvariantMonotonic, "%s: durable term would go from %d to %d", n.id, old.Term, hs.Term)
	case hs.Commit < old.Commit:
		s.failf(InvariantMonotonic, "%s: durable commit would go from %d to %d", n.id, old.Commit, hs.Commit)
	case hs.Term == old.Term && old.Vote != "" && hs.Vote != old.Vote:
		s.failf(InvariantVoteStable, "%s: durable vote for term %d would change from %q to %q", n.id, hs.Term, old.Vote, hs.Vote)
	}
}

// checkSaved checks log matching for entries just saved: an (index, term)
// pair names one entry and one log prefix for the whole run.
func (s *sim) checkSaved(n *node, ents []raft.Entry) {
	for _, e := range ents {
		k := entryKey{e.Index, e.Term}
		ph := n.disk.prefixHash(e.Index)
		if old, ok := s.g.entries[k]; ok && old != ph {
			s.failf(InvariantLogMatching, "%s saved entry %d term %d whose log prefix differs from another node's entry %d term %d",
				n.id, e.Index, e.Term, e.Index, e.Term)
			return
		} else if !ok {
			s.g.entries[k] = ph
		}
	}
}

// checkApply checks that n applies e in order, that e is the committed
// entry at its index, and that e comes from n's durable log.
func (s *sim) checkApply(n *node, e raft.Entry) {
	c := s.g.committed
	switch {
	case e.Index != n.appliedIdx+1:
		s.failf(InvariantStateMachineSafety, "%s applies entry %d after entry %d", n.id, e.Index, n.appliedIdx)
	case e.Index > uint64(len(c)):
		s.failf(InvariantStateMachineSafety, "%s applies entry %d, beyond the committed log (%d)", n.id, e.Index, len(c))
	case entryHash(e) != c[e.Index-1].ehash:
		s.failf(InvariantStateMachineSafety, "%s applies entry %d term %d, but entry %d term %d was committed (and applied elsewhere)",
			n.id, e.Index, e.Term, e.Index, c[e.Index-1].term)
	case !durableEntry(n.disk, e):
		s.failf(InvariantStateMachineSafety, "%s applies entry %d term %d, which is not in its durable log", n.id, e.Index, e.Term)
	}
}

// durableEntry reports whether d's log holds e.
func durableEntry(d *disk, e raft.Entry) bool {
	x, ok := d.entry(e.Index)
	return ok && entryHash(x) == entryHash(e)
}

// checkSnapshot checks that a snapshot covers the committed log up to its
// index and records the configuration in force there (it is installed or
// taken by n).
func (s *sim) checkSnapshot(n *node, snap *snapshot, what string) {
	i := snap.meta.Index
	c := s.g.committed
	if i > uint64(len(c)) || c[i-1].phash != snap.phash || c[i-1].term != snap.meta.Term {
		s.failf(InvariantStateMachineSafety, "%s %s a snapshot at %d term %d that does not match the committed log (known committed up to %d)",
			n.id, what, i, snap.meta.Term, len(c))
		return
	}
	cfg, ci := s.g.confAt(i)
	if ci != snap.meta.ConfigIndex || !reflect.DeepEqual(cfg, snap.meta.Configuration) {
		s.failf(InvariantStateMachineSafety, "%s %s a snapshot at %d with configuration %v (index %d), but the committed log has %v (index %d) there",
			n.id, what, i, snap.meta.Configuration, snap.meta.ConfigIndex, cfg, ci)
	}
}

// observeConf records the configuration entry e, just seen committed.
func (s *sim) observeConf(n *node, e raft.Entry) {
	cfg, err := raft.DecodeConfiguration(e.Data)
	if err != nil {
		s.failf(InvariantCoreError, "%s commits configuration entry %d, which does not decode: %v", n.id, e.Index, err)
		return
	}
	s.g.confs = append(s.g.confs, confAt{e.Index, cfg})
	if e.Index == 1 {
		return
	}
	m := &s.rep.Membership
	m.Committed++
	if cfg.Joint() {
		m.Joint++
	}
	v := len(cfg.Voters())
	if m.MinVoters == 0 || v < m.MinVoters {
		m.MinVoters = v
	}
	m.MaxVoters = max(m.MaxVoters, v)
}
