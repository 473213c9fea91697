// Package pebble is a durable raft.Storage built on CockroachDB's Pebble
// key-value store.
//
// A Store keeps everything under one directory:
//
//	dir/log/        the Pebble database: format version, hard state,
//	                compaction point and log entries
//	dir/snapshots/  one file per committed snapshot
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
// and the comments in format.go): big-endian keys, and values carrying a
// kind byte and a CRC-32C over key and value. Opening a directory written
// with another format version fails with ErrUnsupportedFormat. Any record or
// snapshot that fails its checks is reported as an error matching
// raft.ErrCorrupt that names the entry index, record or file (see
// CorruptError); the store never returns unverified data.
//
// An I/O failure while committing a write (the WAL cannot be written or
// synced) is one Pebble treats as fatal; Save and Compact return it as an
// error naming the directory — the raft node then stops and reports it
// through Done/Err — and every later write returns it too. Pebble's fatal
// errors on its own background goroutines (e.g. during a compaction) still
// panic, which ends the process.
//
// # Concurrency
//
// Every method is safe for concurrent use. Reads never wait for writes: the
// first and last index, the hard state and the terms at both ends of the log
// are cached in memory, and other reads use a consistent Pebble iterator, so
// a read concurrent with Save or Compact sees the state before or after it,
// never a mixture.
//
// # Testing
//
// Options.FS accepts any Pebble vfs.FS, so tests can run on vfs.NewMem or
// simulate power loss with vfs.NewCrashableMem and CrashClone.
package pebble
