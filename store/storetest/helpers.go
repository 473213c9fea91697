package storetest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/typedraft/typedraft/raft"
)

// payload returns the Data of the test entry (index, term): 16 bytes naming
// the entry followed by 0-40 filler bytes, so entries differ in size and an
// entry returned with the wrong Data is recognized.
func payload(index, term uint64) []byte {
	n := 16 + int((index*7+term*3)%41)
	b := make([]byte, n)
	binary.BigEndian.PutUint64(b, index)
	binary.BigEndian.PutUint64(b[8:], term)
	for i := 16; i < n; i++ {
		b[i] = byte(index + term + uint64(i))
	}
	return b
}

// entry returns the test entry (index, term); its Type cycles through the
// entry types and noops carry no Data.
func entry(index, term uint64) raft.Entry {
	e := raft.Entry{Index: index, Term: term, Type: raft.EntryType(index % 3)}
	if e.Type != raft.EntryNoop {
		e.Data = payload(index, term)
	}
	return e
}

// entries returns the test entries [lo, hi), all with the given term.
func entries(lo, hi, term uint64) []raft.Entry {
	out := make([]raft.Entry, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, entry(i, term))
	}
	return out
}

// concat returns the concatenation of the given entry slices in a new slice.
func concat(parts ...[]raft.Entry) []raft.Entry { return slices.Concat(parts...) }

// entryEqual reports whether a and b are the same entry. nil and empty Data
// are equal: a store need not tell them apart.
func entryEqual(a, b raft.Entry) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && bytes.Equal(a.Data, b.Data)
}

// diffEntries describes the first difference between got and want, or
// returns "" if they are equal.
func diffEntries(got, want []raft.Entry) string {
	for i := 0; i < len(got) && i < len(want); i++ {
		if !entryEqual(got[i], want[i]) {
			if g, w := got[i], want[i]; g.Index == w.Index && g.Term == w.Term && g.Type == w.Type && len(g.Data) == len(w.Data) {
				return fmt.Sprintf("entry %d of the result (index %d): the %d data bytes differ", i, g.Index, len(g.Data))
			}
			return fmt.Sprintf("entry %d of the result: got %s, want %s", i, fmtEntry(got[i]), fmtEntry(want[i]))
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("got %d entries %s, want %d %s", len(got), fmtRange(got), len(want), fmtRange(want))
	}
	return ""
}

func fmtEntry(e raft.Entry) string {
	return fmt.Sprintf("{index %d term %d type %v, %d data bytes}", e.Index, e.Term, e.Type, len(e.Data))
}

func fmtRange(es []raft.Entry) string {
	if len(es) == 0 {
		return "[]"
	}
	return fmt.Sprintf("[%d..%d]", es[0].Index, es[len(es)-1].Index)
}

// copyEntries returns a copy of es with copied Data, for comparisons that
// must not depend on what the store does with the slices it was given.
func copyEntries(es []raft.Entry) []raft.Entry {
	out := make([]raft.Entry, len(es))
	for i, e := range es {
		out[i] = e
		out[i].Data = bytes.Clone(e.Data)
	}
	return out
}

// save calls Save with private copies of entries (Save takes ownership) and
// fails the test on error.
func (h *harness) save(hs raft.HardState, es []raft.Entry) {
	h.t.Helper()
	if err := h.s.Save(hs, copyEntries(es)); err != nil {
		h.t.Fatalf("Save(%+v, %d entries %s): %v", hs, len(es), fmtRange(es), err)
	}
}

// compact calls Compact and fails the test on error.
func (h *harness) compact(index, term uint64) {
	h.t.Helper()
	if err := h.s.Compact(index, term); err != nil {
		h.t.Fatalf("Compact(%d, %d): %v", index, term, err)
	}
}

// checkHardState fails the test unless InitialState returns want.
func (h *harness) checkHardState(want raft.HardState) {
	h.t.Helper()
	got, err := h.s.InitialState()
	if err != nil {
		h.t.Fatalf("InitialState: %v", err)
	}
	if got != want {
		h.t.Fatalf("InitialState = %+v, want %+v", got, want)
	}
}

// checkLog fails the test unless the store holds exactly want after the
// compaction point (compactIndex, compactTerm): FirstIndex, LastIndex, Term
// of every index from compactIndex to LastIndex, every entry on its own and
// the whole range, and the errors just outside it.
func (h *harness) checkLog(compactIndex, compactTerm uint64, want []raft.Entry) {
	h.t.Helper()
	first, last := compactIndex+1, compactIndex+uint64(len(want))
	if got, err := h.s.FirstIndex(); err != nil || got != first {
		h.t.Fatalf("FirstIndex = %d, %v; want %d", got, err, first)
	}
	if got, err := h.s.LastIndex(); err != nil || got != last {
		h.t.Fatalf("LastIndex = %d, %v; want %d", got, err, last)
	}
	h.checkTerm(compactIndex, compactTerm)
	for i, e := range want {
		if e.Index != first+uint64(i) {
			h.t.Fatalf("storetest bug: checkLog want[%d] has index %d, expected %d", i, e.Index, first+uint64(i))
		}
		h.checkTerm(e.Index, e.Term)
		h.checkEntries(e.Index, e.Index+1, 0, want[i:i+1])
	}
	h.checkEntries(first, last+1, 0, want)
	h.checkTermErr(last+1, raft.ErrUnavailable)
	h.checkEntriesErr(first, last+2, raft.ErrUnavailable)
	h.checkEntriesErr(last+1, last+2, raft.ErrUnavailable)
	if compactIndex > 0 {
		h.checkTermErr(compactIndex-1, raft.ErrCompacted)
		h.checkEntriesErr(compactIndex, last+1, raft.ErrCompacted)
	}
	h.checkEntriesErr(0, 1, raft.ErrCompacted)
}

// checkTerm fails the test unless Term(index) returns want.
func (h *harness) checkTerm(index, want uint64) {
	h.t.Helper()
	got, err := h.s.Term(index)
	if err != nil || got != want {
		h.t.Fatalf("Term(%d) = %d, %v; want %d", index, got, err, want)
	}
}

// checkTermErr fails the test unless Term(index) returns an error matching
// target.
func (h *harness) checkTermErr(index uint64, target error) {
	h.t.Helper()
	got, err := h.s.Term(index)
	if !errors.Is(err, target) {
		h.t.Fatalf("Term(%d) = %d, %v; want an error matching %q", index, got, err, target)
	}
}

// checkEntries fails the test unless Entries(lo, hi, maxBytes) returns want.
func (h *harness) checkEntries(lo, hi, maxBytes uint64, want []raft.Entry) {
	h.t.Helper()
	got, err := h.s.Entries(lo, hi, maxBytes)
	if err != nil {
		h.t.Fatalf("Entries(%d, %d, %d): %v", lo, hi, maxBytes, err)
	}
	if d := diffEntries(got, want); d != "" {
		h.t.Fatalf("Entries(%d, %d, %d): %s", lo, hi, maxBytes, d)
	}
}

// checkEntriesErr fails the test unless Entries(lo, hi, 0) returns an error
// matching target.
func (h *harness) checkEntriesErr(lo, hi uint64, target error) {
	h.t.Helper()
	got, err := h.s.Entries(lo, hi, 0)
	if !errors.Is(err, target) {
		h.t.Fatalf("Entries(%d, %d, 0) = %d entries, %v; want an error matching %q", lo, hi, len(got), err, target)
	}
}

// readAll reads and closes r, failing the test on error.
func (h *harness) readAll(what string, r io.ReadCloser) []byte {
	h.t.Helper()
	data, err := io.ReadAll(r)
	if err != nil {
		h.t.Fatalf("%s: read: %v", what, err)
	}
	if err := r.Close(); err != nil {
		h.t.Fatalf("%s: close reader: %v", what, err)
	}
	return data
}
