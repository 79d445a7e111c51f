package placement

import "math"

// tnode is a node of a ring's trie. The trie is path-compressed (a
// crit-bit tree): an internal node has two children and the index of the
// first bit at which the ids below it differ; every id below it agrees on
// the bits before that index, and child[b] holds those whose bit is b.
// Bit indices strictly increase from the root down, so no path has more
// than 256 internal nodes. A leaf has no children and points to its Node,
// which never changes once in a ring (so clones share it). Internal nodes
// stay small (32 bytes) for the cache's sake: lookups touch only them and
// one leaf.
type tnode struct {
	child [2]*tnode
	bit   int
	node  *Node // leaves only
}

func (p *tnode) leaf() bool { return p.child[0] == nil }

// maxDepth bounds the internal nodes on any path (one per bit index).
const maxDepth = len(Key{}) * 8

// Ring is a set of nodes in a binary trie over their ids. It is not safe
// for concurrent mutation; readers that share one ring across goroutines
// publish immutable clones (Clone) instead. The methods that do not
// change a ring (all but Add and Remove) change nothing inside it either,
// so any number of goroutines may call them on a ring no one modifies.
//
// Owner, Get and Share walk one path of the trie, so they cost O(id bits)
// (in practice about log2 of the number of nodes) whatever the size of
// the ring.
type Ring struct {
	root *tnode // nil when empty
	n    int
}

// NewRing returns an empty ring.
func NewRing() *Ring { return &Ring{} }

// Add inserts n; false (and no change) if a node with its id is there.
func (r *Ring) Add(n Node) bool { return r.insert(n) != nil }

// insert adds n and returns its leaf; nil when its id is there.
func (r *Ring) insert(n Node) *tnode {
	l := &tnode{node: &n}
	if r.root == nil {
		r.root, r.n = l, 1
		return l
	}
	// The leaf the walk by n's bits reaches is the node nearest to n,
	// so the one sharing the longest prefix with it: n's new internal
	// node branches at the first bit where the two differ.
	near := r.leafFor(&n.ID)
	crit, differ := critBit(&n.ID, &near.node.ID)
	if !differ {
		return nil
	}
	// Go down while the branchings come before crit; no internal node on
	// the way branches at crit itself (some node would then share more
	// than crit bits with n, contradicting near).
	slot := &r.root
	for p := *slot; !p.leaf() && p.bit < crit; p = *slot {
		slot = &p.child[bitAt(&n.ID, p.bit)]
	}
	in := &tnode{bit: crit}
	b := bitAt(&n.ID, crit)
	in.child[b], in.child[1-b] = l, *slot
	*slot = in
	r.n++
	return l
}

// Remove deletes the node with id; false if there is none.
func (r *Ring) Remove(id NodeID) bool { return r.remove(&id) != nil }

// remove deletes the node with id and returns its leaf; nil if none.
func (r *Ring) remove(id *Key) *tnode {
	if r.root == nil {
		return nil
	}
	var parentSlot **tnode // the slot holding the leaf's parent
	slot := &r.root
	for p := *slot; !p.leaf(); p = *slot {
		parentSlot = slot
		slot = &p.child[bitAt(id, p.bit)]
	}
	l := *slot
	if l.node.ID != *id {
		return nil
	}
	if parentSlot == nil {
		r.root = nil
	} else {
		parent := *parentSlot
		sibling := parent.child[0]
		if sibling == l {
			sibling = parent.child[1]
		}
		*parentSlot = sibling
	}
	r.n--
	return l
}

// Len is the number of nodes.
func (r *Ring) Len() int { return r.n }

// Get returns the node with id.
func (r *Ring) Get(id NodeID) (Node, bool) {
	if l := r.find(&id); l != nil {
		return *l.node, true
	}
	return Node{}, false
}

// find is the leaf of id; nil if id is not in the ring.
func (r *Ring) find(id *Key) *tnode {
	if l := r.leafFor(id); l != nil && l.node.ID == *id {
		return l
	}
	return nil
}

// leafFor is the leaf nearest to key: at each branching, the child whose
// bit matches key's holds only nodes nearer to key than the other child's
// (all agree with key up to that bit, and only they agree at it). Nil
// when the ring is empty.
func (r *Ring) leafFor(key *Key) *tnode {
	p := r.root
	if p == nil {
		return nil
	}
	for !p.leaf() {
		p = p.child[bitAt(key, p.bit)]
	}
	return p
}

// Nodes lists the nodes in id order.
func (r *Ring) Nodes() []Node {
	out := make([]Node, 0, r.n)
	var walk func(p *tnode)
	walk = func(p *tnode) {
		if p.leaf() {
			out = append(out, *p.node)
			return
		}
		walk(p.child[0])
		walk(p.child[1])
	}
	if r.root != nil {
		walk(r.root)
	}
	return out
}

// Owner is the node closest to key; false when the ring is empty. It does
// not allocate. The answer is unique, so every ring with the same ids
// agrees on it: two distinct ids cannot be at the same distance from a
// key (XOR with the key is a bijection).
func (r *Ring) Owner(key Key) (Node, bool) {
	if l := r.leafFor(&key); l != nil {
		return *l.node, true
	}
	return Node{}, false
}

// Candidates appends to dst up to k nodes in order of distance to key,
// the owner first, and returns it. It does not allocate when dst has
// room.
//
// It is a depth-first walk that takes, at each branching, the child whose
// bit matches key's first: every node below that child is nearer to key
// than every node below the other, so leaves come out in increasing
// distance, and the walk stops after k of them (O(id bits + k)).
func (r *Ring) Candidates(key Key, k int, dst []Node) []Node {
	if k <= 0 || r.root == nil {
		return dst
	}
	// Pending subtrees: the farther children along the current path,
	// nearest on top. Their parents' bits strictly increase, so there are
	// at most maxDepth of them.
	var pending [maxDepth]*tnode
	top := 0
	p := r.root
	for {
		for !p.leaf() {
			b := bitAt(&key, p.bit)
			pending[top] = p.child[1-b]
			top++
			p = p.child[b]
		}
		dst = append(dst, *p.node)
		if k--; k == 0 || top == 0 {
			return dst
		}
		top--
		p = pending[top]
	}
}

// Share is the fraction of the key space that node id owns (0 when it is
// not in the ring): the expected share of uniformly random stack ids.
//
// A key reaches id's leaf when it agrees with id at each branching bit on
// the leaf's path and is free elsewhere, so the share is exactly 2^-d for
// d branchings on the path (not 2^-(the length of id's shortest unique
// prefix): bits where the path does not branch do not narrow it). The
// shares of all nodes sum to 1.
func (r *Ring) Share(id NodeID) float64 {
	p := r.root
	if p == nil {
		return 0
	}
	d := 0
	for !p.leaf() {
		p = p.child[bitAt(&id, p.bit)]
		d++
	}
	if p.node.ID != id {
		return 0
	}
	return math.Ldexp(1, -d)
}

// Clone returns an independent copy: changes to either ring do not show
// in the other. It copies the trie in one allocation (Nodes, which never
// change, are shared).
func (r *Ring) Clone() *Ring {
	c := &Ring{n: r.n}
	if r.root == nil {
		return c
	}
	slab := make([]tnode, 2*r.n-1) // n leaves, n-1 internal nodes
	var copyTrie func(p *tnode) *tnode
	copyTrie = func(p *tnode) *tnode {
		q := &slab[0]
		slab = slab[1:]
		q.bit, q.node = p.bit, p.node
		if !p.leaf() {
			q.child[0], q.child[1] = copyTrie(p.child[0]), copyTrie(p.child[1])
		}
		return q
	}
	c.root = copyTrie(r.root)
	return c
}

// regionOf is the set of keys that leaf l owns: the keys that agree with
// its id at every branching bit on its path, whatever their other bits.
func (r *Ring) regionOf(l *tnode) region {
	var rg region
	id := &l.node.ID
	for p := r.root; !p.leaf(); p = p.child[bitAt(id, p.bit)] {
		rg.mask[p.bit>>6] |= 1 << (63 - uint(p.bit&63))
	}
	w := words(id)
	for i := range w {
		rg.val[i] = w[i] & rg.mask[i]
	}
	return rg
}
