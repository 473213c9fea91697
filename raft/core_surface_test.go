package raft

import (
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDriverUsesOnlyCoreAPI guards the architecture: the driver, the typed
// API and everything else in this package outside the core (core*.go)
// reaches the core only through the exported Core surface, as the
// simulator and users' drivers must. No code outside core*.go may select
// an unexported field or method declared in core*.go.
func TestDriverUsesOnlyCoreAPI(t *testing.T) {
	fset := token.NewFileSet()
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(src), "//go:build raftbugs") {
			continue // not in the default build
		}
		f, err := parser.ParseFile(fset, p, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	info := &types.Info{Selections: map[*ast.SelectorExpr]*types.Selection{}}
	conf := types.Config{Importer: importer.ForCompiler(fset, "source", nil)}
	if _, err := conf.Check("github.com/typedraft/typedraft/raft", fset, files, info); err != nil {
		t.Fatalf("type-check the package: %v", err)
	}
	inCore := func(pos token.Pos) bool { return strings.HasPrefix(filepath.Base(fset.Position(pos).Filename), "core") }
	checked, violations := 0, 0
	for sel, s := range info.Selections {
		if inCore(sel.Pos()) {
			continue
		}
		checked++
		obj := s.Obj()
		if obj.Exported() || !inCore(obj.Pos()) {
			continue
		}
		violations++
		t.Errorf("%s uses %s, declared in the core (%s): go through Core's exported methods",
			fset.Position(sel.Pos()), obj.Name(), filepath.Base(fset.Position(obj.Pos()).Filename))
	}
	if checked < 100 {
		t.Fatalf("only %d selections outside the core were checked; the guard is not looking at the driver", checked)
	}
}
