package session

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// A snapshot of a node whose table is not empty starts with the table's
// section, ahead of the state machine's own data:
//
//	magic (8 bytes) | uvarint length | Table.Marshal bytes
//
// A snapshot without the magic (written before sessions existed, or with
// an empty table) holds the state machine's data alone.
var magic = [8]byte{0, 't', 'd', 's', 'e', 's', 's', 1}

// MaxSection bounds the section a snapshot may claim (1 GiB): a corrupt
// or forged length fails before it sizes an allocation.
const MaxSection = 1 << 30

// WriteSection writes table's section to w, or nothing if it is empty.
func WriteSection(w io.Writer, table []byte, empty bool) error {
	if empty {
		return nil
	}
	hdr := binary.AppendUvarint(append([]byte(nil), magic[:]...), uint64(len(table)))
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err := w.Write(table)
	return err
}

// ReadSection reads the section at the start of br, if there is one, and
// returns the table (empty when there is none). br is then positioned at
// the state machine's data.
func ReadSection(br *bufio.Reader) (*Table, error) {
	t := &Table{}
	head, err := br.Peek(len(magic))
	if err != nil || !bytes.Equal(head, magic[:]) {
		// Shorter than the magic, or other data: no section.
		return t, nil
	}
	if _, err := br.Discard(len(magic)); err != nil {
		return nil, err
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("%w: session section length: %v", ErrCorrupt, err)
	}
	if n > MaxSection {
		return nil, fmt.Errorf("%w: session section claims %d bytes (limit %d)", ErrCorrupt, n, MaxSection)
	}
	// Read as the bytes arrive rather than allocating the claimed length.
	var buf bytes.Buffer
	if got, err := io.Copy(&buf, io.LimitReader(br, int64(n))); err != nil {
		return nil, fmt.Errorf("session section: %w", err)
	} else if uint64(got) != n {
		return nil, fmt.Errorf("%w: session section truncated at %d of %d bytes", ErrCorrupt, got, n)
	}
	if err := t.Unmarshal(buf.Bytes()); err != nil {
		return nil, err
	}
	return t, nil
}
