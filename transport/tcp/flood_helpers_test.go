package tcp

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// dialFrom dials addr from the loopback source IP src ("" for the default).
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return d.Dial("tcp", addr)
}

// rawHello dials addr from src, sends a plaintext hello claiming from and
// returns the connection with the listener's reply (err if none came).
func rawHello(src, addr string, from, to raft.NodeID) (net.Conn, helloReply, error) {
	c, err := dialFrom(src, addr)
	if err != nil {
		return nil, helloReply{}, err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	h := hello{ClusterID: "test-cluster", From: from, To: to, Kind: kindMessages}
	if err := writeFrame(c, frameHello, encodeHello(h)); err != nil {
		_ = c.Close()
		return nil, helloReply{}, err
	}
	typ, body, err := readFrame(c, maxHandshakeFrame, nil)
	if err != nil {
		_ = c.Close()
		return nil, helloReply{}, err
	}
	if typ != frameHelloReply {
		_ = c.Close()
		return nil, helloReply{}, net.UnknownNetworkError("got " + typ.String())
	}
	r, err := decodeHelloReply(body)
	if err != nil {
		_ = c.Close()
		return nil, helloReply{}, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, r, nil
}

// flood runs n goroutines that each keep one connection to addr open,
// redialling as soon as the listener closes it, until the test ends. Each
// connection first writes greeting (nothing when empty), then waits.
type flood struct {
	dials atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startFlood(t *testing.T, n int, src, addr string, greeting func(i int) []byte) *flood {
	f := &flood{stop: make(chan struct{}), conns: make(map[net.Conn]struct{})}
	for i := range n {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for {
				select {
				case <-f.stop:
					return
				default:
				}
				c, err := dialFrom(src, addr)
				if err != nil {
					select {
					case <-f.stop:
						return
					case <-time.After(time.Millisecond):
					}
					continue
				}
				f.dials.Add(1)
				f.mu.Lock()
				f.conns[c] = struct{}{}
				f.mu.Unlock()
				if greeting != nil {
					_, _ = c.Write(greeting(i))
				}
				var b [512]byte
				for {
					if _, err := c.Read(b[:]); err != nil {
						break
					}
				}
				f.mu.Lock()
				delete(f.conns, c)
				f.mu.Unlock()
				_ = c.Close()
			}
		}()
	}
	t.Cleanup(f.close)
	return f
}

// close stops the flood and waits for its goroutines.
func (f *flood) close() {
	select {
	case <-f.stop:
		return
	default:
	}
	close(f.stop)
	f.mu.Lock()
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// deliveryTimes sends heartbeats from a to b (b's handler is h) one at a
// time, each once the previous one arrived, re-sending a heartbeat every
// 20 ms until it arrives, and returns how long each took to arrive from its
// first send. It fails the test if one takes longer than limit.
func deliveryTimes(t *testing.T, a *Transport, to raft.Peer, h *handler, n int, limit time.Duration) []time.Duration {
	t.Helper()
	var out []time.Duration
	base := uint64(h.count())
	for i := range n {
		start := time.Now()
		idx := base + uint64(i) + 1
		for {
			a.Send(to, []raft.Message{heartbeat(a.opts.LocalID, to.ID, idx)})
			deadline := time.Now().Add(20 * time.Millisecond)
			arrived := false
			for time.Now().Before(deadline) {
				if hasIndex(h, idx) {
					arrived = true
					break
				}
				time.Sleep(500 * time.Microsecond)
			}
			if arrived {
				break
			}
			if d := time.Since(start); d > limit {
				t.Fatalf("heartbeat %d of %d: not delivered within %v", i+1, n, limit)
			}
		}
		out = append(out, time.Since(start))
	}
	return out
}

func hasIndex(h *handler, idx uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.msgs) - 1; i >= 0; i-- {
		if h.msgs[i].Index == idx {
			return true
		}
	}
	return false
}

func maxDuration(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
