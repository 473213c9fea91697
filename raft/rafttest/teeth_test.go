package rafttest_test

import (
	"errors"
	"testing"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/raft/internal/bugs"
	"github.com/typedraft/typedraft/raft/rafttest"
	"github.com/typedraft/typedraft/raft/rafttest/kvmodel"
)

func TestTeethExplore(t *testing.T) {
	sets := map[string]bugs.Set{
		"CommitOldTermByCount": {CommitOldTermByCount: true},
		"VoteNotPersisted":     {VoteNotPersisted: true},
		"AckBeforeDurable":     {AckBeforeDurable: true},
		"NoTruncate":           {NoTruncate: true},
	}
	for name, set := range sets {
		t.Run(name, func(t *testing.T) {
			caught := map[string]int{}
			first := uint64(0)
			for seed := uint64(1); seed <= 60; seed++ {
				o := simOptions(seed)
				o.Ops = 300
				o.TraceTail = 1
				o.Core = bugs.Inject(o.Core, set).(raft.CoreConfig)
				_, err := rafttest.Run(o, kvmodel.Workload(4))
				var f *rafttest.Failure
				if errors.As(err, &f) {
					caught[f.Invariant]++
					if first == 0 {
						first = seed
					}
				}
			}
			t.Logf("%s: first seed %d, caught %v", name, first, caught)
		})
	}
}
