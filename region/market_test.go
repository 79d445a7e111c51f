package region

import (
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/local"
)

// programLike is the local ledger lacking what the Solana program lacks
// for a market (SetUpMarket must adapt; the real program in solana_test).
type programLike struct{ *local.Ledger }

func (programLike) Lacks() []ledger.Capability {
	return []ledger.Capability{ledger.CapStorage, ledger.CapMemoryBounds, ledger.CapUpdateRegion, ledger.CapReplaceUsageSigner}
}

func marketKeys(t *testing.T) MarketKeys {
	t.Helper()
	var k MarketKeys
	for _, p := range []**ledger.Keypair{&k.Authority, &k.Provider, &k.Developer} {
		kp, err := ledger.GenerateKeypair()
		if err != nil {
			t.Fatal(err)
		}
		*p = kp
	}
	return k
}

func TestSetUpMarket_LeavesOutWhatTheLedgerCannotHoldAndIsIdempotent(t *testing.T) {
	l, err := local.Open(local.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	pl := programLike{l}
	keys := marketKeys(t)
	s := DevMarketSettings()
	s.Region.MinMemoryLimitBytes, s.Region.MaxMemoryLimitBytes = 1<<20, 1<<30
	m, err := SetUpMarket(t.Context(), pl, keys, s)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Region.RegionConfig
	if r.Rates.StoragePerGiBMonthStored != 0 || r.Rates.StoragePerGiBTraffic != 0 || r.MinMemoryLimitBytes != 0 || r.MaxMemoryLimitBytes != 0 {
		t.Fatalf("region %+v holds what the ledger lacks", r)
	}
	if r.Rates.DBPerMillionReads != s.Region.Rates.DBPerMillionReads || r.MinEscrowBalance != s.Region.MinEscrowBalance {
		t.Fatalf("region %+v lost settings the ledger holds", r)
	}
	if m.Region.UsageSigner != keys.Provider.Pubkey() || m.Escrow.Balance != s.Escrow {
		t.Fatalf("market %+v: usage signer or escrow not set up", m)
	}
	slot, _ := l.Slot(t.Context())
	again, err := SetUpMarket(t.Context(), pl, keys, s)
	if err != nil {
		t.Fatalf("a second set-up of the same market: %v", err)
	}
	if after, _ := l.Slot(t.Context()); after != slot || again.Region.ID != m.Region.ID {
		t.Fatalf("the second set-up wrote (slot %d → %d) or found another region", slot, after)
	}

	s.Region.MinEscrowBalance++
	_, err = SetUpMarket(t.Context(), pl, keys, s)
	if err == nil || !strings.Contains(err.Error(), "cannot update a region") || !strings.Contains(err.Error(), "another region number") {
		t.Fatalf("changed settings on a ledger without update_region: %v", err)
	}
	s.RegionNumber = 2
	if m, err = SetUpMarket(t.Context(), pl, keys, s); err != nil || m.Region.Number != 2 {
		t.Fatalf("another region number: %v, %+v", err, m)
	}
}
