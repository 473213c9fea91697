package pebble

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"

	"github.com/typedraft/typedraft/raft"
)

// ErrWrongCluster is matched (with errors.Is) by the error Open returns when
// the store was bound to another cluster than Options.ClusterID; that error
// also matches raft.ErrWrongNode, since the store then belongs to another
// node.
var ErrWrongCluster = errors.New("pebble: storage belongs to another cluster")

// maxIDLen bounds node and cluster IDs (their lengths are stored in 16 bits).
const maxIDLen = 1<<16 - 1

// identity is the node and cluster a store is bound to ("" for unbound).
// Record (key 0x00 0x04, kind 'I'), after the envelope:
//
//	u16 len(node) | node | u16 len(cluster) | cluster
type identity struct {
	node    raft.NodeID
	cluster string
}

func encodeIdentity(id identity) []byte {
	v := make([]byte, envelopeLen, envelopeLen+4+len(id.node)+len(id.cluster))
	v = binary.BigEndian.AppendUint16(v, uint16(len(id.node)))
	v = append(v, id.node...)
	v = binary.BigEndian.AppendUint16(v, uint16(len(id.cluster)))
	v = append(v, id.cluster...)
	seal(keyIdentity, v, kindIdentity)
	return v
}

func decodeIdentity(value []byte) (identity, error) {
	const what = "identity"
	p, err := unsealNamed(what, keyIdentity, value, kindIdentity, envelopeLen+4)
	if err != nil {
		return identity{}, err
	}
	n := int(binary.BigEndian.Uint16(p))
	if 2+n+2 > len(p) {
		return identity{}, corruptf(what, "node ID length %d does not fit the %d-byte payload", n, len(p))
	}
	id := identity{node: raft.NodeID(p[2 : 2+n])}
	p = p[2+n:]
	c := int(binary.BigEndian.Uint16(p))
	if 2+c != len(p) {
		return identity{}, corruptf(what, "cluster ID length %d does not fit the %d remaining bytes", c, len(p))
	}
	id.cluster = string(p[2:])
	return id, nil
}

// BindNode implements raft.NodeBinder: the first call on a store records id
// durably (one synced write, in the versioned format with a checksum); later
// calls — in this process or after a reopen — return nil for the same id
// and an error matching raft.ErrWrongNode, naming both IDs, for another.
// Options.NodeID binds the same way at Open. An empty or too long (over
// 65535 bytes) id is an error. Safe for concurrent use; serialized with Save
// and Compact. Errors: raft.ErrStorageClosed after Close, the store's
// failure after it failed (see Failed).
func (s *Store) BindNode(id raft.NodeID) error {
	if id == "" {
		return errors.New("pebble: bind node: empty node ID")
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("pebble: bind node: node ID is %d bytes, max %d", len(id), maxIDLen)
	}
	if err := s.enterWrite(); err != nil {
		return err
	}
	defer s.exit()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.bind(id, "")
}

// bind records node and cluster (either may be empty: not checked) in the
// identity, failing if the store is bound to others. The caller holds wmu.
func (s *Store) bind(node raft.NodeID, cluster string) error {
	next := s.ident
	if node != "" {
		switch next.node {
		case "":
			next.node = node
		case node:
		default:
			return fmt.Errorf("pebble: %s: the store belongs to node %q, not %q: %w", s.dir, next.node, node, raft.ErrWrongNode)
		}
	}
	if cluster != "" {
		switch next.cluster {
		case "":
			next.cluster = cluster
		case cluster:
		default:
			return fmt.Errorf("pebble: %s: the store belongs to cluster %q, not %q: %w (%w)",
				s.dir, next.cluster, cluster, ErrWrongCluster, raft.ErrWrongNode)
		}
	}
	if next == s.ident {
		return nil
	}
	b := s.db.NewBatch()
	if err := b.Set(keyIdentity, encodeIdentity(next), nil); err != nil {
		_ = b.Close()
		return fmt.Errorf("pebble: bind node %q: %w", node, err)
	}
	if err := s.commitBatch(b, pebbledb.Sync, time.Now().Add(s.writeTimeout)); err != nil {
		return fmt.Errorf("pebble: bind node %q: %w", node, err)
	}
	s.ident = next
	return nil
}
