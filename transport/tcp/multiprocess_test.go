package tcp

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// procTimeout bounds every wait of the multi-process test: for a child to
// start, answer, elect a leader or catch up.
const procTimeout = 20 * time.Second

// proc is one child process running a cluster node (see clusterChild).
type proc struct {
	id         raft.NodeID
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	lines      chan string   // stdout lines; closed when stdout ends
	quit       chan struct{} // closed by kill: the reader stops delivering
	readerDone chan struct{}
	stderr     *logBuffer
	seq        int
	killed     bool
}

// procCluster runs three nodes, each in its own OS process, over TCP on
// loopback with a Pebble store per node in a temporary directory.
type procCluster struct {
	t     *testing.T
	exe   string
	ids   []raft.NodeID
	addrs map[raft.NodeID]string
	dirs  map[raft.NodeID]string
	procs map[raft.NodeID]*proc
}

func newProcCluster(t *testing.T, ids ...raft.NodeID) *procCluster {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &procCluster{t: t, exe: exe, ids: ids, addrs: map[raft.NodeID]string{},
		dirs: map[raft.NodeID]string{}, procs: map[raft.NodeID]*proc{}}
	root := t.TempDir()
	for _, id := range ids {
		for {
			a := freeAddr(t)
			if !slicesContainsValue(c.addrs, a) {
				c.addrs[id] = a
				break
			}
		}
		c.dirs[id] = filepath.Join(root, string(id))
	}
	t.Cleanup(func() {
		for _, id := range ids {
			if p := c.procs[id]; p != nil {
				p.kill()
				if t.Failed() {
					t.Logf("stderr of %s:\n%s", id, p.stderr.String())
				}
			}
		}
	})
	return c
}

func slicesContainsValue(m map[raft.NodeID]string, v string) bool {
	for _, x := range m {
		if x == v {
			return true
		}
	}
	return false
}

// start launches node id's process and waits for its "ready" line, whose
// last=N (the last index of the log it found on disk) it returns.
func (c *procCluster) start(id raft.NodeID) uint64 {
	c.t.Helper()
	var peers []string
	for _, x := range c.ids {
		peers = append(peers, string(x)+"="+c.addrs[x])
	}
	cmd := exec.Command(c.exe)
	cmd.Env = append(os.Environ(),
		childIDEnv+"="+string(id),
		childAddrEnv+"="+c.addrs[id],
		childDirEnv+"="+c.dirs[id],
		childPeersEnv+"="+strings.Join(peers, ","))
	p := &proc{id: id, cmd: cmd, lines: make(chan string, 16), quit: make(chan struct{}),
		readerDone: make(chan struct{}), stderr: &logBuffer{}}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		c.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", id, err)
	}
	c.procs[id] = p
	go p.read(stdout)
	select {
	case line, ok := <-p.lines:
		last, found := strings.CutPrefix(line, "ready last=")
		n, perr := strconv.ParseUint(last, 10, 64)
		if !ok || !found || perr != nil {
			c.t.Fatalf("%s did not start: first line %q; stderr:\n%s", id, line, p.stderr.String())
		}
		return n
	case <-time.After(procTimeout):
		c.t.Fatalf("%s not ready after %v; stderr:\n%s", id, procTimeout, p.stderr.String())
	}
	return 0
}

// read delivers stdout lines until the process's stdout ends or kill.
func (p *proc) read(stdout io.Reader) {
	defer close(p.readerDone)
	defer close(p.lines)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		select {
		case p.lines <- sc.Text():
		case <-p.quit:
			return
		}
	}
}

// kill sends SIGKILL and reaps the process; it is idempotent.
func (p *proc) kill() {
	if p.killed {
		return
	}
	p.killed = true
	_ = p.cmd.Process.Kill() // SIGKILL on Unix
	close(p.quit)
	<-p.readerDone // the pipe closes with the process
	_ = p.cmd.Wait()
}

// request sends one request line and returns the reply's text after its
// sequence number. Replies to earlier, timed-out requests are skipped.
func (p *proc) request(verb string, timeout time.Duration) (string, error) {
	if p.killed {
		return "", fmt.Errorf("%s is killed", p.id)
	}
	p.seq++
	seq := strconv.Itoa(p.seq)
	if _, err := fmt.Fprintf(p.stdin, "%s %s\n", seq, verb); err != nil {
		return "", fmt.Errorf("%s: write request: %w", p.id, err)
	}
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return "", fmt.Errorf("%s exited", p.id)
			}
			if rest, found := strings.CutPrefix(line, seq+" "); found {
				return rest, nil
			}
		case <-deadline:
			return "", fmt.Errorf("%s: no reply to %q within %v", p.id, verb, timeout)
		}
	}
}

// status returns node id's status fields, or nil if it does not answer.
func (c *procCluster) status(id raft.NodeID) map[string]string {
	p := c.procs[id]
	if p == nil {
		return nil
	}
	line, err := p.request("status", 2*time.Second)
	if err != nil {
		c.t.Logf("status: %v", err)
		return nil
	}
	f := map[string]string{}
	for _, kv := range strings.Fields(line) {
		k, v, _ := strings.Cut(kv, "=")
		f[k] = v
	}
	return f
}

// live returns the IDs of the nodes not killed.
func (c *procCluster) live() []raft.NodeID {
	var out []raft.NodeID
	for _, id := range c.ids {
		if p := c.procs[id]; p != nil && !p.killed {
			out = append(out, id)
		}
	}
	return out
}

// poll calls cond every 20ms until it returns true or procTimeout passes.
func (c *procCluster) poll(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(procTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", procTimeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLeader waits until every live node names the same leader, which
// says it leads in a term above minTerm, and returns it and its term.
func (c *procCluster) waitLeader(minTerm uint64) (raft.NodeID, uint64) {
	c.t.Helper()
	var leader raft.NodeID
	var term uint64
	c.poll(fmt.Sprintf("a leader in a term above %d agreed by %v", minTerm, c.live()), func() bool {
		leader = ""
		for _, id := range c.live() {
			st := c.status(id)
			if st == nil || st["leader"] == "" || (leader != "" && raft.NodeID(st["leader"]) != leader) {
				return false
			}
			leader = raft.NodeID(st["leader"])
		}
		if p := c.procs[leader]; p == nil || p.killed {
			return false // the survivors still name the killed leader
		}
		st := c.status(leader)
		if st == nil || st["state"] != raft.Leader.String() {
			return false
		}
		term = atoiField(st, "term")
		return term > minTerm
	})
	return leader, term
}

// put writes key=val through the leader, following redirects and retrying
// until it is acknowledged, and returns the entry's index.
func (c *procCluster) put(leader *raft.NodeID, key, val string) uint64 {
	c.t.Helper()
	deadline := time.Now().Add(procTimeout)
	var last string
	for time.Now().Before(deadline) {
		p := c.procs[*leader]
		if p == nil || p.killed {
			*leader, _ = c.waitLeader(0)
			continue
		}
		reply, err := p.request("put "+key+" "+val, 5*time.Second)
		if err != nil {
			reply = err.Error()
		}
		last = reply
		if idx, ok := strings.CutPrefix(reply, "ok index="); ok {
			index, err := strconv.ParseUint(idx, 10, 64)
			if err != nil {
				c.t.Fatalf("put %s: bad reply %q", key, reply)
			}
			return index
		}
		if l, ok := strings.CutPrefix(reply, "notleader leader="); ok && l != "" {
			if q := c.procs[raft.NodeID(l)]; q != nil && !q.killed {
				*leader = raft.NodeID(l)
				continue
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("write %s not acknowledged within %v; last reply: %s", key, procTimeout, last)
	return 0
}

// TestMultiProcessCluster runs three nodes in three OS processes over TCP
// on loopback, each with a Pebble store: it writes through the leader,
// kills the leader with SIGKILL, requires the other two to elect a new
// leader and keep committing, restarts the killed node on its directory
// and port, and requires it to have kept its log and to catch up to the
// same state.
func TestMultiProcessCluster(t *testing.T) {
	const writes = 20
	c := newProcCluster(t, "n1", "n2", "n3")
	for _, id := range c.ids {
		if last := c.start(id); last != 0 {
			t.Fatalf("%s found a log (last index %d) in a new directory", id, last)
		}
	}
	leader, _ := c.waitLeader(0)
	var before uint64
	for i := range writes {
		before = c.put(&leader, fmt.Sprintf("a%02d", i), fmt.Sprintf("v%d", i))
	}
	// The writes may have moved leadership; kill whoever leads now.
	leader, term := c.waitLeader(0)
	if st := c.status(leader); st == nil || atoiField(st, "applied") < before {
		t.Fatalf("leader %s status %v: has not applied index %d it acknowledged", leader, st, before)
	}
	killed := leader
	c.procs[killed].kill()
	t.Logf("killed leader %s (term %d) after %d writes up to index %d", killed, term, writes, before)

	leader, term2 := c.waitLeader(term)
	if leader == killed {
		t.Fatalf("killed node %s still leads", killed)
	}
	var after uint64
	for i := range writes {
		after = c.put(&leader, fmt.Sprintf("b%02d", i), fmt.Sprintf("w%d", i))
	}
	if after <= before {
		t.Fatalf("writes after the kill ended at index %d, not above %d", after, before)
	}
	t.Logf("new leader %s (term %d) committed up to index %d", leader, term2, after)

	last := c.start(killed)
	if last < before {
		t.Fatalf("restarted %s found only %d entries on disk; it had acknowledged index %d as leader", killed, last, before)
	}
	var want map[string]string
	c.poll(fmt.Sprintf("%s to catch up with the others at index >= %d", killed, after), func() bool {
		want = nil
		var commit uint64
		for _, id := range c.ids {
			st := c.status(id)
			if st == nil {
				return false
			}
			if id == leader {
				commit = atoiField(st, "commit")
			}
			if want == nil {
				want = st
			}
			if atoiField(st, "at") < after || st["at"] != want["at"] || st["digest"] != want["digest"] {
				return false
			}
		}
		return atoiField(want, "at") == commit
	})
	if k := atoiField(want, "keys"); k != 2*writes {
		t.Fatalf("nodes agree on %d keys, want %d", k, 2*writes)
	}
}
