// Command ledger is the typed example of typedraft's README, complete: a
// replicated ledger whose withdrawals are validated on the leader with the
// application's own error type, on three nodes in this process, each with
// Pebble storage in a temporary directory and a TCP transport on loopback.
//
//	go run ./examples/ledger
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/pebble"
	"github.com/typedraft/typedraft/transport/tcp"
)

// README:begin
type Cmd struct {
	Op, Key string
	Val     int
}

type AccountError struct{ Reason string } // your own error type

func (e *AccountError) Error() string { return e.Reason }

type Ledger struct{ balances map[string]int }

// Validate runs on the leader before the command enters the log.
func (l *Ledger) Validate(c Cmd) *AccountError {
	if c.Op == "withdraw" && l.balances[c.Key] < c.Val {
		return &AccountError{"insufficient funds"}
	}
	return nil
}

// Apply is deterministic and re-checks what Validate checked.
func (l *Ledger) Apply(index uint64, c Cmd) (int, *AccountError) {
	switch c.Op {
	case "deposit":
		l.balances[c.Key] += c.Val
	case "withdraw":
		if l.balances[c.Key] < c.Val {
			return l.balances[c.Key], &AccountError{"insufficient funds"}
		}
		l.balances[c.Key] -= c.Val
	}
	return l.balances[c.Key], nil
}

// startNode opens a node's Pebble store and TCP transport and starts it.
func startNode(id raft.NodeID, dir string) (*raft.Raft[Cmd, int, *AccountError], *Ledger, string, func(), error) {
	store, err := pebble.Open(dir, nil)
	if err != nil {
		return nil, nil, "", nil, err
	}
	tr, err := tcp.Listen("127.0.0.1:0", &tcp.Options{LocalID: id, ClusterID: "ledger"})
	if err != nil {
		store.Close()
		return nil, nil, "", nil, err
	}
	fsm := &Ledger{balances: map[string]int{}}
	node, err := raft.New(raft.Config{ID: id}, fsm, store, tr) // C, R, E inferred
	if err != nil {
		tr.Close()
		store.Close()
		return nil, nil, "", nil, err
	}
	stop := func() {
		node.Shutdown(context.Background())
		tr.Close()
		store.Close()
	}
	return node, fsm, tr.Addr(), stop, nil
}

// README:end

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ledger:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "ledger-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	nodes := map[raft.NodeID]*raft.Raft[Cmd, int, *AccountError]{}
	fsms := map[raft.NodeID]*Ledger{}
	var servers []raft.Server
	for _, id := range []raft.NodeID{"n1", "n2", "n3"} {
		node, fsm, addr, stop, err := startNode(id, filepath.Join(dir, string(id)))
		if err != nil {
			return err
		}
		defer stop()
		nodes[id], fsms[id] = node, fsm
		servers = append(servers, raft.Server{ID: id, Addr: addr})
	}
	for _, node := range nodes {
		if err := node.Bootstrap(ctx, servers); err != nil { // once, on each founding node
			return err
		}
	}
	// README:run-begin
	lead, _, err := nodes["n1"].WaitLeader(ctx) // any node finds the leader
	if err != nil {
		return err
	}
	node := nodes[lead]
	if _, _, err := node.Apply(ctx, Cmd{"deposit", "alice", 300}); err != nil {
		return err
	}
	res, err := node.Propose(ctx, Cmd{"withdraw", "alice", 500}).Wait(ctx)
	// err:     infrastructure (*raft.NotLeaderError, raft.ErrIndeterminate, ctx, shutdown)
	// res.Err: *AccountError, from Validate (res.Index == 0) or from Apply (res.Index > 0)
	if err != nil {
		return err
	}
	fmt.Printf("withdraw 500 from alice: rejected=%v (%v), index %d\n", res.Rejected(), res.Err, res.Index)
	// README:run-end
	var follower raft.NodeID
	for id := range nodes {
		if id != lead {
			follower = id
			break
		}
	}
	// A linearizable read on a follower, on the goroutine that applies
	// commands, so the Ledger needs no lock.
	f := fsms[follower]
	bal, err := raft.Query(ctx, nodes[follower], raft.ReadLinearizable, func() int { return f.balances["alice"] })
	if err != nil {
		return err
	}
	fmt.Printf("alice's balance, read on follower %s without the log: %d\n", follower, bal)
	if res.Err == nil || bal != 300 {
		return errors.New("unexpected outcome")
	}
	return nil
}
