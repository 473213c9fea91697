// Package pebble is a durable raft.Storage built on CockroachDB's Pebble
// key-value store. A Store also implements raft.NodeBinder and
// raft.FailureNotifier.
//
// A Store keeps everything under one directory:
//
//	dir/log/        the Pebble database: format version, hard state,
//	                compaction point, identity and log entries
//	dir/snapshots/  one file per committed snapshot
//	dir/highwater   the high-water mark (see Detecting lost writes)
//
// # Durability
//
// Save writes the hard state, the new entries and the deletion of any
// conflicting suffix in one Pebble batch committed with a single WAL fsync:
// after a crash either all of it or none of it is visible. Compact is one
// synced batch too. Snapshots are written to a temporary file that is
// fsynced, renamed into place and made durable by an fsync of the directory;
// a crash before that, or Abort, leaves the previous snapshot in place, and
// temporary files are removed by the next Open. Only the newest committed
// snapshot is kept.
//
// # Format
//
// The on-disk layout is a fixed, versioned binary format (see FormatVersion
// and the comments in format.go, snapmeta.go and mark.go): big-endian keys,
// and values carrying a kind byte and a CRC-32C over key and value. Opening a
// directory written with another format version fails with
// ErrUnsupportedFormat. Any record or snapshot that fails its checks is
// reported as an error matching raft.ErrCorrupt that names the entry index,
// record or file (see CorruptError); the store never returns unverified
// data.
//
// # Opening never deletes data
//
// Open creates a new store only in a directory that holds none. If dir/log
// holds any file besides Pebble's LOCK, or dir holds committed snapshots or
// a high-water mark, the directory holds a store, and Open requires Pebble's
// database to exist (pebble.Options.ErrorIfNotExists) and to carry the
// store's format version. Without this, Pebble would take a directory whose
// manifest marker is missing for a new database: it would replay the WALs
// into it and delete every sstable. Such a directory is refused with an
// error naming what is missing (the manifest marker, the manifest, the
// options, the whole log database, or the format version), and nothing in
// it is changed.
//
// # Snapshots are verified before use
//
// OpenSnapshot reads the whole data section of the snapshot file and checks
// it against the checksum in the footer before it returns a reader (about
// 15 ms for 64 MiB from the page cache); a mismatch is an error matching
// raft.ErrCorrupt naming the file, and no byte is handed out. The reader
// checks the checksum again as it streams, so a file changed after the
// verification makes the read at the end of the data fail with an error
// matching raft.ErrCorrupt instead of returning io.EOF: a caller that reads
// to EOF (as the raft node does after Restore) never accepts damaged data.
//
// # Failures: corruption, I/O errors, full disks
//
// Nothing Pebble reports takes the process down; each becomes an error:
//
//   - A block that fails its checksum (Pebble's DataCorruption event, on a
//     read or a background compaction) is an error matching raft.ErrCorrupt
//     naming the file, and fails the store: every later call returns it.
//     A panic inside Pebble during a read is recovered and treated the same.
//   - An I/O error while committing (the WAL cannot be written or synced) is
//     returned by that Save or Compact, naming the directory and saying when
//     the disk is full (errors.Is(err, syscall.ENOSPC)); every later write
//     returns it, reads keep serving what was written before.
//   - A background flush or compaction that fails because the disk cannot
//     take writes (ENOSPC, EDQUOT, EROFS, EIO) fails the store for writes at
//     once. Pebble retries such jobs in a tight loop; their log line is
//     rate-limited (the first is logged, repeats are counted into a summary).
//   - A fatal error on one of Pebble's own goroutines (Pebble calls its
//     logger's Fatalf, e.g. when a MANIFEST write fails) fails the store for
//     every call and blocks that goroutine forever, so that Pebble cannot act
//     on the state the failed job left half-changed; the database is then
//     abandoned: Close does not close it, and its goroutines and directory
//     lock remain until the process exits. See pebbleLogger.Fatalf for why
//     blocking was chosen over returning or runtime.Goexit.
//
// A failed store closes the channel returned by Failed (raft.FailureNotifier)
// and reports the failure through FailureErr, so that the node stops
// cleanly even when the failure happened outside any call. Open a failed
// store's directory again (in a new process, if the database was abandoned)
// to continue; what was acknowledged is there.
//
// Every Save, Compact and BindNode returns within Options.WriteTimeout (10 s
// by default) of being called: commits and high-water mark writes run on
// goroutines of the store, and the caller stops waiting when that deadline
// passes or the store fails meanwhile (a full disk noticed by a background
// flush ends the wait at once). Only their reads (the free space, the term
// of an entry) are not covered by the deadline. A commit that times
// out fails the store for writes; it may still complete later, like a write
// interrupted by a crash. Close waits for such a commit for up to the write
// timeout, then returns an error and closes the database when the commit
// returns.
//
// Full disks. Save of entries and snapshot writes refuse to run while the
// file system has less than Options.MinFreeSpace available (64 MiB by
// default; checked at most every 100 ms or every 16 MiB written), with an
// error matching syscall.ENOSPC that says the disk is full; this is not a
// failure, writes succeed again once space is freed. The reserve exists
// because Pebble cannot survive every write failure: if it cannot close or
// create a WAL while switching memtables it panics with its mutex released,
// and the Go runtime ends the process ("unlock of unlocked mutex"), which no
// caller can recover. Below the reserve, the reactive handling above still
// applies, and Pebble's WAL preallocation makes that switch rarely need new
// space; a disk filled by another process between two checks can still hit
// it. File systems that cannot report their usage are not checked.
//
// # Detecting lost writes
//
// Pebble replays a WAL whose tail is missing or damaged as if the process
// had crashed while writing it: synced entries and hard states after the
// damage are silently dropped, and a voter could forget its vote. The store
// keeps a high-water mark apart from the WAL, in dir/highwater (written to a
// temporary file, fsynced, renamed, and the directory fsynced). It holds a
// term, the vote in that term, and a log point (an index and its term):
//
//   - every Save that changes the term or the vote writes the mark before it
//     returns (two extra fsyncs, once per election);
//   - the log point is raised to the last entry in the background, at most
//     once a second after a Save, and at Close;
//   - a Save or Compact that removes entries the mark covers (a conflict
//     truncation, a compaction discarding the log), or takes back a term or
//     vote, lowers the mark first, so legitimate rollbacks are never taken
//     for losses, also after a crash.
//
// Open compares what Pebble recovered with the mark and fails with an error
// matching raft.ErrCorrupt naming what was lost when the hard state's term
// is below the mark's, when the vote recorded for the mark's term is gone,
// or when the log ends before the mark's entry or holds it with another
// term (unless compacted). Detected: every loss of a term or vote, and every
// loss of entries up to the last mark (at Close, all of them; after a crash,
// all but those appended in the last second of Saves before it, since the
// background raise runs after a Save at most once a second). Not detected: losses of
// entries appended after the last mark; damage that also reaches the mark
// file (a lost mark is indistinguishable from a store written by an older
// build, which has none); and the commit index, which is not recorded.
// Pebble itself detects damage in the middle of a WAL when later records
// prove the damaged one should have been valid, and every sstable block has
// a checksum; what it cannot detect is a WAL that ends early (cut at any
// point, or damaged in its last records) — the case the mark is for — or a
// WAL file removed as a whole. With NoSync the mark is not kept (a crash
// could leave the log behind it without anything acknowledged being lost):
// Open checks an existing mark, then removes it.
//
// # Node binding
//
// BindNode (called by raft.New) records the node's ID in the store on first
// use, durably and checksummed; a store bound to another node is refused
// with an error matching raft.ErrWrongNode naming both IDs. Options.NodeID
// and Options.ClusterID let Open check (or record) the same, before the
// store is used.
//
// # Concurrency
//
// Every method is safe for concurrent use. Reads never wait for writes: the
// first and last index, the hard state and the terms at both ends of the log
// are cached in memory, and other reads use a consistent Pebble iterator, so
// a read concurrent with Save or Compact sees the state before or after it,
// never a mixture. A read in progress at the moment Pebble fails fatally on
// one of its own goroutines may block if it needs a lock that goroutine
// holds; every later call returns the failure at once.
//
// # Testing
//
// Options.FS accepts any Pebble vfs.FS, so tests can run on vfs.NewMem,
// simulate power loss with vfs.NewCrashableMem and CrashClone, or inject
// I/O errors with vfs/errorfs.
package pebble
