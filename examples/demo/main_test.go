package main

import (
	"strings"
	"testing"
)

func TestDemoTour(t *testing.T) {
	var out strings.Builder
	if err := run(&out); err != nil {
		t.Fatalf("demo failed: %v\noutput:\n%s", err, out.String())
	}
	for _, want := range []string{"1. election", "2. typed write", "3. typed rejection", "insufficient funds", "4. ", "elected", "alice = 70"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
}
