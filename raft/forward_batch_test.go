package raft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"
	"testing"
)

// captureTransport records what a driver sends.
type captureTransport struct {
	mu   sync.Mutex
	sent []Message
}

func (c *captureTransport) Register(Handler) {}
func (c *captureTransport) Send(to Peer, msgs []Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, msgs...)
}
func (c *captureTransport) SendSnapshot(context.Context, Peer, Message, io.Reader) error {
	return errors.New("not here")
}
func (c *captureTransport) take() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.sent
	c.sent = nil
	return out
}

// batchDriver is a driver with just what sending forwards and answers
// needs.
func batchDriver() (*driver, *captureTransport) {
	tr := &captureTransport{}
	d := &driver{cfg: Config{ID: "n2"}, trans: tr, fwdq: newQueue[fwdOut](0), metrics: newMetrics(false)}
	d.status.Store(&Status{})
	return d, tr
}

// A follower's queued forwards leave as one MsgPropose per leader and
// mode, in queue order, the IDs in Entry.Index; a lone one keeps the
// single form (Context the ID); a batch over maxForwardBatchBytes splits.
func TestSendForwardsBatchesPerLeaderAndMode(t *testing.T) {
	d, tr := batchDriver()
	push := func(to NodeID, mode ResponseMode, id uint64, n int) {
		d.fwdq.push(fwdOut{to: to, mode: mode, ent: Entry{Index: id, Data: make([]byte, n)}})
	}
	push("n1", Applied, 10, 1)
	push("n3", Applied, 11, 1)
	push("n1", Committed, 12, 1)
	push("n1", Applied, 13, 1)
	push("n1", Applied, 14, maxForwardBatchBytes) // over the bound with 10 and 13
	d.sendForwards()
	got := tr.take()
	var desc []string
	for _, m := range got {
		if m.Type != MsgPropose || m.From != "n2" {
			t.Fatalf("sent %v from %s", m.Type, m.From)
		}
		ids := []uint64{}
		for _, e := range m.Entries {
			ids = append(ids, e.Index)
		}
		desc = append(desc, fmt.Sprintf("%s mode %d ctx %d ids %v", m.To, m.Hint, m.Context, ids))
	}
	want := []string{
		"n1 mode 0 ctx 0 ids [10 13]",
		"n3 mode 0 ctx 11 ids [0]",
		"n1 mode 1 ctx 12 ids [0]",
		"n1 mode 0 ctx 14 ids [0]",
	}
	if !reflect.DeepEqual(desc, want) {
		t.Fatalf("sent\n%v\nwant\n%v", desc, want)
	}
}

// The leader's answers wait while a batch is open and leave at its end,
// one MsgProposeResp per follower; each decodes back into the single
// answer it was. With no batch open an answer leaves at once.
func TestAnswersBatchAndDecode(t *testing.T) {
	d, tr := batchDriver()
	answers := []Message{
		{Type: MsgProposeResp, To: "n1", Context: 7, Index: 40, LogTerm: 3,
			Entries: []Entry{{Data: []byte("resp")}, {Data: []byte("apperr")}}},
		{Type: MsgProposeResp, To: "n3", Context: 8, Index: 41, LogTerm: 3, Entries: []Entry{{Data: []byte{}}}},
		{Type: MsgProposeResp, To: "n1", Context: 1 << 62, Reject: true, Hint: fwdNotLeader, Leader: "n5",
			Entries: []Entry{{Data: []byte("not the leader")}}},
		{Type: MsgProposeResp, To: "n1", Context: 9, Index: 42, LogTerm: 4}, // Committed: no entries
	}
	d.replies.send(d, answers[1])
	if got := tr.take(); len(got) != 1 || got[0].Context != 8 {
		t.Fatalf("with no batch open, sent %+v, want the answer at once", got)
	}
	d.replies.begin()
	d.replies.begin() // the apply goroutine's and the driver's
	for _, m := range answers {
		d.replies.send(d, m)
	}
	if got := tr.take(); len(got) != 0 {
		t.Fatalf("sent %d messages while batches were open", len(got))
	}
	d.replies.end(d)
	got := tr.take()
	if len(got) != 2 {
		t.Fatalf("sent %d messages, want one per follower: %+v", len(got), got)
	}
	if got[1].To != "n3" || got[1].Context != 8 {
		t.Fatalf("lone answer to n3 sent as %+v, want the single form", got[1])
	}
	b := got[0]
	if b.To != "n1" || b.Context != 0 || len(b.Entries) != 3 {
		t.Fatalf("batch to n1: %+v", b)
	}
	for i, want := range []Message{answers[0], answers[2], answers[3]} {
		a, err := decodeAnswer("n9", b.Entries[i])
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		want.To, want.From = "", "n9"
		if len(want.Entries) == 0 {
			want.Entries = nil
		}
		if !reflect.DeepEqual(a, want) {
			t.Fatalf("answer %d decoded as\n%+v\nwant\n%+v", i, a, want)
		}
	}
	d.replies.end(d)
	if got := tr.take(); len(got) != 0 {
		t.Fatalf("the second end sent %d more", len(got))
	}
}

// A malformed batched answer is an error naming what is wrong, never a
// panic or a huge allocation.
func TestDecodeAnswerMalformed(t *testing.T) {
	good := encodeAnswer(&Message{Context: 5, Reject: true, Hint: 2, Leader: "n1", Entries: []Entry{{Data: []byte("x")}}})
	cases := map[string][]byte{
		"empty":          nil,
		"no flags":       {5},
		"unknown flag":   {5, 0x80, 0, 0},
		"data1 alone":    {5, answerData1, 0, 0, 0},
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(append([]byte{}, good...), 0),
		"huge length":    {5, answerData0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad uvarint":    {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	}
	for name, b := range cases {
		if _, err := decodeAnswer("n1", Entry{Data: b}); !errors.Is(err, errAnswer) {
			t.Errorf("%s: %v, want errAnswer", name, err)
		}
	}
	if _, err := decodeAnswer("n1", Entry{Data: good}); err != nil {
		t.Fatalf("good answer: %v", err)
	}
}

func FuzzDecodeAnswer(f *testing.F) {
	f.Add(encodeAnswer(&Message{Context: 5, Index: 9, Entries: []Entry{{Data: []byte("v")}, {Data: []byte("e")}}}))
	f.Add(encodeAnswer(&Message{Context: 1, Reject: true, Hint: 3, Leader: "n2"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeAnswer("n1", Entry{Data: b})
		if err != nil {
			return
		}
		n := len(m.Leader)
		for _, e := range m.Entries {
			n += len(e.Data)
		}
		if n > len(b) || len(m.Entries) > 2 {
			t.Fatalf("decoded %d bytes in %d entries from %d", n, len(m.Entries), len(b))
		}
		// What decodes re-encodes to an answer that decodes the same.
		m2, err := decodeAnswer("n1", Entry{Data: encodeAnswer(&m)})
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-encoded %+v decodes as %+v, %v", m, m2, err)
		}
	})
}

// A refusal that crossed the hop matches the leader's sentinel and says
// the sentinel's words once.
func TestFwdErrorDoesNotRepeatSentinel(t *testing.T) {
	for code, sentinel := range map[uint64]error{fwdSessionSeqOld: ErrSessionSeqOld, fwdSessionExpired: ErrSessionExpired,
		fwdNotConfirmed: ErrNotConfirmed, fwdDropped: ErrProposalDropped} {
		leaderErr := fmt.Errorf("%w: session 4, sequence number 1", sentinel)
		err := fwdError(Message{From: "n1", Reject: true, Hint: code, Entries: []Entry{{Data: []byte(leaderErr.Error())}}})
		if !errors.Is(err, sentinel) {
			t.Fatalf("code %d: %v does not match %v", code, err, sentinel)
		}
		want := sentinel.Error() + ": the leader (n1) answered: session 4, sequence number 1"
		if err.Error() != want {
			t.Fatalf("code %d:\n%q\nwant\n%q", code, err.Error(), want)
		}
	}
}
