package quorum

import (
	"math"
	"math/rand/v2"

	"testing"
)

func ackFrom(m map[string]uint64) func(string) uint64 {
	return func(id string) uint64 { return m[id] }
}

func TestCommittedTable(t *testing.T) {
	cases := []struct {
		voters []string
		acked  map[string]uint64
		want   uint64
	}{
		{[]string{"a"}, map[string]uint64{"a": 5}, 5},
		{[]string{"a", "b"}, map[string]uint64{"a": 5, "b": 3}, 3},
		{[]string{"a", "b", "c"}, map[string]uint64{"a": 5, "b": 3, "c": 1}, 3},
		{[]string{"a", "b", "c"}, map[string]uint64{"a": 5}, 0},
		{[]string{"a", "b", "c", "d"}, map[string]uint64{"a": 9, "b": 7, "c": 4, "d": 2}, 4},
		{[]string{"a", "b", "c", "d", "e"}, map[string]uint64{"a": 9, "b": 7, "c": 4, "d": 2, "e": 1}, 4},
		{nil, nil, math.MaxUint64},
	}
	for i, c := range cases {
		if got := Committed(c.voters, ackFrom(c.acked)); got != c.want {
			t.Errorf("case %d: Committed = %d, want %d", i, got, c.want)
		}
	}
}

// TestCommittedProperty checks Committed against the definition: the largest
// index i such that more than half of the voters acknowledged >= i.
func TestCommittedProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 5000; iter++ {
		n := 1 + r.IntN(9)
		voters := make([]string, n)
		acked := map[string]uint64{}
		for i := range voters {
			voters[i] = string(rune('a' + i))
			acked[voters[i]] = uint64(r.IntN(20))
		}
		var want uint64
		for i := uint64(0); i <= 20; i++ {
			cnt := 0
			for _, v := range voters {
				if acked[v] >= i {
					cnt++
				}
			}
			if 2*cnt > n {
				want = i
			}
		}
		if got := Committed(voters, ackFrom(acked)); got != want {
			t.Fatalf("voters %v acked %v: Committed = %d, want %d", voters, acked, got, want)
		}
	}
}

func TestJointCommitted(t *testing.T) {
	acked := ackFrom(map[string]uint64{"a": 10, "b": 10, "c": 2, "d": 3, "e": 3})
	if got := JointCommitted([]string{"a", "b", "c"}, []string{"c", "d", "e"}, acked); got != 3 {
		t.Fatalf("JointCommitted = %d, want 3", got)
	}
	if got := JointCommitted([]string{"a", "b", "c"}, nil, acked); got != 10 {
		t.Fatalf("JointCommitted without outgoing = %d, want 10", got)
	}
}

func TestVote(t *testing.T) {
	v3 := []string{"a", "b", "c"}
	cases := []struct {
		votes map[string]bool
		want  VoteResult
	}{
		{map[string]bool{}, Pending},
		{map[string]bool{"a": true}, Pending},
		{map[string]bool{"a": true, "b": true}, Won},
		{map[string]bool{"a": true, "b": false}, Pending},
		{map[string]bool{"a": false, "b": false}, Lost},
		{map[string]bool{"x": true, "y": true}, Pending},
	}
	for i, c := range cases {
		if got := Vote(v3, c.votes); got != c.want {
			t.Errorf("case %d: Vote = %v, want %v", i, got, c.want)
		}
	}
	// Four voters: two rejections make a win impossible.
	if got := Vote([]string{"a", "b", "c", "d"}, map[string]bool{"a": false, "b": false}); got != Lost {
		t.Fatalf("4 voters, 2 rejections: %v, want lost", got)
	}
}

func TestJointVote(t *testing.T) {
	in, out := []string{"a", "b", "c"}, []string{"c", "d", "e"}
	if got := JointVote(in, out, map[string]bool{"a": true, "b": true}); got != Pending {
		t.Fatalf("only incoming majority: %v, want pending", got)
	}
	if got := JointVote(in, out, map[string]bool{"a": true, "b": true, "c": true, "d": true}); got != Won {
		t.Fatalf("both majorities: %v, want won", got)
	}
	if got := JointVote(in, out, map[string]bool{"a": true, "b": true, "d": false, "e": false}); got != Lost {
		t.Fatalf("outgoing lost: %v, want lost", got)
	}
}

// TestVoteProperty checks Vote against brute force over random vote maps.
func TestVoteProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for iter := 0; iter < 5000; iter++ {
		n := 1 + r.IntN(7)
		voters := make([]string, n)
		votes := map[string]bool{}
		g, rj := 0, 0
		for i := range voters {
			voters[i] = string(rune('a' + i))
			switch r.IntN(3) {
			case 0:
				votes[voters[i]] = true
				g++
			case 1:
				votes[voters[i]] = false
				rj++
			}
		}
		want := Pending
		if 2*g > n {
			want = Won
		} else if 2*(n-rj) <= n {
			want = Lost
		}
		if got := Vote(voters, votes); got != want {
			t.Fatalf("voters %v votes %v: %v, want %v", voters, votes, got, want)
		}
	}
}

func TestActive(t *testing.T) {
	act := map[string]bool{"a": true, "b": true}
	f := func(id string) bool { return act[id] }
	if !Active([]string{"a", "b", "c"}, nil, f) {
		t.Fatal("2 of 3 active should be a quorum")
	}
	if Active([]string{"a", "b", "c"}, []string{"c", "d", "e"}, f) {
		t.Fatal("joint with inactive outgoing majority should not be active")
	}
}
