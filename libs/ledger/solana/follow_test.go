package solana

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ledger"
)

// follower reads a Ledger as the chain indexer does: the slot first, then
// the changes after its position, and, when there are none, takes the slot
// as seen.
type follower struct {
	mu      sync.Mutex
	pos     uint64
	balance uint64
	moved   chan struct{}
}

func (f *follower) run(ctx context.Context, t *testing.T, l *Ledger, from uint64) {
	f.pos = from
	for ctx.Err() == nil {
		slot, err := l.Slot(ctx)
		if err != nil {
			return
		}
		cs, err := l.Changes(ctx, f.pos, 100)
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("changes after %d: %v", f.pos, err)
			}
			return
		}
		f.mu.Lock()
		for _, c := range cs {
			if c.Escrow != nil {
				f.balance = c.Escrow.Balance
			}
			f.pos = max(f.pos, c.Slot)
		}
		if len(cs) == 0 {
			f.pos = max(f.pos, slot)
		}
		f.mu.Unlock()
		select {
		case f.moved <- struct{}{}:
		default:
		}
		if len(cs) == 0 {
			_ = l.Wait(ctx, slot, 50*time.Millisecond)
		}
	}
}

func (f *follower) at() (uint64, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pos, f.balance
}

// TestSolana_AFollowerThatReachedAWritesSlotHasItsChanges: a follower that
// reaches the slot of a write (the way the chain indexer follows, the slot
// before the changes) has read the write's changes. The slot once moved
// before the write's changes were in the log, so the indexer took the slot
// as seen without them and kept an escrow's old balance after a
// settlement.
func TestSolana_AFollowerThatReachedAWritesSlotHasItsChanges(t *testing.T) {
	_, cfg := testChain(t)
	l := openTest(t, cfg)
	ctx := t.Context()
	auth, prov, dev := seeded("authority"), seeded("provider"), seeded("developer")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.Initialize(ctx, auth, ledger.InitParams{ProviderDeposit: 10, CommissionMicros: 1000}))
	must(l.Mint(ctx, auth, prov.Pubkey(), 100))
	p, err := l.CreateProvider(ctx, prov, "acme")
	must(err)
	must(l.AuthorizeProvider(ctx, auth, p.ID))
	must(l.Mint(ctx, auth, dev.Pubkey(), 1_000))
	_, err = l.CreateEscrow(ctx, dev, p.ID)
	must(err)
	start, err := l.Slot(ctx)
	must(err)

	fctx, cancel := context.WithCancel(ctx)
	f := &follower{moved: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() { defer close(done); f.run(fctx, t, l, start) }()
	t.Cleanup(func() { cancel(); <-done })

	for i := 1; i <= 20; i++ {
		e, err := l.RechargeEscrow(ctx, dev, p.ID, 1)
		must(err)
		slot, err := l.Slot(ctx)
		must(err)
		for {
			pos, bal := f.at()
			if pos >= slot {
				if bal != e.Balance {
					t.Fatalf("recharge %d: the follower reached slot %d (the write's %d) with escrow balance %d, want %d", i, pos, slot, bal, e.Balance)
				}
				break
			}
			select {
			case <-f.moved:
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
		}
	}
}
