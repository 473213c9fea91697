// Package storetest is the conformance suite for raft.Storage
// implementations, and the guide to writing one.
//
// # Writing a Storage
//
// A raft.Storage is a raft.LogStore (the hard state and the log) and a
// raft.SnapshotStore (snapshots of the state machine). The contract is
// documented on those interfaces; this is the walk-through. The file
// example_persister_test.go (Example_persister) is a complete, durable
// store over a Persister like MIT 6.5840's, in under 400 lines, that
// passes the suite (TestPersisterStore runs it). store/memory and
// store/pebble are the stock ones.
//
// The methods, and who calls them:
//   - InitialState, FirstIndex, LastIndex, Term, Entries: reads, from
//     several goroutines at once, concurrently with the writes. Each read
//     sees the state before or after a concurrent write, never a mixture:
//     one Entries call returns entries of one state. FirstIndex is the
//     compaction index + 1 (1 for a store that never compacted), LastIndex
//     the last stored index (the compaction index when nothing follows it),
//     Term answers for [FirstIndex-1, LastIndex] (the compaction point keeps
//     its term: the leader needs it to send the entry after it), Entries
//     for [lo, hi) with lo >= FirstIndex and hi <= LastIndex+1, stopping
//     before maxBytes (0 = no limit) but returning at least one entry.
//   - Save(hs, entries): the node's only log write, from one goroutine at
//     a time. Validate first (entries contiguous, entries[0].Index in
//     [FirstIndex, LastIndex+1]; refuse anything else with an error,
//     changing nothing), then delete every stored entry at or after
//     entries[0].Index (conflict truncation: a new leader overwrites a
//     suffix, which may be longer than the entries replacing it) and write
//     hs and the entries together, durably (one fsync), before returning:
//     the node acknowledges them to the leader as soon as Save returns.
//   - Compact(index, term): after a snapshot, from the same goroutine as
//     Save. It discards entries up to index and remembers term as the term
//     at index; if the log does not hold (index, term), as when a follower
//     installs a leader's snapshot, it discards the whole log, and the log
//     continues after index. Compacting at or below the compaction index
//     does nothing.
//   - CreateSnapshot, LatestSnapshot, OpenSnapshot: from any goroutine;
//     several sinks may be open at once. A sink's bytes become visible only
//     on Commit, atomically and durably, and then replace the latest
//     snapshot; Abort discards them; after either the sink refuses more.
//     A reader keeps returning the snapshot it opened even after newer
//     ones are committed and older ones deleted, since the leader streams
//     one to a follower while it takes the next.
//
// Ownership. Save takes the entries slice and may keep it. Entries returns
// a slice the caller owns: a new one (not the store's own array, even when
// the caller appends to it), whose entries never change afterwards (a store
// that decodes into a reused buffer must copy). Entries' Data is never
// modified by anyone, so it may be shared between the store and its
// callers. Snapshot metadata passed in or returned is copied, never shared
// (its Configuration holds slices).
//
// Errors. Wrap the sentinels so errors.Is finds them:
//   - raft.ErrCompacted: Term below FirstIndex-1, Entries from at or below
//     the compaction index;
//   - raft.ErrUnavailable: Term or Entries beyond LastIndex;
//   - raft.ErrNoSnapshot: LatestSnapshot or OpenSnapshot with none
//     committed;
//   - raft.ErrCorrupt: data that fails a checksum or format check, in an
//     error that names what is corrupt (never return garbage or panic);
//   - raft.ErrStorageClosed: any call after Close (stores that implement
//     io.Closer);
//   - raft.ErrWrongNode: BindNode with another node's ID (below).
//
// The node acts on the first three. Any other error from a LogStore method
// (an I/O error, a refused Save) stops the node with that error; one from
// a SnapshotStore method fails that snapshot operation.
//
// Optional interfaces:
//   - io.Closer: the node never closes its store; whoever opened it closes
//     it after the node has stopped.
//   - raft.NodeBinder: BindNode(id) is called by raft.New before anything
//     else; the first call records id durably, later ones (in any process)
//     fail with an error matching raft.ErrWrongNode, naming both IDs, if
//     the store belongs to another node. It keeps a node from starting on
//     another node's data.
//   - raft.FailureNotifier: for stores that can fail outside any call (a
//     background compaction finding corruption, a failed background
//     write): Failed returns a channel, the same one every time, closed
//     once the store has failed for good; FailureErr then names the
//     failure. The node stops with it. A healthy store never closes it.
//   - raft.InlineSaver: only for a store whose Save never waits on a
//     device (an in-memory store). SavesInline reporting true makes the
//     node call Save on its driver goroutine, sparing two goroutine
//     hand-offs per write; a store that fsyncs must not, or its Saves hold
//     up heartbeats and elections. The suite does not check it (it is a
//     promise about latency, not behaviour).
//
// # Running the suite
//
// A store's own tests call Run with a Factory that opens the store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Factory{
//			Open: func(t *testing.T, dir string) raft.Storage {
//				s, err := mystore.Open(dir)
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s
//			},
//			Durable: true, // Open on the same dir after Close finds the data
//		})
//	}
//
// Run it under -race too: the concurrency cases are meant for the race
// detector. Each case runs as a named subtest with its own store in a new
// directory; cases do not run in parallel. It takes about a second for an
// in-memory store. It does not check crash atomicity (a store must simulate
// power loss for that; see store/pebble's crash tests) nor performance.
//
// # What the suite checks
//
// Each group of cases below names the mistakes it catches; the suite's own
// tests check that it catches each of them (mutants_test.go wraps
// store/memory with one defect at a time):
//
//   - EmptyState, AppendAndRead, ReadBounds: a new store's state; entries
//     read back exactly over every range; ErrCompacted below and
//     ErrUnavailable above the stored range, wrapped or not, and an error
//     for lo > hi. Catches bounds errors returned without the sentinel.
//   - EntriesMaxBytes: the byte limit, and at least one entry. Catches an
//     ignored limit and an empty result for an entry larger than it.
//   - ReturnedSliceOwnership: the caller may modify and append to what
//     Entries returned, and what it returned never changes. Catches
//     returning the store's own slice, and Data decoded into a reused
//     buffer.
//   - ConflictTruncation: Save replaces the whole suffix from its first
//     entry. Catches a Save that overwrites the entries it is given but
//     leaves a longer conflicting suffix behind.
//   - HardState, SaveRejectsGaps: the hard state round-trips; gaps,
//     repeats and indexes below FirstIndex are refused, and a refused Save
//     changes nothing. Catches writing the hard state before validating
//     the entries.
//   - Compact, CompactIsNoopAtOrBelow, CompactMismatchingTerm,
//     CompactBeyondLast, SaveAfterCompact: the compaction point, its term
//     (Term at FirstIndex-1), and discarding the whole log when it does not
//     hold (index, term). Catches losing the term at the compaction point
//     and keeping the suffix after a mismatching compaction.
//   - SnapshotRoundTrip, SnapshotAbort, SnapshotReplace, SnapshotLarge:
//     metadata and bytes round-trip (8 MiB in uneven chunks); nothing is
//     visible before Commit; an aborted sink never becomes the latest.
//     Catches an Abort that commits.
//   - SnapshotConcurrentSinks: sinks written at once keep their bytes
//     apart, and OpenSnapshot pairs each meta with its own bytes while
//     commits go on. Catches reading the meta and the data apart.
//   - SnapshotMetaOwnership: metadata is copied in and out. Catches a store
//     keeping the caller's Configuration slices.
//   - SnapshotReaderOutlivesCommit: a reader keeps its snapshot while newer
//     ones are committed. Catches overwriting a snapshot in place.
//   - ConcurrentReads: three readers check every result against the states
//     800 writes (appends, truncations, compactions) went through. Catches
//     a Save or Compact that reads can see half done.
//   - Reopen, ReopenAfterTruncation, ReopenAfterDiscard, ReopenSnapshots
//     (durable stores): everything acknowledged survives Close and Open,
//     including truncations and discards. Catches a hard state not
//     persisted and truncated entries coming back.
//   - Close (stores that implement io.Closer): every method then fails
//     with raft.ErrStorageClosed. Catches a Close that does nothing.
//   - BindNode (raft.NodeBinder): binding, refusing another ID with
//     raft.ErrWrongNode (across a reopen, for durable stores). Catches
//     accepting anyone and an error errors.Is cannot match.
//   - FailureNotifier (raft.FailureNotifier): a healthy store reports no
//     failure. Catches a channel closed from the start.
//
// Where raft.Storage leaves details open, the suite expects what the raft
// package relies on or what a careful user would: Entries(lo, lo) within
// bounds returns no entries and no error; Save(hs, nil) replaces the hard
// state; entries with nil and empty Data are equal; SnapshotMeta.Size reads
// back as 0 or the snapshot's length; a sink refuses Write after Commit or
// Abort, and Commit after Abort.
package storetest
