package placement

import (
	"math"

	"github.com/google/btree"
)

// Table is a Ring plus the stacks placed on it, each with its current
// owner. Joins and leaves return exactly the stacks whose owner changed,
// found without visiting the others. It is not safe for concurrent use.
//
// The stacks are kept in key order in a B-tree. A node owns one region of
// the key space, the keys that agree with its id at the branching bits on
// its path in the ring's trie: a join moves to the new node exactly the
// stacks in its new region (they all belonged to the nodes below its new
// sibling), and a leave re-places exactly the stacks in the leaver's
// region, each with one O(id bits) lookup; the owner of each stack is
// kept beside the B-tree and changed in place. A region is one range of
// keys per value of the bits before its last branching bit where the
// path does not branch (usually a few such bits, often none), so the
// table walks it range by range, seeking past each gap: besides the
// stacks that move it looks at one stack in each gap that holds any
// (about 3.7 per join or leave in BenchmarkTable_JoinLeave: 10,000 nodes,
// 1,000,000 stacks, about 100 moved).
//
// Stack slots are 32-bit: a table holds at most 2^32 stacks.
type Table struct {
	ring   *Ring
	stacks *btree.BTreeG[stackEntry]
	// owners[slot] is the owner's leaf in ring of the stack with that
	// slot (nil while the ring is empty): kept beside the B-tree so that
	// a move changes it in place, without a B-tree write.
	owners []*tnode
	free   []uint32 // slots of removed stacks, for reuse
	// probes counts the stacks outside a region that region scans looked
	// at (one per range boundary met); tests and benchmarks read it.
	probes int
}

// stackEntry is a placed stack and its slot in owners.
type stackEntry struct {
	key  Key
	slot uint32
}

func entryLess(a, b stackEntry) bool { return keyLess(&a.key, &b.key) }

// btreeDegree suits 36-byte items: nodes of up to 63 items, about 2.3 KiB.
const btreeDegree = 32

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{ring: NewRing(), stacks: btree.NewG(btreeDegree, entryLess)}
}

// Ring is the table's ring (do not modify it; Clone it to share it).
func (t *Table) Ring() *Ring { return t.ring }

// AddNode adds n and returns the stacks that moved to it, in stack order;
// nil (and no change) when a node with its id is there. When the ring was
// empty every placed stack moves, with HasFrom false.
func (t *Table) AddNode(n Node) []Move {
	l := t.ring.insert(n)
	if l == nil {
		return nil
	}
	rg := t.ring.regionOf(l)
	moves := make([]Move, 0, t.expected(&rg))
	t.scan(&rg, func(e stackEntry) {
		m := Move{Stack: e.key, To: n.ID, HasTo: true}
		if from := t.owners[e.slot]; from != nil {
			m.From, m.HasFrom = from.node.ID, true
		}
		t.owners[e.slot] = l
		moves = append(moves, m)
	})
	return moves
}

// RemoveNode removes the node with id and returns its stacks, each with
// its new owner, in stack order; nil when there is no such node. When the
// ring becomes empty the stacks stay placed, with HasTo false.
func (t *Table) RemoveNode(id NodeID) []Move {
	l := t.ring.find(&id)
	if l == nil {
		return nil
	}
	rg := t.ring.regionOf(l)
	t.ring.remove(&id)
	moves := make([]Move, 0, t.expected(&rg))
	t.scan(&rg, func(e stackEntry) {
		m := Move{Stack: e.key, From: id, HasFrom: true}
		to := t.ring.leafFor(&e.key)
		if to != nil {
			m.To, m.HasTo = to.node.ID, true
		}
		t.owners[e.slot] = to
		moves = append(moves, m)
	})
	return moves
}

// expected is a capacity for the moves out of rg: a little over its share
// of the placed stacks, as if their keys were uniform.
func (t *Table) expected(rg *region) int {
	e := math.Ldexp(float64(t.stacks.Len()), -rg.branchings())
	return int(min(e*1.25+8, float64(t.stacks.Len())))
}

// scan calls fn, in key order, for every placed stack in rg. fn must not
// change the table.
func (t *Table) scan(rg *region, fn func(stackEntry)) {
	from := rg.first()
	for {
		var outside Key
		stopped := false
		t.stacks.AscendGreaterOrEqual(stackEntry{key: from}, func(e stackEntry) bool {
			if rg.contains(&e.key) {
				fn(e)
				return true
			}
			outside, stopped = e.key, true
			return false
		})
		if !stopped {
			return
		}
		t.probes++
		next, ok := rg.after(&outside)
		if !ok {
			return
		}
		from = next
	}
}

// AddStack places a stack (again: a no-op for a placed one) and returns
// its owner; false when the ring is empty (the stack is placed all the
// same, and moves to the first node that joins).
func (t *Table) AddStack(s Key) (Node, bool) {
	l := t.ring.leafFor(&s)
	var slot uint32
	if n := len(t.free); n > 0 {
		slot, t.free = t.free[n-1], t.free[:n-1]
		t.owners[slot] = l
	} else {
		slot = uint32(len(t.owners))
		t.owners = append(t.owners, l)
	}
	// One descent: a stack already placed gets the new slot and gives
	// back its old one (its owner is l all the same).
	if old, placed := t.stacks.ReplaceOrInsert(stackEntry{key: s, slot: slot}); placed {
		t.release(old.slot)
	}
	if l == nil {
		return Node{}, false
	}
	return *l.node, true
}

// RemoveStack forgets a stack (a no-op for one not placed).
func (t *Table) RemoveStack(s Key) {
	if old, placed := t.stacks.Delete(stackEntry{key: s}); placed {
		t.release(old.slot)
	}
}

func (t *Table) release(slot uint32) {
	t.owners[slot] = nil
	t.free = append(t.free, slot)
}

// Owner is the owner of a placed or unplaced stack.
func (t *Table) Owner(s Key) (Node, bool) { return t.ring.Owner(s) }

// Stacks is the number of placed stacks.
func (t *Table) Stacks() int { return t.stacks.Len() }

// OwnedBy appends to dst the placed stacks that node id owns, in key
// order (none when id is not in the ring), visiting only those stacks and
// one past each range of its region.
func (t *Table) OwnedBy(id NodeID, dst []Key) []Key {
	l := t.ring.find(&id)
	if l == nil {
		return dst
	}
	rg := t.ring.regionOf(l)
	t.scan(&rg, func(e stackEntry) { dst = append(dst, e.key) })
	return dst
}

// Each calls fn for every placed stack and its owner (the zero Node while
// the ring is empty), in stack order, until fn returns false. fn must not
// change the table.
func (t *Table) Each(fn func(stack Key, owner Node) bool) {
	t.stacks.Ascend(func(e stackEntry) bool {
		var n Node
		if o := t.owners[e.slot]; o != nil {
			n = *o.node
		}
		return fn(e.key, n)
	})
}
