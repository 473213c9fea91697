package rafttest

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"

	"github.com/typedraft/typedraft/raft"
)

// disk is one node's simulated stable storage: what survives a crash. It
// never compacts (the simulator does not take snapshots), so entry i is at
// ents[i-1]. Alongside each entry it keeps the hash of the whole log prefix
// ending there, which makes log comparisons O(1).
//
// disk implements raft.LogReader for the node's Core.
type disk struct {
	hs    raft.HardState
	ents  []raft.Entry
	phash []uint64
}

func (d *disk) FirstIndex() (uint64, error) { return 1, nil }

func (d *disk) LastIndex() (uint64, error) { return uint64(len(d.ents)), nil }

func (d *disk) Term(i uint64) (uint64, error) {
	if i == 0 {
		return 0, nil
	}
	if i > uint64(len(d.ents)) {
		return 0, fmt.Errorf("rafttest: term of %d (last %d): %w", i, len(d.ents), raft.ErrUnavailable)
	}
	return d.ents[i-1].Term, nil
}

func (d *disk) Entries(lo, hi, maxBytes uint64) ([]raft.Entry, error) {
	if lo < 1 {
		return nil, fmt.Errorf("rafttest: entries [%d,%d): %w", lo, hi, raft.ErrCompacted)
	}
	if hi > uint64(len(d.ents))+1 || lo > hi {
		return nil, fmt.Errorf("rafttest: entries [%d,%d) (last %d): %w", lo, hi, len(d.ents), raft.ErrUnavailable)
	}
	var out []raft.Entry
	var size uint64
	for i := lo; i < hi; i++ {
		e := d.ents[i-1]
		size += e.Size()
		if maxBytes > 0 && len(out) > 0 && size > maxBytes {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

func (d *disk) last() uint64 { return uint64(len(d.ents)) }

// prefixHash returns the hash of entries [1, i] (0 for i == 0).
func (d *disk) prefixHash(i uint64) uint64 {
	if i == 0 || i > d.last() {
		return 0
	}
	return d.phash[i-1]
}

// save persists hs and ents atomically, truncating the stored log at
// ents[0].Index first. It returns an error if ents do not attach to the log.
func (d *disk) save(hs raft.HardState, ents []raft.Entry) error {
	if len(ents) > 0 {
		at := ents[0].Index
		if at < 1 || at > d.last()+1 {
			return fmt.Errorf("save entries from %d: log ends at %d", at, d.last())
		}
		for k := range ents {
			if ents[k].Index != at+uint64(k) {
				return fmt.Errorf("save: entry %d of the batch has index %d, want %d", k, ents[k].Index, at+uint64(k))
			}
		}
		d.ents = d.ents[:at-1]
		d.phash = d.phash[:at-1]
		prev := d.prefixHash(at - 1)
		for _, e := range ents {
			prev = chainHash(prev, e)
			d.ents = append(d.ents, e)
			d.phash = append(d.phash, prev)
		}
	}
	d.hs = hs
	return nil
}

// chainHash extends the prefix hash prev with e.
func chainHash(prev uint64, e raft.Entry) uint64 {
	h := fnv.New64a()
	var b [40]byte
	x := binary.LittleEndian.AppendUint64(b[:0], prev)
	x = binary.LittleEndian.AppendUint64(x, e.Index)
	x = binary.LittleEndian.AppendUint64(x, e.Term)
	x = append(x, byte(e.Type))
	h.Write(x)
	h.Write(e.Data)
	return h.Sum64()
}

// entryHash identifies one entry's content (index, term, type, data).
func entryHash(e raft.Entry) uint64 { return chainHash(0, e) }
