package evict

import "testing"

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

func TestPolicy_AgingLetsNewEntriesDisplaceOldPopularOnes(t *testing.T) {
	p := New[string]()
	for range 5 {
		p.Touch("old", 1, 1) // prio 5
	}
	// Evicting a high-priority entry raises the clock above "old"'s frequency advantage.
	p.Touch("x", 10, 1) // prio 10
	p.Remove("old")
	p.Touch("old", 1, 1) // back at prio 1 (hits reset after removal)
	if k, _ := p.Victim(); k != "old" {
		t.Fatalf("victim = %q, want old", k)
	}
	p.Touch("y", 1, 1) // clock is 1 now → prio 2
	if k, _ := p.Victim(); k != "y" {
		t.Fatalf("victim = %q, want y", k)
	}
	if k, _ := p.Victim(); k != "x" {
		t.Fatalf("victim = %q, want x", k)
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
