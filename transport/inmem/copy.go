package inmem

import "github.com/typedraft/typedraft/raft"

// messageOverhead is the estimated size in bytes of a message's fixed fields.
const messageOverhead = 64

// cloneMessage returns a deep copy of m: Entries (with all their Data in one
// fresh allocation) and the Snapshot meta, including its Configuration.
func cloneMessage(m raft.Message) raft.Message {
	out := m
	if m.Entries != nil {
		out.Entries = make([]raft.Entry, len(m.Entries))
		total := 0
		for i := range m.Entries {
			total += len(m.Entries[i].Data)
		}
		buf := make([]byte, 0, total)
		for i, e := range m.Entries {
			out.Entries[i] = e
			if e.Data != nil {
				start := len(buf)
				buf = append(buf, e.Data...)
				out.Entries[i].Data = buf[start:len(buf):len(buf)]
			}
		}
	}
	if m.Snapshot != nil {
		meta := *m.Snapshot
		meta.Configuration = m.Snapshot.Configuration.Clone()
		out.Snapshot = &meta
	}
	return out
}

// messageSize estimates the encoded size of m in bytes.
func messageSize(m *raft.Message) uint64 {
	n := uint64(messageOverhead)
	for i := range m.Entries {
		n += m.Entries[i].Size()
	}
	if s := m.Snapshot; s != nil {
		n += 40
		for _, srv := range s.Configuration.Servers {
			n += uint64(len(srv.ID)+len(srv.Addr)) + 4
		}
		for _, srv := range s.Configuration.Old {
			n += uint64(len(srv.ID)+len(srv.Addr)) + 4
		}
	}
	return n
}
