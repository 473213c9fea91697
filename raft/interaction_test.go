package raft_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/typedraft/typedraft/raft"
)

// TestInteraction runs the scripted scenarios in testdata/*.txt: a cluster
// of raft.Core instances driven through the exported API only, one command
// per directive, each printing what the cores did. The expected output is
// golden: `go test ./raft -run TestInteraction -rewrite` regenerates it,
// and the diff is then reviewed against the Raft paper.
//
// Commands (node IDs are 1, 2, ...; a list of nodes may be "all"):
//
//	add-nodes <n> [pre-vote=false] [check-quorum=false] [election=<ticks>] [heartbeat=<ticks>]
//	          [max-inflight=<n>] [max-msg-entries=<n>]
//	    The first call bootstraps a cluster of n voters: every node's log
//	    holds the configuration entry 1@t1. The nodes start as if they had
//	    run for an election timeout without a leader (past the start lease,
//	    during which a node refuses votes), every election timer 9 ticks
//	    from firing. Later calls add nodes with empty logs and no
//	    configuration (waiting to be added). The options apply to every
//	    node and are taken from the first call.
//	    Each node's randomness (its election timeouts) comes from a PCG
//	    seeded with its ID, so a run is the same every time.
//	campaign <id>             tick the node until its election timer fires (Core
//	                          has no campaign call: elections start from Tick)
//	tick-race <ids>           tick the nodes in step until one's timer fires
//	tick <ids> [<count>]      tick each node count times (default 1)
//	tick-election <ids>       tick each node one election timeout
//	tick-heartbeat <ids>      tick each node one heartbeat interval
//	pause <id> <ticks>        the node's process was paused: ticks of real time pass
//	                          without Tick (Core.SyncClock)
//	propose <id> <data>...    propose one command per data word
//	propose-conf <id> voters=(...) [learners=(...)] [lag=<n>]
//	transfer <id> <to|any>    start a leadership transfer
//	read-index <id> <read-id> [lease]
//	snapshot <id> <index>     snapshot the state machine at index, compact the log
//	report-unreachable <id> <peer>
//	inject <from> <to> <type> [term=] [index=] [log-term=] [commit=]
//	                          step a forged message into a node
//	async-writes on|off       a leader's new entries go to a write in flight
//	write-done <id>           the leader's write in flight completes
//	crash <id> / restart <id> a crash loses the write in flight and the
//	                          messages to the node; restart reads the durable state
//	process-ready <ids>       carry out the nodes' Readies (messages stay queued)
//	deliver-msgs [<ids>]      deliver the queued messages to the nodes (all)
//	drop-msgs [<ids>]         drop the queued messages to the nodes (all)
//	stabilize [<ids>]         Readies and deliveries until nothing moves (only
//	                          the listed nodes; messages to others stay queued)
//	partition <ids>           cut every link between the group and the others
//	cut <a> <b> / heal        cut one link both ways / restore every link
//	status [<ids>]            role, term, commit, configuration; a leader's progress
//	log [<ids>]               durable log, the part not yet durable, state machine
//	queue                     the messages in flight
//
// A message sent over a cut link or to a crashed node is printed as
// dropped when it would arrive; like a lossy network, the harness does not
// report it (report-unreachable does).
//
// A Ready prints as "ready <id>: <role>", then the new hard state, the
// entries to save, the messages to send at once, read states, messages to
// send after the save, the entries to apply and the snapshots to stream,
// in the order the driver carries them out. Entries print as
// index@tterm:data; messages as from->to Type tterm and their fields.
func TestInteraction(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		e := &itEnv{nodes: map[raft.NodeID]*itNode{}, cut: map[[2]raft.NodeID]bool{}}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			e.out = &strings.Builder{}
			if err := e.run(d); err != nil {
				e.printf("error: %v\n", err)
			}
			return e.out.String()
		})
	})
}

// args are a directive's words after the command.
type itArgs struct {
	pos []string
	kv  map[string][]string
}

func parseArgs(d *datadriven.TestData) itArgs {
	a := itArgs{kv: map[string][]string{}}
	for _, c := range d.CmdArgs {
		if len(c.Vals) == 0 {
			a.pos = append(a.pos, c.Key)
		} else {
			a.kv[c.Key] = c.Vals
		}
	}
	return a
}

func (a itArgs) need(n int) error {
	if len(a.pos) < n {
		return fmt.Errorf("need %d arguments, have %d", n, len(a.pos))
	}
	return nil
}

func (a itArgs) intOpt(key string, def int) (int, error) {
	v, ok := a.kv[key]
	if !ok {
		return def, nil
	}
	return strconv.Atoi(v[0])
}

func (a itArgs) boolOpt(key string, def bool) (bool, error) {
	v, ok := a.kv[key]
	if !ok {
		return def, nil
	}
	return strconv.ParseBool(v[0])
}

// nodes resolves a list of node IDs; "all" (or an empty list, if
// allowEmpty) is every node.
func (e *itEnv) nodeList(words []string, allowEmpty bool) ([]raft.NodeID, error) {
	if (len(words) == 0 && allowEmpty) || (len(words) == 1 && words[0] == "all") {
		return slices.Clone(e.ids), nil
	}
	if len(words) == 0 {
		return nil, errors.New("no nodes given")
	}
	var ids []raft.NodeID
	for _, w := range words {
		id := raft.NodeID(w)
		if e.nodes[id] == nil {
			return nil, fmt.Errorf("no node %s", id)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (e *itEnv) run(d *datadriven.TestData) error {
	a := parseArgs(d)
	switch d.Cmd {
	case "add-nodes":
		return e.addNodes(a)
	case "campaign":
		return e.campaign(a)
	case "tick-race":
		return e.tickRace(a)
	case "tick", "tick-election", "tick-heartbeat":
		return e.tickCmd(d.Cmd, a)
	case "pause":
		return e.pause(a)
	case "propose":
		return e.propose(a)
	case "propose-conf":
		return e.proposeConf(a)
	case "transfer":
		return e.transfer(a)
	case "read-index":
		return e.readIndex(a)
	case "snapshot":
		return e.snapshot(a)
	case "report-unreachable":
		if err := a.need(2); err != nil {
			return err
		}
		n, err := e.liveNode(raft.NodeID(a.pos[0]))
		if err != nil {
			return err
		}
		n.core.ReportUnreachable(raft.NodeID(a.pos[1]))
		return nil
	case "inject":
		return e.inject(a)
	case "async-writes":
		if err := a.need(1); err != nil {
			return err
		}
		e.async = a.pos[0] == "on"
		return nil
	case "write-done":
		if err := a.need(1); err != nil {
			return err
		}
		n, err := e.liveNode(raft.NodeID(a.pos[0]))
		if err != nil {
			return err
		}
		if n.write == nil {
			return fmt.Errorf("%s has no write in flight", n.id)
		}
		return e.finishWrite(n, "")
	case "crash":
		return e.crash(a)
	case "restart":
		return e.restart(a)
	case "process-ready":
		ids, err := e.nodeList(a.pos, false)
		if err != nil {
			return err
		}
		_, err = e.processReadies(ids)
		return err
	case "deliver-msgs":
		ids, err := e.nodeList(a.pos, true)
		if err != nil {
			return err
		}
		if e.deliverTo(ids, true) == 0 {
			e.printf("no messages\n")
		}
		return nil
	case "drop-msgs":
		return e.dropMsgs(a)
	case "stabilize":
		ids, err := e.nodeList(a.pos, true)
		if err != nil {
			return err
		}
		return e.stabilize(ids)
	case "partition":
		ids, err := e.nodeList(a.pos, false)
		if err != nil {
			return err
		}
		for _, x := range ids {
			for _, y := range e.ids {
				if !slices.Contains(ids, y) {
					e.cut[[2]raft.NodeID{x, y}] = true
					e.cut[[2]raft.NodeID{y, x}] = true
				}
			}
		}
		e.printCuts()
		return nil
	case "cut":
		if err := a.need(2); err != nil {
			return err
		}
		x, y := raft.NodeID(a.pos[0]), raft.NodeID(a.pos[1])
		e.cut[[2]raft.NodeID{x, y}] = true
		e.cut[[2]raft.NodeID{y, x}] = true
		e.printCuts()
		return nil
	case "heal":
		e.cut = map[[2]raft.NodeID]bool{}
		e.printCuts()
		return nil
	case "status":
		return e.status(a)
	case "log":
		return e.logCmd(a)
	case "queue":
		if len(e.queue) == 0 {
			e.printf("no messages\n")
		}
		for _, im := range e.queue {
			e.printf("%s\n", itMsgText(im.m))
		}
		return nil
	}
	return fmt.Errorf("unknown command %q", d.Cmd)
}

func (e *itEnv) printCuts() {
	var links []string
	for l := range e.cut {
		if l[0] < l[1] && e.cut[[2]raft.NodeID{l[1], l[0]}] {
			links = append(links, fmt.Sprintf("%s-%s", l[0], l[1]))
		}
	}
	if len(links) == 0 {
		e.printf("no links cut\n")
		return
	}
	slices.Sort(links)
	e.printf("cut: %s\n", strings.Join(links, " "))
}

func (e *itEnv) addNodes(a itArgs) error {
	if err := a.need(1); err != nil {
		return err
	}
	count, err := strconv.Atoi(a.pos[0])
	if err != nil {
		return err
	}
	boot := len(e.ids) == 0
	if boot {
		preVote, err1 := a.boolOpt("pre-vote", true)
		checkQuorum, err2 := a.boolOpt("check-quorum", true)
		election, err3 := a.intOpt("election", 10)
		heartbeat, err4 := a.intOpt("heartbeat", 2)
		inflight, err5 := a.intOpt("max-inflight", 0)
		msgEntries, err6 := a.intOpt("max-msg-entries", 0)
		if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
			return err
		}
		e.cfg = raft.CoreConfig{ElectionTicks: election, HeartbeatTicks: heartbeat,
			DisablePreVote: !preVote, DisableCheckQuorum: !checkQuorum, MaxInflight: inflight,
			MaxMsgEntries: msgEntries}
	}
	var added []*itNode
	var servers []raft.Server
	for i := 0; i < count; i++ {
		id := raft.NodeID(strconv.Itoa(len(e.ids) + 1))
		n := &itNode{id: id, log: &itLog{},
			src: &itSource{pcg: rand.NewPCG(uint64(len(e.ids)+1), 0x1d), pinned: boot}}
		e.nodes[id] = n
		e.ids = append(e.ids, id)
		added = append(added, n)
		servers = append(servers, raft.Server{ID: id, Addr: string(id)})
	}
	if boot {
		conf := raft.Configuration{Servers: servers}
		ent := raft.Entry{Index: 1, Term: 1, Type: raft.EntryConfig, Data: raft.EncodeConfiguration(conf)}
		for _, n := range added {
			if err := n.log.save(raft.HardState{Term: 1}, []raft.Entry{ent}); err != nil {
				return err
			}
		}
	}
	for _, n := range added {
		if err := e.start(n); err != nil {
			return err
		}
		if boot {
			// Run out the start lease without the election timer firing
			// (it is pinned to the longest timeout meanwhile).
			for i := 0; i < e.cfg.ElectionTicks; i++ {
				e.tick(n)
			}
			n.src.pinned = false
			if st := n.core.Status().State; st != raft.Follower {
				return fmt.Errorf("%s campaigned while starting (%s)", n.id, st)
			}
		}
		st := n.core.Status()
		e.printf("%s: %s t%d, log (%d,%d], conf%s\n", n.id, st.State, st.Term, n.log.snapIndex, n.log.last(), st.Configuration)
	}
	return nil
}

// fired reports whether n's election timer fired on the tick that moved it
// from before (with hadReady, whether it had output waiting).
func fired(n *itNode, before itRole, hadReady bool) bool {
	r := roleOf(n)
	return r.state != before.state || r.term != before.term || (!hadReady && n.core.HasReady())
}

func (e *itEnv) campaign(a itArgs) error {
	if err := a.need(1); err != nil {
		return err
	}
	n, err := e.liveNode(raft.NodeID(a.pos[0]))
	if err != nil {
		return err
	}
	before := roleOf(n)
	if before.state == raft.Leader {
		return fmt.Errorf("%s is the leader", n.id)
	}
	for i := 1; i <= 10*e.cfg.ElectionTicks; i++ {
		had := n.core.HasReady()
		e.tick(n)
		if fired(n, before, had) {
			e.printf("%s: election timeout after %d ticks: %s -> %s\n", n.id, i, before, roleOf(n))
			return nil
		}
	}
	return fmt.Errorf("%s: the election timer never fired (a non-voter?)", n.id)
}

func (e *itEnv) tickRace(a itArgs) error {
	ids, err := e.nodeList(a.pos, false)
	if err != nil {
		return err
	}
	for i := 1; i <= 10*e.cfg.ElectionTicks; i++ {
		for _, id := range ids {
			n := e.nodes[id]
			if n.down {
				continue
			}
			before, had := roleOf(n), n.core.HasReady()
			e.tick(n)
			if fired(n, before, had) {
				e.printf("%s: election timeout after %d ticks: %s -> %s\n", n.id, i, before, roleOf(n))
				return nil
			}
		}
	}
	return errors.New("no election timer fired")
}

func (e *itEnv) tickCmd(cmd string, a itArgs) error {
	words := a.pos
	count := 1
	if cmd == "tick" && len(words) > 1 {
		if c, err := strconv.Atoi(words[len(words)-1]); err == nil {
			count, words = c, words[:len(words)-1]
		}
	}
	switch cmd {
	case "tick-election":
		count = e.cfg.ElectionTicks
	case "tick-heartbeat":
		count = e.cfg.HeartbeatTicks
	}
	ids, err := e.nodeList(words, false)
	if err != nil {
		return err
	}
	for _, id := range ids {
		n := e.nodes[id]
		if n.down {
			continue
		}
		before := roleOf(n)
		for i := 0; i < count; i++ {
			e.tick(n)
		}
		if after := roleOf(n); after != before {
			e.printf("%s: %s -> %s\n", id, before, after)
		}
	}
	return nil
}

func (e *itEnv) pause(a itArgs) error {
	if err := a.need(2); err != nil {
		return err
	}
	n, err := e.liveNode(raft.NodeID(a.pos[0]))
	if err != nil {
		return err
	}
	ticks, err := strconv.Atoi(a.pos[1])
	if err != nil {
		return err
	}
	n.now += int64(ticks)
	n.core.SyncClock(n.now)
	e.printf("%s: clock at %d ticks, %d of them missed\n", n.id, n.now, ticks)
	return nil
}

func (e *itEnv) propose(a itArgs) error {
	if err := a.need(2); err != nil {
		return err
	}
	n, err := e.liveNode(raft.NodeID(a.pos[0]))
	if err != nil {
		return err
	}
	var ents []raft.Entry
	for _, w := range a.pos[1:] {
		ents = append(ents, raft.Entry{Type: raft.EntryCommand, Data: []byte(w)})
	}
	first, term, err := n.core.Propose(ents)
	if err != nil {
		return err
	}
	e.printf("%s: proposed %d..%d at t%d\n", n.id, first, first+uint64(len(ents))-1, term)
	return nil
}

func (e *itEnv) proposeConf(a itArgs) error {
	if err := a.need(1); err != nil {
		return err
	}
	n, err := e.liveNode(raft.NodeID(a.pos[0]))
	if err != nil {
		return err
	}
	var servers []raft.Server
	for _, v := range a.kv["voters"] {
		servers = append(servers, raft.Server{ID: raft.NodeID(v), Addr: v})
	}
	for _, v := range a.kv["learners"] {
		servers = append(servers, raft.Server{ID: raft.NodeID(v), Addr: v, Suffrage: raft.Learner})
	}
	lag, err := a.intOpt("lag", 0)
	if err != nil {
		return err
	}
	idx, err := n.core.ProposeMembership(servers, uint64(lag))
	if err != nil {
		return err
	}
	e.printf("%s: proposed configuration at index %d\n", n.id, idx)
	return nil
}

func (e *itEnv) transfer(a itArgs) error {
	if err := a.need(2); err != nil {
		return err
	}
	n, err := e.liveNode(raft.NodeID(a.pos[0]))
	if err != nil {
		return err
	}
	to := raft.NodeID(a.pos[1])
	if to == "any" {
		to = ""
	}
	got, err := n.core.TransferLeadership(to)
	if err != nil {
		return err
	}
	e.printf("%s: transferring leadership to %s\n", n.id, got)
	return nil
}

func (e *itEnv) readIndex(a itArgs) error {
	if err := a.need(2); err != nil {
		return err
	}
	n, err := e.liveNode(raft.NodeID(a.pos[0]))
	if err != nil {
		return err
	}
	id, err := strconv.ParseUint(a.pos[1], 10, 64)
	if err != nil {
		return err
	}
	lease := len(a.pos) > 2 && a.pos[2] == "lease"
	// A driver offering lease reads syncs the lease clock first.
	n.core.SyncClock(n.now)
	n.core.ReadIndex(id, lease)
	return nil
}

// snapshot takes a snapshot of n's state machine at index and compacts
// its log there.
func (e *itEnv) snapshot(a itArgs) error {
	if err := a.need(2); err != nil {
		return err
	}
	n, err := e.liveNode(raft.NodeID(a.pos[0]))
	if err != nil {
		return err
	}
	index, err := strconv.ParseUint(a.pos[1], 10, 64)
	if err != nil {
		return err
	}
	if index > n.applied || index <= n.snap.meta.Index {
		return fmt.Errorf("snapshot at %d: applied %d, newest snapshot %d", index, n.applied, n.snap.meta.Index)
	}
	term, err := n.core.Term(index)
	if err != nil {
		return err
	}
	// The configuration in force at index: the last configuration entry
	// at or before it, or the previous snapshot's.
	conf, confIndex := n.snap.meta.Configuration, n.snap.meta.ConfigIndex
	ents, err := n.log.Entries(n.log.snapIndex+1, index+1, 0)
	if err != nil {
		return err
	}
	for _, ent := range ents {
		if ent.Type == raft.EntryConfig {
			if conf, err = raft.DecodeConfiguration(ent.Data); err != nil {
				return err
			}
			confIndex = ent.Index
		}
	}
	var data []string
	for _, ap := range n.sm {
		if ap.index <= index {
			data = append(data, ap.cmd)
		}
	}
	n.snap = itSnapshot{meta: raft.SnapshotMeta{Index: index, Term: term, Configuration: conf, ConfigIndex: confIndex}, data: data}
	n.core.ReportSnapshotCreated(index, term)
	n.log.compact(index, term)
	e.printf("%s: snapshot %d@t%d conf%s state machine %v; log now (%d,%d]\n",
		n.id, index, term, conf, data, n.log.snapIndex, n.log.last())
	return nil
}

func (e *itEnv) inject(a itArgs) error {
	if err := a.need(3); err != nil {
		return err
	}
	to, err := e.liveNode(raft.NodeID(a.pos[1]))
	if err != nil {
		return err
	}
	m := raft.Message{From: raft.NodeID(a.pos[0]), To: to.id}
	for t := raft.MsgVote; t.Valid(); t++ {
		if t.String() == a.pos[2] {
			m.Type = t
		}
	}
	if m.Type == 0 {
		return fmt.Errorf("unknown message type %q", a.pos[2])
	}
	for key, dst := range map[string]*uint64{"term": &m.Term, "index": &m.Index, "log-term": &m.LogTerm, "commit": &m.Commit} {
		v, err := a.intOpt(key, 0)
		if err != nil {
			return err
		}
		*dst = uint64(v)
	}
	before := to.core.Status()
	e.printf("deliver %s\n", itMsgText(m))
	to.core.Step(m)
	after := to.core.Status()
	if after.Strangers > before.Strangers {
		e.printf("%s: dropped a stranger's message (%d so far)\n", to.id, after.Strangers)
	}
	return nil
}

func (e *itEnv) dropMsgs(a itArgs) error {
	ids, err := e.nodeList(a.pos, true)
	if err != nil {
		return err
	}
	var keep []itMsg
	for _, im := range e.queue {
		if slices.Contains(ids, im.m.To) {
			e.printf("dropped %s\n", itMsgText(im.m))
			if im.m.Type == raft.MsgSnap {
				e.snapshotOutcome(im, false)
			}
			continue
		}
		keep = append(keep, im)
	}
	e.queue = keep
	return nil
}

func (e *itEnv) crash(a itArgs) error {
	if err := a.need(1); err != nil {
		return err
	}
	n, err := e.liveNode(raft.NodeID(a.pos[0]))
	if err != nil {
		return err
	}
	n.down = true
	if w := n.write; w != nil {
		e.printf("%s: the write in flight is lost: %s\n", n.id, itEntries(w.ents))
		n.write = nil
	}
	n.received = nil
	var keep []itMsg
	lost := 0
	for _, im := range e.queue {
		if im.m.To == n.id {
			lost++
			continue
		}
		keep = append(keep, im)
	}
	e.queue = keep
	e.printf("%s: crashed (%d messages to it lost); durable log (%d,%d], hard state %s\n",
		n.id, lost, n.log.snapIndex, n.log.last(), itHardState(n.log.hs))
	return nil
}

func (e *itEnv) restart(a itArgs) error {
	if err := a.need(1); err != nil {
		return err
	}
	n, err := e.node(raft.NodeID(a.pos[0]))
	if err != nil {
		return err
	}
	if !n.down {
		return fmt.Errorf("%s is running", n.id)
	}
	if err := e.start(n); err != nil {
		return err
	}
	st := n.core.Status()
	e.printf("%s: restarted: %s t%d commit=%d, log (%d,%d], state machine %v at %d\n",
		n.id, st.State, st.Term, st.Commit, n.log.snapIndex, n.log.last(), n.snap.data, n.applied)
	return nil
}

func (e *itEnv) status(a itArgs) error {
	ids, err := e.nodeList(a.pos, true)
	if err != nil {
		return err
	}
	for _, id := range ids {
		n := e.nodes[id]
		if n.down {
			e.printf("%s: down\n", id)
			continue
		}
		st := n.core.Status()
		vote := string(st.Vote)
		if vote == "" {
			vote = "-"
		}
		e.printf("%s: %s t%d vote=%s", id, st.State, st.Term, vote)
		if st.Leader != "" && st.State != raft.Leader {
			e.printf(" leader=%s", st.Leader)
		}
		e.printf(" commit=%d applied=%d last=%d conf%s@%d", st.Commit, st.Applied, st.LastIndex, st.Configuration, st.ConfigIndex)
		if st.Transferee != "" {
			e.printf(" transferring-to=%s", st.Transferee)
		}
		if st.Removed {
			e.printf(" removed")
		}
		if st.Strangers > 0 {
			e.printf(" strangers-dropped=%d", st.Strangers)
		}
		e.printf("\n")
		for _, p := range n.core.Progress() {
			if p.ID == id {
				e.printf("  %s: match=%d next=%d (self)\n", p.ID, p.Match, p.Next)
				continue
			}
			mode := "replicate"
			switch {
			case p.Snapshot:
				mode = "snapshot"
			case p.Probing:
				mode = "probe"
			}
			e.printf("  %s: match=%d next=%d %s", p.ID, p.Match, p.Next, mode)
			if p.Learner {
				e.printf(" learner")
			}
			if p.Removed {
				e.printf(" removed")
			}
			e.printf("\n")
		}
	}
	return nil
}

// logCmd prints a node's durable log, the part of its log not yet durable,
// and its state machine.
func (e *itEnv) logCmd(a itArgs) error {
	ids, err := e.nodeList(a.pos, true)
	if err != nil {
		return err
	}
	for _, id := range ids {
		n := e.nodes[id]
		l := n.log
		e.printf("%s: hard state %s", id, itHardState(l.hs))
		if l.snapIndex > 0 {
			e.printf(", compacted to %d@t%d", l.snapIndex, l.snapTerm)
		}
		e.printf("\n  durable: %s\n", itEntries(l.ents))
		if !n.down {
			st := n.core.Status()
			// The core's log differs from the durable one from the first
			// index where the terms disagree.
			from := l.snapIndex + 1
			for from <= min(l.last(), st.LastIndex) {
				t, err := n.core.Term(from)
				if lt, _ := l.Term(from); err != nil || t != lt {
					break
				}
				from++
			}
			if from <= st.LastIndex {
				ents, err := n.core.Entries(from, st.LastIndex+1)
				if err != nil {
					return err
				}
				e.printf("  not durable: %s\n", itEntries(ents))
			}
		}
		var sm []string
		for _, ap := range n.sm {
			sm = append(sm, ap.cmd)
		}
		e.printf("  state machine: %v (applied %d)\n", sm, n.applied)
	}
	return nil
}
