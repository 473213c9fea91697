package main

import (
	"context"
	"fmt"
	"math"

	"github.com/typedraft/typedraft/raft"
)

// Op names a Command's operation.
type Op string

// The bank's operations: only writes. Reads are not commands; balance and
// total read the state with raft.Query, which needs no log entry.
const (
	OpOpen     Op = "open"     // create Account with Amount
	OpTransfer Op = "transfer" // move Amount from From to To
)

// Command is the application's command type C.
type Command struct {
	Op      Op     `msgpack:"o"`
	Account string `msgpack:"a,omitempty"` // open
	From    string `msgpack:"f,omitempty"` // transfer
	To      string `msgpack:"t,omitempty"` // transfer
	Amount  int64  `msgpack:"n,omitempty"` // open (initial balance), transfer
}

// Receipt is the application's response type R: the balances of the
// accounts the command touched, after it.
type Receipt struct {
	// Balance is the balance of Account (open) or of From (transfer).
	Balance int64
	// ToBalance is the balance of To after a transfer.
	ToBalance int64
}

// Error codes.
const (
	CodeInsufficientFunds = "insufficient_funds"
	CodeUnknownAccount    = "unknown_account"
	CodeAccountExists     = "account_exists"
	CodeInvalid           = "invalid"
)

// BankError is the application's own error type E. Callers get it back
// statically typed, whether Validate (on the leader, before the log) or
// Apply (on every node, after commit) produced it.
type BankError struct {
	Code    string
	Account string
	// Balance and Needed describe an insufficient_funds rejection.
	Balance, Needed int64
}

// Error describes the rejection.
func (e *BankError) Error() string {
	switch e.Code {
	case CodeInsufficientFunds:
		return fmt.Sprintf("insufficient funds in %s: balance %d, needed %d", e.Account, e.Balance, e.Needed)
	case CodeUnknownAccount:
		return fmt.Sprintf("unknown account %q", e.Account)
	case CodeAccountExists:
		return fmt.Sprintf("account %q already exists", e.Account)
	}
	return fmt.Sprintf("invalid command for %q", e.Account)
}

// Bank is the replicated state machine: account balances that never go
// negative and whose total only changes when accounts are opened.
//
// Concurrency: none needed. The node calls Validate and Apply on its apply
// goroutine, and the reads (Balance, Total) run there too, inside
// (*raft.Raft).Read or raft.Query (see balance and total); outside a node
// (tests) a Bank is used from one goroutine.
type Bank struct {
	balances map[string]int64
}

// NewBank returns a bank with no accounts.
func NewBank() *Bank { return &Bank{balances: map[string]int64{}} }

// check is the deterministic rule set shared by Validate and Apply.
func (b *Bank) check(c Command) *BankError {
	switch c.Op {
	case OpOpen:
		if c.Account == "" || c.Amount < 0 {
			return &BankError{Code: CodeInvalid, Account: c.Account}
		}
		if _, ok := b.balances[c.Account]; ok {
			return &BankError{Code: CodeAccountExists, Account: c.Account}
		}
	case OpTransfer:
		if c.Amount <= 0 || c.From == c.To {
			return &BankError{Code: CodeInvalid, Account: c.From}
		}
		for _, a := range []string{c.From, c.To} {
			if _, ok := b.balances[a]; !ok {
				return &BankError{Code: CodeUnknownAccount, Account: a}
			}
		}
		if bal := b.balances[c.From]; bal < c.Amount {
			return &BankError{Code: CodeInsufficientFunds, Account: c.From, Balance: bal, Needed: c.Amount}
		}
		if b.balances[c.To] > math.MaxInt64-c.Amount {
			return &BankError{Code: CodeInvalid, Account: c.To} // would overflow
		}
	default:
		return &BankError{Code: CodeInvalid}
	}
	return nil
}

// Validate runs on the leader before the command enters the log: a
// rejected transfer costs no log entry, no fsync and no replication. The
// node answers a rejection only after confirming, with a read index, that
// it reflects every write acknowledged before the command arrived.
func (b *Bank) Validate(c Command) *BankError { return b.check(c) }

// Apply runs on every node in log order. It repeats Validate's checks,
// because two transfers can both pass validation against the same balance
// before either is applied; the second is then rejected here, with the
// same error type, identically on every node.
func (b *Bank) Apply(_ uint64, c Command) (Receipt, *BankError) {
	if e := b.check(c); e != nil {
		return Receipt{}, e
	}
	if c.Op == OpOpen {
		b.balances[c.Account] = c.Amount
		return Receipt{Balance: c.Amount}, nil
	}
	b.balances[c.From] -= c.Amount
	b.balances[c.To] += c.Amount
	return Receipt{Balance: b.balances[c.From], ToBalance: b.balances[c.To]}, nil
}

// Balance returns account's balance in this node's copy, or an
// unknown_account *BankError. It reads the state: call it inside Read or
// Query (as balance does), never concurrently with Apply.
func (b *Bank) Balance(account string) (int64, *BankError) {
	bal, ok := b.balances[account]
	if !ok {
		return 0, &BankError{Code: CodeUnknownAccount, Account: account}
	}
	return bal, nil
}

// Total returns the sum of all balances in this node's copy. Like
// Balance, it runs inside Read or Query.
func (b *Bank) Total() int64 {
	var t int64
	for _, v := range b.balances {
		t += v
	}
	return t
}

// balanceRead is what balance's read returns: the typed value, or the
// application's error.
type balanceRead struct {
	balance int64
	err     *BankError
}

// balance reads account's balance on node, whose state machine is bank,
// with a linearizable read (raft.Query with raft.ReadLinearizable): on any
// node, leader or follower, it sees every transfer acknowledged before the
// call, and it writes nothing to the log. It returns the balance, an
// unknown_account *BankError (match it with errors.As), or raft's
// infrastructure error (a *raft.NotLeaderError when no leader is known,
// raft.ErrNotConfirmed, ctx's error, raft.ErrShutdown; all safe to retry).
func balance(ctx context.Context, node *Node, bank *Bank, account string) (int64, error) {
	r, err := raft.Query(ctx, node, raft.ReadLinearizable, func() balanceRead {
		bal, e := bank.Balance(account)
		return balanceRead{bal, e}
	})
	if err != nil {
		return 0, err
	}
	if r.err != nil {
		return 0, r.err
	}
	return r.balance, nil
}

// total reads the sum of all balances on node, whose state machine is
// bank, with a linearizable read, like balance.
func total(ctx context.Context, node *Node, bank *Bank) (int64, error) {
	return raft.Query(ctx, node, raft.ReadLinearizable, bank.Total)
}
