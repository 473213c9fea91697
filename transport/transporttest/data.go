package transporttest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand"
	"reflect"
	"strings"

	"github.com/typedraft/typedraft/raft"
)

// sampleConfig is a joint configuration exercising every Server field.
func sampleConfig(a, b raft.NodeID) raft.Configuration {
	return raft.Configuration{
		Servers: []raft.Server{
			{ID: a, Addr: "addr-of-" + string(a), Suffrage: raft.Voter},
			{ID: b, Addr: "addr-of-" + string(b), Suffrage: raft.Voter},
			{ID: "learner-1", Addr: "127.0.0.1:1", Suffrage: raft.Learner},
		},
		Old: []raft.Server{
			{ID: a, Addr: "addr-of-" + string(a), Suffrage: raft.Voter},
			{ID: "old-2", Addr: "", Suffrage: raft.Voter},
			{ID: "old-learner", Addr: "127.0.0.1:2", Suffrage: raft.Learner},
		},
	}
}

// sampleMessages returns one message of every type from -> to, every field
// set to a distinct non-zero value somewhere, including entries of every
// type with empty, binary and text data.
func sampleMessages(from, to raft.NodeID) []raft.Message {
	var msgs []raft.Message
	for t := raft.MsgVote; t.Valid(); t++ {
		k := uint64(t)
		m := raft.Message{
			Type:     t,
			From:     from,
			To:       to,
			Term:     1000 + k,
			LogTerm:  2000 + k,
			Index:    1<<40 + k,
			Commit:   3000 + k,
			Reject:   k%2 == 0,
			Hint:     4000 + k,
			HintTerm: 5000 + k,
			Transfer: k%2 == 1,
			Context:  1<<50 + k,
			Lease:    k%2 == 0,
			Leader:   raft.NodeID(fmt.Sprintf("leader-%d", k)),
		}
		if t == raft.MsgApp || t == raft.MsgSnap {
			m.Entries = []raft.Entry{
				{Index: 7, Term: 3, Type: raft.EntryCommand, Data: []byte("set x=1")},
				{Index: 8, Term: 3, Type: raft.EntryNoop},
				{Index: 9, Term: 4, Type: raft.EntryConfig, Data: []byte{0, 1, 2, 0xfe, 0xff, 0}},
				{Index: 10, Term: 1<<63 + 5, Type: raft.EntryCommand, Data: bytes.Repeat([]byte{0xa5}, 300)},
			}
		}
		if t == raft.MsgSnap || t == raft.MsgHeartbeat {
			m.Snapshot = &raft.SnapshotMeta{
				Index:         1<<33 + k,
				Term:          77,
				Configuration: sampleConfig(from, to),
				ConfigIndex:   1 << 32,
				Size:          123456789,
			}
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// diffMessage describes how got differs from want, field by field, or
// returns "" if they are equal. Nil and empty slices compare equal. Every
// field of raft.Message is compared, including fields added after this
// suite was written.
func diffMessage(got, want raft.Message) string {
	g, w := normalize(got), normalize(want)
	if reflect.DeepEqual(g, w) {
		return ""
	}
	gv, wv := reflect.ValueOf(g), reflect.ValueOf(w)
	var diffs []string
	for i := 0; i < gv.NumField(); i++ {
		name := gv.Type().Field(i).Name
		gf, wf := gv.Field(i).Interface(), wv.Field(i).Interface()
		if reflect.DeepEqual(gf, wf) {
			continue
		}
		switch name {
		case "Entries":
			diffs = append(diffs, diffEntries(g.Entries, w.Entries))
		case "Snapshot":
			if g.Snapshot == nil || w.Snapshot == nil {
				diffs = append(diffs, fmt.Sprintf("snapshot meta present=%v, want %v", g.Snapshot != nil, w.Snapshot != nil))
			} else {
				diffs = append(diffs, diffMeta(*g.Snapshot, *w.Snapshot))
			}
		default:
			diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", name, gf, wf))
		}
	}
	return fmt.Sprintf("%s (got %s, want %s)", strings.Join(diffs, "; "), got, want)
}

// normalize returns a deep copy of m with empty slices made nil, so that
// transports need not tell nil from empty.
func normalize(m raft.Message) raft.Message {
	if len(m.Entries) == 0 {
		m.Entries = nil
	} else {
		es := make([]raft.Entry, len(m.Entries))
		for i, e := range m.Entries {
			if len(e.Data) == 0 {
				e.Data = nil
			}
			es[i] = e
		}
		m.Entries = es
	}
	if m.Snapshot != nil {
		s := *m.Snapshot
		if len(s.Configuration.Servers) == 0 {
			s.Configuration.Servers = nil
		}
		if len(s.Configuration.Old) == 0 {
			s.Configuration.Old = nil
		}
		m.Snapshot = &s
	}
	return m
}

// cloneMessage returns a deep copy of m.
func cloneMessage(m raft.Message) raft.Message {
	if m.Entries != nil {
		es := make([]raft.Entry, len(m.Entries))
		for i, e := range m.Entries {
			e.Data = bytes.Clone(e.Data)
			es[i] = e
		}
		m.Entries = es
	}
	if m.Snapshot != nil {
		s := *m.Snapshot
		s.Configuration = s.Configuration.Clone()
		m.Snapshot = &s
	}
	return m
}

func diffEntries(got, want []raft.Entry) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d entries, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Index != w.Index || g.Term != w.Term || g.Type != w.Type || !bytes.Equal(g.Data, w.Data) {
			return fmt.Sprintf("entry %d: got {i%d t%d %s %d bytes}, want {i%d t%d %s %d bytes}",
				i, g.Index, g.Term, g.Type, len(g.Data), w.Index, w.Term, w.Type, len(w.Data))
		}
	}
	return "entries differ"
}

func diffMeta(got, want raft.SnapshotMeta) string {
	if got.Index != want.Index || got.Term != want.Term || got.ConfigIndex != want.ConfigIndex || got.Size != want.Size {
		return fmt.Sprintf("snapshot meta: got %+v, want %+v", got, want)
	}
	if !equalServers(got.Configuration.Servers, want.Configuration.Servers) ||
		!equalServers(got.Configuration.Old, want.Configuration.Old) {
		return fmt.Sprintf("snapshot configuration: got %+v, want %+v", got.Configuration, want.Configuration)
	}
	return fmt.Sprintf("snapshot meta: got %+v, want %+v", got, want)
}

func equalServers(a, b []raft.Server) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// mixed returns a small message from -> to tagged with index, whose type
// depends on index: it cycles through every type Send carries (MsgSnap
// travels through SendSnapshot), and MsgApp carries an entry. A transport
// must keep one order across types.
func mixed(from, to raft.NodeID, index uint64) raft.Message {
	var types []raft.MessageType
	for t := raft.MsgVote; t.Valid(); t++ {
		if t != raft.MsgSnap {
			types = append(types, t)
		}
	}
	m := raft.Message{Type: types[index%uint64(len(types))], From: from, To: to, Term: 1, Index: index}
	if m.Type == raft.MsgApp {
		m.Entries = []raft.Entry{{Index: index, Term: 1, Type: raft.EntryCommand, Data: []byte("entry")}}
	}
	return m
}

// heartbeat returns a small message from -> to tagged with index.
func heartbeat(from, to raft.NodeID, index uint64) raft.Message {
	return raft.Message{Type: raft.MsgHeartbeat, From: from, To: to, Term: 1, Index: index}
}

// genBlock is the base block of generated snapshot data.
const genBlock = 1 << 20

// generator is an io.Reader yielding size bytes of deterministic data derived
// from seed: a fixed pseudo-random block repeated, with each 4 KiB piece
// stamped with its offset so that no two pieces are equal. It holds only the
// base block, never the whole stream. onRead, if set, is called with the
// position after each Read.
type generator struct {
	block  []byte
	size   int64
	pos    int64
	onRead func(pos int64)
}

func newGenerator(seed, size int64) *generator {
	block := make([]byte, genBlock)
	rand.New(rand.NewSource(seed)).Read(block)
	return &generator{block: block, size: size}
}

// Read implements io.Reader.
func (g *generator) Read(p []byte) (int, error) {
	if g.pos >= g.size {
		return 0, io.EOF
	}
	if rem := g.size - g.pos; int64(len(p)) > rem {
		p = p[:rem]
	}
	n := 0
	for n < len(p) {
		off := g.pos + int64(n)
		in := int(off % genBlock)
		c := copy(p[n:], g.block[in:])
		// Stamp the offset over the first 8 bytes of every 4 KiB piece,
		// byte by byte, so the stream does not depend on read sizes.
		end := off + int64(c)
		for s := off &^ 4095; s < end; s += 4096 {
			var stamp [8]byte
			binary.LittleEndian.PutUint64(stamp[:], uint64(s))
			for j := int64(0); j < 8; j++ {
				if o := s + j; o >= off && o < end {
					p[n+int(o-off)] = stamp[j]
				}
			}
		}
		n += c
	}
	g.pos += int64(n)
	if g.onRead != nil {
		g.onRead(g.pos)
	}
	return n, nil
}
