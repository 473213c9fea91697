package pebble

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/typedraft/typedraft/raft"
)

// Snapshot file layout (snapshot format version 1):
//
//	header   magic "TDRSNAP\n" (8) | u32 version
//	data     the state machine's bytes, as written to the sink
//	meta     encoded raft.SnapshotMeta (see encodeMeta)
//	footer   u64 len(data) | u32 len(meta) | u32 CRC-32C(data)
//	         | u32 CRC-32C(header || meta || footer up to here) | magic (8)
//
// All integers are big endian. The footer and meta are verified when the
// snapshot is listed; the data checksum is verified by OpenSnapshot before
// it returns a reader, and again when the reader reaches the end of the data.
const (
	snapFormatVersion = 1
	snapHeaderLen     = 12
	snapFooterLen     = 8 + 4 + 4 + 4 + 8
	// maxMetaLen bounds the meta block so a corrupt length never causes a
	// huge allocation.
	maxMetaLen = 64 << 20
)

var snapMagic = [8]byte{'T', 'D', 'R', 'S', 'N', 'A', 'P', '\n'}

func snapHeader() []byte {
	h := make([]byte, snapHeaderLen)
	copy(h, snapMagic[:])
	binary.BigEndian.PutUint32(h[8:], snapFormatVersion)
	return h
}

// encodeMeta encodes m:
//
//	u64 index | u64 term | u64 config index | servers | old servers
//
// where each server list is u32 count followed by, per server,
// u32 len(id) | id | u32 len(addr) | addr | u8 suffrage.
func encodeMeta(m raft.SnapshotMeta) []byte {
	b := make([]byte, 0, 24+8+serversLen(m.Configuration.Servers)+serversLen(m.Configuration.Old))
	b = binary.BigEndian.AppendUint64(b, m.Index)
	b = binary.BigEndian.AppendUint64(b, m.Term)
	b = binary.BigEndian.AppendUint64(b, m.ConfigIndex)
	b = appendServers(b, m.Configuration.Servers)
	b = appendServers(b, m.Configuration.Old)
	return b
}

func serversLen(ss []raft.Server) int {
	n := 4
	for _, s := range ss {
		n += 4 + len(s.ID) + 4 + len(s.Addr) + 1
	}
	return n
}

func appendServers(b []byte, ss []raft.Server) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(ss)))
	for _, s := range ss {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s.ID)))
		b = append(b, s.ID...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(s.Addr)))
		b = append(b, s.Addr...)
		b = append(b, byte(s.Suffrage))
	}
	return b
}

// metaDecoder reads encodeMeta's layout with bounds checks.
type metaDecoder struct {
	b   []byte
	err error
}

func (d *metaDecoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = fmt.Errorf("meta truncated: need %d bytes, have %d", n, len(d.b))
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *metaDecoder) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (d *metaDecoder) u32() uint32 {
	if p := d.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (d *metaDecoder) str() string {
	n := d.u32()
	return string(d.take(int(n)))
}

func (d *metaDecoder) servers() []raft.Server {
	n := d.u32()
	// Each server takes at least 9 bytes: reject impossible counts before
	// allocating.
	if d.err == nil && uint64(n)*9 > uint64(len(d.b)) {
		d.err = fmt.Errorf("meta claims %d servers in %d bytes", n, len(d.b))
	}
	if d.err != nil || n == 0 {
		return nil
	}
	ss := make([]raft.Server, 0, n)
	for i := uint32(0); i < n && d.err == nil; i++ {
		var s raft.Server
		s.ID = raft.NodeID(d.str())
		s.Addr = d.str()
		if p := d.take(1); p != nil {
			s.Suffrage = raft.Suffrage(p[0])
		}
		ss = append(ss, s)
	}
	return ss
}

func decodeMeta(b []byte) (raft.SnapshotMeta, error) {
	d := &metaDecoder{b: b}
	var m raft.SnapshotMeta
	m.Index = d.u64()
	m.Term = d.u64()
	m.ConfigIndex = d.u64()
	m.Configuration.Servers = d.servers()
	m.Configuration.Old = d.servers()
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes after meta", len(d.b))
	}
	return m, d.err
}

// snapFooter is the decoded fixed-size footer.
type snapFooter struct {
	dataLen uint64
	metaLen uint32
	dataCRC uint32
}

// encodeTrailer returns meta || footer for a snapshot whose data had length
// dataLen and checksum dataCRC.
func encodeTrailer(meta []byte, dataLen uint64, dataCRC uint32) []byte {
	b := make([]byte, 0, len(meta)+snapFooterLen)
	b = append(b, meta...)
	b = binary.BigEndian.AppendUint64(b, dataLen)
	b = binary.BigEndian.AppendUint32(b, uint32(len(meta)))
	b = binary.BigEndian.AppendUint32(b, dataCRC)
	c := crc32.Update(0, castagnoli, snapHeader())
	c = crc32.Update(c, castagnoli, b)
	b = binary.BigEndian.AppendUint32(b, c)
	return append(b, snapMagic[:]...)
}

// parseFooter checks the fixed footer f (snapFooterLen bytes) of a file of
// the given size.
func parseFooter(f []byte, size int64) (snapFooter, error) {
	if string(f[snapFooterLen-8:]) != string(snapMagic[:]) {
		return snapFooter{}, fmt.Errorf("bad footer magic %q", f[snapFooterLen-8:])
	}
	ft := snapFooter{
		dataLen: binary.BigEndian.Uint64(f[0:8]),
		metaLen: binary.BigEndian.Uint32(f[8:12]),
		dataCRC: binary.BigEndian.Uint32(f[12:16]),
	}
	if ft.metaLen > maxMetaLen {
		return snapFooter{}, fmt.Errorf("meta length %d exceeds %d", ft.metaLen, maxMetaLen)
	}
	if want := uint64(snapHeaderLen) + ft.dataLen + uint64(ft.metaLen) + snapFooterLen; ft.dataLen > uint64(size) || want != uint64(size) {
		return snapFooter{}, fmt.Errorf("file is %d bytes, footer describes %d data + %d meta bytes", size, ft.dataLen, ft.metaLen)
	}
	return ft, nil
}

// checkTrailer verifies the checksum over header, meta and footer.
func checkTrailer(header, metaAndFooter []byte) error {
	n := len(metaAndFooter) - 12
	c := crc32.Update(0, castagnoli, header)
	c = crc32.Update(c, castagnoli, metaAndFooter[:n])
	if want := binary.BigEndian.Uint32(metaAndFooter[n : n+4]); want != c {
		return fmt.Errorf("meta checksum mismatch (stored %08x, computed %08x)", want, c)
	}
	return nil
}
