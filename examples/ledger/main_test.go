package main

import (
	"os"
	"strings"
	"testing"
)

// The example runs: a typed rejection and a follower read.
func TestLedger(t *testing.T) {
	if err := run(); err != nil {
		t.Fatal(err)
	}
}

// The README quotes this example verbatim, so the example in the README
// compiles and runs.
func TestReadmeQuotesTheExample(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"README:begin", "README:run-begin"} {
		end := strings.Replace(part, "begin", "end", 1)
		s := string(src)
		i, j := strings.Index(s, "// "+part+"\n"), strings.Index(s, "// "+end)
		if i < 0 || j < i {
			t.Fatalf("markers %s/%s missing in main.go", part, end)
		}
		quoted := strings.TrimRight(s[i+len("// "+part+"\n"):j], "\n\t ")
		// The README indents nothing but may dedent the run part by one tab.
		lines := strings.Split(quoted, "\n")
		for k, l := range lines {
			lines[k] = strings.TrimPrefix(l, "\t")
		}
		if part == "README:begin" {
			lines = strings.Split(quoted, "\n")
		}
		if !strings.Contains(string(readme), strings.Join(lines, "\n")) {
			t.Errorf("README.md does not quote main.go's %s section verbatim; update it:\n%s", part, strings.Join(lines, "\n"))
		}
	}
}
