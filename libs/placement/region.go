package placement

import (
	"encoding/binary"
	"math/bits"
)

// u256 is a key as four big-endian 64-bit words, the most significant
// first; bit i of a key is bit 63-i%64 of word i/64.
type u256 [4]uint64

func words(k *Key) u256 {
	var w u256
	for i := range w {
		w[i] = binary.BigEndian.Uint64(k[i*8:])
	}
	return w
}

func (w *u256) key() Key {
	var k Key
	for i := range w {
		binary.BigEndian.PutUint64(k[i*8:], w[i])
	}
	return k
}

// region is the set of keys a node owns: those whose bits under mask
// equal val (val has no bits outside mask). The mask holds the branching
// bits on the node's path in the trie.
//
// In key order a region is not, in general, one range: a bit before the
// node's last branching where its path does not branch is free, and each
// of its values gives a range of its own. When node n joins, the keys
// that move to it are exactly n's new region, since before the join they
// were all owned by the nodes below n's new sibling; for example with
// nodes 0000 and 0011 (branching at bit 2 only), 0111 joins at bit 1 and
// takes every key whose bit 1 is set, 01xx and 11xx. So the table scans a
// region range by range (cursor.next) rather than as one range.
type region struct {
	mask, val u256
}

// branchings is the number of constrained bits: the region is 2^-branchings
// of the key space.
func (rg *region) branchings() int {
	n := 0
	for _, m := range rg.mask {
		n += bits.OnesCount64(m)
	}
	return n
}

// contains reports whether k is in the region.
func (rg *region) contains(k *Key) bool {
	w := words(k)
	for i := range w {
		if (w[i]^rg.val[i])&rg.mask[i] != 0 {
			return false
		}
	}
	return true
}

// first is the least key in the region.
func (rg *region) first() Key { return rg.val.key() }

// after is the least key in the region greater than k, where k is not in
// the region; false when there is none.
func (rg *region) after(k *Key) (Key, bool) {
	s := words(k)
	// i: the first bit where s breaks the region's constraint.
	i := -1
	for w := range s {
		if d := (s[w] ^ rg.val[w]) & rg.mask[w]; d != 0 {
			i = w*64 + bits.LeadingZeros64(d)
			break
		}
	}
	if i < 0 {
		return Key{}, false // k is in the region: not a valid call
	}
	if s[i>>6]&bitMask(i) == 0 {
		// The region wants a 1 at i: keep s's prefix, set bit i, and
		// take the least region key below it.
		x := withPrefix(&s, &rg.val, i)
		return x.key(), true
	}
	// The region wants a 0 at i, so s's prefix before i must grow: set
	// its last free bit that is 0 (bits under the mask before i already
	// agree with the region) and take the least region key below it.
	j := -1
	for w := (i - 1) >> 6; w >= 0; w-- {
		z := ^s[w] &^ rg.mask[w]
		if w == i>>6 {
			z &= prefixBits(i & 63)
		}
		if z != 0 {
			j = w*64 + 63 - bits.TrailingZeros64(z)
			break
		}
	}
	if j < 0 {
		return Key{}, false
	}
	x := withPrefix(&s, &rg.val, j)
	x[j>>6] |= bitMask(j)
	return x.key(), true
}

// bitMask is key bit i within its word.
func bitMask(i int) uint64 { return 1 << (63 - uint(i&63)) }

// prefixBits is the first n bits of a word (n in [0, 64)).
func prefixBits(n int) uint64 { return ^(^uint64(0) >> uint(n)) }

// withPrefix is s's bits before bit i followed by v's bits from i on.
func withPrefix(s, v *u256, i int) u256 {
	var x u256
	for w := range x {
		switch {
		case w < i>>6:
			x[w] = s[w]
		case w > i>>6:
			x[w] = v[w]
		default:
			p := prefixBits(i & 63)
			x[w] = s[w]&p | v[w]&^p
		}
	}
	return x
}
