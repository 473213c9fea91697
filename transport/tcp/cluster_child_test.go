package tcp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/store/pebble"
)

// kvCmd is the command of the test clusters' state machine.
type kvCmd struct {
	Key, Val string
}

// kvFSM is a replicated map; Apply returns the number of keys.
type kvFSM struct {
	mu      sync.Mutex
	m       map[string]string
	applied uint64
}

func newKVFSM() *kvFSM { return &kvFSM{m: map[string]string{}} }

// Apply stores the command's value; it runs on the node's apply goroutine.
func (f *kvFSM) Apply(index uint64, c kvCmd) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[c.Key] = c.Val
	f.applied = index
	return len(f.m), nil
}

// digest returns the key count, a hash of the sorted contents and the
// index they reflect, all read at one instant.
func (f *kvFSM) digest() (keys int, sum uint64, applied uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ks := make([]string, 0, len(f.m))
	for k := range f.m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	h := fnv.New64a()
	for _, k := range ks {
		fmt.Fprintf(h, "%q=%q;", k, f.m[k])
	}
	return len(ks), h.Sum64(), f.applied
}

// The child mode of the test binary: when it starts with childIDEnv set, it
// runs one cluster node (see clusterChild) instead of the tests.
const (
	childIDEnv    = "TYPEDRAFT_TCP_CHILD_ID"
	childAddrEnv  = "TYPEDRAFT_TCP_CHILD_ADDR"
	childDirEnv   = "TYPEDRAFT_TCP_CHILD_DIR"
	childPeersEnv = "TYPEDRAFT_TCP_CHILD_PEERS" // id=addr,id=addr,...
	// childMaxLife bounds a child's life even if its parent vanished
	// without closing the child's stdin.
	childMaxLife = 2 * time.Minute
	// childTick is the children's raft tick: elections take 10-20 ticks.
	childTick      = 20 * time.Millisecond
	multiClusterID = "multiprocess-test"
)

func init() {
	if id := os.Getenv(childIDEnv); id != "" {
		os.Exit(clusterChild(raft.NodeID(id), os.Getenv(childAddrEnv), os.Getenv(childDirEnv), os.Getenv(childPeersEnv)))
	}
}

// parseServers parses "id=addr,id=addr" into voters.
func parseServers(s string) ([]raft.Server, error) {
	var out []raft.Server
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("bad server %q in %q", part, s)
		}
		out = append(out, raft.Server{ID: raft.NodeID(id), Addr: addr})
	}
	return out, nil
}

// clusterChild runs node id: a raft.Raft over a TCP transport listening on
// addr, with a Pebble store in dir, bootstrapped with peers when the store
// is empty. It prints "ready last=N" (N: the stored log's last index before
// the node started) and then answers one request per stdin line, each
// "SEQ VERB [ARGS]", with one stdout line "SEQ REPLY":
//
//	SEQ status      -> SEQ state=S term=T leader=L commit=C applied=A last=I keys=K digest=D at=X
//	SEQ put K V     -> SEQ ok index=I | SEQ notleader leader=L | SEQ err TEXT
//
// It exits when stdin closes (the parent is gone), or after childMaxLife.
// Warnings go to stderr.
func clusterChild(id raft.NodeID, addr, dir, peers string) int {
	time.AfterFunc(childMaxLife, func() { os.Exit(4) })
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "child %s: %s: %v\n", id, what, err)
		return 2
	}
	servers, err := parseServers(peers)
	if err != nil {
		return fail("servers", err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: string(id), Output: os.Stderr, Level: hclog.Warn})
	store, err := pebble.Open(dir, nil)
	if err != nil {
		return fail("open store", err)
	}
	last, err := store.LastIndex()
	if err != nil {
		return fail("last index", err)
	}
	tr, err := Listen(addr, &Options{LocalID: id, ClusterID: multiClusterID, Logger: logger,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	if err != nil {
		return fail("listen", err)
	}
	fsm := newKVFSM()
	node, err := raft.New(raft.Config{ID: id, TickInterval: childTick, Logger: logger}, fsm, store, tr)
	if err != nil {
		return fail("new node", err)
	}
	if last == 0 {
		if err := node.Bootstrap(context.Background(), servers); err != nil {
			return fail("bootstrap", err)
		}
	}
	out := bufio.NewWriter(os.Stdout)
	reply := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		if out.Flush() != nil {
			os.Exit(5) // the parent is gone
		}
	}
	reply("ready last=%d", last)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) < 2 {
			reply("0 err bad request %q", in.Text())
			continue
		}
		seq := f[0]
		switch {
		case f[1] == "status":
			st := node.Status()
			keys, sum, at := fsm.digest()
			reply("%s state=%s term=%d leader=%s commit=%d applied=%d last=%d keys=%d digest=%x at=%d",
				seq, st.State, st.Term, st.Leader, st.Commit, st.Applied, st.LastIndex, keys, sum, at)
		case f[1] == "put" && len(f) == 4:
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			res, err := node.Propose(ctx, kvCmd{Key: f[2], Val: f[3]}).Wait(ctx)
			cancel()
			var nle *raft.NotLeaderError
			switch {
			case err == nil:
				reply("%s ok index=%d", seq, res.Index)
			case errors.As(err, &nle):
				reply("%s notleader leader=%s", seq, nle.LeaderID)
			default:
				reply("%s err %s", seq, strings.ReplaceAll(err.Error(), "\n", " "))
			}
		default:
			reply("%s err bad request %q", seq, in.Text())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = node.Shutdown(ctx)
	_ = tr.Close()
	_ = store.Close()
	return 0
}

// atoiField returns the integer value of key in a "k=v k=v" reply.
func atoiField(fields map[string]string, key string) uint64 {
	v, _ := strconv.ParseUint(fields[key], 10, 64)
	return v
}
