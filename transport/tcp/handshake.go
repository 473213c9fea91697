package tcp

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/typedraft/typedraft/raft"
)

// connKind says what an outbound connection carries.
type connKind uint8

const (
	kindMessages connKind = iota + 1 // a stream of message frames
	kindSnapshot                     // one snapshot transfer
)

func (k connKind) String() string {
	switch k {
	case kindMessages:
		return "messages"
	case kindSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("connKind(%d)", uint8(k))
}

const (
	// maxHandshakeFrame bounds hello, hello-reply, snap-end and snap-ack
	// frames.
	maxHandshakeFrame = 4 << 10
	// maxReasonLen bounds the reason text of a refusal or snapshot ack.
	maxReasonLen = 2 << 10
)

// hello is the first frame on every connection, sent by the dialer.
// Body: [ClusterID, From, To, Kind, Addr]. A 4-field body (without Addr,
// as sent before address learning) is still accepted and teaches nothing.
type hello struct {
	ClusterID string
	From      raft.NodeID // the dialer's ID (authenticated by its certificate under TLS)
	To        raft.NodeID // the node the dialer expects to reach
	Kind      connKind
	Addr      string // the dialer's advertised listen address; may be empty
}

const (
	helloFieldsV1 = 4 // hellos sent before address learning
	helloFields   = 5
)

// helloReply answers a hello. Body: [OK, Reason, ClusterID, NodeID].
type helloReply struct {
	OK        bool
	Reason    string // why the connection was refused; empty when OK
	ClusterID string
	NodeID    raft.NodeID
}

// snapAck is the receiver's verdict on a snapshot. Body: [OK, Reason].
type snapAck struct {
	OK     bool
	Reason string
}

// errRefused is wrapped by handshake refusals from the remote side.
var errRefused = errors.New("tcp: connection refused by peer")

func encodeBody(fn func(e *errWriter)) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	e := errWriter{enc: enc}
	fn(&e)
	// bytes.Buffer never fails, so e.err is always nil here.
	return buf.Bytes()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func encodeHello(h hello) []byte {
	return encodeBody(func(e *errWriter) {
		e.arrayLen(helloFields)
		e.str(truncate(h.ClusterID, MaxIDLen))
		e.str(truncate(string(h.From), MaxIDLen))
		e.str(truncate(string(h.To), MaxIDLen))
		e.uint(uint64(h.Kind))
		e.str(truncate(h.Addr, maxAddrLen))
	})
}

// decodeHello decodes a hello body; errors wrap errMalformed.
func decodeHello(body []byte) (hello, error) {
	var h hello
	d := newBodyDecoder(body)
	n, err := d.arrayLen("hello", false, helloFields, 1)
	if err != nil {
		return h, err
	}
	if n != helloFieldsV1 && n != helloFields {
		return h, d.errorf("hello: %d fields, want %d or %d", n, helloFieldsV1, helloFields)
	}
	if h.ClusterID, err = d.str("cluster id", MaxIDLen); err != nil {
		return h, err
	}
	from, err := d.str("from", MaxIDLen)
	if err != nil {
		return h, err
	}
	to, err := d.str("to", MaxIDLen)
	if err != nil {
		return h, err
	}
	h.From, h.To = raft.NodeID(from), raft.NodeID(to)
	k, err := d.uintMax("kind", uint64(kindSnapshot))
	if err != nil {
		return h, err
	}
	if k == 0 {
		return h, d.errorf("kind: 0 is not a connection kind")
	}
	h.Kind = connKind(k)
	if n == helloFields {
		if h.Addr, err = d.str("addr", maxAddrLen); err != nil {
			return h, err
		}
	}
	return h, d.end("hello")
}

func encodeHelloReply(r helloReply) []byte {
	return encodeBody(func(e *errWriter) {
		e.arrayLen(4)
		e.bool(r.OK)
		e.str(truncate(r.Reason, maxReasonLen))
		e.str(truncate(r.ClusterID, MaxIDLen))
		e.str(truncate(string(r.NodeID), MaxIDLen))
	})
}

// decodeHelloReply decodes a hello-reply body; errors wrap errMalformed.
func decodeHelloReply(body []byte) (helloReply, error) {
	var r helloReply
	d := newBodyDecoder(body)
	if err := d.fixedArray("hello reply", 4); err != nil {
		return r, err
	}
	var err error
	if r.OK, err = d.bool("ok"); err != nil {
		return r, err
	}
	if r.Reason, err = d.str("reason", maxReasonLen); err != nil {
		return r, err
	}
	if r.ClusterID, err = d.str("cluster id", MaxIDLen); err != nil {
		return r, err
	}
	id, err := d.str("node id", MaxIDLen)
	if err != nil {
		return r, err
	}
	r.NodeID = raft.NodeID(id)
	return r, d.end("hello reply")
}

func encodeSnapEnd(total uint64) []byte {
	return encodeBody(func(e *errWriter) {
		e.arrayLen(1)
		e.uint(total)
	})
}

func decodeSnapEnd(body []byte) (uint64, error) {
	d := newBodyDecoder(body)
	if err := d.fixedArray("snap end", 1); err != nil {
		return 0, err
	}
	n, err := d.uint("snapshot length")
	if err != nil {
		return 0, err
	}
	return n, d.end("snap end")
}

func encodeSnapAck(a snapAck) []byte {
	return encodeBody(func(e *errWriter) {
		e.arrayLen(2)
		e.bool(a.OK)
		e.str(truncate(a.Reason, maxReasonLen))
	})
}

func decodeSnapAck(body []byte) (snapAck, error) {
	var a snapAck
	d := newBodyDecoder(body)
	if err := d.fixedArray("snap ack", 2); err != nil {
		return a, err
	}
	var err error
	if a.OK, err = d.bool("ok"); err != nil {
		return a, err
	}
	if a.Reason, err = d.str("reason", maxReasonLen); err != nil {
		return a, err
	}
	return a, d.end("snap ack")
}

// NodeURI returns the URI SAN that binds a certificate to node id:
// typedraft://node/<id> (the id path-escaped). Put it in a node's
// certificate (x509.Certificate.URIs) to let it claim id over TLS.
func NodeURI(id raft.NodeID) *url.URL {
	return &url.URL{Scheme: "typedraft", Host: "node", Path: "/" + string(id)}
}

// CertificateHasNodeID reports whether cert proves node ID id: it does when
// one of its URI SANs is typedraft://node/<id> (see NodeURI) or one of its
// DNS SANs equals id exactly. The Subject CommonName is never consulted.
// It does not verify the certificate's chain; the transport does that first.
func CertificateHasNodeID(cert *x509.Certificate, id raft.NodeID) bool {
	if cert == nil || id == "" {
		return false
	}
	for _, u := range cert.URIs {
		if u.Scheme == "typedraft" && u.Host == "node" && u.User == nil &&
			u.RawQuery == "" && u.Fragment == "" && strings.TrimPrefix(u.Path, "/") == string(id) {
			return true
		}
	}
	for _, name := range cert.DNSNames {
		if name == string(id) {
			return true
		}
	}
	return false
}

// certIdentities lists what cert claims, for log lines.
func certIdentities(cert *x509.Certificate) string {
	var ids []string
	for _, u := range cert.URIs {
		ids = append(ids, u.String())
	}
	ids = append(ids, cert.DNSNames...)
	return truncate(strings.Join(ids, ","), 256)
}

// serverTLS returns the listener side's TLS config: client certificates are
// required and verified against ClientCAs (RootCAs when nil).
func serverTLS(base *tls.Config) *tls.Config {
	c := base.Clone()
	c.ClientAuth = tls.RequireAndVerifyClientCert
	if c.ClientCAs == nil {
		c.ClientCAs = c.RootCAs
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS13
	}
	return c
}

// clientTLS returns the dialer side's TLS config for reaching node want:
// the server's chain is verified against RootCAs and its certificate must
// prove want (hostnames are not used; node IDs are).
func clientTLS(base *tls.Config, want raft.NodeID) *tls.Config {
	c := base.Clone()
	roots := c.RootCAs
	c.InsecureSkipVerify = true // replaced by VerifyConnection below
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS13
	}
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tcp: peer sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, ic := range cs.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: inter,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			return fmt.Errorf("tcp: verify certificate of %s: %w", want, err)
		}
		if !CertificateHasNodeID(leaf, want) {
			return fmt.Errorf("tcp: certificate of %s names [%s], not node %q", want, certIdentities(leaf), want)
		}
		return nil
	}
	return c
}

// peerCert returns the verified leaf certificate of a TLS connection, or
// nil for plaintext.
func peerCert(c net.Conn) *x509.Certificate {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	st := tc.ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return nil
	}
	return st.PeerCertificates[0]
}
