package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/tcp"
)

// loadTLS returns the transport's mutual TLS configuration for node id
// from the -tls-cert, -tls-key and -tls-ca files, or nil when none is
// given. It checks up front what the transport would otherwise only log
// at the first connection: that the three go together, that the
// certificate proves id (tcp.CertificateHasNodeID), is signed by the CA
// and allows both serverAuth and clientAuth.
func loadTLS(certFile, keyFile, caFile string, id raft.NodeID) (*tls.Config, error) {
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, errors.New("-tls-cert, -tls-key and -tls-ca go together: mutual TLS needs this node's certificate, its key and the cluster's CA")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("-tls-cert %s: %w", certFile, err)
		}
	}
	if !tcp.CertificateHasNodeID(leaf, id) {
		return nil, fmt.Errorf("-tls-cert %s does not prove node ID %q (it names %s): a node certificate needs the URI SAN %s or the DNS SAN %s",
			certFile, id, certNames(leaf), tcp.NodeURI(id), id)
	}
	if usages := leaf.ExtKeyUsage; len(usages) > 0 &&
		(!slices.Contains(usages, x509.ExtKeyUsageServerAuth) || !slices.Contains(usages, x509.ExtKeyUsageClientAuth)) {
		return nil, fmt.Errorf("-tls-cert %s: a node certificate needs both the serverAuth and clientAuth extended key usages (each node listens and dials)", certFile)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("-tls-ca %s holds no PEM certificate", caFile)
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("-tls-cert %s is not valid under -tls-ca %s: %w", certFile, caFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13}, nil
}

// certNames lists the URI and DNS SANs of c, for error messages.
func certNames(c *x509.Certificate) string {
	var names []string
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	names = append(names, c.DNSNames...)
	if len(names) == 0 {
		return "no URI or DNS SAN"
	}
	return strings.Join(names, ", ")
}

// plaintextHint says what to do when the transport refuses plaintext.
const plaintextHint = "without TLS the raft traffic is plaintext and unauthenticated, which kv allows on loopback only: " +
	"give -tls-cert, -tls-key and -tls-ca for mutual TLS (go run ./examples/kv/certs makes development certificates), " +
	"or -insecure-plaintext on a network where every host is trusted"

// checkSecurity refuses transport settings that cannot work: both TLS and
// -insecure-plaintext, or, with neither, a peer at a non-loopback IP (the
// transport would refuse to dial it, logging only; host names are left to
// the transport, which resolves them when it dials).
func checkSecurity(tlsConfig *tls.Config, insecurePlaintext bool, peers []Peer) error {
	if tlsConfig != nil && insecurePlaintext {
		return errors.New("-insecure-plaintext and -tls-* exclude each other: choose mutual TLS or plaintext")
	}
	if tlsConfig != nil || insecurePlaintext {
		return nil
	}
	for _, p := range peers {
		host, _, err := net.SplitHostPort(p.RaftAddr)
		if err != nil {
			continue // parsePeers has checked
		}
		if ip, err := netip.ParseAddr(host); err == nil && !ip.IsLoopback() {
			return fmt.Errorf("-peers: %s's raft address %s is not loopback; %s", p.ID, p.RaftAddr, plaintextHint)
		}
	}
	return nil
}

// listenError explains a raft listener error, saying what to do when the
// transport refused plaintext on a non-loopback address.
func listenError(err error) error {
	if errors.Is(err, tcp.ErrPlaintextNotLoopback) {
		return fmt.Errorf("raft listener: %w; %s", err, plaintextHint)
	}
	return fmt.Errorf("raft listener: %w", err)
}
