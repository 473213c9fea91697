package raft_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/typedraft/typedraft/codec"
	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/transport/inmem"
)

// followerOf returns a node other than lead that knows lead leads.
func (c *cluster) followerOf(lead raft.NodeID) raft.NodeID {
	c.t.Helper()
	for _, id := range c.ids {
		if id != lead {
			waitFor(c.t, string(id)+" to know the leader", 5*time.Second, func() bool { return c.nodes[id].Status().Leader == lead })
			return id
		}
	}
	c.t.Fatal("no follower")
	return ""
}

// opCtx is a context for one operation of a test.
func opCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A follower forwards proposals to the leader and answers with the
// leader's typed outcome in both response modes: the value in Applied
// mode, the entry's position in Committed mode.
func TestForwardBothModes(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	f := c.followerOf(lead)
	ctx := opCtx(t)
	fut := c.nodes[f].Propose(ctx, kvCmd{Op: "put", Key: "a", Val: "1"})
	res, err := fut.Wait(ctx)
	if err != nil || res.Rejected() || res.Value != "1" || res.Index == 0 || res.Term == 0 {
		t.Fatalf("forwarded Applied proposal: %+v %v", res, err)
	}
	if idx, term := fut.Index(); idx != res.Index || term != res.Term {
		t.Fatalf("future's index %d/%d, result %d/%d", idx, term, res.Index, res.Term)
	}
	if v, _ := c.sms[lead].get("a"); v != "1" {
		t.Fatalf("leader holds a=%q after an applied answer", v)
	}
	res, err = c.nodes[f].Propose(ctx, kvCmd{Op: "put", Key: "b", Val: "2"}, raft.Committed).Wait(ctx)
	if err != nil || res.Index == 0 || res.Value != "" {
		t.Fatalf("forwarded Committed proposal: %+v %v", res, err)
	}
	if c.nodes[lead].Status().Commit < res.Index {
		t.Fatalf("answered committed at %d, leader's commit index %d", res.Index, c.nodes[lead].Status().Commit)
	}
	c.waitApplied(res.Index)
	for _, id := range c.ids {
		if v, _ := c.sms[id].get("b"); v != "2" {
			t.Fatalf("%s holds b=%q", id, v)
		}
	}
	m, _ := metric(c.nodes[f].Metrics(), "proposals_forwarded_total", "")
	served, _ := metric(c.nodes[lead].Metrics(), "forwarded_served_total", "")
	if m.Value != 2 || served.Value != 2 {
		t.Fatalf("forwarded %v, served %v, want 2 and 2", m.Value, served.Value)
	}
}

// The application's own E crosses the hop with its type and fields: a
// rejection by Apply (the entry is in the log) and by Validate (Index 0),
// in both modes.
func TestForwardTypedErrors(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	f := c.followerOf(lead)
	ctx := opCtx(t)
	c.mustPut("k", "x")
	res, err := c.nodes[f].Propose(ctx, kvCmd{Op: "cas", Key: "k", Old: "wrong", Val: "y"}).Wait(ctx)
	if err != nil || res.Index == 0 || res.Err == nil || res.Err.Code != "conflict" || res.Err.Key != "k" || res.Value != "x" {
		t.Fatalf("Apply's rejection across the hop: %+v (err %+v) %v", res, res.Err, err)
	}
	for _, mode := range []raft.ResponseMode{raft.Applied, raft.Committed} {
		res, err = c.nodes[f].Propose(ctx, kvCmd{Op: "invalid", Key: "z"}, mode).Wait(ctx)
		if err != nil || res.Index != 0 || res.Err == nil || res.Err.Code != "invalid" || res.Err.Key != "z" {
			t.Fatalf("%s: Validate's rejection across the hop: %+v (err %+v) %v", mode, res, res.Err, err)
		}
	}
}

// With forwarding off (by config, or per call) a follower refuses with a
// *NotLeaderError naming the leader; Forward turns it back on per call.
func TestForwardingOptions(t *testing.T) {
	c := newCluster(t, 3, func(cfg *raft.Config) { cfg.DisableForwarding = true })
	lead := c.leader()
	f := c.followerOf(lead)
	ctx := opCtx(t)
	_, err := c.nodes[f].Propose(ctx, kvCmd{Op: "put", Key: "k", Val: "v"}).Wait(ctx)
	var nl *raft.NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderID != lead {
		t.Fatalf("forwarding disabled: %v, want a *NotLeaderError naming %s", err, lead)
	}
	res, err := c.nodes[f].Propose(ctx, kvCmd{Op: "put", Key: "k", Val: "v"}, raft.Forward).Wait(ctx)
	if err != nil || res.Value != "v" {
		t.Fatalf("Forward option: %+v %v", res, err)
	}
	if _, err := c.nodes[f].Propose(ctx, kvCmd{Op: "put"}, raft.Committed, raft.Applied).Wait(ctx); !errors.Is(err, raft.ErrInvalidArgument) {
		t.Fatalf("two modes: %v", err)
	}
}

// A follower partitioned after sending does not hang: its caller gets
// ErrIndeterminate once ForwardTimeout passes (the leader did apply it).
func TestForwardPartitionedAfterSending(t *testing.T) {
	c := newCluster(t, 3, func(cfg *raft.Config) { cfg.ForwardTimeout = 300 * time.Millisecond })
	lead := c.leader()
	f := c.followerOf(lead)
	// The leader's answers (and everything else it sends) no longer reach
	// the follower; the follower's messages still reach the leader.
	c.net.Cut(lead, f)
	ctx := opCtx(t)
	start := time.Now()
	_, err := c.nodes[f].Propose(ctx, kvCmd{Op: "put", Key: "p", Val: "1"}).Wait(ctx)
	if !errors.Is(err, raft.ErrIndeterminate) {
		t.Fatalf("answer lost: %v, want ErrIndeterminate", err)
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Fatalf("indeterminate only after %v", el)
	}
	waitFor(t, "the leader to apply the forwarded command", 5*time.Second, func() bool {
		v, _ := c.sms[lead].get("p")
		return v == "1"
	})
}

// A leader change while a forward waits fails it as indeterminate at once
// (not after ForwardTimeout): the old leader may have committed it.
func TestForwardLeaderChangeMidForward(t *testing.T) {
	c := newCluster(t, 3, func(cfg *raft.Config) { cfg.ForwardTimeout = time.Minute })
	lead := c.leader()
	f := c.followerOf(lead)
	var other raft.NodeID
	for _, id := range c.ids {
		if id != lead && id != f {
			other = id
		}
	}
	c.net.Cut(lead, f)
	ctx := opCtx(t)
	fut := c.nodes[f].Propose(ctx, kvCmd{Op: "put", Key: "q", Val: "1"})
	waitFor(t, "the leader to apply it", 5*time.Second, func() bool { v, _ := c.sms[lead].get("q"); return v == "1" })
	if err := c.nodes[lead].TransferLeadership(ctx, other); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	start := time.Now()
	_, err := fut.Wait(ctx)
	if !errors.Is(err, raft.ErrIndeterminate) || !errors.Is(err, raft.ErrLeadershipLost) {
		t.Fatalf("leader changed mid-forward: %v, want ErrLeadershipLost and ErrIndeterminate", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("failed only after %v", el)
	}
}

// The forwards a follower waits on are bounded.
func TestForwardBounded(t *testing.T) {
	c := newCluster(t, 3, func(cfg *raft.Config) { cfg.MaxForwarded = 1 })
	lead := c.leader()
	f := c.followerOf(lead)
	c.net.Cut(lead, f)
	ctx := opCtx(t)
	first := c.nodes[f].Propose(ctx, kvCmd{Op: "put", Key: "a", Val: "1"})
	_, err := c.nodes[f].Propose(ctx, kvCmd{Op: "put", Key: "b", Val: "2"}).Wait(ctx)
	if !errors.Is(err, raft.ErrTooManyProposals) {
		t.Fatalf("second forward beyond MaxForwarded=1: %v", err)
	}
	if _, err := first.Wait(ctx); !errors.Is(err, raft.ErrIndeterminate) {
		t.Fatalf("first forward, answer cut: %v", err)
	}
}

// A forwarded proposal on a node with no leader known fails with a
// *NotLeaderError naming nobody, at once.
func TestForwardNoLeaderKnown(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	f := c.followerOf(lead)
	c.net.Isolate(f)
	waitFor(t, string(f)+" to lose the leader", 10*time.Second, func() bool { return c.nodes[f].Status().Leader == "" })
	_, err := c.nodes[f].Propose(opCtx(t), kvCmd{Op: "put", Key: "a", Val: "1"}).Wait(opCtx(t))
	var nl *raft.NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderID != "" {
		t.Fatalf("no leader known: %v", err)
	}
}

// errSM is a state machine whose error type is the interface error, which
// no codec can decode: its proposals cannot be forwarded.
type errSM struct{}

func (errSM) Apply(uint64, string) (string, error) { return "ok", nil }

// With E = error, a follower does not forward: its *NotLeaderError says
// why, and the node said so when it started.
func TestForwardingNeedsDecodableTypes(t *testing.T) {
	net := inmem.NewNetwork(1)
	ids := []raft.NodeID{"e1", "e2", "e3"}
	var servers []raft.Server
	for _, id := range ids {
		servers = append(servers, raft.Server{ID: id, Addr: string(id)})
	}
	nodes := map[raft.NodeID]*raft.Raft[string, string, error]{}
	for _, id := range ids {
		tr := net.Join(id)
		n, err := raft.New(testConfig(id), errSM{}, memory.New(), tr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Shutdown(context.Background()); _ = tr.Close() })
		if err := n.Bootstrap(context.Background(), servers); err != nil {
			t.Fatal(err)
		}
		nodes[id] = n
	}
	lead, _, err := nodes["e1"].WaitLeader(opCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var follower raft.NodeID
	for _, id := range ids {
		if id != lead {
			follower = id
		}
	}
	waitFor(t, "the follower to know the leader", 5*time.Second, func() bool { return nodes[follower].Status().Leader == lead })
	_, _, err = nodes[follower].Apply(opCtx(t), "x")
	var nl *raft.NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderID != lead || !strings.Contains(nl.Reason, "interface") {
		t.Fatalf("follower with E=error: %v, want a *NotLeaderError naming %s with the reason", err, lead)
	}
	if v, _, err := nodes[lead].Apply(opCtx(t), "x"); err != nil || v != "ok" {
		t.Fatalf("on the leader: %q %v", v, err)
	}
}

// rogue is a hand-driven endpoint on the test network: it sends what it
// likes and collects what it receives.
type rogue struct{ got chan raft.Message }

func (r rogue) HandleMessage(m raft.Message) {
	select {
	case r.got <- m:
	default:
	}
}
func (rogue) HandleSnapshot(raft.Message, io.Reader) error { return errors.New("rogue") }
func (rogue) ReportUnreachable(raft.NodeID)                {}

// rogueSeat stops a follower of lead and puts a rogue in its seat: an
// endpoint speaking as that member, returned with its transport.
func (c *cluster) rogueSeat(lead raft.NodeID) (raft.NodeID, raft.Transport, rogue) {
	c.t.Helper()
	seat := c.followerOf(lead)
	if err := c.nodes[seat].Shutdown(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	_ = c.trs[seat].Close()
	delete(c.nodes, seat)
	c.ids = slices.DeleteFunc(c.ids, func(id raft.NodeID) bool { return id == seat })
	evil := rogue{got: make(chan raft.Message, 1024)}
	tr := c.net.Join(seat)
	c.t.Cleanup(func() { _ = tr.Close() })
	tr.Register(evil)
	return seat, tr, evil
}

// Forwarded proposals from a misbehaving member are refused with an
// answer that names the problem, and append nothing; a stranger's get no
// answer at all; answers nobody asked for are ignored.
func TestForwardHostilePeers(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.leader()
	seat, tr, evil := c.rogueSeat(lead)
	stranger := rogue{got: make(chan raft.Message, 1024)}
	str := c.net.Join("x9")
	t.Cleanup(func() { _ = str.Close() })
	str.Register(stranger)
	c.mustPut("k", "v")
	last := c.nodes[lead].Status().LastIndex
	to := raft.Peer{ID: lead, Addr: string(lead)}
	bad := []raft.Message{
		{Type: raft.MsgPropose, Context: 1, Entries: []raft.Entry{{Type: raft.EntryCommand, Data: []byte{0xc1}}}},
		{Type: raft.MsgPropose, Context: 2},
		{Type: raft.MsgPropose, Context: 3, Entries: []raft.Entry{{Type: raft.EntrySession, Data: []byte{2, 0x80}}}},
		{Type: raft.MsgPropose, Context: 4, Hint: 9, Entries: []raft.Entry{{Type: raft.EntryCommand, Data: []byte{0x80}}}},
		{Type: raft.MsgPropose, Context: 5, Entries: []raft.Entry{{Type: raft.EntryConfig, Data: []byte{1}}}},
	}
	for _, m := range bad {
		m.From, m.To = seat, lead
		tr.Send(to, []raft.Message{m})
	}
	tr.Send(to, []raft.Message{{Type: raft.MsgProposeResp, From: seat, To: lead, Context: 77, Entries: []raft.Entry{{Data: []byte{0xc1}}}}})
	answered := map[uint64]string{}
	deadline := time.After(5 * time.Second)
	for len(answered) < len(bad) {
		select {
		case m := <-evil.got:
			if m.Type != raft.MsgProposeResp {
				continue
			}
			if !m.Reject || len(m.Entries) == 0 {
				t.Fatalf("malformed proposal %d accepted: %+v", m.Context, m)
			}
			answered[m.Context] = string(m.Entries[0].Data)
		case <-deadline:
			t.Fatalf("answers to %d of %d malformed proposals: %v", len(answered), len(bad), answered)
		}
	}
	for id, why := range answered {
		if !strings.Contains(why, "raft:") {
			t.Errorf("proposal %d refused without a reason: %q", id, why)
		}
	}
	m := raft.Message{Type: raft.MsgPropose, From: "x9", To: lead, Context: 1,
		Entries: []raft.Entry{{Type: raft.EntryCommand, Data: mustEncode(t, kvCmd{Op: "put", Key: "evil", Val: "1"})}}}
	str.Send(to, []raft.Message{m})
	// A member's valid proposal afterwards is still served: the stranger's
	// was dropped, not queued.
	good := m
	good.From, good.Context = seat, 9
	tr.Send(to, []raft.Message{good})
	waitFor(t, "the member's valid proposal to be answered", 5*time.Second, func() bool {
		select {
		case r := <-evil.got:
			return r.Type == raft.MsgProposeResp && r.Context == 9 && !r.Reject
		default:
			return false
		}
	})
	if got := c.nodes[lead].Status().LastIndex; got != last+1 {
		t.Fatalf("last index %d -> %d: want exactly the member's valid proposal appended", last, got)
	}
	select {
	case r := <-stranger.got:
		if r.Type == raft.MsgProposeResp {
			t.Fatalf("a stranger's proposal was answered: %+v", r)
		}
	default:
	}
}

func mustEncode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := codec.Msgpack().Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
