package mudb

import (
	"context"
	"hash/maphash"
	"slices"
)

// keyLocks queues this node's atomic writes and swaps of the same keys
// before they begin their transactions. TiKV's pessimistic locks are what
// make them correct across nodes; queueing here first means that, on one
// node, a transaction begins only after the previous holder of its keys
// committed, so it neither waits on TiKV's lock nor finds the key changed
// after its start (which would re-run it). It only orders, never grants
// anything TiKV's locks do not.
type keyLocks struct {
	seed    maphash.Seed
	stripes []chan struct{}
}

func newKeyLocks(n int) *keyLocks {
	l := &keyLocks{seed: maphash.MakeSeed(), stripes: make([]chan struct{}, n)}
	for i := range l.stripes {
		l.stripes[i] = make(chan struct{}, 1)
	}
	return l
}

// lock takes the stripes of keys in a fixed order (so two callers never
// deadlock) and returns the function that releases them; it fails when
// ctx ends first.
func (l *keyLocks) lock(ctx context.Context, keys [][]byte) (func(), error) {
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, int(maphash.Bytes(l.seed, k)%uint64(len(l.stripes))))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	held := 0
	unlock := func() {
		for _, i := range idx[:held] {
			<-l.stripes[i]
		}
	}
	for _, i := range idx {
		select {
		case l.stripes[i] <- struct{}{}:
			held++
		case <-ctx.Done():
			unlock()
			return nil, ctx.Err()
		}
	}
	return unlock, nil
}
