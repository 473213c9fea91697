package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/typedraft/typedraft/raft"
)

// The tour follows leadership through the nodes' events (raft.Raft.Observe)
// rather than by polling their Status: every node is observed from before
// it bootstraps (nodeSpec.OnEvent), and what the events say is kept on the
// tourCluster, under its mu.

// election is a node becoming leader, as its EventStateChanged reports it.
type election struct {
	id   raft.NodeID
	term uint64
	at   time.Time
}

// observe records one event of node id (on that node's observer
// goroutine): an election when the node became leader, and the leader it
// now knows (every event carries it, so one missed event costs nothing
// once the next arrives). Any event wakes the waiters (changes).
func (tc *tourCluster) observe(id raft.NodeID, e raft.Event) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	// A leader's event after missed ones stands for the state-changed
	// event it may have missed.
	if e.State == raft.Leader && (e.Kind == raft.EventStateChanged || e.Missed > 0) && tc.lastElection(id).term != e.Term {
		tc.elections = append(tc.elections, election{id: id, term: e.Term, at: time.Now()})
	}
	if tc.follows == nil {
		tc.follows = map[raft.NodeID]raft.NodeID{}
	}
	tc.follows[id] = e.Leader
	if e.Kind == raft.EventStopped {
		delete(tc.follows, id)
	}
	if tc.changed != nil {
		close(tc.changed)
		tc.changed = nil
	}
}

// changes returns a channel closed at the next event of any node.
func (tc *tourCluster) changes() <-chan struct{} {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.changed == nil {
		tc.changed = make(chan struct{})
	}
	return tc.changed
}

// waitLeader waits, woken by the nodes' events, until a running node
// other than not leads and its election event has been seen, and returns
// it with that election.
func (tc *tourCluster) waitLeader(ctx context.Context, not raft.NodeID) (*kvNode, election, error) {
	for {
		ch := tc.changes()
		if n := tc.leader(); n != nil && n.id != not {
			if e := tc.electionOf(n.id); e.term == n.raft.Status().Term {
				return n, e, nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, election{}, fmt.Errorf("no leader elected: %w", ctx.Err())
		}
	}
}

// electionOf returns id's last election (the zero election if its event
// has not been seen).
func (tc *tourCluster) electionOf(id raft.NodeID) election {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.lastElection(id)
}

// lastElection is electionOf with mu held.
func (tc *tourCluster) lastElection(id raft.NodeID) election {
	for i := len(tc.elections) - 1; i >= 0; i-- {
		if tc.elections[i].id == id {
			return tc.elections[i]
		}
	}
	return election{id: id}
}

// waitFollowed waits until the events of every running node other than
// leader name it as the leader, and returns those nodes, sorted.
func (tc *tourCluster) waitFollowed(ctx context.Context, leader raft.NodeID) ([]raft.NodeID, error) {
	for {
		ch := tc.changes()
		tc.mu.Lock()
		var followers, behind []raft.NodeID
		for id := range tc.nodes {
			switch {
			case id == leader:
			case tc.follows[id] == leader:
				followers = append(followers, id)
			default:
				behind = append(behind, id)
			}
		}
		tc.mu.Unlock()
		if len(behind) == 0 {
			slices.Sort(followers)
			return followers, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%v do not follow %s: %w", behind, leader, ctx.Err())
		}
	}
}

// printElections prints, until ctx ends, every election after the first
// seen ones, as the events report them.
func (tc *tourCluster) printElections(ctx context.Context, out io.Writer) {
	tc.mu.Lock()
	seen := len(tc.elections)
	tc.mu.Unlock()
	for {
		ch := tc.changes()
		tc.mu.Lock()
		fresh := slices.Clone(tc.elections[seen:])
		seen = len(tc.elections)
		tc.mu.Unlock()
		for _, e := range fresh {
			fmt.Fprintf(out, "[%s] event: %s became leader of term %d\n", e.at.Format("15:04:05.000"), e.id, e.term)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// andList joins ids as "a", "a and b", "a, b and c".
func andList(ids []raft.NodeID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
