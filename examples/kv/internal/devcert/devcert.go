// Package devcert makes development certificates for kv's mutual TLS: a
// CA and, per node, a certificate and key bound to the node ID the way
// transport/tcp checks it (the URI SAN typedraft://node/<id>, see
// tcp.NodeURI), plus the loopback SANs (localhost, 127.0.0.1, ::1). It
// uses crypto/x509 only.
//
// The certificates are for trying kv out, on one machine or a test
// network: the CA key sits next to the certificates, unencrypted. Use your
// own PKI in production.
package devcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/tcp"
)

// File names inside the output directory.
const (
	CAFile    = "ca.crt" // the CA certificate: kv's -tls-ca
	CAKeyFile = "ca.key" // the CA key, to sign certificates for nodes added later
)

// CertFile and KeyFile name node id's certificate and key: kv's -tls-cert
// and -tls-key.
func CertFile(id raft.NodeID) string { return string(id) + ".crt" }

// KeyFile names node id's private key (see CertFile).
func KeyFile(id raft.NodeID) string { return string(id) + ".key" }

// loopbackDNS is the DNS SAN every node certificate carries. A DNS SAN also
// proves a node ID (tcp.CertificateHasNodeID), so no node may be called so.
const loopbackDNS = "localhost"

// Result says what Write did.
type Result struct {
	// CAReused reports that dir already held a CA, which signed the new
	// certificates.
	CAReused bool
	// Files lists the files written, in order.
	Files []string
}

// Write writes into dir (created if needed) a CA, unless dir already holds
// one (ca.crt and ca.key), and for every id a certificate <id>.crt and key
// <id>.key signed by it, valid for validity from now (an hour earlier, for
// clock skew). It refuses, before writing anything, invalid or duplicate
// IDs, the ID "localhost" (every certificate names it), and node files
// that already exist. Keys are written with mode 0600.
func Write(dir string, ids []raft.NodeID, validity time.Duration) (Result, error) {
	var res Result
	if len(ids) == 0 {
		return res, errors.New("devcert: no node IDs")
	}
	if validity <= 0 {
		return res, fmt.Errorf("devcert: validity %v is not positive", validity)
	}
	seen := map[raft.NodeID]bool{}
	for _, id := range ids {
		switch {
		case id == "" || len(id) > tcp.MaxIDLen:
			return res, fmt.Errorf("devcert: node ID %q: want 1 to %d bytes", id, tcp.MaxIDLen)
		case !validID(id):
			return res, fmt.Errorf("devcert: node ID %q: use letters, digits, '.', '_' and '-' (as kv does)", id)
		case id == loopbackDNS:
			return res, fmt.Errorf("devcert: node ID %q: every certificate names %s, so any node could claim it", id, loopbackDNS)
		case filepath.Base(string(id)) != string(id) || id == "." || id == ".." || id == "ca":
			return res, fmt.Errorf("devcert: node ID %q cannot name a file in %s", id, dir)
		case seen[id]:
			return res, fmt.Errorf("devcert: node ID %q given twice", id)
		}
		seen[id] = true
		for _, name := range []string{CertFile(id), KeyFile(id)} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return res, fmt.Errorf("devcert: %s exists; remove it or choose another directory", filepath.Join(dir, name))
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("devcert: %w", err)
	}
	now := time.Now()
	notBefore, notAfter := now.Add(-time.Hour), now.Add(validity)
	ca, caKey, reused, err := loadCA(dir)
	if err != nil {
		return res, err
	}
	res.CAReused = reused
	if !reused {
		if ca, caKey, err = newCA(notBefore, notAfter); err != nil {
			return res, err
		}
		if err := writeKey(filepath.Join(dir, CAKeyFile), caKey); err != nil {
			return res, err
		}
		if err := writePEM(filepath.Join(dir, CAFile), "CERTIFICATE", ca.Raw, 0o644); err != nil {
			return res, err
		}
		res.Files = append(res.Files, filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	}
	for _, id := range ids {
		der, key, err := newNodeCert(id, ca, caKey, notBefore, notAfter)
		if err != nil {
			return res, err
		}
		if err := writeKey(filepath.Join(dir, KeyFile(id)), key); err != nil {
			return res, err
		}
		if err := writePEM(filepath.Join(dir, CertFile(id)), "CERTIFICATE", der, 0o644); err != nil {
			return res, err
		}
		res.Files = append(res.Files, filepath.Join(dir, CertFile(id)), filepath.Join(dir, KeyFile(id)))
	}
	return res, nil
}

// newCA returns a self-signed CA certificate that may sign only end-entity
// certificates.
func newCA(notBefore, notAfter time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("devcert: CA key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"typedraft kv development"}, CommonName: "typedraft kv development CA"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("devcert: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("devcert: CA certificate: %w", err)
	}
	return ca, key, nil
}

// newNodeCert returns the DER certificate and key of node id, signed by ca.
func newNodeCert(id raft.NodeID, ca *x509.Certificate, caKey *ecdsa.PrivateKey, notBefore, notAfter time.Time) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("devcert: %s key: %w", id, err)
	}
	if notAfter.After(ca.NotAfter) { // a reused CA may expire sooner
		notAfter = ca.NotAfter
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"typedraft kv development"}, CommonName: string(id)},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Each node both listens and dials: it needs both usages.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{tcp.NodeURI(id)},
		DNSNames:    []string{loopbackDNS},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("devcert: %s certificate: %w", id, err)
	}
	return der, key, nil
}

// loadCA returns the CA in dir, reused reporting whether there was one.
// Half a CA (one file of the two) is an error.
func loadCA(dir string) (ca *x509.Certificate, key *ecdsa.PrivateKey, reused bool, err error) {
	certPath, keyPath := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		return nil, nil, false, nil
	case certErr != nil || keyErr != nil:
		return nil, nil, false, fmt.Errorf("devcert: %s holds only half a CA (%v; %v): remove it or add the other file", dir, certErr, keyErr)
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, nil, false, fmt.Errorf("devcert: existing CA: %w", err)
	}
	ca, err = x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, false, fmt.Errorf("devcert: existing CA %s: %w", certPath, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !ca.IsCA {
		return nil, nil, false, fmt.Errorf("devcert: %s is not a CA made by this tool", certPath)
	}
	return ca, key, true, nil
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("devcert: serial number: %w", err)
	}
	return n, nil
}

// writeKey writes key to path as a PKCS #8 PEM block, mode 0600.
func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("devcert: %s: %w", path, err)
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

// writePEM writes one PEM block to path with mode perm, refusing to
// overwrite an existing file.
func writePEM(path, blockType string, der []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("devcert: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: blockType, Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("devcert: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("devcert: write %s: %w", path, err)
	}
	return nil
}

// validID reports whether id uses only the bytes kv allows in node IDs.
func validID(id raft.NodeID) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
