package rafttest

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/typedraft/typedraft/codec"
	"github.com/typedraft/typedraft/raft"
)

// appliedLog records, for RunCluster, the command every node applies at
// every index, and checks that all nodes apply the same one (state machine
// safety, seen through the typed API). It also tells which operations with
// unknown outcomes were certainly not applied.
type appliedLog struct {
	codec codec.Codec
	mu    sync.Mutex
	cmds  map[uint64][]byte
	fail  func(invariant, format string, args ...any)
}

func (l *appliedLog) record(node raft.NodeID, index uint64, cmd any) {
	b, err := l.codec.Marshal(cmd)
	if err != nil {
		l.fail(InvariantApplication, "%s: encode command applied at %d: %v", node, index, err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev, ok := l.cmds[index]; !ok {
		l.cmds[index] = b
	} else if !bytes.Equal(prev, b) {
		l.fail(InvariantStateMachineSafety, "%s applied a different command at index %d than another node", node, index)
	}
}

// notApplied reports whether the command applied at index (if any) is
// known to differ from cmd, so cmd was not applied there.
func (l *appliedLog) notApplied(index uint64, cmd any) bool {
	b, err := l.codec.Marshal(cmd)
	if err != nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	prev, ok := l.cmds[index]
	return ok && !bytes.Equal(prev, b)
}

// recorder wraps a node's state machine to record what it applies. The
// wrapper keeps the optional interfaces (raft.Snapshotter,
// raft.Validator) of the state machine it wraps.
func recorder[C any, R any, E raft.ErrorType](sm raft.StateMachine[C, R, E], node raft.NodeID, l *appliedLog) raft.StateMachine[C, R, E] {
	r := &recSM[C, R, E]{sm: sm, node: node, log: l}
	snap, isSnap := sm.(raft.Snapshotter)
	val, isVal := sm.(raft.Validator[C, E])
	switch {
	case isSnap && isVal:
		return recSnapVal[C, R, E]{recSnap[C, R, E]{r, snap}, val}
	case isSnap:
		return recSnap[C, R, E]{r, snap}
	case isVal:
		return recVal[C, R, E]{r, val}
	}
	return r
}

type recSM[C any, R any, E raft.ErrorType] struct {
	sm   raft.StateMachine[C, R, E]
	node raft.NodeID
	log  *appliedLog
}

func (r *recSM[C, R, E]) Apply(index uint64, cmd C) (R, E) {
	r.log.record(r.node, index, cmd)
	return r.sm.Apply(index, cmd)
}

type recSnap[C any, R any, E raft.ErrorType] struct {
	*recSM[C, R, E]
	snap raft.Snapshotter
}

func (r recSnap[C, R, E]) Snapshot() (raft.StateSnapshot, error) { return r.snap.Snapshot() }

func (r recSnap[C, R, E]) Restore(rd io.Reader) error {
	if err := r.snap.Restore(rd); err != nil {
		return fmt.Errorf("rafttest: %s: %w", r.node, err)
	}
	return nil
}

type recVal[C any, R any, E raft.ErrorType] struct {
	*recSM[C, R, E]
	val raft.Validator[C, E]
}

func (r recVal[C, R, E]) Validate(cmd C) E { return r.val.Validate(cmd) }

type recSnapVal[C any, R any, E raft.ErrorType] struct {
	recSnap[C, R, E]
	val raft.Validator[C, E]
}

func (r recSnapVal[C, R, E]) Validate(cmd C) E { return r.val.Validate(cmd) }
