package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	goruntime "runtime"
	"slices"
	"time"

	"github.com/muprotocol/mu/libs/placement"
)

// The placement step: package placement's data structures, in this
// process (no region, no load generator). A table of 10,000 nodes and
// 1,000,000 stacks with ids from a seeded PRNG (the seed is in the
// figures' notes) is built; then lookups are timed on the ring (Owner,
// Candidates with k = 3, as the gateway calls them per request), and
// 200 nodes join and then 200 random nodes leave, one at a time, each
// re-placement timed and its moved stacks counted against the
// 1,000,000 / N a uniform spread predicts. Quick mode runs 1,000 nodes,
// 100,000 stacks and 50 joins and leaves (the same 100 stacks per node).

// placementSeed seeds every id of the step, so runs are comparable.
const placementSeed = 0x6d75_706c_6163_6531

type placementPlan struct {
	nodes, stacks, changes int
	lookups                int
}

func (s *Suite) runPlacement(ctx context.Context) error {
	plan := placementPlan{nodes: 10_000, stacks: 1_000_000, changes: 200, lookups: 2_000_000}
	if s.opts.Quick {
		plan = placementPlan{nodes: 1_000, stacks: 100_000, changes: 50, lookups: 200_000}
	}
	rng := rand.New(rand.NewPCG(placementSeed, 0))
	key := func() placement.Key {
		var k placement.Key
		for i := 0; i < len(k); i += 8 {
			binary.BigEndian.PutUint64(k[i:], rng.Uint64())
		}
		return k
	}
	seedNote := fmt.Sprintf("%d nodes, %d stacks, PCG seed %#x", plan.nodes, plan.stacks, uint64(placementSeed))

	// Build.
	t := placement.NewTable()
	t0 := time.Now()
	for i := range plan.nodes {
		t.AddNode(placement.Node{ID: key(), Name: fmt.Sprintf("runtime-%d", i)})
	}
	nodesTime := time.Since(t0)
	t0 = time.Now()
	for range plan.stacks {
		t.AddStack(key())
	}
	stacksTime := time.Since(t0)
	heap := heapInUse()
	s.res.add("placement_build_nodes_ms", ms(nodesTime), "ms", "Table.AddNode of every node into an empty table; "+seedNote)
	s.res.add("placement_build_stacks_ms", ms(stacksTime), "ms", "Table.AddStack of every stack, the nodes in place (trie lookup + B-tree insert each); "+seedNote)
	s.res.add("placement_heap_mib", float64(heap)/(1<<20), "MiB", "Go heap in use after the build and a GC (of the whole bench process; the table is nearly all of it)")
	if err := ctx.Err(); err != nil {
		return err
	}

	// Lookups on the ring, as the gateway does them.
	r := t.Ring()
	keys := make([]placement.Key, 1<<16)
	for i := range keys {
		keys[i] = key()
	}
	var sink byte
	ownerNs, ownerAllocs := timePerOp(plan.lookups, func(i int) {
		n, _ := r.Owner(keys[i&(len(keys)-1)])
		sink ^= n.ID[0]
	})
	dst := make([]placement.Node, 0, 3)
	candNs, candAllocs := timePerOp(plan.lookups, func(i int) {
		dst = r.Candidates(keys[i&(len(keys)-1)], 3, dst[:0])
		sink ^= dst[2].ID[0]
	})
	t0 = time.Now()
	const clones = 20
	for range clones {
		if r.Clone().Len() != r.Len() {
			return fmt.Errorf("placement: a clone lost nodes")
		}
	}
	cloneTime := time.Since(t0) / clones
	_ = sink
	s.res.add("placement_owner_ns", ownerNs, "ns", fmt.Sprintf("Ring.Owner of a random key, mean of %d; %d nodes", plan.lookups, plan.nodes))
	s.res.add("placement_owner_allocs", ownerAllocs, "allocs", "heap allocations per Ring.Owner")
	s.res.add("placement_candidates3_ns", candNs, "ns", fmt.Sprintf("Ring.Candidates(key, 3, dst) into a dst with room, mean of %d; %d nodes", plan.lookups, plan.nodes))
	s.res.add("placement_candidates3_allocs", candAllocs, "allocs", "heap allocations per Ring.Candidates with room in dst")
	s.res.add("placement_clone_ms", ms(cloneTime), "ms", fmt.Sprintf("Ring.Clone of %d nodes (what the gateway publishes per membership change), mean of %d", plan.nodes, clones))

	// Shares and balance before the churn.
	maxShare, minShare := 0.0, 1.0
	maxOwned := 0
	var owned []placement.Key
	for _, n := range r.Nodes() {
		sh := r.Share(n.ID)
		maxShare, minShare = max(maxShare, sh), min(minShare, sh)
		owned = t.OwnedBy(n.ID, owned[:0])
		maxOwned = max(maxOwned, len(owned))
	}
	N := float64(plan.nodes)
	s.res.add("placement_max_share_ratio", maxShare*N, "×", fmt.Sprintf("the largest Ring.Share × N (1 = a fair share 1/N); the smallest is %.3f×", minShare*N))
	s.res.add("placement_max_stacks_ratio", float64(maxOwned)/(float64(plan.stacks)/N), "×",
		fmt.Sprintf("the most stacks one node owns (%d) over stacks/N (%.0f)", maxOwned, float64(plan.stacks)/N))

	// Churn: joins, then leaves of random members.
	joins := make([]placementChange, 0, plan.changes)
	for range plan.changes {
		n := placement.Node{ID: key(), Name: "joiner"}
		expect := float64(t.Stacks()) / float64(r.Len()+1)
		t0 := time.Now()
		moved := len(t.AddNode(n))
		joins = append(joins, placementChange{time.Since(t0), moved, expect})
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	leaves := make([]placementChange, 0, plan.changes)
	members := r.Nodes()
	for range plan.changes {
		i := rng.IntN(len(members))
		id := members[i].ID
		members[i] = members[len(members)-1]
		members = members[:len(members)-1]
		expect := float64(t.Stacks()) / float64(r.Len())
		t0 := time.Now()
		moved := len(t.RemoveNode(id))
		leaves = append(leaves, placementChange{time.Since(t0), moved, expect})
	}
	for _, side := range []struct {
		name, what string
		cs         []placementChange
	}{
		{"join", "Table.AddNode of a new random node", joins},
		{"leave", "Table.RemoveNode of a random member", leaves},
	} {
		st := summarizePlacement(side.cs)
		n := len(side.cs)
		s.res.add("placement_"+side.name+"_us", us(st.meanTime), "µs", fmt.Sprintf("%s, mean of %d one after another (returning the moves); slowest %s", side.what, n, dur(st.maxTime)))
		s.res.add("placement_"+side.name+"_max_us", us(st.maxTime), "µs", fmt.Sprintf("slowest of the %d %ss", n, side.name))
		s.res.add("placement_"+side.name+"_moved_ratio", st.movedRatio, "ratio",
			fmt.Sprintf("mean stacks moved per %s (%.1f) over the expected stacks/N (%.1f)", side.name, st.meanMoved, st.meanExpect))
		s.res.add("placement_"+side.name+"_moved_p50", float64(st.p50), "stacks", fmt.Sprintf("median stacks moved per %s; expected ≈ %.0f", side.name, st.meanExpect))
		s.res.add("placement_"+side.name+"_moved_p99", float64(st.p99), "stacks", fmt.Sprintf("99th percentile of stacks moved per %s (max %d)", side.name, st.max))
		s.logf("placement: %s mean %s (max %s), moved mean %.1f / expected %.1f = %.3f, p50 %d p99 %d max %d",
			side.name, dur(st.meanTime), dur(st.maxTime), st.meanMoved, st.meanExpect, st.movedRatio, st.p50, st.p99, st.max)
	}
	s.logf("placement: %s; build nodes %s, stacks %s; heap %.0f MiB; Owner %.0f ns (%.0f allocs), Candidates(3) %.0f ns (%.0f allocs); clone %s; max share %.2f×, max stacks %.2f×",
		seedNote, dur(nodesTime), dur(stacksTime), float64(heap)/(1<<20), ownerNs, ownerAllocs, candNs, candAllocs, dur(cloneTime), maxShare*N, float64(maxOwned)/(float64(plan.stacks)/N))
	return nil
}

// placementChange is one join or leave: its time, the stacks it moved and
// the stacks a uniform spread would move.
type placementChange struct {
	took   time.Duration
	moved  int
	expect float64
}

type placementSummary struct {
	meanTime, maxTime     time.Duration
	meanMoved, meanExpect float64
	movedRatio            float64
	p50, p99, max         int
}

func summarizePlacement(cs []placementChange) placementSummary {
	var st placementSummary
	moved := make([]int, len(cs))
	var total time.Duration
	for i, c := range cs {
		total += c.took
		st.maxTime = max(st.maxTime, c.took)
		st.meanMoved += float64(c.moved)
		st.meanExpect += c.expect
		moved[i] = c.moved
	}
	n := float64(len(cs))
	st.meanTime = total / time.Duration(len(cs))
	st.meanMoved /= n
	st.meanExpect /= n
	st.movedRatio = st.meanMoved / st.meanExpect
	slices.Sort(moved)
	st.p50 = moved[nearestRank(len(moved), 0.50)]
	st.p99 = moved[nearestRank(len(moved), 0.99)]
	st.max = moved[len(moved)-1]
	return st
}

// nearestRank is the index of the q-quantile of n sorted values.
func nearestRank(n int, q float64) int {
	return max(0, int(math.Ceil(q*float64(n)))-1)
}

// timePerOp runs op(i) for i in [0, n) and returns the mean time in ns
// and the heap allocations per call.
func timePerOp(n int, op func(i int)) (ns, allocs float64) {
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	t0 := time.Now()
	for i := range n {
		op(i)
	}
	took := time.Since(t0)
	goruntime.ReadMemStats(&after)
	return float64(took.Nanoseconds()) / float64(n), float64(after.Mallocs-before.Mallocs) / float64(n)
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	goruntime.GC()
	var m goruntime.MemStats
	goruntime.ReadMemStats(&m)
	return m.HeapAlloc
}
