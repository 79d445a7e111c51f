package placement

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// bruteOwner is the id in ids nearest to key, by linear scan.
func bruteOwner(ids []Key, key Key) (Key, bool) {
	if len(ids) == 0 {
		return Key{}, false
	}
	best := ids[0]
	for _, id := range ids[1:] {
		if xorLess(key, id, best) {
			best = id
		}
	}
	return best, true
}

// bruteSorted is ids sorted by distance to key.
func bruteSorted(ids []Key, key Key) []Key {
	s := slices.Clone(ids)
	slices.SortFunc(s, func(a, b Key) int {
		switch {
		case xorLess(key, a, b):
			return -1
		case xorLess(key, b, a):
			return 1
		}
		return 0
	})
	return s
}

func randomRing(rng *rand.Rand, n int) (*Ring, []Key) {
	r := NewRing()
	ids := make([]Key, 0, n)
	for i := range n {
		id := randKey(rng)
		if !r.Add(Node{ID: id, Name: fmt.Sprintf("n%d", i), Addr: fmt.Sprintf("10.0.0.%d:7070", i)}) {
			panic("random id collision")
		}
		ids = append(ids, id)
	}
	return r, ids
}

func nodeIDs(ns []Node) []Key {
	out := make([]Key, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return out
}

func TestRing_EmptyHasNoOwnerCandidatesOrShare(t *testing.T) {
	r := NewRing()
	if _, ok := r.Owner(Key{1}); ok {
		t.Error("empty ring has an owner")
	}
	if got := r.Candidates(Key{1}, 3, nil); len(got) != 0 {
		t.Errorf("empty ring has candidates %v", got)
	}
	if r.Share(Key{1}) != 0 || r.Len() != 0 || len(r.Nodes()) != 0 || r.Remove(Key{1}) {
		t.Error("empty ring is not empty")
	}
	if _, ok := r.Get(Key{1}); ok {
		t.Error("empty ring Get found a node")
	}
}

func TestRing_AddRemoveGetAndNodesInIDOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	r, ids := randomRing(rng, 200)
	if r.Len() != 200 {
		t.Fatalf("Len = %d", r.Len())
	}
	if r.Add(Node{ID: ids[7], Name: "dup"}) {
		t.Error("Add of a present id succeeded")
	}
	if n, _ := r.Get(ids[7]); n.Name != "n7" {
		t.Errorf("a refused Add changed the node: %+v", n)
	}
	got := nodeIDs(r.Nodes())
	want := slices.Clone(ids)
	slices.SortFunc(want, func(a, b Key) int {
		if keyLess(&a, &b) {
			return -1
		}
		if keyLess(&b, &a) {
			return 1
		}
		return 0
	})
	if !slices.Equal(got, want) {
		t.Fatal("Nodes is not every id in id order")
	}
	for i, id := range ids {
		if i%2 == 0 {
			if !r.Remove(id) {
				t.Fatalf("Remove(%s) = false", id)
			}
		}
	}
	if r.Len() != 100 {
		t.Fatalf("Len after removing half = %d", r.Len())
	}
	for i, id := range ids {
		n, ok := r.Get(id)
		if ok != (i%2 == 1) {
			t.Fatalf("Get(ids[%d]) ok = %v", i, ok)
		}
		if ok && n.Name != fmt.Sprintf("n%d", i) {
			t.Fatalf("Get(ids[%d]) = %+v", i, n)
		}
		if i%2 == 0 && r.Remove(id) {
			t.Fatal("second Remove succeeded")
		}
	}
	if _, ok := r.Get(randKey(rng)); ok {
		t.Error("Get of an absent id found a node")
	}
}

func TestRing_OwnerIsTheNearestNodeByLinearScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 2, 3, 17, 1000} {
		r, ids := randomRing(rng, n)
		for range 2000 {
			key := randKey(rng)
			if rng.IntN(3) == 0 { // keys near a node exercise deep branchings
				key = ids[rng.IntN(len(ids))]
				key[31] ^= byte(rng.IntN(256))
			}
			want, _ := bruteOwner(ids, key)
			got, ok := r.Owner(key)
			if !ok || got.ID != want {
				t.Fatalf("n=%d: Owner(%s) = %s, want %s", n, key, got.ID, want)
			}
		}
	}
}

func TestRing_CandidatesAreTheKNearestInDistanceOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	r, ids := randomRing(rng, 300)
	for range 500 {
		key := randKey(rng)
		k := rng.IntN(len(ids) + 5)
		got := nodeIDs(r.Candidates(key, k, nil))
		want := bruteSorted(ids, key)[:min(k, len(ids))]
		if !slices.Equal(got, want) {
			t.Fatalf("Candidates(%s, %d) differ from the brute-force order", key, k)
		}
	}
	// Every node, nearest first, when k is large.
	key := randKey(rng)
	if got := nodeIDs(r.Candidates(key, 1<<20, nil)); !slices.Equal(got, bruteSorted(ids, key)) {
		t.Error("Candidates with k > Len is not every node in order")
	}
	if got := r.Candidates(key, 0, nil); len(got) != 0 {
		t.Error("Candidates with k = 0 returned nodes")
	}
	if owner, _ := r.Owner(key); r.Candidates(key, 1, nil)[0] != owner {
		t.Error("the first candidate is not the owner")
	}
}

func TestRing_CandidatesAppendsToDst(t *testing.T) {
	r, _ := randomRing(rand.New(rand.NewPCG(9, 9)), 10)
	sentinel := Node{Name: "keep"}
	got := r.Candidates(Key{}, 2, []Node{sentinel})
	if len(got) != 3 || got[0] != sentinel {
		t.Errorf("Candidates did not append: %v", got)
	}
}

func TestRing_CandidatesAndOwnerDoNotAllocate(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 11))
	r, _ := randomRing(rng, 5000)
	keys := make([]Key, 64)
	for i := range keys {
		keys[i] = randKey(rng)
	}
	dst := make([]Node, 0, 3)
	i := 0
	if a := testing.AllocsPerRun(1000, func() {
		dst = r.Candidates(keys[i%len(keys)], 3, dst[:0])
		i++
	}); a != 0 {
		t.Errorf("Candidates allocates %.1f times per call", a)
	}
	if a := testing.AllocsPerRun(1000, func() {
		_, _ = r.Owner(keys[i%len(keys)])
		i++
	}); a != 0 {
		t.Errorf("Owner allocates %.1f times per call", a)
	}
}

func TestRing_SharesSumToOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 13))
	for _, n := range []int{1, 2, 5, 100, 4000} {
		r, ids := randomRing(rng, n)
		sum := 0.0
		for _, id := range ids {
			s := r.Share(id)
			if s <= 0 || s > 1 {
				t.Fatalf("n=%d: Share = %g", n, s)
			}
			sum += s
		}
		if math.Abs(sum-1) > 1e-12 {
			t.Errorf("n=%d: shares sum to %.15f", n, sum)
		}
	}
	r, _ := randomRing(rng, 3)
	if r.Share(randKey(rng)) != 0 {
		t.Error("an absent node has a share")
	}
}

func TestRing_ShareIsExactOnAKeySpaceSmallEnoughToEnumerate(t *testing.T) {
	// Ids that differ only in their first byte: the owner of a key depends
	// only on the key's first byte, so counting over the 256 first bytes
	// is the exact share. Sparse sets leave bits where paths do not
	// branch, where 2^-(unique prefix length) would be wrong.
	rng := rand.New(rand.NewPCG(14, 15))
	for trial := range 200 {
		r := NewRing()
		var ids []Key
		for _, b := range rng.Perm(256)[:1+rng.IntN(12)] {
			id := prefixKey(byte(b))
			r.Add(Node{ID: id})
			ids = append(ids, id)
		}
		count := map[Key]int{}
		for b := range 256 {
			o, _ := bruteOwner(ids, prefixKey(byte(b)))
			count[o]++
		}
		for _, id := range ids {
			if got, want := r.Share(id), float64(count[id])/256; got != want {
				t.Fatalf("trial %d: Share(%x…) = %g, want %g (ids %d)", trial, id[0], got, want, len(ids))
			}
		}
	}
}

func TestRing_ShareMatchesASampledEstimate(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 17))
	r, ids := randomRing(rng, 20)
	const samples = 200_000
	count := map[Key]int{}
	for range samples {
		o, _ := r.Owner(randKey(rng))
		count[o.ID]++
	}
	for _, id := range ids {
		p := r.Share(id)
		sigma := math.Sqrt(p * (1 - p) / samples)
		if got := float64(count[id]) / samples; math.Abs(got-p) > 5*sigma+1e-9 {
			t.Errorf("node %s: sampled share %.5f, Share %.5f (σ %.5f)", id, got, p, sigma)
		}
	}
}

func TestRing_CloneIsIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 19))
	r, ids := randomRing(rng, 50)
	c := r.Clone()
	if !slices.Equal(r.Nodes(), c.Nodes()) || c.Len() != r.Len() {
		t.Fatal("clone differs from the original")
	}
	extra := randKey(rng)
	c.Add(Node{ID: extra, Name: "only in clone"})
	c.Remove(ids[0])
	r.Remove(ids[1])
	if _, ok := r.Get(extra); ok {
		t.Error("a node added to the clone shows in the original")
	}
	if _, ok := r.Get(ids[0]); !ok {
		t.Error("a node removed from the clone left the original")
	}
	if _, ok := c.Get(ids[1]); !ok {
		t.Error("a node removed from the original left the clone")
	}
	if r.Len() != 49 || c.Len() != 50 {
		t.Errorf("Len original %d clone %d, want 49 and 50", r.Len(), c.Len())
	}
	for range 500 {
		key := randKey(rng)
		o, _ := c.Owner(key)
		want, _ := bruteOwner(nodeIDs(c.Nodes()), key)
		if o.ID != want {
			t.Fatal("the clone's trie answers wrongly")
		}
	}
	if NewRing().Clone().Len() != 0 {
		t.Error("clone of an empty ring is not empty")
	}
}
