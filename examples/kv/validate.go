package main

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/tcp"
)

// maxHostLen bounds the host of an address: the longest DNS name.
const maxHostLen = 253

// validateNodeID reports why id cannot name a kv node, or nil. An ID is 1
// to tcp.MaxIDLen bytes (the transport refuses longer ones in handshakes
// and messages, so a member with a longer ID could never be reached, and
// every snapshot sent to it would fail) of ASCII letters, digits, '.', '_'
// and '-' (it appears in URL paths, certificate SANs and log lines).
func validateNodeID(id raft.NodeID) error {
	switch {
	case id == "":
		return fmt.Errorf("empty node ID")
	case len(id) > tcp.MaxIDLen:
		return fmt.Errorf("node ID is %d bytes, limit %d", len(id), tcp.MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("node ID %q: byte %q at %d: use letters, digits, '.', '_' and '-'", truncated(string(id)), c, i)
		}
	}
	return nil
}

// validateAddr reports why addr is not a host:port that other nodes can
// dial, or nil: the host must be an IP address other than the unspecified
// ones (0.0.0.0, ::) or a DNS name, and the port a number in [1, 65535].
func validateAddr(addr string) error {
	if len(addr) > maxHostLen+8 {
		return fmt.Errorf("address is %d bytes, limit %d", len(addr), maxHostLen+8)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q is not host:port: %w", addr, err)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("address %q: port must be a number in [1, 65535]", addr)
	}
	if host == "" {
		return fmt.Errorf("address %q has no host", addr)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.IsUnspecified() {
			return fmt.Errorf("address %q: %s listens on every interface but cannot be dialed; give the address other nodes reach", addr, host)
		}
		return nil
	}
	if err := validateHostname(host); err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	return nil
}

// validateHostname reports why host is not a DNS name (labels of 1 to 63
// letters, digits, '-' and '_', not starting or ending with '-'), or nil.
func validateHostname(host string) error {
	if len(host) > maxHostLen {
		return fmt.Errorf("host name is %d bytes, limit %d", len(host), maxHostLen)
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host %q: each dot-separated label must have 1 to 63 characters", host)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q: a label cannot start or end with '-'", host)
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnum(c) && c != '-' && c != '_' {
				return fmt.Errorf("host %q is neither an IP address nor a DNS name (byte %q)", host, c)
			}
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// truncated shortens s for an error message.
func truncated(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
