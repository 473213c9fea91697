package tcp

import (
	"errors"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/typedraft/typedraft/raft"
)

// Message body layout (wire version 2): a msgpack array of 16 fields in this
// fixed order. Field positions, not Go names, define the wire; adding a
// field needs a new wire version (version 2 added Context, Lease and
// Leader).
//
//	[Type, From, To, Term, LogTerm, Index, Commit, Entries, Reject, Hint,
//	 HintTerm, Snapshot, Transfer, Context, Lease, Leader]
//
//	Entries  = nil | [[Index, Term, Type, Data], ...]     Data = nil | bin
//	Snapshot = nil | [Index, Term, ConfigIndex, Size, [Servers, Old]]
//	Servers  = nil | [[ID, Addr, Suffrage], ...]          (Old likewise)
const (
	messageFields  = 16
	entryFields    = 4
	snapshotFields = 5
	configFields   = 2
	serverFields   = 3

	// maxAddrLen bounds a Server.Addr in a snapshot's configuration.
	maxAddrLen = 1024
	// maxEntries bounds the entries of one message.
	maxEntries = 1 << 20
	// maxServers bounds the servers of one configuration.
	maxServers = 1 << 12
	// minEntryBytes is the smallest encoding of one entry: fixarray header
	// plus four one-byte fields.
	minEntryBytes = 1 + entryFields
	// minServerBytes is the smallest encoding of one server.
	minServerBytes = 1 + serverFields
	// preallocEntries caps the entries slice allocated up front; more grow
	// with append as they are actually decoded.
	preallocEntries = 256
)

// errEncode is wrapped by errors for messages that cannot be sent.
var errEncode = errors.New("tcp: cannot encode message")

// encodeMessage appends m's encoding to enc's writer. It fails only for
// messages the receiver would refuse (unknown type, oversized IDs, negative
// snapshot size) or if the writer fails.
func encodeMessage(enc *msgpack.Encoder, m *raft.Message) error {
	if !m.Type.Valid() {
		return fmt.Errorf("%w: unknown message type %d", errEncode, uint8(m.Type))
	}
	if len(m.From) > MaxIDLen || len(m.To) > MaxIDLen || len(m.Leader) > MaxIDLen {
		return fmt.Errorf("%w: node ID longer than %d bytes", errEncode, MaxIDLen)
	}
	if len(m.Entries) > maxEntries {
		return fmt.Errorf("%w: %d entries, limit %d", errEncode, len(m.Entries), maxEntries)
	}
	e := errWriter{enc: enc}
	e.arrayLen(messageFields)
	e.uint(uint64(m.Type))
	e.str(string(m.From))
	e.str(string(m.To))
	e.uint(m.Term)
	e.uint(m.LogTerm)
	e.uint(m.Index)
	e.uint(m.Commit)
	if m.Entries == nil {
		e.nil()
	} else {
		e.arrayLen(len(m.Entries))
		for i := range m.Entries {
			ent := &m.Entries[i]
			e.arrayLen(entryFields)
			e.uint(ent.Index)
			e.uint(ent.Term)
			e.uint(uint64(ent.Type))
			if e.err == nil {
				e.err = enc.EncodeBytes(ent.Data)
			}
		}
	}
	e.bool(m.Reject)
	e.uint(m.Hint)
	e.uint(m.HintTerm)
	if m.Snapshot == nil {
		e.nil()
	} else if err := encodeSnapshotMeta(&e, m.Snapshot); err != nil {
		return err
	}
	e.bool(m.Transfer)
	e.uint(m.Context)
	e.bool(m.Lease)
	e.str(string(m.Leader))
	if e.err != nil {
		return fmt.Errorf("tcp: encode %s: %w", m.Type, e.err)
	}
	return nil
}

func encodeSnapshotMeta(e *errWriter, s *raft.SnapshotMeta) error {
	if s.Size < 0 {
		return fmt.Errorf("%w: negative snapshot size %d", errEncode, s.Size)
	}
	e.arrayLen(snapshotFields)
	e.uint(s.Index)
	e.uint(s.Term)
	e.uint(s.ConfigIndex)
	e.uint(uint64(s.Size))
	e.arrayLen(configFields)
	for _, servers := range [][]raft.Server{s.Configuration.Servers, s.Configuration.Old} {
		if len(servers) > maxServers {
			return fmt.Errorf("%w: %d servers, limit %d", errEncode, len(servers), maxServers)
		}
		if servers == nil {
			e.nil()
			continue
		}
		e.arrayLen(len(servers))
		for _, sv := range servers {
			if len(sv.ID) > MaxIDLen || len(sv.Addr) > maxAddrLen {
				return fmt.Errorf("%w: server %.32q has an oversized ID or address", errEncode, sv.ID)
			}
			e.arrayLen(serverFields)
			e.str(string(sv.ID))
			e.str(sv.Addr)
			e.uint(uint64(sv.Suffrage))
		}
	}
	return nil
}

// errWriter keeps the first encoder error so encoding code stays linear.
type errWriter struct {
	enc *msgpack.Encoder
	err error
}

func (e *errWriter) arrayLen(n int) {
	if e.err == nil {
		e.err = e.enc.EncodeArrayLen(n)
	}
}

func (e *errWriter) uint(v uint64) {
	if e.err == nil {
		e.err = e.enc.EncodeUint(v)
	}
}

func (e *errWriter) str(s string) {
	if e.err == nil {
		e.err = e.enc.EncodeString(s)
	}
}

func (e *errWriter) bool(b bool) {
	if e.err == nil {
		e.err = e.enc.EncodeBool(b)
	}
}

func (e *errWriter) nil() {
	if e.err == nil {
		e.err = e.enc.EncodeNil()
	}
}

// decodeMessage decodes a message body. Entry Data aliases body, which the
// caller must therefore not reuse. Every error wraps errMalformed.
func decodeMessage(body []byte) (raft.Message, error) {
	d := newBodyDecoder(body)
	m, err := d.message()
	if err != nil {
		return raft.Message{}, err
	}
	if err := d.end("message"); err != nil {
		return raft.Message{}, err
	}
	return m, nil
}

func (d *bodyDecoder) message() (raft.Message, error) {
	var m raft.Message
	if err := d.fixedArray("message", messageFields); err != nil {
		return m, err
	}
	t, err := d.uintMax("message type", math.MaxUint8)
	if err != nil {
		return m, err
	}
	m.Type = raft.MessageType(t)
	if !m.Type.Valid() {
		return m, d.errorf("unknown message type %d", t)
	}
	from, err := d.str("from", MaxIDLen)
	if err != nil {
		return m, err
	}
	to, err := d.str("to", MaxIDLen)
	if err != nil {
		return m, err
	}
	m.From, m.To = raft.NodeID(from), raft.NodeID(to)
	for _, f := range []struct {
		name string
		p    *uint64
	}{{"term", &m.Term}, {"log term", &m.LogTerm}, {"index", &m.Index}, {"commit", &m.Commit}} {
		if *f.p, err = d.uint(f.name); err != nil {
			return m, err
		}
	}
	if m.Entries, err = d.entries(); err != nil {
		return m, err
	}
	if m.Reject, err = d.bool("reject"); err != nil {
		return m, err
	}
	if m.Hint, err = d.uint("hint"); err != nil {
		return m, err
	}
	if m.HintTerm, err = d.uint("hint term"); err != nil {
		return m, err
	}
	if m.Snapshot, err = d.snapshotMeta(); err != nil {
		return m, err
	}
	if m.Transfer, err = d.bool("transfer"); err != nil {
		return m, err
	}
	if m.Context, err = d.uint("context"); err != nil {
		return m, err
	}
	if m.Lease, err = d.bool("lease"); err != nil {
		return m, err
	}
	leader, err := d.str("leader", MaxIDLen)
	if err != nil {
		return m, err
	}
	m.Leader = raft.NodeID(leader)
	return m, nil
}

func (d *bodyDecoder) entries() ([]raft.Entry, error) {
	n, err := d.arrayLen("entries", true, maxEntries, minEntryBytes)
	if err != nil || n < 0 {
		return nil, err
	}
	ents := make([]raft.Entry, 0, min(n, preallocEntries))
	for i := 0; i < n; i++ {
		var e raft.Entry
		if err := d.fixedArray("entry", entryFields); err != nil {
			return nil, err
		}
		if e.Index, err = d.uint("entry index"); err != nil {
			return nil, err
		}
		if e.Term, err = d.uint("entry term"); err != nil {
			return nil, err
		}
		t, err := d.uintMax("entry type", math.MaxUint8)
		if err != nil {
			return nil, err
		}
		e.Type = raft.EntryType(t)
		if !e.Type.Valid() {
			return nil, d.errorf("unknown entry type %d", t)
		}
		if e.Data, err = d.bin("entry data"); err != nil {
			return nil, err
		}
		ents = append(ents, e)
	}
	return ents, nil
}

func (d *bodyDecoder) snapshotMeta() (*raft.SnapshotMeta, error) {
	n, err := d.arrayLen("snapshot", true, snapshotFields, 1)
	if err != nil || n < 0 {
		return nil, err
	}
	if n != snapshotFields {
		return nil, d.errorf("snapshot: %d fields, want %d", n, snapshotFields)
	}
	s := &raft.SnapshotMeta{}
	if s.Index, err = d.uint("snapshot index"); err != nil {
		return nil, err
	}
	if s.Term, err = d.uint("snapshot term"); err != nil {
		return nil, err
	}
	if s.ConfigIndex, err = d.uint("snapshot config index"); err != nil {
		return nil, err
	}
	size, err := d.uintMax("snapshot size", math.MaxInt64)
	if err != nil {
		return nil, err
	}
	s.Size = int64(size)
	if err := d.fixedArray("configuration", configFields); err != nil {
		return nil, err
	}
	if s.Configuration.Servers, err = d.servers("servers"); err != nil {
		return nil, err
	}
	if s.Configuration.Old, err = d.servers("old servers"); err != nil {
		return nil, err
	}
	return s, nil
}

func (d *bodyDecoder) servers(what string) ([]raft.Server, error) {
	n, err := d.arrayLen(what, true, maxServers, minServerBytes)
	if err != nil || n < 0 {
		return nil, err
	}
	out := make([]raft.Server, 0, n)
	for i := 0; i < n; i++ {
		var s raft.Server
		if err := d.fixedArray("server", serverFields); err != nil {
			return nil, err
		}
		id, err := d.str("server id", MaxIDLen)
		if err != nil {
			return nil, err
		}
		if s.Addr, err = d.str("server addr", maxAddrLen); err != nil {
			return nil, err
		}
		suf, err := d.uintMax("server suffrage", uint64(raft.Learner))
		if err != nil {
			return nil, err
		}
		s.ID, s.Suffrage = raft.NodeID(id), raft.Suffrage(suf)
		out = append(out, s)
	}
	return out, nil
}
