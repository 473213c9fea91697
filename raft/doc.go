// Package raft is a Raft consensus library whose API is typed by the
// application: a Raft[C, R, E] replicates a StateMachine whose commands are
// the application's type C, whose responses are R and whose errors are E.
//
//	node, err := raft.New(cfg, fsm, store, transport) // C, R, E inferred from fsm
//	err = node.Bootstrap(ctx, servers)                 // once, on each founding node
//	res, err := node.Propose(ctx, cmd).Wait(ctx)       // res.Value R, res.Err E
//	v, err := raft.Query(ctx, node, raft.ReadLinearizable, func() int { return fsm.count })
//
// # Shape
//
// A node has three parts. The pure core (Core) is a deterministic Raft
// state machine — elections with pre-vote and check-quorum, replication
// with pipelining and flow control, joint-consensus membership changes,
// snapshots, leadership transfer, ReadIndex and lease reads — with no
// goroutines, clock or I/O: it consumes ticks and messages and produces
// Ready batches. The driver, one goroutine per node, owns the core and
// carries out its batches: it persists through a Storage (one atomic Save
// per batch; the leader writes its own log in parallel with replication),
// sends through a Transport, and hands committed entries to the apply
// goroutine, which owns the state machine and runs Apply, Validate,
// Snapshot, Restore and the functions given to Read and Query — never two
// at once, so the state machine needs no locks.
//
// # Errors
//
// Three channels, never mixed: the application's E in Result.Err (from
// Validate, Index 0, or from Apply); infrastructure errors matched with
// errors.Is (ErrNotLeader and *NotLeaderError, ErrIndeterminate for
// outcomes that may or may not have happened, ErrNotConfirmed for reads,
// ErrShutdown, ...); and fatal failures (storage errors, a panic in Apply,
// a command that does not decode) that stop the node, reported by Done and
// Err.
//
// # Where to look
//
// Config (and its defaults in one table, the Default* constants) configures
// a node. Propose and Apply write, on any node (a follower forwards to the
// leader; see Config.DisableForwarding), and OpenSession makes their
// retries safe (see Session); Read, Query, ReadIndex, WaitApplied and
// Barrier read (see ReadMode). AddLearner, PromoteLearner, RemoveServer,
// ChangeMembership and TransferLeadership change the cluster. Status,
// Observe (events), WaitLeader, WaitFor and Metrics tell what it is doing.
// Storage and Transport are the interfaces adapters implement
// (store/pebble, store/memory, transport/tcp, transport/inmem), checked by
// store/storetest and transport/transporttest. raft/rafttest simulates
// whole clusters of Cores under faults and checks them.
package raft
