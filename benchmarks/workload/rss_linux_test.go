//go:build linux

package workload

import "testing"

var sink []byte

func TestResetPeakRSS(t *testing.T) {
	sink = make([]byte, 128<<20)
	for i := range sink {
		sink[i] = 1
	}
	before, err := PeakRSS(false)
	if err != nil {
		t.Fatal(err)
	}
	sink = nil
	if !ResetPeakRSS() {
		t.Fatal("ResetPeakRSS failed on Linux")
	}
	after, err := PeakRSS(true)
	if err != nil {
		t.Fatal(err)
	}
	if after.Scope != "config" || before.Scope != "process" {
		t.Fatalf("scopes %q %q", before.Scope, after.Scope)
	}
	if after.PeakBytes+64<<20 > before.PeakBytes {
		t.Fatalf("peak after reset %d MiB, before %d MiB: not reset", after.PeakBytes>>20, before.PeakBytes>>20)
	}
}
