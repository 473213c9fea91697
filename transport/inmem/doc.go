// Package inmem is an in-process raft.Transport: a simulated network that
// connects nodes running in one process, with seeded fault injection.
//
// A Network is created with NewNetwork and each node joins it with Join (or
// JoinAddr), receiving a *Transport that implements raft.Transport. A peer is
// found by its Peer.Addr, or by its Peer.ID when Addr is empty; Join uses the
// node ID as the address.
//
// Delivery. Send never blocks: every (sender, destination address) link has a
// bounded queue (WithQueueSize, default DefaultQueueSize messages) drained by
// one delivery goroutine that calls the destination's Handler.HandleMessage in
// queue order. Messages are deep-copied on Send, so nodes never share memory.
// A message is dropped, and the sender's Handler.ReportUnreachable is called
// (asynchronously, from the sender's own goroutine), when the destination is
// unknown or closed, when the link is cut, or when the link's queue is full.
// A message whose From is not the sending node, or whose To is not the node
// that owns the destination address, is dropped (the network authenticates
// both ends); the latter is also reported unreachable. Messages arriving
// while the destination has no handler are dropped silently.
//
// Faults. Partition, Cut, Isolate, SetDropRate, SetDropRateAll, SetDelay,
// SetDelayAll and SetReorder change link behaviour at run time; Heal removes
// all of them. Random decisions (drops, delay jitter) come from one
// *rand.Rand seeded by NewNetwork and guarded by a mutex; goroutine scheduling
// is real, so runs are not bit-for-bit reproducible. Per-link counters are
// read with Stats.
//
// Snapshots. SendSnapshot streams the snapshot through an io.Pipe in chunks to
// the destination's Handler.HandleSnapshot, never holding it whole, and
// returns the handler's verdict.
//
// Concurrency: every exported method of Network and Transport is safe for
// concurrent use. Handler methods are called from network goroutines and must
// not call Close on a Transport of the same Network.
package inmem
