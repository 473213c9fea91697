package inmem

import (
	"fmt"
	"math"
	"time"

	"github.com/typedraft/typedraft/raft"
)

type linkKey struct{ from, to raft.NodeID }

type delaySpec struct{ min, max time.Duration }

// faults is the network's fault configuration; guarded by Network.mu.
type faults struct {
	groups   map[raft.NodeID]int // partition group (1-based); absent = rest
	cut      map[linkKey]bool
	isolated map[raft.NodeID]bool
	drop     map[linkKey]float64
	dropAll  float64
	delay    map[linkKey]delaySpec
	delayAll delaySpec
	reorder  bool
}

func newFaults() faults {
	return faults{
		groups:   make(map[raft.NodeID]int),
		cut:      make(map[linkKey]bool),
		isolated: make(map[raft.NodeID]bool),
		drop:     make(map[linkKey]float64),
		delay:    make(map[linkKey]delaySpec),
	}
}

// blocked reports whether the link from -> to is cut by a partition, a Cut or
// an isolation. A node can always reach itself.
func (f *faults) blocked(from, to raft.NodeID) bool {
	if from == to {
		return false
	}
	if f.cut[linkKey{from, to}] || f.isolated[from] || f.isolated[to] {
		return true
	}
	return len(f.groups) > 0 && f.groups[from] != f.groups[to]
}

func (f *faults) dropRate(from, to raft.NodeID) float64 {
	if p, ok := f.drop[linkKey{from, to}]; ok {
		return p
	}
	return f.dropAll
}

func (f *faults) delayOf(from, to raft.NodeID) delaySpec {
	if d, ok := f.delay[linkKey{from, to}]; ok {
		return d
	}
	return f.delayAll
}

// Partition splits the network into the given groups, replacing any earlier
// partition: links between nodes of different groups are cut in both
// directions. Nodes named in no group form one more group together, so
// Partition([]raft.NodeID{"n1"}) separates n1 from everyone else.
// Partition() with no groups removes the partition. Cuts and isolations are
// kept. It returns an error, and changes nothing, if a node is named twice.
func (n *Network) Partition(groups ...[]raft.NodeID) error {
	m := make(map[raft.NodeID]int)
	for gi, g := range groups {
		for _, id := range g {
			if prev, dup := m[id]; dup {
				return fmt.Errorf("inmem: partition: node %q is in groups %d and %d", id, prev-1, gi)
			}
			m[id] = gi + 1
		}
	}
	n.mu.Lock()
	n.faults.groups = m
	n.mu.Unlock()
	n.opts.logger.Debug("partition", "groups", groups)
	return nil
}

// Cut cuts the one-way link from -> to; to -> from is unaffected. Messages
// already queued on the link and not yet delivered are dropped.
func (n *Network) Cut(from, to raft.NodeID) {
	n.mu.Lock()
	n.faults.cut[linkKey{from, to}] = true
	n.mu.Unlock()
}

// Isolate cuts every link to and from id until Heal.
func (n *Network) Isolate(id raft.NodeID) {
	n.mu.Lock()
	n.faults.isolated[id] = true
	n.mu.Unlock()
}

// Heal removes every fault: partitions, cuts, isolations, drop rates and
// delays, and turns reordering off. Messages already delayed keep their
// delivery times.
func (n *Network) Heal() {
	n.mu.Lock()
	n.faults = newFaults()
	n.mu.Unlock()
	n.opts.logger.Debug("healed")
}

func checkRate(p float64) error {
	if math.IsNaN(p) || p < 0 || p > 1 {
		return fmt.Errorf("inmem: drop rate %v outside [0, 1]", p)
	}
	return nil
}

// SetDropRate makes the link from -> to drop each message with probability p,
// overriding SetDropRateAll for that link. Dropped messages are counted but
// not reported unreachable (the loss is silent, as on a real network). It
// returns an error, and changes nothing, unless 0 <= p <= 1.
func (n *Network) SetDropRate(from, to raft.NodeID, p float64) error {
	if err := checkRate(p); err != nil {
		return err
	}
	n.mu.Lock()
	n.faults.drop[linkKey{from, to}] = p
	n.mu.Unlock()
	return nil
}

// SetDropRateAll makes every link drop each message with probability p,
// replacing all rates set by SetDropRate. It returns an error, and changes
// nothing, unless 0 <= p <= 1.
func (n *Network) SetDropRateAll(p float64) error {
	if err := checkRate(p); err != nil {
		return err
	}
	n.mu.Lock()
	n.faults.drop = make(map[linkKey]float64)
	n.faults.dropAll = p
	n.mu.Unlock()
	return nil
}

func checkDelay(min, max time.Duration) error {
	if min < 0 || max < min {
		return fmt.Errorf("inmem: delay [%v, %v] invalid: want 0 <= min <= max", min, max)
	}
	return nil
}

// SetDelay delays each message on the link from -> to by a uniformly random
// duration in [min, max], overriding SetDelayAll for that link. Unless
// SetReorder(true), a message is never delivered before one sent earlier on
// the same link. Snapshot transfers wait the delay once before they start.
// It returns an error, and changes nothing, unless 0 <= min <= max.
func (n *Network) SetDelay(from, to raft.NodeID, min, max time.Duration) error {
	if err := checkDelay(min, max); err != nil {
		return err
	}
	n.mu.Lock()
	n.faults.delay[linkKey{from, to}] = delaySpec{min, max}
	n.mu.Unlock()
	return nil
}

// SetDelayAll delays every link's messages as SetDelay does, replacing all
// delays set by SetDelay. It returns an error, and changes nothing, unless
// 0 <= min <= max.
func (n *Network) SetDelayAll(min, max time.Duration) error {
	if err := checkDelay(min, max); err != nil {
		return err
	}
	n.mu.Lock()
	n.faults.delay = make(map[linkKey]delaySpec)
	n.faults.delayAll = delaySpec{min, max}
	n.mu.Unlock()
	return nil
}

// SetReorder lets delayed messages overtake each other: with on, each message
// is delivered when its own delay expires, so a message with a shorter delay
// can arrive before one sent earlier on the same link. With off (the
// default), each link delivers in send order.
func (n *Network) SetReorder(on bool) {
	n.mu.Lock()
	n.faults.reorder = on
	n.mu.Unlock()
}

// decision is the fate of one message chosen at Send time.
type decision struct {
	drop  bool
	delay time.Duration
}

// decideLocked draws the fate of one message on from -> to; n.mu must be held.
func (n *Network) decideLocked(from, to raft.NodeID) decision {
	var d decision
	if p := n.faults.dropRate(from, to); p > 0 && n.rng.Float64() < p {
		d.drop = true
		return d
	}
	spec := n.faults.delayOf(from, to)
	d.delay = spec.min
	if spread := spec.max - spec.min; spread > 0 {
		d.delay += time.Duration(n.rng.Int63n(int64(spread) + 1))
	}
	return d
}

// blocked reports whether from -> to is cut right now.
func (n *Network) blocked(from, to raft.NodeID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.faults.blocked(from, to)
}
