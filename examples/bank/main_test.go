package main

import (
	"context"
	"math"
	"strings"
	"testing"
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
		"alice 10, bob 90 (total 100)", "Every node holds the same total, 100.",
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
		"unknown balance": {Command{Op: OpBalance, Account: "x"}, CodeUnknownAccount},
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
