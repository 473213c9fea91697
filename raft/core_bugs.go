package raft

import "github.com/typedraft/typedraft/raft/internal/bugs"

func init() {
	bugs.Inject = func(cfg any, s bugs.Set) any {
		c := cfg.(CoreConfig)
		c.bugs = s
		return c
	}
}
