package evict

import (
	"fmt"
	"testing"
)

func TestPolicy_EvictsCheapLargeRarelyUsedFirst(t *testing.T) {
	p := New[string]()
	p.Touch("big-cheap", 1, 1000)
	p.Touch("small-expensive", 100, 10)
	p.Touch("hot", 1, 100)
	for range 20 {
		p.Touch("hot", 1, 100)
	}
	if got := p.Size(); got != 1110 {
		t.Fatalf("size = %d, want 1110", got)
	}
	want := []string{"big-cheap", "hot", "small-expensive"}
	for _, w := range want {
		k, ok := p.Victim()
		if !ok || k != w {
			t.Fatalf("victim = %q %v, want %q", k, ok, w)
		}
	}
	if _, ok := p.Victim(); ok {
		t.Fatal("victim from empty policy")
	}
	if p.Size() != 0 || p.Len() != 0 {
		t.Fatalf("size %d len %d after draining", p.Size(), p.Len())
	}
}

// TestPolicy_AgingLetsNewEntriesDisplaceOldPopularOnes: an entry that was
// popular once outranks fresh entries at first, but every eviction raises
// the inflation clock, and fresh entries are ranked from the clock, so they
// soon outrank it and it is evicted in their place. Without the clock every
// fresh entry would go first, forever.
func TestPolicy_AgingLetsNewEntriesDisplaceOldPopularOnes(t *testing.T) {
	p := New[string]()
	for range 5 {
		p.Touch("old", 1, 2) // prio 0 + 5×1/2 = 2.5
	}
	// Fresh one-use entries of cost 1 and size 1 have prio clock + 1. The
	// first two lose to "old" (prio 1 and 2) and move the clock to 1, then 2;
	// the third has prio 3 and outlives it.
	for k := 1; k <= 3; k++ {
		fresh := fmt.Sprintf("fresh%d", k)
		p.Touch(fresh, 1, 1)
		want := fresh
		if k == 3 {
			want = "old"
		}
		if got, _ := p.Victim(); got != want {
			t.Fatalf("round %d: victim = %q, want %q", k, got, want)
		}
	}
	if p.Len() != 1 || !p.Contains("fresh3") {
		t.Fatalf("left %d entries, want only fresh3", p.Len())
	}
}

func TestPolicy_ResizeAndRemove(t *testing.T) {
	p := New[int]()
	p.Touch(1, 1, 10)
	p.Touch(2, 1, 10)
	p.Resize(1, 1000) // now much bigger → lower priority
	if p.Size() != 1010 {
		t.Fatalf("size %d", p.Size())
	}
	if k, _ := p.Victim(); k != 1 {
		t.Fatalf("victim %d, want 1", k)
	}
	p.Remove(2)
	p.Remove(2)
	if p.Len() != 0 || p.Size() != 0 || p.Contains(2) {
		t.Fatal("not empty after remove")
	}
}
