package tcp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

var serial atomic.Int64

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a node certificate naming the given URI and DNS SANs.
func (ca *testCA) issue(t testing.TB, uris []*url.URL, dns ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: "not-an-identity"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         uris,
		DNSNames:     dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// nodeTLS returns a node's TLS config: cert for certID, trusting trust.
func nodeTLS(t testing.TB, issuer, trust *testCA, certID raft.NodeID) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{issuer.issue(t, []*url.URL{NodeURI(certID)})},
		RootCAs:      trust.pool,
	}
}

// secureNode opens a TLS transport with a captured log.
func secureNode(t *testing.T, id raft.NodeID, cfg *tls.Config) (*Transport, *handler, *logBuffer) {
	t.Helper()
	o := testOptions(id)
	o.TLS = cfg
	logger, logs := newLogger(string(id))
	o.Logger = logger
	tr := listen(t, o)
	h := newHandler()
	tr.Register(h)
	return tr, h, logs
}

// expectRefused sends from a to b until a reports b unreachable, then
// checks that b's handler got nothing and b's log gives the reason.
func expectRefused(t *testing.T, a *Transport, ha *handler, b *Transport, hb *handler, logs *logBuffer, reason ...string) {
	t.Helper()
	idx := uint64(0)
	waitFor(t, "the sender to report the peer unreachable", func() bool {
		idx++
		a.Send(peerOf(b), []raft.Message{heartbeat(a.opts.LocalID, b.opts.LocalID, idx)})
		return ha.unreachableCount(b.opts.LocalID) > 0
	})
	logs.waitLog(t, reason...)
	if n := hb.count(); n != 0 {
		t.Fatalf("receiver handler got %d messages from a refused peer", n)
	}
}

func TestTLSDeliversBetweenAuthenticatedNodes(t *testing.T) {
	ca := newCA(t, "ca")
	// a proves its ID with a URI SAN, b with a DNS SAN.
	a, _, _ := secureNode(t, "a", nodeTLS(t, ca, ca, "a"))
	b, hb, _ := secureNode(t, "b", &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, nil, "b")},
		RootCAs:      ca.pool,
	})
	a.Send(peerOf(b), []raft.Message{heartbeat("a", "b", 1)})
	waitFor(t, "a message over mutual TLS", func() bool { return hb.count() == 1 })
}

func TestTLSRejectsCertificateFromAnotherCA(t *testing.T) {
	trusted, rogue := newCA(t, "trusted"), newCA(t, "rogue")
	a, ha, _ := secureNode(t, "a", nodeTLS(t, rogue, trusted, "a"))
	b, hb, logsB := secureNode(t, "b", nodeTLS(t, trusted, trusted, "b"))
	expectRefused(t, a, ha, b, hb, logsB, "refused inbound connection: tls handshake failed", "certificate")
}

func TestTLSRejectsIdentityMismatch(t *testing.T) {
	ca := newCA(t, "ca")
	// A valid certificate of the right CA, but for "mallory", claiming "a".
	a, ha, _ := secureNode(t, "a", nodeTLS(t, ca, ca, "mallory"))
	b, hb, logsB := secureNode(t, "b", nodeTLS(t, ca, ca, "b"))
	expectRefused(t, a, ha, b, hb, logsB, "refused inbound connection", "certificate identity mismatch", "typedraft://node/mallory")
}

func TestTLSDialerRejectsListenerWithWrongIdentity(t *testing.T) {
	ca := newCA(t, "ca")
	a, ha, logsA := secureNode(t, "a", nodeTLS(t, ca, ca, "a"))
	// b listens with a certificate for "c".
	b, hb, _ := secureNode(t, "b", nodeTLS(t, ca, ca, "c"))
	expectRefused(t, a, ha, b, hb, logsA, "dial failed", `not node \"b\"`)
}

func TestPlaintextClientToTLSListenerRejected(t *testing.T) {
	ca := newCA(t, "ca")
	o := testOptions("a")
	a := listen(t, o)
	ha := newHandler()
	a.Register(ha)
	b, hb, logsB := secureNode(t, "b", nodeTLS(t, ca, ca, "b"))
	expectRefused(t, a, ha, b, hb, logsB, "refused inbound connection: tls handshake failed")
}

func TestWrongClusterIDRejected(t *testing.T) {
	ao := testOptions("a")
	ao.ClusterID = "other-cluster"
	a := listen(t, ao)
	ha := newHandler()
	a.Register(ha)
	bo := testOptions("b")
	logger, logsB := newLogger("b")
	bo.Logger = logger
	b := listen(t, bo)
	hb := newHandler()
	b.Register(hb)
	expectRefused(t, a, ha, b, hb, logsB, "refused inbound connection", "cluster id mismatch", "other-cluster")
}

func TestWrongNodeRejected(t *testing.T) {
	a := listen(t, testOptions("a"))
	ha := newHandler()
	a.Register(ha)
	bo := testOptions("b")
	logger, logsB := newLogger("b")
	bo.Logger = logger
	b := listen(t, bo)
	hb := newHandler()
	b.Register(hb)
	// a believes node "c" lives at b's address.
	idx := uint64(0)
	waitFor(t, "unreachable", func() bool {
		idx++
		a.Send(raft.Peer{ID: "c", Addr: b.Addr()}, []raft.Message{heartbeat("a", "c", idx)})
		return ha.unreachableCount("c") > 0
	})
	logsB.waitLog(t, "refused inbound connection", "wrong node")
	if hb.count() != 0 {
		t.Fatal("handler got messages")
	}
}

// TestSpoofedSenderDropped: an authenticated peer that puts another node's
// ID in From (or another destination in To) has those messages dropped and
// logged; its honest messages still arrive.
func TestSpoofedSenderDropped(t *testing.T) {
	ca := newCA(t, "ca")
	a, _, _ := secureNode(t, "a", nodeTLS(t, ca, ca, "a"))
	b, hb, logsB := secureNode(t, "b", nodeTLS(t, ca, ca, "b"))
	a.Send(peerOf(b), []raft.Message{
		heartbeat("mallory", "b", 1),
		heartbeat("a", "someone-else", 2),
		heartbeat("a", "b", 3),
	})
	waitFor(t, "the honest message", func() bool { return hb.count() >= 1 })
	logsB.waitLog(t, "dropping message: from does not match the authenticated peer", "from=mallory", "peer=a")
	logsB.waitLog(t, "dropping message addressed to another node", "to=someone-else")
	if msgs := hb.messages(); len(msgs) != 1 || msgs[0].Index != 3 {
		t.Fatalf("handler got %v, want only the honest message", msgs)
	}
}

func TestCertificateHasNodeID(t *testing.T) {
	ca := newCA(t, "ca")
	parse := func(c tls.Certificate) *x509.Certificate {
		x, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	uriCert := parse(ca.issue(t, []*url.URL{NodeURI("n/1 x")}))
	dnsCert := parse(ca.issue(t, nil, "n2"))
	other := parse(ca.issue(t, []*url.URL{{Scheme: "spiffe", Host: "node", Path: "/n1"}}, "n2.example"))
	for _, c := range []struct {
		cert *x509.Certificate
		id   raft.NodeID
		want bool
	}{
		{uriCert, "n/1 x", true},
		{uriCert, "n", false},
		{dnsCert, "n2", true},
		{dnsCert, "n", false},
		{other, "n1", false},
		{other, "n2", false},
		{uriCert, "", false},
		{nil, "n1", false},
		{parse(ca.issue(t, nil)), "not-an-identity", false}, // CommonName never counts
	} {
		if got := CertificateHasNodeID(c.cert, c.id); got != c.want {
			t.Errorf("CertificateHasNodeID(%q) = %v, want %v", c.id, got, c.want)
		}
	}
}
