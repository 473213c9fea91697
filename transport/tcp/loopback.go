package tcp

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// ErrPlaintextNotLoopback is wrapped by the error of Listen, Send (in its
// log line) and SendSnapshot when a transport without Options.TLS would
// listen on, or dial, an address that is not loopback, and
// Options.InsecurePlaintext is not set.
var ErrPlaintextNotLoopback = errors.New("tcp: plaintext is for loopback addresses only " +
	"(set Options.TLS for mutual TLS, or Options.InsecurePlaintext to accept unauthenticated peers from the network)")

// lookupFunc resolves a host name, like net.Resolver.LookupIPAddr.
type lookupFunc func(ctx context.Context, host string) ([]net.IPAddr, error)

// plaintextRestricted reports whether o confines plaintext to loopback.
func plaintextRestricted(o *Options) bool { return o.TLS == nil && !o.InsecurePlaintext }

// loopbackHost returns nil when host names loopback addresses only: an IP
// in 127.0.0.0/8 or ::1 (IPv4-mapped forms included), or a name (such as
// "localhost") all of whose addresses are such IPs. An empty or
// unspecified host ("0.0.0.0", "::") is not loopback: it means every
// interface. Otherwise it returns why not.
func loopbackHost(ctx context.Context, lookup lookupFunc, host string) error {
	_, err := loopbackIPs(ctx, lookup, host)
	return err
}

// loopbackIPs is loopbackHost that also returns the host's IPs.
func loopbackIPs(ctx context.Context, lookup lookupFunc, host string) ([]net.IP, error) {
	if host == "" {
		return nil, errors.New("an empty host listens on every interface")
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return nil, fmt.Errorf("%s is not a loopback address", host)
		}
		return []net.IP{ip}, nil
	}
	addrs, err := lookup(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %q to check that it is loopback: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%q resolves to no address", host)
	}
	ips := make([]net.IP, 0, len(addrs))
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return nil, fmt.Errorf("%q resolves to %s, which is not a loopback address", host, a.IP)
		}
		ips = append(ips, a.IP)
	}
	return ips, nil
}

// checkListenAddr returns an error wrapping ErrPlaintextNotLoopback when o
// confines plaintext to loopback and addr's host is not loopback.
func checkListenAddr(ctx context.Context, addr string, o *Options) error {
	if !plaintextRestricted(o) {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("tcp: listen on %q: %w", addr, err)
	}
	if err := loopbackHost(ctx, net.DefaultResolver.LookupIPAddr, host); err != nil {
		return fmt.Errorf("tcp: listen on %q: %w: %v", addr, ErrPlaintextNotLoopback, err)
	}
	return nil
}

// checkBound re-checks the address a listener actually bound (a name may
// resolve differently at bind time than when it was checked).
func checkBound(addr string, bound net.Addr, o *Options) error {
	if !plaintextRestricted(o) {
		return nil
	}
	if ta, ok := bound.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
		return nil
	}
	return fmt.Errorf("tcp: listen on %q: %w: bound %s", addr, ErrPlaintextNotLoopback, bound)
}

// dialTargets returns the addresses to dial to reach addr. Without the
// loopback restriction that is addr itself. With it, addr's host must be
// loopback (see loopbackHost) and the result holds its resolved IPs, so
// that the connection goes where the check looked. Errors wrap
// ErrPlaintextNotLoopback.
func (t *Transport) dialTargets(ctx context.Context, addr string) ([]string, error) {
	if !plaintextRestricted(&t.opts) {
		return []string{addr}, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrPlaintextNotLoopback, addr, err)
	}
	ips, err := loopbackIPs(ctx, t.lookupIP, host)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPlaintextNotLoopback, err)
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = net.JoinHostPort(ip.String(), port)
	}
	return out, nil
}
