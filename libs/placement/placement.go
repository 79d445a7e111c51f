// Package placement decides which runtime node owns a stack (design
// section 5). A node's id is SHA-256 over its advertised IP, its gRPC
// port and its generation (start time in nanoseconds); a stack's id is its
// 32-byte public key; the distance between the two is their XOR compared
// as a big-endian integer, and the live node with the least distance owns
// the stack. Ties cannot happen between distinct node ids (XOR with a
// fixed key is a bijection), so ownership is deterministic.
//
// Ring keeps node ids in a binary trie, so the owner and the next
// candidates of a key are found in O(id bits), whatever the number of
// nodes. Table adds the stacks a node tracks and, on a join or leave,
// re-places only the stacks whose owner changed.
package placement

import (
	"net/netip"
)

// Key is a 256-bit placement key: a node id or a stack id.
type Key [32]byte

// NodeID is a runtime node's placement id.
type NodeID = Key

// NewNodeID is SHA-256 over the node's advertised IP (its 16-byte form,
// so an IPv4 address and its IPv4-mapped IPv6 form are the same node),
// its gRPC port (2 bytes, big-endian) and its generation (8 bytes,
// big-endian).
func NewNodeID(ip netip.Addr, port uint16, generation int64) NodeID {
	panic("TODO")
}

// String is the key in lower-case hex.
func (k Key) String() string { panic("TODO") }

// Closer reports whether a is closer to target than b (XOR distance,
// big-endian).
func Closer(target, a, b Key) bool { panic("TODO") }

// Node is a member of a ring: its id and what callers attach to it (its
// name and gRPC address).
type Node struct {
	ID   NodeID
	Name string
	Addr string
}

// Ring is a set of nodes in a binary trie over their ids. It is not safe
// for concurrent mutation; readers that share one ring across goroutines
// publish immutable clones (Clone) instead.
type Ring struct{}

// NewRing returns an empty ring.
func NewRing() *Ring { panic("TODO") }

// Add inserts n; false (and no change) if a node with its id is there.
func (r *Ring) Add(n Node) bool { panic("TODO") }

// Remove deletes the node with id; false if there is none.
func (r *Ring) Remove(id NodeID) bool { panic("TODO") }

// Len is the number of nodes.
func (r *Ring) Len() int { panic("TODO") }

// Get returns the node with id.
func (r *Ring) Get(id NodeID) (Node, bool) { panic("TODO") }

// Nodes lists the nodes in id order.
func (r *Ring) Nodes() []Node { panic("TODO") }

// Owner is the node closest to key; false when the ring is empty.
func (r *Ring) Owner(key Key) (Node, bool) { panic("TODO") }

// Candidates appends to dst up to k nodes in order of distance to key,
// the owner first, and returns it. It does not allocate when dst has
// room.
func (r *Ring) Candidates(key Key, k int, dst []Node) []Node { panic("TODO") }

// Share is the fraction of the key space that node id owns (0 when it is
// not in the ring): the expected share of uniformly random stack ids.
func (r *Ring) Share(id NodeID) float64 { panic("TODO") }

// Clone returns an independent copy.
func (r *Ring) Clone() *Ring { panic("TODO") }

// Move is one stack whose owner changed. From or To is the zero NodeID
// (and HasFrom/HasTo false) when the ring was or became empty.
type Move struct {
	Stack          Key
	From, To       NodeID
	HasFrom, HasTo bool
}

// Table is a Ring plus the stacks placed on it, each with its current
// owner. Joins and leaves return exactly the stacks whose owner changed,
// found without visiting the others. It is not safe for concurrent use.
type Table struct{}

// NewTable returns an empty table.
func NewTable() *Table { panic("TODO") }

// Ring is the table's ring (do not modify it; Clone it to share it).
func (t *Table) Ring() *Ring { panic("TODO") }

// AddNode adds n and returns the stacks that moved to it.
func (t *Table) AddNode(n Node) []Move { panic("TODO") }

// RemoveNode removes the node with id and returns its stacks, each with
// its new owner.
func (t *Table) RemoveNode(id NodeID) []Move { panic("TODO") }

// AddStack places a stack (again: a no-op for a placed one) and returns
// its owner; false when the ring is empty.
func (t *Table) AddStack(s Key) (Node, bool) { panic("TODO") }

// RemoveStack forgets a stack.
func (t *Table) RemoveStack(s Key) { panic("TODO") }

// Owner is the owner of a placed or unplaced stack.
func (t *Table) Owner(s Key) (Node, bool) { panic("TODO") }

// Stacks is the number of placed stacks.
func (t *Table) Stacks() int { panic("TODO") }

// OwnedBy appends to dst the placed stacks that node id owns, in key
// order.
func (t *Table) OwnedBy(id NodeID, dst []Key) []Key { panic("TODO") }

// Each calls fn for every placed stack and its owner, in stack order,
// until fn returns false.
func (t *Table) Each(fn func(stack Key, owner Node) bool) { panic("TODO") }
