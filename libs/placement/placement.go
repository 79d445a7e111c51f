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
//
// Nothing in this package is safe for concurrent mutation, and it keeps no
// global state.
package placement

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"net/netip"
)

// Key is a 256-bit placement key: a node id or a stack id.
type Key [32]byte

// NodeID is a runtime node's placement id.
type NodeID = Key

// NewNodeID is SHA-256 over the node's advertised IP (its 16-byte form,
// so an IPv4 address and its IPv4-mapped IPv6 form are the same node),
// its gRPC port (2 bytes, big-endian) and its generation (8 bytes,
// big-endian). An IPv6 zone is not part of the id; the zero Addr hashes
// as 16 zero bytes.
func NewNodeID(ip netip.Addr, port uint16, generation int64) NodeID {
	var b [16 + 2 + 8]byte
	a16 := ip.As16()
	copy(b[:16], a16[:])
	binary.BigEndian.PutUint16(b[16:18], port)
	binary.BigEndian.PutUint64(b[18:], uint64(generation))
	return sha256.Sum256(b[:])
}

// NodeIDOf is NewNodeID of a gRPC address written "ip:port" (a literal IP,
// IPv6 in brackets) and a generation, as members advertise them, so that
// gateways and runtimes compute the same ids. It fails, naming the
// address, when grpcAddr is not a literal IP and port.
func NodeIDOf(grpcAddr string, generation int64) (NodeID, error) {
	ap, err := netip.ParseAddrPort(grpcAddr)
	if err != nil {
		return NodeID{}, fmt.Errorf("placement: node gRPC address %q is not a literal ip:port: %w", grpcAddr, err)
	}
	return NewNodeID(ap.Addr(), ap.Port(), generation), nil
}

// String is the key in lower-case hex.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Closer reports whether a is closer to target than b (XOR distance,
// big-endian). It is false when a == b.
func Closer(target, a, b Key) bool {
	for i := 0; i < len(target); i += 8 {
		t := binary.BigEndian.Uint64(target[i:])
		da := binary.BigEndian.Uint64(a[i:]) ^ t
		db := binary.BigEndian.Uint64(b[i:]) ^ t
		if da != db {
			return da < db
		}
	}
	return false
}

// Node is a member of a ring: its id and what callers attach to it (its
// name and gRPC address).
type Node struct {
	ID   NodeID
	Name string
	Addr string
}

// Move is one stack whose owner changed. From or To is the zero NodeID
// (and HasFrom/HasTo false) when the ring was or became empty.
type Move struct {
	Stack          Key
	From, To       NodeID
	HasFrom, HasTo bool
}

// bitAt is bit i of k, bit 0 being the most significant bit of k[0].
func bitAt(k *Key, i int) int {
	return int(k[i>>3]>>(7-uint(i&7))) & 1
}

// critBit is the first bit at which a and b differ; false when a == b.
func critBit(a, b *Key) (int, bool) {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			return i*8 + bits.LeadingZeros8(x), true
		}
	}
	return 0, false
}

// keyLess orders keys as big-endian integers.
func keyLess(a, b *Key) bool {
	for i := 0; i < len(a); i += 8 {
		x, y := binary.BigEndian.Uint64(a[i:]), binary.BigEndian.Uint64(b[i:])
		if x != y {
			return x < y
		}
	}
	return false
}
