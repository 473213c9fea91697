// Command bank shows typedraft's typed validation on a small replicated
// bank: transfers are validated on the leader before they enter the log
// (insufficient funds, unknown account — the application's own
// *BankError), re-checked deterministically in Apply, and answered either
// once applied (with the new balances) or once committed (with the log
// position only). Balances are read without the log, with a typed
// raft.Query (see balance): linearizable on the leader and on a follower
// alike.
//
//	go run ./examples/bank
//
// It runs three nodes in one process over the in-memory transport and
// storage, so it needs no disk and no network.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/transport/inmem"
)

// Node is a bank node, typed by the application's Command, Receipt and
// *BankError.
type Node = raft.Raft[Command, Receipt, *BankError]

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bank:", err)
		os.Exit(1)
	}
}

// cluster is the example's three nodes.
type cluster struct {
	nodes map[raft.NodeID]*Node
	banks map[raft.NodeID]*Bank
	stop  func()
}

func startCluster(ctx context.Context) (*cluster, error) {
	net := inmem.NewNetwork(1)
	c := &cluster{nodes: map[raft.NodeID]*Node{}, banks: map[raft.NodeID]*Bank{}}
	var cleanups []func()
	c.stop = func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	var servers []raft.Server
	for _, id := range []raft.NodeID{"n1", "n2", "n3"} {
		servers = append(servers, raft.Server{ID: id, Addr: string(id)})
	}
	for _, s := range servers {
		tr := net.Join(s.ID)
		store := memory.New()
		cleanups = append(cleanups, func() { tr.Close() }, func() { store.Close() })
		bank := NewBank()
		n, err := raft.New(raft.Config{ID: s.ID, TickInterval: 10 * time.Millisecond}, bank, store, tr)
		if err != nil {
			c.stop()
			return nil, err
		}
		cleanups = append(cleanups, func() { n.Shutdown(context.Background()) })
		if err := n.Bootstrap(ctx, servers); err != nil {
			c.stop()
			return nil, err
		}
		c.nodes[s.ID], c.banks[s.ID] = n, bank
	}
	return c, nil
}

// follower returns a node other than the one named lead.
func (c *cluster) follower(lead raft.NodeID) *Node {
	for id, n := range c.nodes {
		if id != lead {
			return n
		}
	}
	return nil
}

// leader polls until a node leads and returns it.
func (c *cluster) leader(ctx context.Context) (*Node, error) {
	for {
		for _, n := range c.nodes {
			if n.Status().State == raft.Leader {
				return n, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no leader: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func run(ctx context.Context, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := startCluster(ctx)
	if err != nil {
		return err
	}
	defer c.stop()
	leader, err := c.leader(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Three nodes; %s leads.\n\n", leader.ID())

	// apply proposes in Applied mode: the answer carries Apply's Receipt
	// or the application's *BankError, statically typed.
	apply := func(cmd Command) (raft.Result[Receipt, *BankError], error) {
		return leader.Propose(ctx, cmd).Wait(ctx)
	}
	for _, acct := range []struct {
		name string
		amt  int64
	}{{"alice", 100}, {"bob", 0}} {
		res, err := apply(Command{Op: OpOpen, Account: acct.name, Amount: acct.amt})
		if err != nil || res.Rejected() {
			return fmt.Errorf("open %s: %v %v", acct.name, err, res.Err)
		}
	}
	fmt.Fprintf(out, "Opened alice with 100 and bob with 0.\n\n")

	fmt.Fprintf(out, "Apply mode (the default): answered once applied, with Apply's response.\n")
	res, err := apply(Command{Op: OpTransfer, From: "alice", To: "bob", Amount: 30})
	if err != nil || res.Rejected() {
		return fmt.Errorf("transfer: %v %v", err, res.Err)
	}
	var receipt Receipt = res.Value // R, no type assertion
	fmt.Fprintf(out, "  transfer 30 alice->bob: index %d, alice %d, bob %d\n\n", res.Index, receipt.Balance, receipt.ToBalance)

	fmt.Fprintf(out, "Validated on the leader before the log (rejections cost no entry, no fsync):\n")
	before := leader.Status().LastIndex
	for _, cmd := range []Command{
		{Op: OpTransfer, From: "bob", To: "alice", Amount: 500},
		{Op: OpTransfer, From: "alice", To: "carol", Amount: 10},
	} {
		res, err := apply(cmd)
		if err != nil {
			return err
		}
		var rejection *BankError = res.Err // E, the application's own type
		if rejection == nil || res.Index != 0 {
			return fmt.Errorf("%+v: want a validation rejection, got %+v", cmd, res)
		}
		fmt.Fprintf(out, "  transfer %d %s->%s: rejected, Code %q: %v (index %d)\n", cmd.Amount, cmd.From, cmd.To, rejection.Code, rejection, res.Index)
	}
	if after := leader.Status().LastIndex; after != before {
		return fmt.Errorf("rejected commands entered the log: last index %d -> %d", before, after)
	}
	fmt.Fprintf(out, "  the leader's last log index is still %d\n\n", before)

	fmt.Fprintf(out, "Commit mode: answered once committed, before Apply; only the log position.\n")
	cres, err := leader.Propose(ctx, Command{Op: OpTransfer, From: "alice", To: "bob", Amount: 20}, raft.Committed).Wait(ctx)
	if err != nil || cres.Rejected() {
		return fmt.Errorf("committed transfer: %v %v", err, cres.Err)
	}
	fmt.Fprintf(out, "  transfer 20 alice->bob: committed at index %d term %d (Value is zero: %+v)\n\n", cres.Index, cres.Term, cres.Value)

	fmt.Fprintf(out, "Two transfers of 40 from alice (balance 50) proposed back to back:\n")
	f1 := leader.Propose(ctx, Command{Op: OpTransfer, From: "alice", To: "bob", Amount: 40})
	f2 := leader.Propose(ctx, Command{Op: OpTransfer, From: "alice", To: "bob", Amount: 40})
	rejected := 0
	for i, f := range []*raft.Future[Receipt, *BankError]{f1, f2} {
		r, err := f.Wait(ctx)
		if err != nil {
			return err
		}
		switch {
		case !r.Rejected():
			fmt.Fprintf(out, "  #%d applied at index %d: alice %d, bob %d\n", i+1, r.Index, r.Value.Balance, r.Value.ToBalance)
		case r.Index == 0:
			rejected++
			fmt.Fprintf(out, "  #%d rejected by Validate (index 0): %v\n", i+1, r.Err)
		default:
			rejected++
			fmt.Fprintf(out, "  #%d passed Validate, then rejected by Apply at index %d: %v\n", i+1, r.Index, r.Err)
			fmt.Fprintf(out, "     (it was validated before #1 was applied; Apply re-checks in log order, on every node alike)\n")
		}
	}
	if rejected != 1 {
		return fmt.Errorf("%d of the two transfers rejected, want exactly 1", rejected)
	}

	// Reads need no log entry: balance is a typed raft.Query, served by
	// whichever node it is asked, here the leader and then a follower,
	// right after the transfers were acknowledged.
	alice, err := balance(ctx, leader, c.banks[leader.ID()], "alice")
	if err != nil {
		return fmt.Errorf("balance of alice: %w", err)
	}
	bobBal, err := balance(ctx, leader, c.banks[leader.ID()], "bob")
	if err != nil {
		return fmt.Errorf("balance of bob: %w", err)
	}
	fmt.Fprintf(out, "\nBalances read with raft.Query (ReadLinearizable, no log entry) on the leader %s: alice %d, bob %d (total %d)\n",
		leader.ID(), alice, bobBal, alice+bobBal)
	if alice != 10 || bobBal != 90 {
		return errors.New("balances are not alice 10, bob 90")
	}
	f := c.follower(leader.ID())
	fAlice, err := balance(ctx, f, c.banks[f.ID()], "alice")
	if err != nil {
		return fmt.Errorf("balance of alice on %s: %w", f.ID(), err)
	}
	fmt.Fprintf(out, "  on the follower %s, at once: alice %d (it asked the leader for the read index and waited to apply it)\n", f.ID(), fAlice)
	if fAlice != alice {
		return fmt.Errorf("follower %s reads alice %d, the leader %d", f.ID(), fAlice, alice)
	}
	// Every node applied the same log, so every copy holds the same total;
	// a linearizable read on each node waits until it has caught up.
	for id, n := range c.nodes {
		t, err := total(ctx, n, c.banks[id])
		if err != nil {
			return fmt.Errorf("total on %s: %w", id, err)
		}
		if t != 100 {
			return fmt.Errorf("%s holds a total of %d, want 100", id, t)
		}
	}
	fmt.Fprintf(out, "Every node holds the same total, 100.\n")
	return nil
}
