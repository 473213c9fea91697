package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/typedraft/typedraft/examples/kv/internal/devcert"
	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/tcp"
)

// tlsArgs returns kv's TLS flags for node id with the certificates in dir.
func tlsArgs(dir string, id raft.NodeID) []string {
	return []string{"-tls-cert", filepath.Join(dir, devcert.CertFile(id)), "-tls-key", filepath.Join(dir, devcert.KeyFile(id)),
		"-tls-ca", filepath.Join(dir, devcert.CAFile)}
}

// Three nodes, one per run call as in three processes, with the
// certificates the certs command writes: raft runs over mutual TLS, and a
// write through one node is read through every node.
func TestTLSCluster(t *testing.T) {
	dir := t.TempDir()
	ids := []raft.NodeID{"n1", "n2", "n3"}
	if _, err := devcert.Write(dir, ids, time.Hour); err != nil {
		t.Fatal(err)
	}
	addrs := freeAddrs(t, 6)
	var peers []string
	for i, id := range ids {
		peers = append(peers, fmt.Sprintf("%s=%s/%s", id, addrs[2*i], addrs[2*i+1]))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errcs := make([]chan error, len(ids))
	outs := make([]*syncBuffer, len(ids))
	for i, id := range ids {
		errcs[i], outs[i] = make(chan error, 1), &syncBuffer{}
		args := append([]string{"-id", string(id), "-addr", addrs[2*i], "-http", addrs[2*i+1], "-dir", t.TempDir(),
			"-peers", strings.Join(peers, ",")}, tlsArgs(dir, id)...)
		go func() { errcs[i] <- run(ctx, outs[i], args) }()
	}
	for i := range ids {
		waitFor(t, outs[i], "(mutual TLS raft)", errcs[i])
	}

	// The raft port speaks TLS and accepts a certificate of the cluster.
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "n2.crt"), filepath.Join(dir, "n2.key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, devcert.CAFile))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	conn, err := tls.Dial("tcp", addrs[0], &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS handshake with n1's raft port: %v", err)
	}
	conn.Close()

	deadline := time.Now().Add(30 * time.Second)
	for { // 503 until a leader is elected
		req, _ := http.NewRequest("PUT", "http://"+addrs[1]+"/kv/secure", strings.NewReader("yes"))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write succeeded over TLS: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range ids {
		resp, err := http.Get("http://" + addrs[2*i+1] + "/kv/secure")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"value":"yes"`) {
			t.Fatalf("GET via %s: %d %s", ids[i], resp.StatusCode, body)
		}
	}
	cancel()
	for i := range ids {
		if err := <-errcs[i]; err != nil {
			t.Fatalf("%s: %v", ids[i], err)
		}
	}
}

// TLS flags that cannot work are refused at startup with a message naming
// the problem, before anything listens.
func TestTLSFlagErrors(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	if _, err := devcert.Write(dir, []raft.NodeID{"n1", "n2"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := devcert.Write(other, []raft.NodeID{"n1"}, time.Hour); err != nil { // another CA
		t.Fatal(err)
	}
	base := []string{"-id", "n1", "-addr", "127.0.0.1:0", "-http", "127.0.0.1:0", "-dir", t.TempDir(), "-peers", "n1=127.0.0.1:7001"}
	f := func(d, name string) string { return filepath.Join(d, name) }
	for _, c := range []struct {
		tls  []string
		want string
	}{
		{[]string{"-tls-cert", f(dir, "n1.crt")}, "go together"},
		{[]string{"-tls-cert", f(dir, "n1.crt"), "-tls-key", f(dir, "n1.key")}, "go together"},
		{[]string{"-tls-cert", f(dir, "n2.crt"), "-tls-key", f(dir, "n2.key"), "-tls-ca", f(dir, "ca.crt")}, `does not prove node ID "n1"`},
		{[]string{"-tls-cert", f(dir, "n1.crt"), "-tls-key", f(dir, "n2.key"), "-tls-ca", f(dir, "ca.crt")}, "private key does not match"},
		{[]string{"-tls-cert", f(dir, "n1.crt"), "-tls-key", f(dir, "n1.key"), "-tls-ca", f(other, "ca.crt")}, "not valid under -tls-ca"},
		{[]string{"-tls-cert", f(dir, "n1.crt"), "-tls-key", f(dir, "n1.key"), "-tls-ca", f(dir, "n1.key")}, "holds no PEM certificate"},
		{[]string{"-tls-cert", f(dir, "none.crt"), "-tls-key", f(dir, "n1.key"), "-tls-ca", f(dir, "ca.crt")}, "no such file"},
	} {
		err := run(context.Background(), io.Discard, append(append([]string{}, base...), c.tls...))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error naming %q", c.tls, err, c.want)
		}
	}
	if err := run(context.Background(), io.Discard, append([]string{"-tour-only"}, tlsArgs(dir, "n1")...)); err == nil {
		t.Error("TLS flags without -id accepted")
	}
}

// Without TLS, plaintext raft traffic is for loopback only unless
// -insecure-plaintext says otherwise; the errors say what to do. (No test
// here listens on or dials a non-loopback address: the refusals come
// first.)
func TestPlaintextOnlyOnLoopback(t *testing.T) {
	dir := t.TempDir()
	if _, err := devcert.Write(dir, []raft.NodeID{"n1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	node := func(addr, peers string, more ...string) []string {
		return append([]string{"-id", "n1", "-addr", addr, "-http", "127.0.0.1:0", "-dir", t.TempDir(), "-peers", peers}, more...)
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{node("0.0.0.0:0", "n1=127.0.0.1:7001"), []string{"not a loopback address", "-tls-cert", "-insecure-plaintext"}},
		{node("127.0.0.1:0", "n1=127.0.0.1:7001,n2=192.0.2.1:7002"), []string{"n2's raft address 192.0.2.1:7002 is not loopback", "-insecure-plaintext"}},
		{node("127.0.0.1:0", "n1=127.0.0.1:7001", append([]string{"-insecure-plaintext"}, tlsArgs(dir, "n1")...)...), []string{"exclude each other"}},
	} {
		err := run(context.Background(), io.Discard, c.args)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("run(%q): %v, want an error naming %q", c.args, err, w)
			}
		}
	}
	if err := run(context.Background(), io.Discard, node("0.0.0.0:0", "n1=127.0.0.1:7001")); !errors.Is(err, tcp.ErrPlaintextNotLoopback) {
		t.Errorf("plaintext on 0.0.0.0: %v does not wrap tcp.ErrPlaintextNotLoopback", err)
	}

	// On loopback -insecure-plaintext changes nothing but the warning.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, errc := &syncBuffer{}, make(chan error, 1)
	addrs := freeAddrs(t, 2)
	go func() {
		errc <- run(ctx, out, []string{"-id", "n1", "-addr", addrs[0], "-http", addrs[1], "-dir", t.TempDir(),
			"-peers", "n1=" + addrs[0] + "/" + addrs[1], "-insecure-plaintext"})
	}()
	waitFor(t, out, "INSECURE plaintext raft", errc)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
