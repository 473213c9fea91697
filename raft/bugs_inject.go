//go:build raftbugs

package raft

import "github.com/typedraft/typedraft/raft/internal/bugs"

// In raftbugs builds the teeth switch bugs on through bugs.Inject.
func init() {
	bugs.Inject = func(cfg any, s bugs.Set) any {
		switch c := cfg.(type) {
		case CoreConfig:
			c.bugs = s
			return c
		case Config:
			c.bugs = s
			return c
		}
		panic("bugs.Inject: not a raft.CoreConfig or raft.Config")
	}
}
