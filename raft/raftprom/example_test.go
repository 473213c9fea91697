package raftprom_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/raft/raftprom"
	"github.com/typedraft/typedraft/store/memory"
	"github.com/typedraft/typedraft/transport/inmem"
)

// A node's metrics served at /metrics: register its collector on a
// registry and serve the registry with promhttp.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, store := inmem.NewNetwork(1).Join("n1"), memory.New()
	defer tr.Close()
	defer store.Close()
	node, err := raft.New(raft.Config{ID: "n1", TickInterval: 5 * time.Millisecond}, &counter{}, store, tr)
	if err != nil {
		panic(err)
	}
	defer node.Shutdown(context.Background())
	if err := node.Bootstrap(ctx, []raft.Server{{ID: "n1", Addr: "n1"}}); err != nil {
		panic(err)
	}
	if _, err := node.WaitFor(ctx, func(s raft.Status) bool { return s.State == raft.Leader }); err != nil {
		panic(err)
	}
	if _, _, err := node.Apply(ctx, 42); err != nil {
		panic(err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(raftprom.NewCollector(node))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "typedraft_proposals_total") || strings.HasPrefix(line, "typedraft_is_leader") {
			fmt.Println(line)
		}
	}
	// Output:
	// typedraft_is_leader{node="n1"} 1
	// typedraft_proposals_total{node="n1"} 1
}
