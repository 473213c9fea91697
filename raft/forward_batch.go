package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/typedraft/typedraft/raft/internal/bugs"
)

// Batching of forwarded proposals and of their answers. A follower's
// forwards wait in a queue the driver drains once per loop: all those to
// one leader in one response mode travel as one MsgPropose whose Context
// is 0 and whose entries carry their forward IDs in Entry.Index. The
// leader's answers wait in a replyBatch while the apply goroutine (or the
// handler of a batched MsgPropose) is in a batch of work and go out when
// it ends: all
// those to one follower as one MsgProposeResp whose Context is 0 and whose
// entries each carry one answer (Entry.Index and Entry.Term its index and
// term, Entry.Data the rest, see encodeAnswer). A lone forward or answer
// keeps the single form (Context the forward ID). Forward IDs are never 0.

// maxForwardBatchBytes bounds the command bytes of one batched MsgPropose
// and the answer bytes of one batched MsgProposeResp: a batch over it is
// split.
const maxForwardBatchBytes = 1 << 20

// fwdOut is a forward waiting for the driver to send it.
type fwdOut struct {
	to   NodeID
	mode ResponseMode
	ent  Entry // Index is the forward ID
}

// sendForwards sends the queued forwards, one MsgPropose per leader and
// mode (and per maxForwardBatchBytes), in the order they were queued.
// Driver goroutine only.
func (d *driver) sendForwards() {
	outs := d.fwdq.drain()
	for len(outs) > 0 {
		first := outs[0]
		var ents []Entry
		size := 0
		rest := outs[:0]
		for _, o := range outs {
			if o.to != first.to || o.mode != first.mode || (len(ents) > 0 && size+len(o.ent.Data) > maxForwardBatchBytes) {
				rest = append(rest, o)
				continue
			}
			ents = append(ents, o.ent)
			size += len(o.ent.Data)
		}
		outs = rest
		m := Message{Type: MsgPropose, To: first.to, Hint: uint64(first.mode), Entries: ents}
		if len(ents) == 1 {
			m.Context, ents[0].Index = ents[0].Index, 0
		}
		d.sendDirect(m)
	}
}

// replyBatch holds the leader's answers to forwarded proposals while a
// batch of work that produces them is in progress, and sends them when it
// ends. Every answer queued while a batch is open is sent by that batch's
// end (or an earlier one), so none waits for work that is not running.
// Batches are opened only around work that never blocks on I/O (the
// apply goroutine's batch of Validate calls or of applied entries, the
// handling of one batched MsgPropose), so an answer sent from elsewhere
// meanwhile waits no longer than that work; the driver, whose Saves may
// block, opens none and sends its answers (Committed mode, failures) at
// once.
//
// Concurrency: safe for concurrent use.
type replyBatch struct {
	mu   sync.Mutex
	open int
	out  []Message
}

// begin opens a batch.
func (b *replyBatch) begin() {
	b.mu.Lock()
	b.open++
	b.mu.Unlock()
}

// end closes a batch and sends every answer queued so far.
func (b *replyBatch) end(d *driver) {
	b.mu.Lock()
	b.open--
	out := b.out
	b.out = nil
	b.mu.Unlock()
	if len(out) > 0 {
		d.sendAnswers(out)
	}
}

// send queues the answer m if a batch is open, or sends it at once.
func (b *replyBatch) send(d *driver, m Message) {
	b.mu.Lock()
	if b.open > 0 {
		b.out = append(b.out, m)
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	d.sendDirect(m)
}

// sendAnswers sends answers, one MsgProposeResp per follower (and per
// maxForwardBatchBytes).
func (d *driver) sendAnswers(out []Message) {
	for len(out) > 0 {
		to := out[0].To
		var group []Message
		size := 0
		rest := out[:0]
		for _, m := range out {
			n := answerSize(&m)
			if m.To != to || (len(group) > 0 && size+n > maxForwardBatchBytes) {
				rest = append(rest, m)
				continue
			}
			group = append(group, m)
			size += n
		}
		out = rest
		if len(group) == 1 {
			d.sendDirect(group[0])
			continue
		}
		if bugs.Enabled && d.cfg.bugs.ForwardAnswersSwapped {
			group[0].Context, group[1].Context = group[1].Context, group[0].Context
		}
		ents := make([]Entry, len(group))
		for i := range group {
			ents[i] = Entry{Index: group[i].Index, Term: group[i].LogTerm, Data: encodeAnswer(&group[i])}
		}
		d.sendDirect(Message{Type: MsgProposeResp, To: to, Entries: ents})
	}
}

// Flags of an encoded answer.
const (
	answerReject = 1 << iota
	answerData0
	answerData1
)

// answerSize is about how many bytes encodeAnswer makes of m.
func answerSize(m *Message) int {
	n := 32 + len(m.Leader)
	for _, e := range m.Entries {
		n += len(e.Data)
	}
	return n
}

// encodeAnswer encodes what a single MsgProposeResp m carries besides its
// index and term: uvarint forward ID, flags byte, uvarint Hint, the
// leader's ID, and up to two byte strings (each uvarint length, bytes).
func encodeAnswer(m *Message) []byte {
	b := make([]byte, 0, answerSize(m))
	b = binary.AppendUvarint(b, m.Context)
	var flags byte
	if m.Reject {
		flags |= answerReject
	}
	if len(m.Entries) > 0 {
		flags |= answerData0
	}
	if len(m.Entries) > 1 {
		flags |= answerData1
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, m.Hint)
	b = binary.AppendUvarint(b, uint64(len(m.Leader)))
	b = append(b, m.Leader...)
	for i := 0; i < len(m.Entries) && i < 2; i++ {
		b = binary.AppendUvarint(b, uint64(len(m.Entries[i].Data)))
		b = append(b, m.Entries[i].Data...)
	}
	return b
}

// errAnswer: a batched answer that does not decode.
var errAnswer = errors.New("malformed batched MsgProposeResp")

// decodeAnswer turns entry e of a batched MsgProposeResp from `from` back
// into the single answer it was made of. Its byte strings share e.Data.
func decodeAnswer(from NodeID, e Entry) (Message, error) {
	b := e.Data
	m := Message{Type: MsgProposeResp, From: from, Index: e.Index, LogTerm: e.Term}
	uv := func(what string) (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, fmt.Errorf("%w: %s", errAnswer, what)
		}
		b = b[n:]
		return v, nil
	}
	bytes := func(what string) ([]byte, error) {
		n, err := uv(what + " length")
		if err != nil {
			return nil, err
		}
		if n > uint64(len(b)) {
			return nil, fmt.Errorf("%w: %s of %d bytes, %d left", errAnswer, what, n, len(b))
		}
		v := b[:n:n]
		b = b[n:]
		return v, nil
	}
	var err error
	if m.Context, err = uv("forward ID"); err != nil {
		return m, err
	}
	if len(b) == 0 {
		return m, fmt.Errorf("%w: no flags", errAnswer)
	}
	flags := b[0]
	b = b[1:]
	if flags&^(answerReject|answerData0|answerData1) != 0 || (flags&answerData1 != 0 && flags&answerData0 == 0) {
		return m, fmt.Errorf("%w: flags %#x", errAnswer, flags)
	}
	m.Reject = flags&answerReject != 0
	if m.Hint, err = uv("code"); err != nil {
		return m, err
	}
	lead, err := bytes("leader")
	if err != nil {
		return m, err
	}
	m.Leader = NodeID(lead)
	for _, f := range []byte{answerData0, answerData1} {
		if flags&f == 0 {
			break
		}
		v, err := bytes("data")
		if err != nil {
			return m, err
		}
		m.Entries = append(m.Entries, Entry{Data: v})
	}
	if len(b) != 0 {
		return m, fmt.Errorf("%w: %d bytes after the answer", errAnswer, len(b))
	}
	return m, nil
}

// warnForwardAnswer logs, at most once per strangerWarnEvery, a batch of
// answers from `from` that did not decode (the forwards it answered then
// expire as indeterminate). Safe for concurrent use.
func (d *driver) warnForwardAnswer(from NodeID, err error) {
	d.metrics.add(&d.metrics.inboxDropped, 1)
	now := time.Now().UnixNano()
	last := d.fwdWarnAt.Load()
	if (last != 0 && now-last < int64(strangerWarnEvery)) || !d.fwdWarnAt.CompareAndSwap(last, now) {
		return
	}
	d.log.Warn("dropped a malformed batch of answers to forwarded proposals", "peer", string(from), "err", err)
}
