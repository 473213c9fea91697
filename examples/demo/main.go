// Command demo runs a three-node typedraft cluster in one process over the
// in-memory transport and walks through the typed API: an election, typed
// writes, a typed rejection (the application's own error type), the leader
// cut off and a new one elected, and reads that see every acknowledged write.
//
//	go run ./examples/demo
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/transport/inmem"
)

// Cmd is the application's command type C.
type Cmd struct {
	Op  string `msgpack:"op"`
	Key string `msgpack:"k"`
	Val int    `msgpack:"v"`
}

// AccountError is the application's own error type E.
type AccountError struct {
	Reason string
	Key    string
}

func (e *AccountError) Error() string { return e.Reason + " (" + e.Key + ")" }

// Ledger is the replicated state machine: counters that must not go negative.
type Ledger struct {
	mu       sync.Mutex
	balances map[string]int
}

// Validate runs on the leader before a command enters the log.
func (l *Ledger) Validate(c Cmd) *AccountError {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.Op == "withdraw" && l.balances[c.Key] < c.Val {
		return &AccountError{Reason: "insufficient funds", Key: c.Key}
	}
	return nil
}

// Apply runs on every node, in log order; it repeats the check
// deterministically because state can change between validation and commit.
func (l *Ledger) Apply(_ uint64, c Cmd) (int, *AccountError) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch c.Op {
	case "deposit":
		l.balances[c.Key] += c.Val
	case "withdraw":
		if l.balances[c.Key] < c.Val {
			return l.balances[c.Key], &AccountError{Reason: "insufficient funds", Key: c.Key}
		}
		l.balances[c.Key] -= c.Val
	case "read":
	}
	return l.balances[c.Key], nil
}

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	net := inmem.NewNetwork(1)
	ids := []raft.NodeID{"n1", "n2", "n3"}
	var servers []raft.Server
	for _, id := range ids {
		servers = append(servers, raft.Server{ID: id, Addr: string(id)})
	}
	nodes := map[raft.NodeID]*raft.Raft[Cmd, int, *AccountError]{}
	for _, id := range ids {
		tr := net.Join(id)
		defer tr.Close()
		store := memory.New()
		defer store.Close()
		cfg := raft.Config{ID: id, TickInterval: 10 * time.Millisecond}
		n, err := raft.New(cfg, &Ledger{balances: map[string]int{}}, store, tr)
		if err != nil {
			return err
		}
		defer n.Shutdown(context.Background())
		if err := n.Bootstrap(ctx, servers); err != nil {
			return err
		}
		nodes[id] = n
	}

	leader, err := waitLeader(ctx, nodes, "")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "1. election: %s leads term %d\n", leader, nodes[leader].Status().Term)

	bal, appErr, err := nodes[leader].Apply(ctx, Cmd{Op: "deposit", Key: "alice", Val: 100})
	if err != nil || appErr != nil {
		return fmt.Errorf("deposit: %v %v", err, appErr)
	}
	fmt.Fprintf(out, "2. typed write: deposit 100 to alice -> balance %d (R is int)\n", bal)

	res, err := nodes[leader].Propose(ctx, Cmd{Op: "withdraw", Key: "alice", Val: 500}).Wait(ctx)
	if err != nil {
		return err
	}
	var rejection *AccountError = res.Err // the application's own type, no assertion
	fmt.Fprintf(out, "3. typed rejection: withdraw 500 -> %q at index %d (never entered the log)\n", rejection.Error(), res.Index)

	fc, err := nodes[leader].Propose(ctx, Cmd{Op: "withdraw", Key: "alice", Val: 30}, raft.Committed).Wait(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   committed-mode write: withdraw 30 committed at index %d term %d\n", fc.Index, fc.Term)

	net.Isolate(leader)
	fmt.Fprintf(out, "4. %s cut off from the others...\n", leader)
	newLeader, err := waitLeader(ctx, nodes, leader)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   %s elected in term %d\n", newLeader, nodes[newLeader].Status().Term)
	net.Heal()

	var v int
	for {
		v, appErr, err = nodes[newLeader].Apply(ctx, Cmd{Op: "read", Key: "alice"})
		if !errors.Is(err, raft.ErrNotLeader) {
			break
		}
		if newLeader, err = waitLeader(ctx, nodes, ""); err != nil {
			return err
		}
	}
	if err != nil || appErr != nil {
		return fmt.Errorf("read: %v %v", err, appErr)
	}
	fmt.Fprintf(out, "5. read through the log on %s: alice = %d (every acknowledged write is there)\n", newLeader, v)
	if v != 70 {
		return fmt.Errorf("alice = %d, want 70", v)
	}
	return nil
}

// waitLeader polls until a node other than not leads.
func waitLeader(ctx context.Context, nodes map[raft.NodeID]*raft.Raft[Cmd, int, *AccountError], not raft.NodeID) (raft.NodeID, error) {
	for {
		for id, n := range nodes {
			if id != not && n.Status().State == raft.Leader {
				return id, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no leader: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
