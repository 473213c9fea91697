package raft_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/transport/inmem"
)

// Cmd is the application's command type C.
type Cmd struct {
	Op     string
	Amount int
}

// LimitError is the application's own error type E.
type LimitError struct {
	Balance, Wanted int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("balance %d, cannot withdraw %d", e.Balance, e.Wanted)
}

// Account is the replicated state machine; its response type R is int.
type Account struct{ balance int }

// Validate runs on the leader before the command enters the log.
func (a *Account) Validate(c Cmd) *LimitError {
	if c.Op == "withdraw" && c.Amount > a.balance {
		return &LimitError{Balance: a.balance, Wanted: c.Amount}
	}
	return nil
}

// Apply runs on every node in log order, and re-checks.
func (a *Account) Apply(_ uint64, c Cmd) (int, *LimitError) {
	switch c.Op {
	case "deposit":
		a.balance += c.Amount
	case "withdraw":
		if c.Amount > a.balance {
			return a.balance, &LimitError{Balance: a.balance, Wanted: c.Amount}
		}
		a.balance -= c.Amount
	}
	return a.balance, nil
}

// startCluster starts n nodes over an in-memory network and returns them
// with the leader first, and a function that stops them all.
func startCluster(ctx context.Context, n int) ([]*raft.Raft[Cmd, int, *LimitError], func()) {
	return startClusterOn(ctx, inmem.NewNetwork(1), n)
}

func startClusterOn(ctx context.Context, net *inmem.Network, n int) ([]*raft.Raft[Cmd, int, *LimitError], func()) {
	var servers []raft.Server
	for i := 1; i <= n; i++ {
		id := raft.NodeID(fmt.Sprintf("n%d", i))
		servers = append(servers, raft.Server{ID: id, Addr: string(id)})
	}
	var nodes []*raft.Raft[Cmd, int, *LimitError]
	var stops []func()
	for _, s := range servers {
		tr, store := net.Join(s.ID), memory.New()
		node, err := raft.New(raft.Config{ID: s.ID, TickInterval: 5 * time.Millisecond}, &Account{}, store, tr)
		if err != nil {
			panic(err)
		}
		if err := node.Bootstrap(ctx, servers); err != nil {
			panic(err)
		}
		nodes = append(nodes, node)
		stops = append(stops, func() { node.Shutdown(context.Background()); tr.Close(); store.Close() })
	}
	for {
		for i, node := range nodes {
			if node.Status().State == raft.Leader {
				nodes[0], nodes[i] = nodes[i], nodes[0]
				return nodes, func() {
					for _, stop := range stops {
						stop()
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			panic("no leader")
		case <-time.After(time.Millisecond):
		}
	}
}

// waitUntil polls cond until it holds or ctx ends.
func waitUntil(ctx context.Context, cond func() bool) {
	for !cond() && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
	}
}

// A state machine's types flow through the API: Apply returns your R and
// your E, with no interface{} to assert and no error string to parse.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes, stop := startCluster(ctx, 3)
	defer stop()
	leader := nodes[0]

	balance, appErr, err := leader.Apply(ctx, Cmd{Op: "deposit", Amount: 100})
	fmt.Println(balance, appErr, err)

	// The rejection is the application's own *LimitError.
	_, appErr, err = leader.Apply(ctx, Cmd{Op: "withdraw", Amount: 500})
	fmt.Println(appErr.Balance, appErr.Wanted, err)
	// Output:
	// 100 <nil> <nil>
	// 100 500 <nil>
}

// Propose returns a Future at once. In Committed mode it resolves as soon
// as the entry is committed, with its position only; in the default
// Applied mode it carries Apply's response. A validation rejection
// resolves with Index 0: the command never entered the log.
func ExampleRaft_Propose() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes, stop := startCluster(ctx, 1)
	defer stop()
	leader := nodes[0]

	committed := leader.Propose(ctx, Cmd{Op: "deposit", Amount: 10}, raft.Committed)
	applied := leader.Propose(ctx, Cmd{Op: "deposit", Amount: 5})

	c, err := committed.Wait(ctx)
	fmt.Println("committed:", c.Index > 0, c.Value, err)
	a, err := applied.Wait(ctx)
	fmt.Println("applied:", a.Index > c.Index, a.Value, err)

	// Validation sees the state as applied so far (here: 15).
	r, err := leader.Propose(ctx, Cmd{Op: "withdraw", Amount: 1000}).Wait(ctx)
	fmt.Println("rejected:", r.Index, r.Rejected(), r.Err, err)
	// Output:
	// committed: true 0 <nil>
	// applied: true 15 <nil>
	// rejected: 0 true balance 15, cannot withdraw 1000 <nil>
}

// A follower asked not to forward (NoForward, or Config.DisableForwarding)
// refuses proposals with a *NotLeaderError that names the leader, so a
// client can retry there.
func ExampleNotLeaderError() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes, stop := startCluster(ctx, 3)
	defer stop()
	leader, follower := nodes[0], nodes[1]
	// Wait until the follower has heard from the leader.
	waitUntil(ctx, func() bool { return follower.Status().Leader == leader.ID() })

	_, _, err := follower.Apply(ctx, Cmd{Op: "deposit", Amount: 1}, raft.NoForward)
	var nl *raft.NotLeaderError
	if errors.As(err, &nl) {
		fmt.Println(errors.Is(err, raft.ErrNotLeader), nl.LeaderID == leader.ID())
	}
	// Output:
	// true true
}

// A follower forwards a proposal to the leader and returns the leader's
// typed answer; in a session, a retry of the same Seq (here through
// another node) is applied once and returns the original result.
func ExampleRaft_OpenSession() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes, stop := startCluster(ctx, 3)
	defer stop()
	leader, follower := nodes[0], nodes[1]
	waitUntil(ctx, func() bool { return follower.Status().Leader == leader.ID() })

	sess, err := follower.OpenSession(ctx) // forwarded to the leader
	if err != nil {
		panic(err)
	}
	seq := sess.Next()
	first, err := follower.Propose(ctx, Cmd{Op: "deposit", Amount: 10}, seq).Wait(ctx)
	fmt.Println("first:", first.Value, err, first.Index > 0)
	// The answer was lost, say: retry with the same Seq, anywhere.
	again, err := leader.Propose(ctx, Cmd{Op: "deposit", Amount: 10}, seq).Wait(ctx)
	fmt.Println("retry:", again.Value, err, again.Index == first.Index)
	next, _ := leader.Propose(ctx, Cmd{Op: "deposit", Amount: 1}, sess.Next()).Wait(ctx)
	fmt.Println("next:", next.Value)
	// Output:
	// first: 10 <nil> true
	// retry: 10 <nil> true
	// next: 11
}

// TransferLeadership hands leadership to another voter, e.g. before the
// leader's machine is restarted.
func ExampleRaft_TransferLeadership() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes, stop := startCluster(ctx, 3)
	defer stop()
	leader, target := nodes[0], nodes[1]

	err := leader.TransferLeadership(ctx, target.ID())
	fmt.Println(err)
	waitUntil(ctx, func() bool { return target.Status().State == raft.Leader })
	fmt.Println(target.Status().State)
	// Output:
	// <nil>
	// leader
}

// A node joins a running cluster: it starts with an empty store and
// without Bootstrap; the leader adds it as a learner, which receives the
// log without voting, and promotes it to voter once it has caught up.
func ExampleRaft_AddLearner() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	net := inmem.NewNetwork(1)
	nodes, stop := startClusterOn(ctx, net, 3)
	defer stop()
	leader := nodes[0]
	if _, _, err := leader.Apply(ctx, Cmd{Op: "deposit", Amount: 7}); err != nil {
		panic(err)
	}

	tr, store, acct := net.Join("n4"), memory.New(), &Account{}
	n4, err := raft.New(raft.Config{ID: "n4", TickInterval: 5 * time.Millisecond}, acct, store, tr)
	if err != nil {
		panic(err)
	}
	defer func() { n4.Shutdown(context.Background()); tr.Close(); store.Close() }()

	fmt.Println(leader.AddLearner(ctx, "n4", tr.Addr(), true))
	fmt.Println(leader.PromoteLearner(ctx, "n4"))
	role, _ := leader.Status().Role("n4")
	fmt.Println(role, leader.Status().Configuration)
	// The new node has the state: Apply ran on it for every entry.
	waitUntil(ctx, func() bool { return n4.Status().Applied >= leader.Status().Commit })
	fmt.Println("balance on n4:", acct.balance)
	// Output:
	// <nil>
	// <nil>
	// voter {n1 n2 n3 n4}
	// balance on n4: 7
}
