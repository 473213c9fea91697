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
	// outs holds the Outcome the first node to apply an index returned.
	outs map[uint64]any
	fail func(invariant, format string, args ...any)
}

// record notes that node applied cmd at index and the state machine
// returned out (an Outcome).
func (l *appliedLog) record(node raft.NodeID, index uint64, cmd, out any) {
	b, err := l.codec.Marshal(cmd)
	if err != nil {
		l.fail(InvariantApplication, "%s: encode command applied at %d: %v", node, index, err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev, ok := l.cmds[index]; !ok {
		l.cmds[index] = b
		l.outs[index] = out
	} else if !bytes.Equal(prev, b) {
		l.fail(InvariantStateMachineSafety, "%s applied a different command at index %d than another node", node, index)
	}
}

// at tells what was applied at index: recorded is false if no node has
// applied anything there yet (or cmd cannot be encoded); otherwise same
// tells whether it was cmd, and out is the Outcome it returned then.
func (l *appliedLog) at(index uint64, cmd any) (out any, recorded, same bool) {
	b, err := l.codec.Marshal(cmd)
	if err != nil {
		return nil, false, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	prev, ok := l.cmds[index]
	if !ok {
		return nil, false, false
	}
	return l.outs[index], true, bytes.Equal(prev, b)
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
	v, e := r.sm.Apply(index, cmd)
	r.log.record(r.node, index, cmd, Outcome[R, E]{Value: v, Err: e})
	return v, e
}

type recSnap[C any, R any, E raft.ErrorType] struct {
	*recSM[C, R, E]
	snap raft.Snapshotter
}

func (r recSnap[C, R, E]) Snapshot(meta raft.SnapshotMeta) (raft.StateSnapshot, error) {
	return r.snap.Snapshot(meta)
}

func (r recSnap[C, R, E]) Restore(meta raft.SnapshotMeta, rd io.Reader) error {
	if err := r.snap.Restore(meta, rd); err != nil {
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
