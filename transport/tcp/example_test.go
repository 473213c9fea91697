package tcp_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/tcp"
)

// printer is a raft.Handler that prints what it receives.
type printer struct{ got chan raft.Message }

func (p printer) HandleMessage(m raft.Message) { p.got <- m }

func (p printer) HandleSnapshot(m raft.Message, r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	fmt.Printf("snapshot at index %d: %d bytes\n", m.Snapshot.Index, n)
	return err
}

func (p printer) ReportUnreachable(id raft.NodeID) {}

// Two transports on loopback exchange a message and a snapshot. Plaintext is
// for loopback demos; set Options.TLS for anything else.
func Example() {
	a, err := tcp.Listen("127.0.0.1:0", &tcp.Options{LocalID: "a", ClusterID: "demo"})
	if err != nil {
		panic(err)
	}
	defer a.Close()
	b, err := tcp.Listen("127.0.0.1:0", &tcp.Options{LocalID: "b", ClusterID: "demo"})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	inbox := printer{got: make(chan raft.Message, 1)}
	b.Register(inbox)

	toB := raft.Peer{ID: "b", Addr: b.Addr()}
	a.Send(toB, []raft.Message{{Type: raft.MsgHeartbeat, From: "a", To: "b", Term: 3, Commit: 7}})
	m := <-inbox.got
	fmt.Println(m.Type, m.From, "->", m.To, "term", m.Term, "commit", m.Commit)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap := raft.Message{Type: raft.MsgSnap, From: "a", To: "b", Term: 3,
		Snapshot: &raft.SnapshotMeta{Index: 42, Term: 3}}
	if err := a.SendSnapshot(ctx, toB, snap, strings.NewReader("state machine image")); err != nil {
		panic(err)
	}
	// Output:
	// Heartbeat a -> b term 3 commit 7
	// snapshot at index 42: 19 bytes
}

// ExampleListen_mutualTLS shows how to turn on mutual TLS: every node has a
// certificate, signed by the cluster's CA, naming its node ID as the URI SAN
// typedraft://node/<id> (tcp.NodeURI) or as a DNS SAN.
func ExampleListen_mutualTLS() {
	cert, err := tls.LoadX509KeyPair("n1.crt", "n1.key")
	if err != nil {
		panic(err)
	}
	caPEM, err := os.ReadFile("cluster-ca.crt")
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tr, err := tcp.Listen(":7000", &tcp.Options{
		LocalID:   "n1",
		ClusterID: "prod",
		TLS:       &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool},
	})
	if err != nil {
		panic(err)
	}
	defer tr.Close()
}
