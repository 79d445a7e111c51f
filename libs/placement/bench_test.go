package placement

import (
	"math/rand/v2"
	"testing"
)

func benchKeys(rng *rand.Rand, n int) []Key {
	ks := make([]Key, n)
	for i := range ks {
		ks[i] = randKey(rng)
	}
	return ks
}

func BenchmarkRing_Owner10kNodes(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	r, _ := randomRing(rng, 10_000)
	keys := benchKeys(rng, 4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.Owner(keys[i&4095])
		i++
	}
}

func BenchmarkRing_Candidates3(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	r, _ := randomRing(rng, 10_000)
	keys := benchKeys(rng, 4096)
	dst := make([]Node, 0, 3)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		dst = r.Candidates(keys[i&4095], 3, dst[:0])
		i++
	}
}

func BenchmarkRing_Clone10kNodes(b *testing.B) {
	r, _ := randomRing(rand.New(rand.NewPCG(3, 3)), 10_000)
	b.ReportAllocs()
	for b.Loop() {
		r.Clone()
	}
}

// benchTable is a table of nodes nodes and stacks random stacks.
func benchTable(b *testing.B, rng *rand.Rand, nodes, stacks int) *Table {
	b.Helper()
	t := NewTable()
	for range nodes {
		t.AddNode(Node{ID: randKey(rng)})
	}
	for range stacks {
		t.AddStack(randKey(rng))
	}
	return t
}

func BenchmarkTable_AddStack10kNodes(b *testing.B) {
	rng := rand.New(rand.NewPCG(4, 4))
	t := benchTable(b, rng, 10_000, 0)
	keys := benchKeys(rng, 1<<20)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		t.AddStack(keys[i&(1<<20-1)])
		i++
	}
}

// BenchmarkTable_JoinLeave joins a random node to 10,000 nodes holding
// 1,000,000 stacks and removes it again, per op.
func BenchmarkTable_JoinLeave(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a table of 1,000,000 stacks")
	}
	rng := rand.New(rand.NewPCG(5, 5))
	t := benchTable(b, rng, 10_000, 1_000_000)
	moved, probes0 := 0, t.probes
	b.ReportAllocs()
	for b.Loop() {
		n := Node{ID: randKey(rng)}
		moved += len(t.AddNode(n))
		moved += len(t.RemoveNode(n.ID))
	}
	b.ReportMetric(float64(moved)/float64(2*b.N), "moved/change")
	b.ReportMetric(float64(t.probes-probes0)/float64(2*b.N), "probes/change")
}
