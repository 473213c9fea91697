package raft

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCorePurity guards the architecture: the core (core*.go) is a
// deterministic state machine, so it must not import packages that bring
// time, concurrency, I/O or the network, and must not start goroutines.
func TestCorePurity(t *testing.T) {
	banned := map[string]bool{"time": true, "sync": true, "sync/atomic": true, "net": true,
		"os": true, "context": true, "io": true, "math/rand": true, "runtime": true}
	files, err := filepath.Glob("core*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		checked++
		fs := token.NewFileSet()
		file, err := parser.ParseFile(fs, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if banned[path] || strings.HasPrefix(path, "net/") || strings.HasPrefix(path, "os/") {
				t.Errorf("%s imports %q: the core must stay pure", f, path)
			}
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s:%d starts a goroutine: the core must stay pure", f, fs.Position(n.Pos()).Line)
			case *ast.SelectStmt:
				t.Errorf("%s:%d uses select: the core must stay pure", f, fs.Position(n.Pos()).Line)
			case *ast.SendStmt:
				t.Errorf("%s:%d sends on a channel: the core must stay pure", f, fs.Position(n.Pos()).Line)
			}
			return true
		})
	}
	if checked < 5 {
		t.Fatalf("only %d core files found; the guard is not looking at the core", checked)
	}
}
