package main

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

func TestBankTour(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("bank: %v\noutput:\n%s", err, out.String())
	}
	for _, want := range []string{
		"transfer 30 alice->bob: index", "alice 70, bob 30",
		`Code "insufficient_funds": insufficient funds in bob: balance 30, needed 500 (index 0)`,
		`Code "unknown_account": unknown account "carol" (index 0)`,
		"Commit mode", "committed at index",
		"raft.Query (ReadLinearizable, no log entry)", "alice 10, bob 90 (total 100)",
		"on the follower", "at once: alice 10", "Every node holds the same total, 100.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBankRules(t *testing.T) {
	b := NewBank()
	mustApply := func(c Command) Receipt {
		t.Helper()
		r, e := b.Apply(1, c)
		if e != nil {
			t.Fatalf("%+v: %v", c, e)
		}
		return r
	}
	mustApply(Command{Op: OpOpen, Account: "a", Amount: 50})
	mustApply(Command{Op: OpOpen, Account: "b", Amount: 0})
	for name, tc := range map[string]struct {
		cmd  Command
		code string
	}{
		"overdraft":       {Command{Op: OpTransfer, From: "a", To: "b", Amount: 51}, CodeInsufficientFunds},
		"unknown from":    {Command{Op: OpTransfer, From: "x", To: "b", Amount: 1}, CodeUnknownAccount},
		"unknown to":      {Command{Op: OpTransfer, From: "a", To: "x", Amount: 1}, CodeUnknownAccount},
		"zero amount":     {Command{Op: OpTransfer, From: "a", To: "b", Amount: 0}, CodeInvalid},
		"negative amount": {Command{Op: OpTransfer, From: "a", To: "b", Amount: -5}, CodeInvalid},
		"self transfer":   {Command{Op: OpTransfer, From: "a", To: "a", Amount: 1}, CodeInvalid},
		"reopen":          {Command{Op: OpOpen, Account: "a", Amount: 1}, CodeAccountExists},
		"negative open":   {Command{Op: OpOpen, Account: "c", Amount: -1}, CodeInvalid},
		"unnamed open":    {Command{Op: OpOpen, Amount: 1}, CodeInvalid},
		"unknown op":      {Command{Op: "steal"}, CodeInvalid},
	} {
		if e := b.Validate(tc.cmd); e == nil || e.Code != tc.code {
			t.Errorf("%s: Validate = %v, want %s", name, e, tc.code)
		}
		if _, e := b.Apply(2, tc.cmd); e == nil || e.Code != tc.code || e.Error() == "" {
			t.Errorf("%s: Apply = %v, want %s", name, e, tc.code)
		}
	}
	if b.Total() != 50 {
		t.Fatalf("rejected commands changed the total to %d", b.Total())
	}
	if bal, e := b.Balance("a"); e != nil || bal != 50 {
		t.Fatalf("Balance(a) = %d %v", bal, e)
	}
	if _, e := b.Balance("x"); e == nil || e.Code != CodeUnknownAccount || e.Account != "x" {
		t.Fatalf("Balance(x) = %v", e)
	}
	// Overflow of the receiving account is refused, not wrapped.
	mustApply(Command{Op: OpOpen, Account: "rich", Amount: math.MaxInt64})
	if _, e := b.Apply(3, Command{Op: OpTransfer, From: "a", To: "rich", Amount: 1}); e == nil || e.Code != CodeInvalid {
		t.Fatalf("overflowing transfer: %v", e)
	}
}

// Two transfers that each pass Validate against the same balance: Apply
// re-checks in log order and rejects the second with the same error type.
func TestBankApplyRechecks(t *testing.T) {
	b := NewBank()
	b.Apply(1, Command{Op: OpOpen, Account: "a", Amount: 50})
	b.Apply(2, Command{Op: OpOpen, Account: "b", Amount: 0})
	t1 := Command{Op: OpTransfer, From: "a", To: "b", Amount: 40}
	t2 := t1
	if b.Validate(t1) != nil || b.Validate(t2) != nil {
		t.Fatal("both transfers should pass validation against balance 50")
	}
	if r, e := b.Apply(3, t1); e != nil || r.Balance != 10 || r.ToBalance != 40 {
		t.Fatalf("first: %+v %v", r, e)
	}
	_, e := b.Apply(4, t2)
	if e == nil || e.Code != CodeInsufficientFunds || e.Balance != 10 || e.Needed != 40 {
		t.Fatalf("second: %+v", e)
	}
	if b.Total() != 50 {
		t.Fatalf("total %d", b.Total())
	}
}

// balance is a typed linearizable query: on every node, right after a
// transfer was acknowledged by the leader, it returns the new balance; an
// unknown account is the application's *BankError; reads add nothing to
// the log.
func TestBankBalanceQuery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := startCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop()
	leader, err := c.leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []Command{{Op: OpOpen, Account: "a", Amount: 100}, {Op: OpOpen, Account: "b"}} {
		if res, err := leader.Propose(ctx, cmd).Wait(ctx); err != nil || res.Rejected() {
			t.Fatalf("%+v: %v %v", cmd, err, res.Err)
		}
	}
	for i := int64(1); i <= 5; i++ {
		res, err := leader.Propose(ctx, Command{Op: OpTransfer, From: "a", To: "b", Amount: 1}).Wait(ctx)
		if err != nil || res.Rejected() {
			t.Fatalf("transfer %d: %v %v", i, err, res.Err)
		}
		for id, n := range c.nodes {
			a, errA := balance(ctx, n, c.banks[id], "a")
			b, errB := balance(ctx, n, c.banks[id], "b")
			if errA != nil || errB != nil || a != 100-i || b != i {
				t.Fatalf("after transfer %d, %s reads a=%d (%v) b=%d (%v), want %d and %d", i, id, a, errA, b, errB, 100-i, i)
			}
		}
	}
	last := leader.Status().LastIndex
	for id, n := range c.nodes {
		_, err := balance(ctx, n, c.banks[id], "carol")
		var be *BankError
		if !errors.As(err, &be) || be.Code != CodeUnknownAccount || be.Account != "carol" {
			t.Fatalf("%s: balance of an unknown account: %v", id, err)
		}
		if tot, err := total(ctx, n, c.banks[id]); err != nil || tot != 100 {
			t.Fatalf("%s: total %d %v", id, tot, err)
		}
	}
	if got := leader.Status().LastIndex; got != last {
		t.Fatalf("reads grew the log from %d to %d", last, got)
	}
	// A stopped node answers no read, with raft's error, not a balance.
	f := c.follower(leader.ID())
	if err := f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := balance(ctx, f, c.banks[f.ID()], "a"); !errors.Is(err, raft.ErrShutdown) {
		t.Fatalf("balance on a stopped node: %v, want ErrShutdown", err)
	}
}
