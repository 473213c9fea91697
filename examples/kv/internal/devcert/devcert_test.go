package devcert

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/tcp"
)

// load returns node id's certificate from dir and the CA pool.
func load(t *testing.T, dir string, id raft.NodeID) (*x509.Certificate, *x509.CertPool) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile(id)), filepath.Join(dir, KeyFile(id)))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate")
	}
	return leaf, pool
}

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	res, err := Write(dir, []raft.NodeID{"n1", "n2"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if res.CAReused || len(res.Files) != 6 {
		t.Fatalf("result %+v", res)
	}
	for _, id := range []raft.NodeID{"n1", "n2"} {
		leaf, pool := load(t, dir, id)
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Fatalf("%s for usage %v: %v", id, usage, err)
			}
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"}); err != nil {
			t.Fatalf("%s not valid for 127.0.0.1: %v", id, err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
			t.Fatalf("%s not valid for localhost: %v", id, err)
		}
		if !tcp.CertificateHasNodeID(leaf, id) {
			t.Fatalf("%s's certificate does not prove %s: %v %v", id, id, leaf.URIs, leaf.DNSNames)
		}
		other := raft.NodeID("n1")
		if id == "n1" {
			other = "n2"
		}
		if tcp.CertificateHasNodeID(leaf, other) {
			t.Fatalf("%s's certificate proves %s too", id, other)
		}
		if !slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv6loopback) }) {
			t.Fatalf("%s: IP SANs %v lack ::1", id, leaf.IPAddresses)
		}
		st, err := os.Stat(filepath.Join(dir, KeyFile(id)))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s key mode %v (%v)", id, st.Mode(), err)
		}
	}

	// Adding a node later reuses the CA: the new certificate verifies
	// under the same ca.crt.
	caBefore, _ := os.ReadFile(filepath.Join(dir, CAFile))
	res, err = Write(dir, []raft.NodeID{"n3"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caAfter, _ := os.ReadFile(filepath.Join(dir, CAFile))
	if !res.CAReused || string(caBefore) != string(caAfter) || len(res.Files) != 2 {
		t.Fatalf("second write: %+v (CA changed: %v)", res, string(caBefore) != string(caAfter))
	}
	leaf, pool := load(t, dir, "n3")
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("n3 under the reused CA: %v", err)
	}
}

func TestWriteRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := Write(dir, []raft.NodeID{"n1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ids  []raft.NodeID
		want string
	}{
		{nil, "no node IDs"},
		{[]raft.NodeID{"n1"}, "exists"},
		{[]raft.NodeID{"n2", "n2"}, "twice"},
		{[]raft.NodeID{""}, "1 to 255 bytes"},
		{[]raft.NodeID{raft.NodeID(strings.Repeat("n", 256))}, "1 to 255 bytes"},
		{[]raft.NodeID{"localhost"}, "any node could claim it"},
		{[]raft.NodeID{"a/b"}, "letters, digits"},
		{[]raft.NodeID{".."}, "cannot name a file"},
	} {
		if _, err := Write(dir, c.ids, time.Hour); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Write(%q): %v, want an error naming %q", c.ids, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, CertFile("n2"))); err == nil {
		t.Fatal("a refused Write wrote n2's certificate")
	}
	if _, err := Write(dir, []raft.NodeID{"n4"}, 0); err == nil {
		t.Fatal("zero validity accepted")
	}
	half := t.TempDir()
	if err := os.WriteFile(filepath.Join(half, CAFile), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(half, []raft.NodeID{"n1"}, time.Hour); err == nil || !strings.Contains(err.Error(), "half a CA") {
		t.Fatalf("half a CA: %v", err)
	}
}
