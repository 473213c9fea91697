// Command certs writes development certificates for kv's mutual TLS: a CA
// and one certificate and key per node, bound to the node ID the way
// transport/tcp checks it (URI SAN typedraft://node/<id>), plus the
// loopback SANs (localhost, 127.0.0.1, ::1):
//
//	go run ./examples/kv/certs -out /tmp/kv-certs -nodes n1,n2,n3
//
// writes ca.crt, ca.key, n1.crt, n1.key, n2.crt, ... into /tmp/kv-certs
// (keys with mode 0600). Give each kv node its own pair and the CA:
//
//	go run ./examples/kv -id n1 -tls-cert /tmp/kv-certs/n1.crt -tls-key /tmp/kv-certs/n1.key -tls-ca /tmp/kv-certs/ca.crt ...
//
// Run it again with new node IDs and the same -out to add nodes: it reuses
// the CA found there. It never overwrites a file.
//
// The certificates are for development and tests: the CA key lies next to
// them, unencrypted. Use your own PKI in production; node certificates need
// the URI SAN typedraft://node/<id> (or the DNS SAN <id>) and both the
// serverAuth and clientAuth extended key usages.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/typedraft/typedraft/examples/kv/internal/devcert"
	"github.com/typedraft/typedraft/raft"
)

func main() {
	if err := run(os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "certs:", err)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run parses args, writes the certificates and lists them on out.
func run(out io.Writer, args []string) error {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	fs.SetOutput(out)
	dir := fs.String("out", "", "directory to write into (created if needed; a CA in it is reused)")
	nodes := fs.String("nodes", "", "comma-separated node IDs, e.g. n1,n2,n3")
	validity := fs.Duration("valid", 90*24*time.Hour, "how long the certificates are valid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	case *dir == "":
		return errors.New("-out is required")
	case strings.TrimSpace(*nodes) == "":
		return errors.New("-nodes is required (e.g. -nodes n1,n2,n3)")
	}
	var ids []raft.NodeID
	for _, id := range strings.Split(*nodes, ",") {
		ids = append(ids, raft.NodeID(strings.TrimSpace(id)))
	}
	res, err := devcert.Write(*dir, ids, *validity)
	if err != nil {
		return err
	}
	if res.CAReused {
		fmt.Fprintf(out, "reused the CA in %s\n", *dir)
	}
	for _, f := range res.Files {
		fmt.Fprintf(out, "wrote %s\n", f)
	}
	return nil
}
