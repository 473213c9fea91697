package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	var out strings.Builder
	if err := run(&out, []string{"-out", dir, "-nodes", "n1, n2,n3"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.crt", "ca.key", "n1.crt", "n1.key", "n2.crt", "n2.key", "n3.crt", "n3.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s: %v\n%s", f, err, out.String())
		}
		if !strings.Contains(out.String(), filepath.Join(dir, f)) {
			t.Fatalf("output does not list %s:\n%s", f, out.String())
		}
	}
	out.Reset()
	if err := run(&out, []string{"-out", dir, "-nodes", "n4"}); err != nil || !strings.Contains(out.String(), "reused the CA") {
		t.Fatalf("adding n4: %v\n%s", err, out.String())
	}
	for _, args := range [][]string{
		{"-nodes", "n1"},
		{"-out", dir},
		{"-out", dir, "-nodes", "n1"}, // exists
		{"-out", dir, "-nodes", "n5", "stray"},
		{"-no-such-flag"},
	} {
		if err := run(io.Discard, args); err == nil {
			t.Errorf("run(%q): no error", args)
		}
	}
}
