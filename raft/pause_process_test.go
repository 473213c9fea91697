package raft_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/transport/tcp"
)

// A leader process stopped with SIGSTOP for longer than an election timeout
// while the others elect a new leader and commit a write, then resumed with
// SIGCONT, must not answer a read or a Validate rejection from its stale
// state: the read must see the new write or fail, and the command must not
// be rejected for a reason the new write removed. Real processes, real
// TCP, a real pause (thesis §6.4: the reason reads need a quorum round,
// and the lease a measured clock).

const pauseChildEnv = "TYPEDRAFT_PAUSE_CHILD"

// pauseChild runs one node in a child process, driven by line commands on
// stdin, answering one line per command on stdout:
//
//	boot n1=addr,n2=addr,...  -> ok | err ...
//	status                    -> <state> <term> <leader>
//	put <key> <val>           -> ok <index> | err ...
//	read <mode> <key>         -> val <value> | err ...
//	guarded                   -> rejected <code> | ok <index> | err ...
func pauseChild() {
	id := raft.NodeID(os.Getenv(pauseChildEnv))
	tr, err := tcp.Listen("127.0.0.1:0", &tcp.Options{LocalID: id, ClusterID: "pause-test"})
	if err != nil {
		fmt.Println("err", err)
		return
	}
	defer tr.Close()
	fmt.Println("addr", tr.Addr())
	sm := newKV()
	// Writes to "guarded" are rejected unless flag is "on".
	sm.rejectUnless("flag", "on")
	cfg := raft.Config{ID: id, TickInterval: 20 * time.Millisecond, ElectionTicks: 10, HeartbeatTicks: 2}
	node, err := raft.New(cfg, sm, memory.New(), tr)
	if err != nil {
		fmt.Println("err", err)
		return
	}
	defer node.Shutdown(context.Background())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		fmt.Println(pauseCommand(ctx, node, sm, f))
		cancel()
	}
}

func pauseCommand(ctx context.Context, node *node, sm *kvSM, f []string) string {
	switch f[0] {
	case "boot":
		var servers []raft.Server
		for _, p := range strings.Split(f[1], ",") {
			id, addr, _ := strings.Cut(p, "=")
			servers = append(servers, raft.Server{ID: raft.NodeID(id), Addr: addr})
		}
		if err := node.Bootstrap(ctx, servers); err != nil {
			return "err " + err.Error()
		}
		return "ok"
	case "status":
		s := node.Status()
		return fmt.Sprintf("%s %d %s", s.State, s.Term, s.Leader)
	case "put":
		res, err := node.Propose(ctx, kvCmd{Op: "put", Key: f[1], Val: f[2]}).Wait(ctx)
		if err != nil {
			return "err " + err.Error()
		}
		return fmt.Sprintf("ok %d", res.Index)
	case "read":
		mode := raft.ReadLinearizable
		if f[1] == "lease" {
			mode = raft.ReadLease
		}
		v, err := raft.Query(ctx, node, mode, func() string { v, _ := sm.get(f[2]); return v })
		if err != nil {
			return "err " + err.Error()
		}
		return "val " + v
	case "guarded":
		res, err := node.Propose(ctx, kvCmd{Op: "put", Key: "guarded", Val: "x"}).Wait(ctx)
		switch {
		case err != nil:
			return "err " + err.Error()
		case res.Rejected():
			return "rejected " + res.Err.Code
		}
		return fmt.Sprintf("ok %d", res.Index)
	}
	return "err unknown command"
}

// pauseProc is the parent's handle on one child.
type pauseProc struct {
	id    raft.NodeID
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	addr  string
}

func (p *pauseProc) ask(t *testing.T, line string) string {
	t.Helper()
	if _, err := fmt.Fprintln(p.in, line); err != nil {
		t.Fatalf("%s: send %q: %v", p.id, line, err)
	}
	select {
	case ans, ok := <-p.lines:
		if !ok {
			t.Fatalf("%s exited", p.id)
		}
		return ans
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no answer to %q", p.id, line)
	}
	return ""
}

func startPauseProc(t *testing.T, id raft.NodeID) *pauseProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), pauseChildEnv+"="+string(id))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &pauseProc{id: id, cmd: cmd, in: in, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	first := <-p.lines
	addr, ok := strings.CutPrefix(first, "addr ")
	if !ok {
		t.Fatalf("%s: %s", id, first)
	}
	p.addr = addr
	return p
}

func TestPausedLeaderAnswersNothingStale(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("needs SIGSTOP")
	}
	if testing.Short() {
		t.Skip("starts processes; run without -short")
	}
	var procs []*pauseProc
	var peers []string
	for _, id := range []raft.NodeID{"n1", "n2", "n3"} {
		p := startPauseProc(t, id)
		procs = append(procs, p)
		peers = append(peers, fmt.Sprintf("%s=%s", id, p.addr))
	}
	for _, p := range procs {
		if ans := p.ask(t, "boot "+strings.Join(peers, ",")); ans != "ok" {
			t.Fatalf("%s: boot: %s", p.id, ans)
		}
	}
	leaderOf := func(among []*pauseProc, minTerm uint64) (*pauseProc, uint64) {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, p := range among {
				var state string
				var term uint64
				fmt.Sscan(p.ask(t, "status"), &state, &term)
				if state == "leader" && term >= minTerm {
					return p, term
				}
			}
			time.Sleep(20 * time.Millisecond) // polling a process, with a deadline
		}
		t.Fatalf("no leader of term >= %d among the running nodes", minTerm)
		return nil, 0
	}
	for round := 0; round < 2; round++ {
		old, term := leaderOf(procs, 0)
		if ans := old.ask(t, "put flag off"); !strings.HasPrefix(ans, "ok") {
			t.Fatalf("put flag off: %s", ans)
		}
		// Let the lease be fresh: a lease read on the leader succeeds now.
		if ans := old.ask(t, "read lease flag"); ans != "val off" {
			t.Fatalf("lease read before the pause: %s", ans)
		}
		if err := old.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		var others []*pauseProc
		for _, p := range procs {
			if p != old {
				others = append(others, p)
			}
		}
		lead, _ := leaderOf(others, term+1)
		if ans := lead.ask(t, "put flag on"); !strings.HasPrefix(ans, "ok") {
			t.Fatalf("put flag on through %s: %s", lead.id, ans)
		}
		if err := old.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		// Straight after the pause, before it hears the new term if the
		// scheduler allows: a lease read, a linearizable read and a command
		// its stale state rejects.
		for _, q := range []string{"read lease flag", "read linearizable flag", "guarded"} {
			ans := old.ask(t, q)
			t.Logf("round %d: %s on the resumed %s: %s", round, q, old.id, ans)
			switch {
			case ans == "val off":
				t.Fatalf("resumed leader answered %q with the stale value", q)
			case strings.HasPrefix(ans, "rejected"):
				t.Fatalf("resumed leader rejected the command from its stale state: %s", ans)
			case strings.HasPrefix(ans, "err"):
				if !isRetryable(ans) {
					t.Fatalf("%s: unexpected error %s", q, ans)
				}
			}
		}
	}
}

// isRetryable reports whether a child's error line is one a client retries
// elsewhere (not leader, not confirmed): never a stale answer.
func isRetryable(line string) bool {
	for _, s := range []error{raft.ErrNotLeader, raft.ErrNotConfirmed, raft.ErrLeadershipLost} {
		if strings.Contains(line, s.Error()) {
			return true
		}
	}
	return false
}
