package placement

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// keyGen draws keys of three kinds: uniformly random ones; ones that vary
// in the first byte and a few low bits only, so that ids share long
// prefixes, paths skip bits and regions split into several ranges; and
// ones from a handful of fixed patterns, so that nodes and stacks collide.
func keyGen() *rapid.Generator[Key] {
	return rapid.Custom(func(t *rapid.T) Key {
		var k Key
		switch rapid.IntRange(0, 2).Draw(t, "kind") {
		case 0:
			copy(k[:], rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "bytes"))
		case 1:
			k[0] = rapid.Byte().Draw(t, "b0")
			k[1] = rapid.SampledFrom([]byte{0, 0x80, 0xff}).Draw(t, "b1")
			k[31] = byte(rapid.IntRange(0, 3).Draw(t, "b31"))
		default:
			k[0] = rapid.SampledFrom([]byte{0x00, 0x0f, 0x30, 0x70, 0x80, 0xc3}).Draw(t, "pattern")
		}
		return k
	})
}

func sortedKeys(ks []Key) []Key {
	slices.SortFunc(ks, func(a, b Key) int {
		switch {
		case keyLess(&a, &b):
			return -1
		case keyLess(&b, &a):
			return 1
		}
		return 0
	})
	return ks
}

// tableModel checks a Table against brute force: the node ids and the
// stacks, with owners found by linear scan.
type tableModel struct {
	tb     *Table
	nodes  map[Key]Node
	stacks map[Key]bool
}

func (m *tableModel) ids() []Key { return slices.Collect(maps.Keys(m.nodes)) }

// owners is every stack's brute-force owner (absent: no node).
func (m *tableModel) owners() map[Key]Key {
	ids := m.ids()
	out := make(map[Key]Key, len(m.stacks))
	for s := range m.stacks {
		if o, ok := bruteOwner(ids, s); ok {
			out[s] = o
		}
	}
	return out
}

// checkMoves asserts that moves are exactly the stacks whose owner
// changed from before to after, in stack order, with the right ends.
func (m *tableModel) checkMoves(t *rapid.T, what string, moves []Move, before, after map[Key]Key) {
	var want []Key
	for s := range m.stacks {
		b, hadB := before[s]
		a, hasA := after[s]
		if hadB != hasA || b != a {
			want = append(want, s)
		}
	}
	want = sortedKeys(want)
	if got := moveStacks(moves); !slices.Equal(got, want) {
		t.Fatalf("%s: moved %d stacks %v, want %d %v", what, len(got), got, len(want), want)
	}
	for _, mv := range moves {
		b, hadB := before[mv.Stack]
		a, hasA := after[mv.Stack]
		if mv.HasFrom != hadB || mv.From != b || mv.HasTo != hasA || mv.To != a {
			t.Fatalf("%s: move %+v, want from %s (%v) to %s (%v)", what, mv, b, hadB, a, hasA)
		}
	}
}

func (m *tableModel) addNode(t *rapid.T) {
	id := keyGen().Draw(t, "node")
	n := Node{ID: id, Name: fmt.Sprintf("node-%x", id[:4])}
	before := m.owners()
	moves := m.tb.AddNode(n)
	if _, there := m.nodes[id]; there {
		if moves != nil {
			t.Fatalf("AddNode of a present node moved %d stacks", len(moves))
		}
		return
	}
	m.nodes[id] = n
	m.checkMoves(t, "AddNode", moves, before, m.owners())
}

func (m *tableModel) removeNode(t *rapid.T) {
	var id Key
	if len(m.nodes) > 0 && rapid.IntRange(0, 5).Draw(t, "absent") > 0 {
		id = rapid.SampledFrom(sortedKeys(m.ids())).Draw(t, "leaver")
	} else {
		id = keyGen().Draw(t, "leaver")
	}
	before := m.owners()
	moves := m.tb.RemoveNode(id)
	if _, there := m.nodes[id]; !there {
		if moves != nil {
			t.Fatalf("RemoveNode of an absent node moved %d stacks", len(moves))
		}
		return
	}
	delete(m.nodes, id)
	m.checkMoves(t, "RemoveNode", moves, before, m.owners())
}

func (m *tableModel) addStack(t *rapid.T) {
	s := keyGen().Draw(t, "stack")
	o, ok := m.tb.AddStack(s)
	m.stacks[s] = true
	want, wantOK := bruteOwner(m.ids(), s)
	if ok != wantOK || o.ID != want || (ok && o != m.nodes[want]) {
		t.Fatalf("AddStack(%s) = %+v %v, want %s %v", s, o, ok, want, wantOK)
	}
}

func (m *tableModel) removeStack(t *rapid.T) {
	if len(m.stacks) == 0 {
		t.Skip("no stacks")
	}
	s := rapid.SampledFrom(sortedKeys(slices.Collect(maps.Keys(m.stacks)))).Draw(t, "stack")
	m.tb.RemoveStack(s)
	delete(m.stacks, s)
}

func (m *tableModel) check(t *rapid.T) {
	owners := m.owners()
	var seen []Key
	m.tb.Each(func(s Key, owner Node) bool {
		seen = append(seen, s)
		want, ok := owners[s]
		if ok && owner != m.nodes[want] || !ok && owner != (Node{}) {
			t.Fatalf("stack %s is on %s, its nearest node is %s", s, owner.ID, want)
		}
		return true
	})
	if !slices.Equal(seen, sortedKeys(slices.Collect(maps.Keys(m.stacks)))) || m.tb.Stacks() != len(m.stacks) {
		t.Fatalf("the table holds %d stacks, want %d", len(seen), len(m.stacks))
	}
	if m.tb.Ring().Len() != len(m.nodes) {
		t.Fatalf("the ring has %d nodes, want %d", m.tb.Ring().Len(), len(m.nodes))
	}
	byOwner := map[Key][]Key{}
	for _, s := range seen {
		if o, ok := owners[s]; ok {
			byOwner[o] = append(byOwner[o], s)
		}
	}
	sum := 0.0
	for id := range m.nodes {
		if got := m.tb.OwnedBy(id, nil); !slices.Equal(got, byOwner[id]) {
			t.Fatalf("OwnedBy(%s) = %v, want %v", id, got, byOwner[id])
		}
		sum += m.tb.Ring().Share(id)
	}
	if len(m.nodes) > 0 && math.Abs(sum-1) > 1e-12 {
		t.Fatalf("shares sum to %g", sum)
	}
}

func TestTable_PropertyOwnersAndMovesMatchBruteForce(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := &tableModel{tb: NewTable(), nodes: map[Key]Node{}, stacks: map[Key]bool{}}
		t.Repeat(map[string]func(*rapid.T){
			"AddNode":     m.addNode,
			"RemoveNode":  m.removeNode,
			"AddStack":    m.addStack,
			"AddStack2":   m.addStack, // stacks outnumber nodes
			"RemoveStack": m.removeStack,
			"":            m.check,
		})
	})
}

func TestRing_PropertyCandidatesAreTheBruteForceDistanceOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ids := rapid.SliceOfNDistinct(keyGen(), 0, 40, func(k Key) Key { return k }).Draw(t, "ids")
		r := NewRing()
		for _, id := range ids {
			r.Add(Node{ID: id})
		}
		// Remove some again, to exercise removal's relinking.
		for _, id := range rapid.SliceOfN(rapid.SampledFrom(append(ids, Key{})), 0, 5).Draw(t, "removed") {
			if r.Remove(id) {
				ids = slices.DeleteFunc(ids, func(k Key) bool { return k == id })
			}
		}
		key := keyGen().Draw(t, "key")
		k := rapid.IntRange(0, len(ids)+2).Draw(t, "k")
		got := nodeIDs(r.Candidates(key, k, nil))
		want := bruteSorted(ids, key)[:min(k, len(ids))]
		if !slices.Equal(got, want) {
			t.Fatalf("Candidates(%s, %d) = %v, want %v", key, k, got, want)
		}
		wantOwner, wantOK := bruteOwner(ids, key)
		if o, ok := r.Owner(key); ok != wantOK || o.ID != wantOwner {
			t.Fatalf("Owner(%s) = %s", key, o.ID)
		}
	})
}
