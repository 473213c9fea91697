package tcp

import (
	"fmt"
	"net"
	"strconv"

	"github.com/typedraft/typedraft/raft"
)

// maxLearnedAddrs bounds the addresses remembered from handshakes. Under
// plaintext any process can claim any node ID, so the table must not grow
// with the IDs a hostile peer invents; past the bound an arbitrary entry is
// forgotten for each new one.
const maxLearnedAddrs = 1024

// checkAddr reports why addr is not a dialable "host:port", or nil. The
// host may be empty (the peer fills in the connection's source IP).
func checkAddr(addr string) error {
	if len(addr) > maxAddrLen {
		return fmt.Errorf("address is %d bytes, limit %d", len(addr), maxAddrLen)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("address %q: port must be a number in [1, 65535]", addr)
	}
	return nil
}

// learnable returns the address to remember for a peer that advertised adv
// over a connection from remote: adv itself, or adv's port on remote's IP
// when adv's host is empty or unspecified. The caller has checked adv.
func learnable(adv string, remote net.Addr) string {
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		return ""
	}
	if host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			return adv
		}
	}
	ta, ok := remote.(*net.TCPAddr)
	if !ok || ta.IP == nil {
		return ""
	}
	return net.JoinHostPort(ta.IP.String(), port)
}

// learnAddr remembers addr as where node id listens.
func (t *Transport) learnAddr(id raft.NodeID, addr string) {
	if addr == "" {
		return
	}
	t.addrMu.Lock()
	defer t.addrMu.Unlock()
	old, known := t.learned[id]
	if old == addr {
		return
	}
	if !known && len(t.learned) >= maxLearnedAddrs {
		for k := range t.learned {
			delete(t.learned, k)
			t.log.Warn("learned address table full, forgot one", "forgot", string(k), "limit", maxLearnedAddrs)
			break
		}
	}
	t.learned[id] = addr
	t.log.Debug("learned peer address", "peer", string(id), "addr", addr, "previous", old)
}

// learnedAddr returns the address learned for id, or "".
func (t *Transport) learnedAddr(id raft.NodeID) string {
	t.addrMu.Lock()
	defer t.addrMu.Unlock()
	return t.learned[id]
}

// resolveAddr returns the address to dial for id: configured when it is
// not empty, else the address learned from id's handshakes (maybe "").
func (t *Transport) resolveAddr(id raft.NodeID, configured string) string {
	if configured != "" {
		return configured
	}
	return t.learnedAddr(id)
}
