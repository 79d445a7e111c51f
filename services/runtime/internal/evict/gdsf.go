// Package evict holds the cost-aware eviction policy shared by the runtime's
// artifact cache (compiled modules on disk) and its warm instance pool.
//
// The policy is GreedyDual-Size-Frequency (GDSF). Every entry has a priority
//
//	priority = L + hits × cost / size
//
// where hits counts how often the entry was used, cost is what it takes to
// rebuild it (compile time for an artifact, start-up time for an instance)
// and size is what it occupies (bytes on disk, bytes of linear memory). L is
// an "inflation" clock: whenever an entry is evicted, L becomes that entry's
// priority, so entries that were popular long ago age out instead of staying
// forever. The entry with the lowest priority is evicted first. The effect:
// small, expensive, often-used things stay; large, cheap, rarely-used things
// go first.
package evict

import "container/heap"

// Policy tracks entries keyed by K and answers which one to evict. It is not
// safe for concurrent use; callers hold their own lock.
type Policy[K comparable] struct {
	clock   float64
	entries map[K]*entry[K]
	heap    entryHeap[K]
	size    int64
}

type entry[K comparable] struct {
	key   K
	hits  uint64
	cost  float64
	size  int64
	prio  float64
	index int
}

// New returns an empty policy.
func New[K comparable]() *Policy[K] {
	return &Policy[K]{entries: make(map[K]*entry[K])}
}

// Touch records one use of key with its rebuild cost (any positive unit, the
// same for all keys of this policy) and size in bytes, inserting it if new.
func (p *Policy[K]) Touch(key K, cost float64, size int64) {
	if size < 1 {
		size = 1
	}
	if cost <= 0 {
		cost = 1
	}
	e, ok := p.entries[key]
	if !ok {
		e = &entry[K]{key: key}
		p.entries[key] = e
		heap.Push(&p.heap, e)
	} else {
		p.size -= e.size
	}
	e.hits++
	e.cost = cost
	e.size = size
	p.size += size
	e.prio = p.clock + float64(e.hits)*cost/float64(size)
	heap.Fix(&p.heap, e.index)
}

// Resize updates the size of a tracked key without counting a use.
func (p *Policy[K]) Resize(key K, size int64) {
	e, ok := p.entries[key]
	if !ok {
		return
	}
	if size < 1 {
		size = 1
	}
	p.size += size - e.size
	e.size = size
	e.prio = p.clock + float64(e.hits)*e.cost/float64(size)
	heap.Fix(&p.heap, e.index)
}

// Remove forgets key (for example when it was deleted for another reason).
func (p *Policy[K]) Remove(key K) {
	e, ok := p.entries[key]
	if !ok {
		return
	}
	heap.Remove(&p.heap, e.index)
	delete(p.entries, key)
	p.size -= e.size
}

// Victim removes and returns the entry to evict next and advances the
// inflation clock to its priority. ok is false when the policy is empty.
func (p *Policy[K]) Victim() (key K, ok bool) {
	if len(p.heap) == 0 {
		return key, false
	}
	e := heap.Pop(&p.heap).(*entry[K])
	delete(p.entries, e.key)
	p.size -= e.size
	p.clock = e.prio
	return e.key, true
}

// Contains reports whether key is tracked.
func (p *Policy[K]) Contains(key K) bool { _, ok := p.entries[key]; return ok }

// Len is the number of tracked entries.
func (p *Policy[K]) Len() int { return len(p.entries) }

// Size is the sum of the sizes of all tracked entries.
func (p *Policy[K]) Size() int64 { return p.size }

type entryHeap[K comparable] []*entry[K]

func (h entryHeap[K]) Len() int           { return len(h) }
func (h entryHeap[K]) Less(i, j int) bool { return h[i].prio < h[j].prio }
func (h entryHeap[K]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *entryHeap[K]) Push(x any) {
	e := x.(*entry[K])
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap[K]) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}
