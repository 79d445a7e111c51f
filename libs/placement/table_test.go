package placement

import (
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

// bitsKey is the key whose first bits are the string's, e.g. "0111".
func bitsKey(s string) Key {
	var k Key
	for i, c := range s {
		if c == '1' {
			k[i>>3] |= 0x80 >> uint(i&7)
		}
	}
	return k
}

func moveStacks(ms []Move) []Key {
	out := make([]Key, len(ms))
	for i, m := range ms {
		out[i] = m.Stack
	}
	return out
}

func TestTable_FirstNodeTakesEveryStackWithoutAFrom(t *testing.T) {
	tb := NewTable()
	rng := rand.New(rand.NewPCG(20, 21))
	var stacks []Key
	for range 100 {
		s := randKey(rng)
		if _, ok := tb.AddStack(s); ok {
			t.Fatal("AddStack on an empty ring reported an owner")
		}
		stacks = append(stacks, s)
	}
	tb.AddStack(stacks[0]) // again: still one stack
	if tb.Stacks() != 100 {
		t.Fatalf("Stacks = %d", tb.Stacks())
	}
	tb.Each(func(_ Key, owner Node) bool {
		if owner != (Node{}) {
			t.Fatal("a stack has an owner on an empty ring")
		}
		return true
	})
	n := Node{ID: randKey(rng), Name: "first"}
	moves := tb.AddNode(n)
	if len(moves) != 100 {
		t.Fatalf("first join moved %d stacks, want 100", len(moves))
	}
	for _, m := range moves {
		if m.HasFrom || m.From != (NodeID{}) || !m.HasTo || m.To != n.ID {
			t.Fatalf("first join move %+v", m)
		}
	}
	slices.SortFunc(stacks, func(a, b Key) int {
		if keyLess(&a, &b) {
			return -1
		}
		return 1
	})
	if !slices.Equal(moveStacks(moves), stacks) {
		t.Error("first join's moves are not every stack in key order")
	}
	if tb.AddNode(n) != nil {
		t.Error("adding the same node again moved stacks")
	}
}

func TestTable_LastNodeLeavingLeavesStacksPlacedWithoutATo(t *testing.T) {
	tb := NewTable()
	rng := rand.New(rand.NewPCG(22, 23))
	n := Node{ID: randKey(rng)}
	tb.AddNode(n)
	for range 50 {
		if o, ok := tb.AddStack(randKey(rng)); !ok || o.ID != n.ID {
			t.Fatal("the only node does not own a new stack")
		}
	}
	moves := tb.RemoveNode(n.ID)
	if len(moves) != 50 {
		t.Fatalf("last leave moved %d stacks, want 50", len(moves))
	}
	for _, m := range moves {
		if !m.HasFrom || m.From != n.ID || m.HasTo || m.To != (NodeID{}) {
			t.Fatalf("last leave move %+v", m)
		}
	}
	if tb.Stacks() != 50 || tb.Ring().Len() != 0 {
		t.Error("stacks left the table with the last node")
	}
	if tb.RemoveNode(n.ID) != nil {
		t.Error("removing an absent node moved stacks")
	}
}

func TestTable_JoinMovesOnlyStacksNowClosestToTheNewNode(t *testing.T) {
	rng := rand.New(rand.NewPCG(24, 25))
	tb := NewTable()
	var ids []Key
	for range 64 {
		id := randKey(rng)
		tb.AddNode(Node{ID: id})
		ids = append(ids, id)
	}
	var stacks []Key
	for range 5000 {
		s := randKey(rng)
		tb.AddStack(s)
		stacks = append(stacks, s)
	}
	for range 30 {
		n := Node{ID: randKey(rng)}
		before := map[Key]Key{}
		for _, s := range stacks {
			before[s], _ = bruteOwner(ids, s)
		}
		ids = append(ids, n.ID)
		moves := tb.AddNode(n)
		var want []Key
		for _, s := range stacks {
			if o, _ := bruteOwner(ids, s); o != before[s] {
				if o != n.ID {
					t.Fatal("a join moved a stack to a node other than the joiner")
				}
				want = append(want, s)
			}
		}
		slices.SortFunc(want, func(a, b Key) int {
			if keyLess(&a, &b) {
				return -1
			}
			return 1
		})
		if !slices.Equal(moveStacks(moves), want) {
			t.Fatalf("join moved %d stacks, want %d", len(moves), len(want))
		}
		for _, m := range moves {
			if !m.HasFrom || m.From != before[m.Stack] || m.To != n.ID || !m.HasTo {
				t.Fatalf("join move %+v, stack was on %s", m, before[m.Stack])
			}
		}
	}
}

func TestTable_JoinTakesEveryRangeOfItsRegionWhenPathsSkipBits(t *testing.T) {
	// Nodes 0000… and 0011… branch at bit 2 only; 0111… joins branching
	// at bit 1 and takes every key whose bit 1 is set: the 01… range and
	// the 11… range, not one prefix range.
	tb := NewTable()
	a, b, n := bitsKey("0000"), bitsKey("0011"), bitsKey("0111")
	tb.AddNode(Node{ID: a})
	tb.AddNode(Node{ID: b})
	stacks := []Key{bitsKey("0001"), bitsKey("0100"), bitsKey("1000"), bitsKey("1100"), bitsKey("1111"), bitsKey("0110")}
	for _, s := range stacks {
		tb.AddStack(s)
	}
	moves := tb.AddNode(Node{ID: n})
	want := []Move{
		{Stack: bitsKey("0100"), From: a, To: n, HasFrom: true, HasTo: true},
		{Stack: bitsKey("0110"), From: b, To: n, HasFrom: true, HasTo: true},
		{Stack: bitsKey("1100"), From: a, To: n, HasFrom: true, HasTo: true},
		{Stack: bitsKey("1111"), From: b, To: n, HasFrom: true, HasTo: true},
	}
	if !slices.Equal(moves, want) {
		t.Errorf("moves %v\nwant %v", moves, want)
	}
	if got := tb.OwnedBy(n, nil); !slices.Equal(got, moveStacks(want)) {
		t.Errorf("OwnedBy(new node) = %v", got)
	}
	leave := tb.RemoveNode(n)
	if len(leave) != 4 || leave[0].To != a || leave[1].To != b || leave[2].To != a || leave[3].To != b {
		t.Errorf("leave moves %v", leave)
	}
}

func TestTable_LeaveReplacesExactlyTheLeaversStacks(t *testing.T) {
	rng := rand.New(rand.NewPCG(26, 27))
	tb := NewTable()
	var ids []Key
	for range 100 {
		id := randKey(rng)
		tb.AddNode(Node{ID: id})
		ids = append(ids, id)
	}
	var stacks []Key
	for range 5000 {
		s := randKey(rng)
		tb.AddStack(s)
		stacks = append(stacks, s)
	}
	for len(ids) > 0 {
		i := rng.IntN(len(ids))
		gone := ids[i]
		owned := tb.OwnedBy(gone, nil)
		ids = slices.Delete(ids, i, i+1)
		moves := tb.RemoveNode(gone)
		if !slices.Equal(moveStacks(moves), owned) {
			t.Fatalf("leave moved %d stacks, the leaver owned %d", len(moves), len(owned))
		}
		for _, m := range moves {
			want, ok := bruteOwner(ids, m.Stack)
			if m.From != gone || !m.HasFrom || m.HasTo != ok || m.To != want {
				t.Fatalf("leave move %+v, want to %s", m, want)
			}
		}
	}
	if tb.Stacks() != len(stacks) {
		t.Error("leaves lost stacks")
	}
}

func TestTable_AddStackOwnerRemoveStackAndEach(t *testing.T) {
	rng := rand.New(rand.NewPCG(28, 29))
	tb := NewTable()
	var ids []Key
	for range 10 {
		id := randKey(rng)
		tb.AddNode(Node{ID: id, Name: id.String()[:6]})
		ids = append(ids, id)
	}
	s := randKey(rng)
	want, _ := bruteOwner(ids, s)
	if o, ok := tb.Owner(s); !ok || o.ID != want {
		t.Error("Owner of an unplaced stack is wrong")
	}
	if tb.Stacks() != 0 {
		t.Error("Owner placed a stack")
	}
	o, ok := tb.AddStack(s)
	if !ok || o.ID != want || o.Name != want.String()[:6] {
		t.Errorf("AddStack = %+v", o)
	}
	if o2, _ := tb.AddStack(s); o2 != o || tb.Stacks() != 1 {
		t.Error("AddStack of a placed stack is not a no-op")
	}
	other := randKey(rng)
	tb.AddStack(other)
	n := 0
	tb.Each(func(stack Key, owner Node) bool {
		n++
		if w, _ := bruteOwner(ids, stack); owner.ID != w {
			t.Error("Each reports a wrong owner")
		}
		return false // stop after the first
	})
	if n != 1 {
		t.Errorf("Each went on after fn returned false (%d calls)", n)
	}
	tb.RemoveStack(s)
	tb.RemoveStack(s)
	if tb.Stacks() != 1 || slices.Contains(tb.OwnedBy(want, nil), s) {
		t.Error("RemoveStack did not forget the stack")
	}
	if got := tb.OwnedBy(randKey(rng), []Key{{1}}); len(got) != 1 {
		t.Error("OwnedBy of an absent node appended stacks")
	}
}

func TestRegion_AfterIsTheNextKeyOfTheRegion(t *testing.T) {
	// Constraints on a 12-bit window at bit off (across word boundaries
	// too): a key is in the region when its window is, so the next region
	// key after k keeps k's bits before the window with the next matching
	// window value, or else adds one to those bits and takes the least
	// matching window, and has zero bits after it. Computed with big.Int.
	rng := rand.New(rand.NewPCG(30, 31))
	const width = 12
	for range 5000 {
		off := []int{0, 5, 58, 60, 126, 200, 244}[rng.IntN(7)]
		var rg region
		for i := off; i < off+width; i++ {
			if rng.IntN(2) == 0 {
				rg.mask[i>>6] |= bitMask(i)
				if rng.IntN(2) == 0 {
					rg.val[i>>6] |= bitMask(i)
				}
			}
		}
		k := randKey(rng)
		switch rng.IntN(4) {
		case 0: // all ones before the window: no greater prefix
			for i := range off {
				k[i>>3] |= 0x80 >> uint(i&7)
			}
		case 1:
			clear(k[16:])
		}
		if rg.contains(&k) {
			continue
		}
		K := new(big.Int).SetBytes(k[:])
		low := uint(256 - off - width)
		pre := new(big.Int).Rsh(K, low+width)
		win := new(big.Int).Rsh(K, low)
		win.And(win, big.NewInt(1<<width-1))
		matches := func(w int) bool {
			cand := new(big.Int).Lsh(big.NewInt(int64(w)), low)
			var c Key
			cand.FillBytes(c[:])
			return rg.contains(&c)
		}
		compose := func(pre *big.Int, w int) Key {
			x := new(big.Int).Lsh(pre, width)
			x.Or(x, big.NewInt(int64(w)))
			x.Lsh(x, low)
			var c Key
			x.FillBytes(c[:])
			return c
		}
		var want Key
		found := false
		for w := int(win.Int64()) + 1; w < 1<<width && !found; w++ {
			if matches(w) {
				want, found = compose(pre, w), true
			}
		}
		if !found && pre.BitLen() <= off && new(big.Int).Add(pre, big.NewInt(1)).BitLen() <= off {
			for w := 0; w < 1<<width && !found; w++ {
				if matches(w) {
					want, found = compose(new(big.Int).Add(pre, big.NewInt(1)), w), true
				}
			}
		}
		got, ok := rg.after(&k)
		if ok != found || got != want {
			t.Fatalf("off %d: after(%s) = %s %v, want %s %v", off, k, got, ok, want, found)
		}
	}
	// Constraints spread over every word.
	for range 3000 {
		var rg region
		for i := range maxDepth {
			if rng.IntN(16) == 0 {
				rg.mask[i>>6] |= bitMask(i)
				if rng.IntN(2) == 0 {
					rg.val[i>>6] |= bitMask(i)
				}
			}
		}
		k := randKey(rng)
		if rg.contains(&k) {
			continue
		}
		got, ok := rg.after(&k)
		if !ok {
			continue
		}
		if !rg.contains(&got) || !keyLess(&k, &got) {
			t.Fatalf("after(%s) = %s is not a greater region key", k, got)
		}
	}
}
