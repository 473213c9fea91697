package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/typedraft/typedraft/raft"
)

// scrape reads GET /metrics at base and parses the Prometheus text.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var p expfmt.TextParser
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics is not Prometheus text: %v", err)
	}
	return mfs
}

// metricValue returns the value of family name's sample (for a labelled
// family, the one whose label has value label).
func metricValue(t *testing.T, mfs map[string]*dto.MetricFamily, name, label string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if (label == "" && l.GetName() == "node") || (label != "" && l.GetName() != "node" && l.GetValue() == label) {
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("no %s{%s} in /metrics", name, label)
	return 0
}

func TestMetricsHealthReadyStatus(t *testing.T) {
	tc, leader := startTestCluster(t)
	base := "http://" + leader.httpAddr
	put := call(t, "PUT", base+"/kv/m", "v")
	expect(t, "put", put, 200, nil)
	index := uint64(put.body["index"].(float64))

	// /metrics: the node's raft metrics, typed and labelled.
	mfs := scrape(t, base)
	if got := metricValue(t, mfs, "typedraft_proposals_total", ""); got < 1 {
		t.Errorf("typedraft_proposals_total = %v after a write", got)
	}
	if got := metricValue(t, mfs, "typedraft_entries_applied_total", ""); got < 1 {
		t.Errorf("typedraft_entries_applied_total = %v after a write", got)
	}
	if got := metricValue(t, mfs, "typedraft_is_leader", ""); got != 1 {
		t.Errorf("typedraft_is_leader = %v on the leader", got)
	}
	if got := metricValue(t, mfs, "typedraft_messages_sent_total", "App"); got < 1 {
		t.Errorf(`typedraft_messages_sent_total{type="App"} = %v after a write`, got)
	}
	if mf := mfs["typedraft_commit_seconds"]; mf == nil || mf.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("typedraft_commit_seconds is not a histogram: %v", mf)
	}
	if mfs["go_goroutines"] == nil {
		t.Errorf("no Go runtime metrics")
	}
	for _, m := range mfs["typedraft_term"].GetMetric() {
		if l := m.GetLabel(); len(l) != 1 || l[0].GetName() != "node" || l[0].GetValue() != string(leader.id) {
			t.Errorf("typedraft_term labels %v, want node=%s", l, leader.id)
		}
	}

	for _, p := range tc.peers {
		nb := "http://" + p.HTTPAddr
		expect(t, "healthz "+string(p.ID), call(t, "GET", nb+"/healthz", ""), 200, map[string]any{"status": "ok"})
		expect(t, "readyz "+string(p.ID), call(t, "GET", nb+"/readyz", ""), 200,
			map[string]any{"status": "ready", "leader": string(leader.id)})
		if got := metricValue(t, scrape(t, nb), "typedraft_is_leader", ""); (p.ID == leader.id) != (got == 1) {
			t.Errorf("typedraft_is_leader = %v on %s (leader %s)", got, p.ID, leader.id)
		}
	}

	// /status on the leader: every peer's progress, once the leader has
	// heard that each holds the write (Status.Peers is refreshed every tick).
	var st statusBody
	deadline := time.Now().Add(10 * time.Second)
	for {
		st = getStatusBody(t, base)
		caught := len(st.Peers) == 3
		for _, p := range st.Peers {
			caught = caught && p.Match >= index
		}
		if caught {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader's /status never showed every peer at index %d: %+v", index, st.Peers)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st.State != "leader" || st.Removed || st.Commit < index || st.Applied < index || len(st.Configuration.Servers) != 3 || st.Configuration.Joint {
		t.Errorf("leader /status: %+v", st)
	}
	for _, p := range st.Peers {
		if p.Next <= p.Match || p.LastContactSeconds < 0 || (p.ID == leader.id && p.LastContactSeconds != 0) {
			t.Errorf("peer %s: %+v", p.ID, p)
		}
	}
	// The same progress in /metrics (the leader's peer samples).
	mfs = scrape(t, base)
	for _, p := range tc.peers {
		if got := metricValue(t, mfs, "typedraft_peer_match_index", string(p.ID)); got < float64(index) {
			t.Errorf(`typedraft_peer_match_index{peer="%s"} = %v, want at least %d`, p.ID, got, index)
		}
	}
	// A follower has no peers to report.
	f := tc.followerOf(leader.id)
	if fs := getStatusBody(t, "http://"+f.httpAddr); fs.Peers != nil || fs.Leader != leader.id || fs.Configuration.Index != st.Configuration.Index {
		t.Errorf("follower /status: %+v", fs)
	}
}

// getStatusBody reads GET /status at base.
func getStatusBody(t *testing.T, base string) statusBody {
	t.Helper()
	resp, err := http.Get(base + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var st statusBody
	if err := json.Unmarshal(raw, &st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /status: %d %s: %v", resp.StatusCode, raw, err)
	}
	return st
}

// A node that knows no leader (not bootstrapped, not added to a cluster)
// runs, but is not ready; once raft has stopped it is not healthy either.
func TestHealthAndReadinessWithoutLeader(t *testing.T) {
	tc := &tourCluster{dir: t.TempDir(), logger: hclog.NewNullLogger()}
	n := startJoiner(t, tc, "n1")
	base := "http://" + n.httpAddr
	expect(t, "healthz", call(t, "GET", base+"/healthz", ""), 200, map[string]any{"status": "ok"})
	expect(t, "readyz", call(t, "GET", base+"/readyz", ""), 503, map[string]any{"error": "no_leader"})
	if got := metricValue(t, scrape(t, base), "typedraft_is_leader", ""); got != 0 {
		t.Errorf("typedraft_is_leader = %v on a node without a cluster", got)
	}
	if st := getStatusBody(t, base); st.Leader != "" || st.Peers != nil {
		t.Errorf("/status: %+v", st)
	}

	// The node's own server stops with raft; serve its API elsewhere to
	// see what a stopped node answers.
	srv := httptest.NewServer(NewAPI(n.raft, n.kv, nil, nil).Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.raft.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, "healthz after shutdown", call(t, "GET", srv.URL+"/healthz", ""), 503, map[string]any{"error": "stopped"})
	expect(t, "readyz after shutdown", call(t, "GET", srv.URL+"/readyz", ""), 503, map[string]any{"error": "stopped"})
	if got := metricValue(t, scrape(t, srv.URL), "typedraft_state", ""); got != float64(raft.Shutdown) {
		t.Errorf("typedraft_state = %v after shutdown, want %d", got, raft.Shutdown)
	}
}

func TestLogLevelFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "off"},
		{[]string{"-v"}, "info"},
		{[]string{"-log-level", "debug"}, "debug"},
		{[]string{"-log-level", "TRACE"}, "trace"},
		{[]string{"-v", "-log-level", "warn"}, "warn"},
		{[]string{"-log-level", "off", "-v"}, "off"},
		{[]string{"-log-level", "error"}, "error"},
	} {
		o, err := parseFlags(io.Discard, c.args, func(string) string { return "" })
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		level, _ := parseLogLevel(o.logLevel, o.verbose)
		if got := strings.ToLower(level.String()); got != c.want {
			t.Errorf("%v: level %s, want %s", c.args, got, c.want)
		}
		if l := newLogger(o); (c.want == "off") != (l.GetLevel() == hclog.Off || l.GetLevel() == hclog.NoLevel) {
			t.Errorf("%v: logger at %v", c.args, l.GetLevel())
		}
	}
	if _, err := parseFlags(io.Discard, []string{"-log-level", "loud"}, func(string) string { return "" }); err == nil {
		t.Error("-log-level loud accepted")
	}
}
