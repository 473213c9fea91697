package main

import (
	"fmt"
	"math"
	"sync"
)

// Op names a Command's operation.
type Op string

// The bank's operations.
const (
	OpOpen     Op = "open"     // create Account with Amount
	OpTransfer Op = "transfer" // move Amount from From to To
	OpBalance  Op = "balance"  // read Account (through the log)
)

// Command is the application's command type C.
type Command struct {
	Op      Op     `msgpack:"o"`
	Account string `msgpack:"a,omitempty"` // open, balance
	From    string `msgpack:"f,omitempty"` // transfer
	To      string `msgpack:"t,omitempty"` // transfer
	Amount  int64  `msgpack:"n,omitempty"` // open (initial balance), transfer
}

// Receipt is the application's response type R: the balances of the
// accounts the command touched, after it.
type Receipt struct {
	// Balance is the balance of Account (open, balance) or of From
	// (transfer).
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
// Concurrency: the node calls Validate and Apply from one goroutine;
// Total may be called from any goroutine (a lock guards the map for it).
type Bank struct {
	mu       sync.RWMutex
	balances map[string]int64
}

// NewBank returns a bank with no accounts.
func NewBank() *Bank { return &Bank{balances: map[string]int64{}} }

// check is the deterministic rule set shared by Validate and Apply.
func (b *Bank) check(c Command) *BankError {
	b.mu.RLock()
	defer b.mu.RUnlock()
	switch c.Op {
	case OpOpen:
		if c.Account == "" || c.Amount < 0 {
			return &BankError{Code: CodeInvalid, Account: c.Account}
		}
		if _, ok := b.balances[c.Account]; ok {
			return &BankError{Code: CodeAccountExists, Account: c.Account}
		}
	case OpBalance:
		if _, ok := b.balances[c.Account]; !ok {
			return &BankError{Code: CodeUnknownAccount, Account: c.Account}
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
// rejected transfer costs no log entry, no fsync and no replication.
func (b *Bank) Validate(c Command) *BankError { return b.check(c) }

// Apply runs on every node in log order. It repeats Validate's checks,
// because two transfers can both pass validation against the same balance
// before either is applied; the second is then rejected here, with the
// same error type, identically on every node.
func (b *Bank) Apply(_ uint64, c Command) (Receipt, *BankError) {
	if e := b.check(c); e != nil {
		return Receipt{}, e
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch c.Op {
	case OpOpen:
		b.balances[c.Account] = c.Amount
		return Receipt{Balance: c.Amount}, nil
	case OpTransfer:
		b.balances[c.From] -= c.Amount
		b.balances[c.To] += c.Amount
		return Receipt{Balance: b.balances[c.From], ToBalance: b.balances[c.To]}, nil
	default: // balance
		return Receipt{Balance: b.balances[c.Account]}, nil
	}
}

// Total returns the sum of all balances in this node's copy.
func (b *Bank) Total() int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var t int64
	for _, v := range b.balances {
		t += v
	}
	return t
}
