package ledgertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ledger"
)

// Run runs the contract suite against the backend open returns. open is
// called once per subtest and must return a fresh, empty ledger that is
// closed when the test ends (t.Cleanup). The suite checks every
// instruction's effects with exact balances, every error sentinel a
// caller can provoke, the signature checks, the change feed, token
// conservation (also under random sequences of instructions), and
// concurrent writes to one escrow.
func Run(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	t.Run("Initialize", func(t *testing.T) { testInitialize(t, open) })
	t.Run("MintAndTransfer", func(t *testing.T) { testMintTransfer(t, open) })
	t.Run("Providers", func(t *testing.T) { testProviders(t, open) })
	t.Run("Regions", func(t *testing.T) { testRegions(t, open) })
	t.Run("Escrows", func(t *testing.T) { testEscrows(t, open) })
	t.Run("Stacks", func(t *testing.T) { testStacks(t, open) })
	t.Run("UpdateUsage", func(t *testing.T) { testUpdateUsage(t, open) })
	t.Run("Carries", func(t *testing.T) { testCarries(t, open) })
	t.Run("InsufficientEscrow", func(t *testing.T) { testInsufficientEscrow(t, open) })
	t.Run("RegionMinimum", func(t *testing.T) { testRegionMinimum(t, open) })
	t.Run("Signatures", func(t *testing.T) { testSignatures(t, open) })
	t.Run("Changes", func(t *testing.T) { testChanges(t, open) })
	t.Run("Wait", func(t *testing.T) { testWait(t, open) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, open) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, open) })
	t.Run("Conservation", func(t *testing.T) { testConservation(t, open) })
}

func testInitialize(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	w := bare(t, open)
	if _, err := w.l.State(w.ctx); !errors.Is(err, ledger.ErrNotInitialized) {
		t.Fatalf("State before Initialize: %v, want ErrNotInitialized", err)
	}
	if got := w.slot(); got != 0 {
		t.Fatalf("slot before any write is %d, want 0", got)
	}
	before := w.snapshot()
	w.refused(w.l.Initialize(w.ctx, w.auth, ledger.InitParams{CommissionMicros: 1_000_001}), ledger.ErrInvalidArgument, before)
	w.refused(w.l.Mint(w.ctx, w.auth, w.dev.Pubkey(), 5), ledger.ErrNotInitialized, before)
	_, err := w.l.CreateProvider(w.ctx, w.prov, "acme")
	w.refused(err, ledger.ErrNotInitialized, before)
	w.initialize()
	st := w.state()
	if st.Authority != w.auth.Pubkey() || st.ProviderDeposit != providerDeposit || st.CommissionMicros != commissionMicros {
		t.Fatalf("state %+v", st)
	}
	if st.DepositVault.IsZero() || st.CommissionAccount.IsZero() || st.DepositVault == st.CommissionAccount {
		t.Fatalf("state names deposit vault %s and commission account %s", st.DepositVault, st.CommissionAccount)
	}
	before = w.snapshot()
	w.refused(w.l.Initialize(w.ctx, w.dev, ledger.InitParams{}), ledger.ErrAlreadyInitialized, before)
	if w.slot() == 0 {
		t.Fatal("slot is still 0 after Initialize")
	}
}

func testMintTransfer(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	w := bare(t, open)
	w.initialize()
	a, b := w.dev.Pubkey(), w.prov.Pubkey()
	w.ok(w.l.Mint(w.ctx, w.auth, a, 700))
	w.ok(w.l.Transfer(w.ctx, w.dev, b, 200))
	if got := w.balance(a); got != 500 {
		t.Fatalf("sender holds %d, want 500", got)
	}
	if got := w.balance(b); got != 200 {
		t.Fatalf("receiver holds %d, want 200", got)
	}
	if got := w.balance(key("nobody").Pubkey()); got != 0 {
		t.Fatalf("an unknown wallet holds %d", got)
	}
	w.ok(w.l.Transfer(w.ctx, w.prov, a, 200)) // empties b
	accts, supply := must2(w.l.TokenAccounts(w.ctx))(w)
	if supply != 700 || len(accts) != 1 || accts[0].Address != a || accts[0].Kind != "wallet" || accts[0].Balance != 700 {
		t.Fatalf("token accounts %+v supply %d, want one wallet of 700", accts, supply)
	}
	before := w.snapshot()
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"mint by non-authority", w.l.Mint(w.ctx, w.dev, a, 1), ledger.ErrBadSigner},
		{"mint 0", w.l.Mint(w.ctx, w.auth, a, 0), ledger.ErrInvalidArgument},
		{"mint past 2^64-1", w.l.Mint(w.ctx, w.auth, b, ^uint64(0)-699), ledger.ErrOverflow},
		{"transfer more than held", w.l.Transfer(w.ctx, w.dev, b, 701), ledger.ErrInsufficientFunds},
		{"transfer from empty wallet", w.l.Transfer(w.ctx, w.prov, a, 1), ledger.ErrInsufficientFunds},
		{"transfer 0", w.l.Transfer(w.ctx, w.dev, b, 0), ledger.ErrInvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { w.t = t; w.refused(c.err, c.want, before) })
	}
	w.t = t
	w.ok(w.l.Mint(w.ctx, w.auth, b, ^uint64(0)-700)) // exactly to the limit
	if _, supply := must2(w.l.TokenAccounts(w.ctx))(w); supply != ^uint64(0) {
		t.Fatalf("supply %d, want 2^64-1", supply)
	}
	w.conserved()
}

func testProviders(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	w := bare(t, open)
	w.initialize()
	w.ok(w.l.Mint(w.ctx, w.auth, w.prov.Pubkey(), 1500))
	p := must(w.l.CreateProvider(w.ctx, w.prov, "acme"))(w)
	if p.Owner != w.prov.Pubkey() || p.Name != "acme" || p.Deposit != providerDeposit || p.Authorized || p.ID.IsZero() {
		t.Fatalf("provider %+v", p)
	}
	if got := must(w.l.Provider(w.ctx, p.ID))(w); got != p {
		t.Fatalf("Provider returns %+v, CreateProvider %+v", got, p)
	}
	if got := w.balance(w.prov.Pubkey()); got != 500 {
		t.Fatalf("owner holds %d after the deposit, want 500", got)
	}
	if got := w.tokenBalance("deposit_vault", w.state().DepositVault); got != providerDeposit {
		t.Fatalf("deposit vault holds %d, want %d", got, providerDeposit)
	}
	before := w.snapshot()
	_, err := w.l.CreateProvider(w.ctx, w.prov, "again")
	w.refused(err, ledger.ErrAlreadyExists, before)
	_, err = w.l.CreateProvider(w.ctx, w.dev, "poor") // holds nothing
	w.refused(err, ledger.ErrInsufficientFunds, before)
	_, err = w.l.CreateProvider(w.ctx, w.dev, "")
	w.refused(err, ledger.ErrInvalidArgument, before)
	_, err = w.l.CreateProvider(w.ctx, w.dev, strings.Repeat("n", 10_000))
	w.refused(err, ledger.ErrInvalidArgument, before)
	w.refused(w.l.AuthorizeProvider(w.ctx, w.prov, p.ID), ledger.ErrBadSigner, before)
	w.refused(w.l.AuthorizeProvider(w.ctx, w.auth, key("nobody").Pubkey()), ledger.ErrNotFound, before)
	w.refused(w.l.UpdateProviderDeposit(w.ctx, w.dev, 5), ledger.ErrBadSigner, before)
	if _, err := w.l.Provider(w.ctx, key("nobody").Pubkey()); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Provider of an unknown id: %v, want ErrNotFound", err)
	}

	w.ok(w.l.AuthorizeProvider(w.ctx, w.auth, p.ID))
	if got := must(w.l.Provider(w.ctx, p.ID))(w); !got.Authorized {
		t.Fatal("provider not authorized after AuthorizeProvider")
	}
	w.ok(w.l.UpdateProviderDeposit(w.ctx, w.auth, 300))
	if got := w.state().ProviderDeposit; got != 300 {
		t.Fatalf("provider deposit %d after update, want 300", got)
	}
	w.ok(w.l.Mint(w.ctx, w.auth, w.dev.Pubkey(), 300))
	q := must(w.l.CreateProvider(w.ctx, w.dev, "second"))(w)
	if q.Deposit != 300 || w.balance(w.dev.Pubkey()) != 0 {
		t.Fatalf("second provider paid %d, owner keeps %d; want 300 and 0", q.Deposit, w.balance(w.dev.Pubkey()))
	}
	if got := w.tokenBalance("deposit_vault", w.state().DepositVault); got != providerDeposit+300 {
		t.Fatalf("deposit vault holds %d, want %d", got, providerDeposit+300)
	}
	ps := must(w.l.Providers(w.ctx))(w)
	if len(ps) != 2 || bytes.Compare(ps[0].ID[:], ps[1].ID[:]) >= 0 {
		t.Fatalf("Providers %+v: want 2, ordered by id", ps)
	}
	w.conserved()
}

func testRegions(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	w := bare(t, open)
	w.initialize()
	w.ok(w.l.Mint(w.ctx, w.auth, w.prov.Pubkey(), providerFunds))
	before := w.snapshot()
	_, err := w.l.CreateRegion(w.ctx, w.prov, 1, w.regionConfig("eu1"))
	w.refused(err, ledger.ErrNotFound, before) // no provider yet
	w.provider = must(w.l.CreateProvider(w.ctx, w.prov, "acme"))(w)
	before = w.snapshot()
	_, err = w.l.CreateRegion(w.ctx, w.prov, 1, w.regionConfig("eu1"))
	w.refused(err, ledger.ErrUnauthorizedProvider, before)
	w.ok(w.l.AuthorizeProvider(w.ctx, w.auth, w.provider.ID))

	g := must(w.l.CreateRegion(w.ctx, w.prov, 1, w.regionConfig("eu1")))(w)
	if g.Provider != w.provider.ID || g.Number != 1 || g.RegionConfig != w.regionConfig("eu1") || !g.UsageSigner.IsZero() || g.ID.IsZero() {
		t.Fatalf("region %+v", g)
	}
	if got := must(w.l.Region(w.ctx, g.ID))(w); got != g {
		t.Fatalf("Region returns %+v, CreateRegion %+v", got, g)
	}
	before = w.snapshot()
	bad := func(mod func(*ledger.RegionConfig)) ledger.RegionConfig {
		c := w.regionConfig("eu2")
		mod(&c)
		return c
	}
	for _, c := range []struct {
		name string
		cfg  ledger.RegionConfig
	}{
		{"empty name", bad(func(c *ledger.RegionConfig) { c.Name = "" })},
		{"huge name", bad(func(c *ledger.RegionConfig) { c.Name = strings.Repeat("n", 10_000) })},
		{"empty base URL", bad(func(c *ledger.RegionConfig) { c.BaseURL = "" })},
		{"huge base URL", bad(func(c *ledger.RegionConfig) { c.BaseURL = "https://x.example/" + strings.Repeat("p", 100_000) })},
	} {
		t.Run(c.name, func(t *testing.T) {
			w.t = t
			_, err := w.l.CreateRegion(w.ctx, w.prov, 2, c.cfg)
			w.refused(err, ledger.ErrInvalidArgument, before)
			_, err = w.l.UpdateRegion(w.ctx, w.prov, g.ID, c.cfg)
			w.refusedUpdateRegion(err, ledger.ErrInvalidArgument, before)
		})
	}
	// What a backend cannot hold it refuses, naming what it lacks.
	for _, c := range []struct {
		name string
		cap  ledger.Capability
		cfg  ledger.RegionConfig
	}{
		{"storage rates", ledger.CapStorage, bad(func(c *ledger.RegionConfig) { c.Rates.StoragePerGiBTraffic = 1 })},
		{"memory bounds", ledger.CapMemoryBounds, bad(func(c *ledger.RegionConfig) { c.MaxMemoryLimitBytes = 1 << 30 })},
		{"instruction cap above 32 bits", ledger.CapWideInstructionCap, bad(func(c *ledger.RegionConfig) { c.MaxGigaInstructionsPerCall = 1 << 32 })},
	} {
		if !w.lacks(c.cap) {
			continue // kept: the other subtests use it
		}
		t.Run(c.name, func(t *testing.T) {
			w.t = t
			_, err := w.l.CreateRegion(w.ctx, w.prov, 2, c.cfg)
			w.unsupported(err, c.cap, before)
		})
	}
	w.t = t
	_, err = w.l.CreateRegion(w.ctx, w.prov, 1, w.regionConfig("eu1b"))
	w.refused(err, ledger.ErrAlreadyExists, before)
	_, err = w.l.UpdateRegion(w.ctx, w.dev, g.ID, w.regionConfig("mine"))
	w.refusedUpdateRegion(err, ledger.ErrBadSigner, before)
	_, err = w.l.UpdateRegion(w.ctx, w.prov, key("nowhere").Pubkey(), w.regionConfig("x"))
	w.refusedUpdateRegion(err, ledger.ErrUnknownRegion, before)
	w.refused(w.l.CreateUsageSigner(w.ctx, w.dev, g.ID, w.usage.Pubkey()), ledger.ErrBadSigner, before)
	w.refused(w.l.CreateUsageSigner(w.ctx, w.prov, key("nowhere").Pubkey(), w.usage.Pubkey()), ledger.ErrUnknownRegion, before)
	w.refused(w.l.CreateUsageSigner(w.ctx, w.prov, g.ID, ledger.Pubkey{}), ledger.ErrInvalidArgument, before)
	if _, err := w.l.Region(w.ctx, key("nowhere").Pubkey()); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Region of an unknown id: %v, want ErrNotFound", err)
	}

	cfg := w.regionConfig("eu1-renamed")
	cfg.Rates.DBPerMillionReads = 9
	cfg.MinEscrowBalance = 7
	u, err := w.l.UpdateRegion(w.ctx, w.prov, g.ID, cfg)
	if w.lacks(ledger.CapUpdateRegion) {
		w.unsupported(err, ledger.CapUpdateRegion, before)
	} else if w.ok(err); u.ID != g.ID || u.Number != 1 || u.RegionConfig != cfg {
		t.Fatalf("updated region %+v", u)
	}
	w.ok(w.l.CreateUsageSigner(w.ctx, w.prov, g.ID, w.usage.Pubkey()))
	want := key("usage-2").Pubkey()
	if w.lacks(ledger.CapReplaceUsageSigner) {
		before := w.snapshot()
		w.unsupported(w.l.CreateUsageSigner(w.ctx, w.prov, g.ID, want), ledger.CapReplaceUsageSigner, before)
		want = w.usage.Pubkey() // the first stays
	} else {
		w.ok(w.l.CreateUsageSigner(w.ctx, w.prov, g.ID, want)) // replaces
	}
	if got := must(w.l.Region(w.ctx, g.ID))(w).UsageSigner; got != want {
		t.Fatalf("usage signer %s, want %s", got, want)
	}
	g2 := must(w.l.CreateRegion(w.ctx, w.prov, 2, w.regionConfig("eu2")))(w)
	if g2.ID == g.ID {
		t.Fatal("regions 1 and 2 share an id")
	}
	rs := must(w.l.Regions(w.ctx))(w)
	if len(rs) != 2 || bytes.Compare(rs[0].ID[:], rs[1].ID[:]) >= 0 {
		t.Fatalf("Regions %+v: want 2, ordered by id", rs)
	}
	w.conserved()
}

func testEscrows(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	w := bare(t, open)
	w.initialize()
	w.ok(w.l.Mint(w.ctx, w.auth, w.prov.Pubkey(), providerFunds))
	w.ok(w.l.Mint(w.ctx, w.auth, w.dev.Pubkey(), developerFunds))
	w.provider = must(w.l.CreateProvider(w.ctx, w.prov, "acme"))(w)
	before := w.snapshot()
	_, err := w.l.CreateEscrow(w.ctx, w.dev, w.provider.ID)
	w.refused(err, ledger.ErrUnauthorizedProvider, before)
	_, err = w.l.CreateEscrow(w.ctx, w.dev, key("nobody").Pubkey())
	w.refused(err, ledger.ErrNotFound, before)
	_, err = w.l.RechargeEscrow(w.ctx, w.dev, w.provider.ID, 10)
	w.refused(err, ledger.ErrNotFound, before)
	_, err = w.l.WithdrawEscrow(w.ctx, w.dev, w.provider.ID, 10)
	w.refused(err, ledger.ErrNotFound, before)
	w.ok(w.l.AuthorizeProvider(w.ctx, w.auth, w.provider.ID))

	e := must(w.l.CreateEscrow(w.ctx, w.dev, w.provider.ID))(w)
	if e != (ledger.Escrow{Developer: w.dev.Pubkey(), Provider: w.provider.ID}) {
		t.Fatalf("new escrow %+v", e)
	}
	e = must(w.l.RechargeEscrow(w.ctx, w.dev, w.provider.ID, 600))(w)
	if e.Balance != 600 || w.balance(w.dev.Pubkey()) != developerFunds-600 || w.escrow() != e {
		t.Fatalf("after recharging 600: escrow %+v, wallet %d", e, w.balance(w.dev.Pubkey()))
	}
	e = must(w.l.WithdrawEscrow(w.ctx, w.dev, w.provider.ID, 250))(w)
	if e.Balance != 350 || w.balance(w.dev.Pubkey()) != developerFunds-350 {
		t.Fatalf("after withdrawing 250: escrow %+v, wallet %d", e, w.balance(w.dev.Pubkey()))
	}
	found := false
	accts, _ := must2(w.l.TokenAccounts(w.ctx))(w)
	for _, a := range accts {
		if a.Kind == "escrow" {
			found = a.Balance == 350
		}
	}
	if !found {
		t.Fatal("TokenAccounts has no escrow account of 350")
	}
	before = w.snapshot()
	_, err = w.l.CreateEscrow(w.ctx, w.dev, w.provider.ID)
	w.refused(err, ledger.ErrAlreadyExists, before)
	_, err = w.l.WithdrawEscrow(w.ctx, w.dev, w.provider.ID, 351)
	w.refused(err, ledger.ErrInsufficientEscrow, before)
	_, err = w.l.RechargeEscrow(w.ctx, w.dev, w.provider.ID, developerFunds)
	w.refused(err, ledger.ErrInsufficientFunds, before)
	_, err = w.l.RechargeEscrow(w.ctx, w.dev, w.provider.ID, 0)
	w.refused(err, ledger.ErrInvalidArgument, before)
	_, err = w.l.WithdrawEscrow(w.ctx, w.dev, w.provider.ID, 0)
	w.refused(err, ledger.ErrInvalidArgument, before)
	_, err = w.l.WithdrawEscrow(w.ctx, w.prov, w.provider.ID, 1) // the provider has no escrow with itself
	w.refused(err, ledger.ErrNotFound, before)
	if _, err := w.l.Escrow(w.ctx, w.prov.Pubkey(), w.provider.ID); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Escrow of an unknown pair: %v, want ErrNotFound", err)
	}

	// With an active stack the region's minimum must stay.
	w.region = must(w.l.CreateRegion(w.ctx, w.prov, 1, w.regionConfig("eu1")))(w)
	s := w.createStack(1)
	before = w.snapshot()
	_, err = w.l.WithdrawEscrow(w.ctx, w.dev, w.provider.ID, 351-minEscrow)
	w.refused(err, ledger.ErrBelowMinimum, before)
	e = must(w.l.WithdrawEscrow(w.ctx, w.dev, w.provider.ID, 350-minEscrow))(w) // leaves exactly the minimum
	if e.Balance != minEscrow {
		t.Fatalf("escrow %d after withdrawing down to the minimum", e.Balance)
	}
	// A deleted stack no longer holds the minimum.
	must(w.l.DeleteStack(w.ctx, w.dev, s.ID))(w)
	e = must(w.l.WithdrawEscrow(w.ctx, w.dev, w.provider.ID, minEscrow))(w)
	if e.Balance != 0 || w.balance(w.dev.Pubkey()) != developerFunds {
		t.Fatalf("escrow %+v wallet %d after emptying it", e, w.balance(w.dev.Pubkey()))
	}
	es := must(w.l.Escrows(w.ctx))(w)
	if len(es) != 1 || es[0] != e {
		t.Fatalf("Escrows %+v", es)
	}
	w.conserved()
}

func testStacks(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	w := setup(t, open)
	s := w.createStack(7)
	if s.Owner != w.dev.Pubkey() || s.Region != w.region.ID || s.Seed != 7 || s.Revision != 1 ||
		s.State != ledger.StackActive || !s.Enabled || string(s.Manifest) != "name: app7\n" || s.ID.IsZero() {
		t.Fatalf("new stack %+v", s)
	}
	if got := must(w.l.Stack(w.ctx, s.ID))(w); fmt.Sprint(got) != fmt.Sprint(s) {
		t.Fatalf("Stack returns %+v, CreateStack %+v", got, s)
	}
	before := w.snapshot()
	_, err := w.l.CreateStack(w.ctx, w.dev, w.region.ID, 7, []byte("again"))
	w.refused(err, ledger.ErrAlreadyExists, before)
	_, err = w.l.CreateStack(w.ctx, w.dev, key("nowhere").Pubkey(), 8, []byte("m"))
	w.refused(err, ledger.ErrUnknownRegion, before)
	_, err = w.l.CreateStack(w.ctx, w.dev, w.region.ID, 8, nil)
	w.refused(err, ledger.ErrInvalidArgument, before)
	_, err = w.l.CreateStack(w.ctx, w.dev, w.region.ID, 8, make([]byte, 64<<20))
	w.refused(err, ledger.ErrInvalidArgument, before)
	_, err = w.l.CreateStack(w.ctx, w.prov, w.region.ID, 8, []byte("m")) // no escrow
	w.refused(err, ledger.ErrInsufficientEscrow, before)
	_, err = w.l.UpdateStack(w.ctx, w.prov, s.ID, []byte("theirs"))
	w.refused(err, ledger.ErrBadSigner, before)
	_, err = w.l.UpdateStack(w.ctx, w.dev, key("nostack").Pubkey(), []byte("m"))
	w.refused(err, ledger.ErrNotFound, before)
	_, err = w.l.UpdateStack(w.ctx, w.dev, s.ID, make([]byte, 64<<20))
	w.refused(err, ledger.ErrInvalidArgument, before)
	_, err = w.l.DeleteStack(w.ctx, w.prov, s.ID)
	w.refused(err, ledger.ErrBadSigner, before)
	_, err = w.l.DeleteStack(w.ctx, w.dev, key("nostack").Pubkey())
	w.refused(err, ledger.ErrNotFound, before)
	if _, err := w.l.Stack(w.ctx, key("nostack").Pubkey()); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Stack of an unknown id: %v, want ErrNotFound", err)
	}

	// A second developer whose escrow is under the minimum.
	other := key("developer-2")
	w.ok(w.l.Mint(w.ctx, w.auth, other.Pubkey(), 1000))
	must(w.l.CreateEscrow(w.ctx, other, w.provider.ID))(w)
	must(w.l.RechargeEscrow(w.ctx, other, w.provider.ID, minEscrow-1))(w)
	before = w.snapshot()
	_, err = w.l.CreateStack(w.ctx, other, w.region.ID, 7, []byte("m"))
	w.refused(err, ledger.ErrInsufficientEscrow, before)
	must(w.l.RechargeEscrow(w.ctx, other, w.provider.ID, 1))(w)
	o := must(w.l.CreateStack(w.ctx, other, w.region.ID, 7, []byte("m")))(w)
	if o.ID == s.ID {
		t.Fatal("two owners' stacks with one seed share an id")
	}

	u := must(w.l.UpdateStack(w.ctx, w.dev, s.ID, []byte("name: app7\nversion: 2\n")))(w)
	if u.Revision != 2 || string(u.Manifest) != "name: app7\nversion: 2\n" || !u.Enabled {
		t.Fatalf("updated stack %+v", u)
	}
	d := must(w.l.DeleteStack(w.ctx, w.dev, s.ID))(w)
	if d.State != ledger.StackDeleted || d.Enabled {
		t.Fatalf("deleted stack %+v", d)
	}
	got := must(w.l.Stack(w.ctx, s.ID))(w)
	wantManifest, wantRevision := u.Manifest, u.Revision
	if w.lacks(ledger.CapDeletedStackData) {
		wantManifest, wantRevision = nil, 0
		t.Logf("backend lacks %s: a deleted stack reads without its manifest", ledger.CapDeletedStackData)
	}
	if got.State != ledger.StackDeleted || got.Enabled || !bytes.Equal(got.Manifest, wantManifest) || got.Revision != wantRevision ||
		fmt.Sprint(got) != fmt.Sprint(d) {
		t.Fatalf("Stack of a deleted stack %+v (DeleteStack returned %+v), want manifest %q revision %d", got, d, wantManifest, wantRevision)
	}
	before = w.snapshot()
	_, err = w.l.UpdateStack(w.ctx, w.dev, s.ID, []byte("m"))
	w.refused(err, ledger.ErrStackDeleted, before)
	_, err = w.l.DeleteStack(w.ctx, w.dev, s.ID)
	w.refused(err, ledger.ErrStackDeleted, before)
	_, err = w.l.CreateStack(w.ctx, w.dev, w.region.ID, 7, []byte("m"))
	w.refused(err, ledger.ErrAlreadyExists, before) // a deleted stack's seed stays used
	ss := must(w.l.Stacks(w.ctx))(w)
	if len(ss) != 2 || bytes.Compare(ss[0].ID[:], ss[1].ID[:]) >= 0 {
		t.Fatalf("Stacks %+v: want 2 (one deleted), ordered by id", ss)
	}
	w.conserved()
}

func testUpdateUsage(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	w := setup(t, open)
	must(w.l.RechargeEscrow(w.ctx, w.dev, w.provider.ID, 10_000-initialEscrow))(w)
	s := w.createStack(1)
	provBefore := w.balance(w.prov.Pubkey())
	res := must(w.l.UpdateUsage(w.ctx, w.usage, s.ID, ledger.U128(1), w.fixedUsage()))(w)
	commission := w.fixedDue() * commissionMicros / 1_000_000
	if res.Due != ledger.U128(w.fixedDue()) || res.Charged != w.fixedDue() || res.Commission != commission || !res.Shortfall.IsZero() {
		t.Fatalf("usage result %+v, want due = charged = %d, commission %d", res, w.fixedDue(), commission)
	}
	if res.Slot != w.slot() {
		t.Fatalf("result slot %d, ledger slot %d", res.Slot, w.slot())
	}
	if e := w.escrow(); e.Balance != 10_000-w.fixedDue() || e.Overdrawn {
		t.Fatalf("escrow %+v after the charge", e)
	}
	if got := w.balance(w.prov.Pubkey()) - provBefore; got != w.fixedDue()-commission {
		t.Fatalf("provider owner got %d, want %d", got, w.fixedDue()-commission)
	}
	if got := w.tokenBalance("commission", w.state().CommissionAccount); got != commission {
		t.Fatalf("commission account holds %d, want %d", got, commission)
	}
	w.conserved()

	before := w.snapshot()
	_, err := w.l.UpdateUsage(w.ctx, w.usage, s.ID, ledger.U128(1), w.fixedUsage())
	w.refused(err, ledger.ErrReplayedSeed, before)
	_, err = w.l.UpdateUsage(w.ctx, w.prov, s.ID, ledger.U128(2), w.fixedUsage()) // the owner is not the usage signer
	w.refused(err, ledger.ErrBadSigner, before)
	_, err = w.l.UpdateUsage(w.ctx, w.usage, key("nostack").Pubkey(), ledger.U128(2), w.fixedUsage())
	w.refused(err, ledger.ErrNotFound, before)
	huge := ledger.Usage{DBReads: ledger.Uint128{Hi: 1 << 63}}
	_, err = w.l.UpdateUsage(w.ctx, w.usage, s.ID, ledger.U128(2), huge)
	w.refused(err, ledger.ErrOverflow, before)
	if w.lacks(ledger.CapStorage) {
		_, err = w.l.UpdateUsage(w.ctx, w.usage, s.ID, ledger.U128(2), ledger.Usage{StorageTrafficBytes: ledger.U128(1 << 30)})
		w.unsupported(err, ledger.CapStorage, before)
	}

	// A seed is per stack: another stack may use seed 1.
	s2 := w.createStack(2)
	must(w.l.UpdateUsage(w.ctx, w.usage, s2.ID, ledger.U128(1), ledger.Usage{}))(w)
	// 128-bit seeds: seeds differing only in the high half are distinct.
	must(w.l.UpdateUsage(w.ctx, w.usage, s.ID, ledger.Uint128{Hi: 1, Lo: 1}, ledger.Usage{}))(w)
	// A deleted stack is still charged for usage reported after deletion.
	must(w.l.DeleteStack(w.ctx, w.dev, s2.ID))(w)
	res = must(w.l.UpdateUsage(w.ctx, w.usage, s2.ID, ledger.U128(2), ledger.Usage{DBWrites: ledger.U128(1_000_000)}))(w)
	if res.Charged != 20 {
		t.Fatalf("charged %d for a deleted stack's last usage, want 20", res.Charged)
	}

	// A region without a usage signer accepts no usage.
	g2 := must(w.l.CreateRegion(w.ctx, w.prov, 2, w.regionConfig("eu2")))(w)
	s3 := must(w.l.CreateStack(w.ctx, w.dev, g2.ID, 1, []byte("m")))(w)
	before = w.snapshot()
	_, err = w.l.UpdateUsage(w.ctx, w.usage, s3.ID, ledger.U128(1), w.fixedUsage())
	w.refused(err, ledger.ErrBadSigner, before)
	w.conserved()
}

func testCarries(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	w := setup(t, open)
	must(w.l.RechargeEscrow(w.ctx, w.dev, w.provider.ID, 50_000-initialEscrow))(w)
	small, big := w.createStack(1), w.createStack(2)
	// Each small update costs less than one token in every unit.
	unit := ledger.Usage{
		FunctionMBInstructions: ledger.U128(123_456_789), // × 1000 / 10^12
		DBReads:                ledger.U128(1_001),       // × 7 / 10^6
		DBWrites:               ledger.U128(333),
		GatewayRequests:        ledger.U128(77),
		GatewayTrafficBytes:    ledger.U128(1 << 20),
		DBStoredByteSeconds:    ledger.U128(1 << 40),
	}
	if w.lacks(ledger.CapCarries) {
		testTruncating(w, small, big, unit)
		return
	}
	const n = 300
	var smallCharged uint64
	for i := range n {
		r := must(w.l.UpdateUsage(w.ctx, w.usage, small.ID, ledger.U128(uint64(i)), unit))(w)
		smallCharged += r.Charged
	}
	var total ledger.Usage
	for u := ledger.Unit(0); u < ledger.NumUnits; u++ {
		a, _ := unit.Amount(u).Mul64(n)
		setAmount(&total, u, a)
	}
	r := must(w.l.UpdateUsage(w.ctx, w.usage, big.ID, ledger.U128(1), total))(w)
	// The exact price of n × unit: floor(Σ amount × rate / quantity) per unit.
	var want uint64
	for u := ledger.Unit(0); u < ledger.NumUnits; u++ {
		x, _ := total.Amount(u).Mul64(rates.Rate(u))
		q, _ := x.DivMod64(ledger.Quantity(u))
		want += q.Lo
	}
	if want == 0 {
		t.Fatal("the test's usage costs nothing; it would prove nothing")
	}
	if smallCharged != want || r.Charged != want {
		t.Fatalf("%d small updates charged %d, one big one %d; want both %d", n, smallCharged, r.Charged, want)
	}
	w.conserved()
}

// testTruncating checks a backend without CapCarries: it refuses a usage
// whose price is not whole tokens in every unit, and charges exactly the
// whole-token part of one (what a caller sends, carrying the rest).
func testTruncating(w *world, small, big ledger.Stack, unit ledger.Usage) {
	before := w.snapshot()
	_, err := w.l.UpdateUsage(w.ctx, w.usage, small.ID, ledger.U128(1), unit)
	w.unsupported(err, ledger.CapCarries, before)
	var total ledger.Usage
	for u := ledger.Unit(0); u < ledger.NumUnits; u++ {
		a, _ := unit.Amount(u).Mul64(300)
		setAmount(&total, u, a)
	}
	send, carry := wholeTokens(total)
	if carry.IsZero() {
		w.t.Fatal("the test's usage leaves no remainder; it would prove nothing")
	}
	var want uint64
	for u := ledger.Unit(0); u < ledger.NumUnits; u++ {
		x, _ := send.Amount(u).Mul64(rates.Rate(u))
		q, _ := x.DivMod64(ledger.Quantity(u))
		want += q.Lo
	}
	r := must(w.l.UpdateUsage(w.ctx, w.usage, big.ID, ledger.U128(1), send))(w)
	if r.Charged != want || r.Due != ledger.U128(want) || want == 0 {
		w.t.Fatalf("the whole-token part of the usage charged %+v, want %d", r, want)
	}
	w.conserved()
}

// wholeTokens splits u into the largest amounts priced in whole tokens at
// rates (multiples of quantity / gcd(rate, quantity)) and the rest.
func wholeTokens(u ledger.Usage) (send, carry ledger.Usage) {
	for unit := ledger.Unit(0); unit < ledger.NumUnits; unit++ {
		step := uint64(1)
		if r, q := rates.Rate(unit), ledger.Quantity(unit); r != 0 {
			a, b := r, q
			for b != 0 {
				a, b = b, a%b
			}
			step = q / a
		}
		_, rem := u.Amount(unit).DivMod64(step)
		s, _ := u.Amount(unit).Sub(ledger.U128(rem))
		setAmount(&send, unit, s)
		setAmount(&carry, unit, ledger.U128(rem))
	}
	return send, carry
}

func setAmount(x *ledger.Usage, u ledger.Unit, a ledger.Uint128) {
	switch u {
	case ledger.UnitFunctionMBInstructions:
		x.FunctionMBInstructions = a
	case ledger.UnitDBReads:
		x.DBReads = a
	case ledger.UnitDBWrites:
		x.DBWrites = a
	case ledger.UnitDBStoredByteSeconds:
		x.DBStoredByteSeconds = a
	case ledger.UnitGatewayRequests:
		x.GatewayRequests = a
	case ledger.UnitGatewayTrafficBytes:
		x.GatewayTrafficBytes = a
	case ledger.UnitStorageStoredByteSeconds:
		x.StorageStoredByteSeconds = a
	case ledger.UnitStorageTrafficBytes:
		x.StorageTrafficBytes = a
	}
}

func testInsufficientEscrow(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	w := setup(t, open)
	a, b := w.createStack(1), w.createStack(2)
	deleted := w.createStack(3)
	must(w.l.DeleteStack(w.ctx, w.dev, deleted.ID))(w)
	if w.lacks(ledger.CapPartialCharge) {
		// The update fails as a whole: nothing is charged, nothing overdrawn.
		before := w.snapshot()
		_, err := w.l.UpdateUsage(w.ctx, w.usage, a.ID, ledger.U128(1), w.fixedUsage())
		w.unsupported(err, ledger.CapPartialCharge, before)
		if !errors.Is(err, ledger.ErrInsufficientEscrow) {
			t.Fatalf("refusal %v does not match ErrInsufficientEscrow", err)
		}
		if e := w.escrow(); e.Balance != initialEscrow || e.Overdrawn {
			t.Fatalf("escrow %+v after the refused charge", e)
		}
		if got := must(w.l.Stack(w.ctx, b.ID))(w); !got.Enabled {
			t.Fatal("a refused charge disabled a stack")
		}
		return
	}
	slot := w.slot()
	provBefore := w.balance(w.prov.Pubkey())
	// fixedDue (3619, or 3514 without storage) exceeds the escrow's initialEscrow (1000).
	res := must(w.l.UpdateUsage(w.ctx, w.usage, a.ID, ledger.U128(1), w.fixedUsage()))(w)
	commission := uint64(initialEscrow) * commissionMicros / 1_000_000
	if res.Due != ledger.U128(w.fixedDue()) || res.Charged != initialEscrow || res.Shortfall != ledger.U128(w.fixedDue()-initialEscrow) || res.Commission != commission {
		t.Fatalf("usage result %+v, want charged %d shortfall %d", res, initialEscrow, w.fixedDue()-initialEscrow)
	}
	if got := w.balance(w.prov.Pubkey()) - provBefore; got != initialEscrow-commission {
		t.Fatalf("provider owner got %d, want %d", got, initialEscrow-commission)
	}
	e := w.escrow()
	if e.Balance != 0 || !e.Overdrawn {
		t.Fatalf("escrow %+v, want empty and overdrawn", e)
	}
	for _, s := range []ledger.Stack{a, b} {
		got := must(w.l.Stack(w.ctx, s.ID))(w)
		if got.Enabled || got.State != ledger.StackActive {
			t.Fatalf("stack %d after the shortfall: %+v, want active and disabled", s.Seed, got)
		}
	}
	cs := w.changesSince(slot)
	for _, s := range []ledger.Stack{a, b} {
		if got, ok := stackChange(cs, s.ID); !ok || got.Enabled {
			t.Fatalf("changes of the usage write %+v: want stack %d with Enabled false", cs, s.Seed)
		}
	}
	if _, ok := stackChange(cs, deleted.ID); ok {
		t.Fatal("the changes carry a deleted stack whose flag did not change")
	}
	if ce, ok := escrowChange(cs); !ok || ce != e {
		t.Fatalf("changes carry escrow %+v, want %+v", ce, e)
	}
	before := w.snapshot()
	_, err := w.l.CreateStack(w.ctx, w.dev, w.region.ID, 9, []byte("m"))
	w.refused(err, ledger.ErrInsufficientEscrow, before)
	// A further charge finds nothing: all of it is shortfall.
	res = must(w.l.UpdateUsage(w.ctx, w.usage, b.ID, ledger.U128(1), ledger.Usage{DBWrites: ledger.U128(1_000_000)}))(w)
	if res.Charged != 0 || res.Shortfall != ledger.U128(20) {
		t.Fatalf("charge of an empty escrow %+v", res)
	}

	// A recharge under the minimum leaves the stacks disabled.
	slot = w.slot()
	e = must(w.l.RechargeEscrow(w.ctx, w.dev, w.provider.ID, minEscrow-1))(w)
	if !e.Overdrawn || must(w.l.Stack(w.ctx, a.ID))(w).Enabled {
		t.Fatalf("escrow %+v after a recharge under the minimum: want still overdrawn, stacks disabled", e)
	}
	if _, ok := stackChange(w.changesSince(slot), a.ID); ok {
		t.Fatal("a recharge that enabled nothing emitted a stack change")
	}
	// Reaching the minimum clears the overdraft and enables the stacks.
	slot = w.slot()
	e = must(w.l.RechargeEscrow(w.ctx, w.dev, w.provider.ID, 1))(w)
	if e.Overdrawn || e.Balance != minEscrow {
		t.Fatalf("escrow %+v after recharging to the minimum", e)
	}
	cs = w.changesSince(slot)
	for _, s := range []ledger.Stack{a, b} {
		if got := must(w.l.Stack(w.ctx, s.ID))(w); !got.Enabled {
			t.Fatalf("stack %d still disabled after the recharge", s.Seed)
		}
		if got, ok := stackChange(cs, s.ID); !ok || !got.Enabled {
			t.Fatalf("recharge changes %+v: want stack %d with Enabled true", cs, s.Seed)
		}
	}
	w.conserved()
}

func testRegionMinimum(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	w := setup(t, open)
	s := w.createStack(1)
	cfg := w.regionConfig("eu1")
	cfg.MinEscrowBalance = initialEscrow + 1
	if w.lacks(ledger.CapUpdateRegion) {
		// A region's minimum never changes; CreateStack and WithdrawEscrow
		// check it (Escrows, Stacks).
		before := w.snapshot()
		_, err := w.l.UpdateRegion(w.ctx, w.prov, w.region.ID, cfg)
		w.unsupported(err, ledger.CapUpdateRegion, before)
		return
	}
	slot := w.slot()
	must(w.l.UpdateRegion(w.ctx, w.prov, w.region.ID, cfg))(w)
	if got := must(w.l.Stack(w.ctx, s.ID))(w); got.Enabled {
		t.Fatal("stack enabled under a raised minimum")
	}
	cs := w.changesSince(slot)
	if got, ok := stackChange(cs, s.ID); !ok || got.Enabled {
		t.Fatalf("region update changes %+v: want the stack disabled", cs)
	}
	if e := w.escrow(); e.Overdrawn {
		t.Fatal("a raised minimum marked the escrow overdrawn")
	}
	// Withdrawals are refused while under the minimum.
	before := w.snapshot()
	_, err := w.l.WithdrawEscrow(w.ctx, w.dev, w.provider.ID, 1)
	w.refused(err, ledger.ErrBelowMinimum, before)
	// A recharge to the new minimum enables it.
	slot = w.slot()
	must(w.l.RechargeEscrow(w.ctx, w.dev, w.provider.ID, 1))(w)
	if got, ok := stackChange(w.changesSince(slot), s.ID); !ok || !got.Enabled {
		t.Fatal("recharge to the raised minimum emitted no enabled stack")
	}
	// Raising it again and then lowering it flips it off and on.
	cfg.MinEscrowBalance = initialEscrow + 2
	must(w.l.UpdateRegion(w.ctx, w.prov, w.region.ID, cfg))(w)
	slot = w.slot()
	cfg.MinEscrowBalance = 0
	must(w.l.UpdateRegion(w.ctx, w.prov, w.region.ID, cfg))(w)
	if got, ok := stackChange(w.changesSince(slot), s.ID); !ok || !got.Enabled {
		t.Fatal("lowering the minimum emitted no enabled stack")
	}
	// An update that flips nothing emits no stack.
	slot = w.slot()
	cfg.Name = "eu1-renamed"
	must(w.l.UpdateRegion(w.ctx, w.prov, w.region.ID, cfg))(w)
	if _, ok := stackChange(w.changesSince(slot), s.ID); ok {
		t.Fatal("a region update that flipped nothing emitted the stack")
	}
	w.conserved()
}

// testSignatures checks every write refuses a signer whose signature does
// not verify, whatever the claimed key.
func testSignatures(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	w := setup(t, open)
	s := w.createStack(1)
	fresh := must(w.l.CreateRegion(w.ctx, w.prov, 2, w.regionConfig("eu2")))(w) // no usage signer yet
	before := w.snapshot()
	other := key("mallory")
	type signers struct {
		name string
		make func(k *ledger.Keypair) ledger.Signer
	}
	bad := []signers{
		{"claims the key, signs with another", func(k *ledger.Keypair) ledger.Signer { return liar{claims: k.Pubkey(), signs: other} }},
		{"cannot sign", func(k *ledger.Keypair) ledger.Signer { return failing{key: k.Pubkey()} }},
		{"garbled signature", func(k *ledger.Keypair) ledger.Signer { return garbling{k} }},
		{"short signature", func(k *ledger.Keypair) ledger.Signer { return short{k} }},
		{"nil", func(*ledger.Keypair) ledger.Signer { return nil }},
	}
	writes := []struct {
		name string
		as   *ledger.Keypair
		do   func(ledger.Signer) error
	}{
		{"Initialize", w.auth, func(sg ledger.Signer) error { return w.l.Initialize(w.ctx, sg, ledger.InitParams{}) }},
		{"Mint", w.auth, func(sg ledger.Signer) error { return w.l.Mint(w.ctx, sg, w.dev.Pubkey(), 1) }},
		{"Transfer", w.dev, func(sg ledger.Signer) error { return w.l.Transfer(w.ctx, sg, w.prov.Pubkey(), 1) }},
		{"CreateProvider", w.dev, func(sg ledger.Signer) error { _, err := w.l.CreateProvider(w.ctx, sg, "p"); return err }},
		{"AuthorizeProvider", w.auth, func(sg ledger.Signer) error { return w.l.AuthorizeProvider(w.ctx, sg, w.provider.ID) }},
		{"UpdateProviderDeposit", w.auth, func(sg ledger.Signer) error { return w.l.UpdateProviderDeposit(w.ctx, sg, 1) }},
		{"CreateRegion", w.prov, func(sg ledger.Signer) error {
			_, err := w.l.CreateRegion(w.ctx, sg, 5, w.regionConfig("r5"))
			return err
		}},
		{"UpdateRegion", w.prov, func(sg ledger.Signer) error {
			_, err := w.l.UpdateRegion(w.ctx, sg, w.region.ID, w.regionConfig("r"))
			return err
		}},
		{"CreateUsageSigner", w.prov, func(sg ledger.Signer) error {
			return w.l.CreateUsageSigner(w.ctx, sg, fresh.ID, other.Pubkey())
		}},
		{"CreateEscrow", w.prov, func(sg ledger.Signer) error { _, err := w.l.CreateEscrow(w.ctx, sg, w.provider.ID); return err }},
		{"RechargeEscrow", w.dev, func(sg ledger.Signer) error {
			_, err := w.l.RechargeEscrow(w.ctx, sg, w.provider.ID, 1)
			return err
		}},
		{"WithdrawEscrow", w.dev, func(sg ledger.Signer) error {
			_, err := w.l.WithdrawEscrow(w.ctx, sg, w.provider.ID, 1)
			return err
		}},
		{"CreateStack", w.dev, func(sg ledger.Signer) error {
			_, err := w.l.CreateStack(w.ctx, sg, w.region.ID, 99, []byte("m"))
			return err
		}},
		{"UpdateStack", w.dev, func(sg ledger.Signer) error { _, err := w.l.UpdateStack(w.ctx, sg, s.ID, []byte("m")); return err }},
		{"DeleteStack", w.dev, func(sg ledger.Signer) error { _, err := w.l.DeleteStack(w.ctx, sg, s.ID); return err }},
		{"UpdateUsage", w.usage, func(sg ledger.Signer) error {
			_, err := w.l.UpdateUsage(w.ctx, sg, s.ID, ledger.U128(77), w.fixedUsage())
			return err
		}},
	}
	for _, wr := range writes {
		for _, b := range bad {
			t.Run(wr.name+"/"+b.name, func(t *testing.T) {
				w.t = t
				if wr.name == "UpdateRegion" {
					w.refusedUpdateRegion(wr.do(b.make(wr.as)), ledger.ErrBadSigner, before)
					return
				}
				w.refused(wr.do(b.make(wr.as)), ledger.ErrBadSigner, before)
			})
		}
	}
	w.t = t
	// A well-signed write by the wrong key is refused too.
	// (Initialize, and writes any key may sign for itself, are left out.)
	wrongKey := map[string]bool{"Mint": true, "AuthorizeProvider": true, "UpdateProviderDeposit": true, "UpdateRegion": true,
		"CreateUsageSigner": true, "UpdateStack": true, "DeleteStack": true, "UpdateUsage": true}
	for _, wr := range writes {
		if !wrongKey[wr.name] {
			continue
		}
		t.Run(wr.name+"/wrong key", func(t *testing.T) {
			w.t = t
			if wr.name == "UpdateRegion" {
				w.refusedUpdateRegion(wr.do(other), ledger.ErrBadSigner, before)
				return
			}
			w.refused(wr.do(other), ledger.ErrBadSigner, before)
		})
	}
	w.t = t
}

func testChanges(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	w := bare(t, open)
	if cs := must(w.l.Changes(w.ctx, 0, 10))(w); len(cs) != 0 {
		t.Fatalf("changes of an empty ledger %+v", cs)
	}
	if _, err := w.l.Changes(w.ctx, 0, 0); !errors.Is(err, ledger.ErrInvalidArgument) {
		t.Fatalf("Changes with limit 0: %v, want ErrInvalidArgument", err)
	}
	w = setup(t, open)
	s := w.createStack(1)
	cs := w.changesSince(0)
	var prev uint64
	for i, c := range cs {
		n := 0
		for _, p := range []bool{c.State != nil, c.Provider != nil, c.Region != nil, c.Escrow != nil, c.Stack != nil} {
			if p {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("change %d sets %d accounts, want 1: %+v", i, n, c)
		}
		if c.Slot < prev || c.Slot == 0 || c.Slot > w.slot() {
			t.Fatalf("change %d has slot %d after %d (ledger at %d)", i, c.Slot, prev, w.slot())
		}
		prev = c.Slot
	}
	// The fixture's writes, in order, and what each must carry.
	var kinds []string
	for _, c := range cs {
		switch {
		case c.State != nil:
			kinds = append(kinds, "state")
		case c.Provider != nil:
			kinds = append(kinds, fmt.Sprintf("provider authorized=%v", c.Provider.Authorized))
		case c.Region != nil:
			kinds = append(kinds, fmt.Sprintf("region signer=%v", !c.Region.UsageSigner.IsZero()))
		case c.Escrow != nil:
			kinds = append(kinds, fmt.Sprintf("escrow %d", c.Escrow.Balance))
		case c.Stack != nil:
			kinds = append(kinds, fmt.Sprintf("stack %d enabled=%v", c.Stack.Seed, c.Stack.Enabled))
		}
	}
	want := []string{"state", "provider authorized=false", "provider authorized=true", "region signer=false",
		"region signer=true", "escrow 0", fmt.Sprintf("escrow %d", initialEscrow), "stack 1 enabled=true"}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("changes %v, want %v", kinds, want)
	}
	last := cs[len(cs)-1]
	if last.Slot != w.slot() || fmt.Sprint(*last.Stack) != fmt.Sprint(s) {
		t.Fatalf("last change %+v at slot %d, want the stack %+v at %d", last, last.Slot, s, w.slot())
	}
	// Paging one change at a time walks the same changes.
	var paged []ledger.Change
	for after := uint64(0); ; {
		page := must(w.l.Changes(w.ctx, after, 1))(w)
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1].Slot
	}
	if renderChanges(paged) != renderChanges(cs) {
		t.Fatalf("paging by 1 gives %+v, want %+v", paged, cs)
	}
	if got := must(w.l.Changes(w.ctx, w.slot(), 10))(w); len(got) != 0 {
		t.Fatalf("changes after the current slot: %+v", got)
	}
	if got := must(w.l.Changes(w.ctx, w.slot()+100, 10))(w); len(got) != 0 {
		t.Fatalf("changes after a future slot: %+v", got)
	}
	// Every write takes a slot, also one without account changes.
	slot := w.slot()
	w.ok(w.l.Transfer(w.ctx, w.dev, w.prov.Pubkey(), 1))
	if w.slot() != slot+1 {
		t.Fatalf("slot %d after a transfer at %d", w.slot(), slot)
	}
	// A refused write takes none.
	_, _ = w.l.CreateProvider(w.ctx, w.prov, "dup")
	if w.slot() != slot+1 {
		t.Fatalf("a refused write moved the slot to %d", w.slot())
	}
}

func testWait(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	w := bare(t, open)
	w.initialize()
	slot := w.slot()
	if err := w.l.Wait(w.ctx, slot-1, time.Hour); err != nil {
		t.Fatalf("Wait for a passed slot: %v", err)
	}
	// Nothing happens: Wait returns nil when poll passes.
	if err := w.l.Wait(w.ctx, slot, time.Millisecond); err != nil {
		t.Fatalf("Wait with a short poll: %v", err)
	}
	ctx, cancel := context.WithCancel(w.ctx)
	cancel()
	if err := w.l.Wait(ctx, slot, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context: %v, want context.Canceled", err)
	}
	// A write by another goroutine wakes a waiter with an hour's poll.
	done := make(chan error, 1)
	go func() { done <- w.l.Wait(w.ctx, slot, time.Hour) }()
	w.ok(w.l.Mint(w.ctx, w.auth, w.dev.Pubkey(), 1))
	if err := <-done; err != nil {
		t.Fatalf("Wait woken by a write: %v", err)
	}
}

func testClosed(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	w := bare(t, open)
	w.initialize()
	w.ok(w.l.Close())
	if err := w.l.Mint(w.ctx, w.auth, w.dev.Pubkey(), 1); !errors.Is(err, ledger.ErrUnavailable) {
		t.Fatalf("Mint on a closed ledger: %v, want ErrUnavailable", err)
	}
	if _, err := w.l.State(w.ctx); !errors.Is(err, ledger.ErrUnavailable) {
		t.Fatalf("State on a closed ledger: %v, want ErrUnavailable", err)
	}
	if err := w.l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// testConcurrent races usage charges, recharges and withdrawals on one
// escrow and checks the balances add up exactly.
func testConcurrent(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	w := setup(t, open)
	stack := w.createStack(1)
	const rounds = 30
	var (
		mu                             sync.Mutex
		recharged, withdrawn, charged  uint64
		commission                     uint64
		wg                             sync.WaitGroup
		errs                           = make(chan error, 3*rounds)
		usage                          = ledger.Usage{DBWrites: ledger.U128(3_000_000)} // 60 a charge
		rechargeAmount, withdrawAmount = uint64(40), uint64(25)
	)
	provBefore, devBefore := w.balance(w.prov.Pubkey()), w.balance(w.dev.Pubkey())
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := range rounds {
			r, err := w.l.UpdateUsage(w.ctx, w.usage, stack.ID, ledger.U128(uint64(i)), usage)
			if errors.Is(err, ledger.ErrInsufficientEscrow) && w.lacks(ledger.CapPartialCharge) {
				continue // the race decides whether the escrow can pay in full
			}
			if err != nil {
				errs <- fmt.Errorf("usage %d: %w", i, err)
				continue
			}
			mu.Lock()
			charged += r.Charged
			commission += r.Commission
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for i := range rounds {
			if _, err := w.l.RechargeEscrow(w.ctx, w.dev, w.provider.ID, rechargeAmount); err != nil {
				errs <- fmt.Errorf("recharge %d: %w", i, err)
				continue
			}
			mu.Lock()
			recharged += rechargeAmount
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for i := range rounds {
			_, err := w.l.WithdrawEscrow(w.ctx, w.dev, w.provider.ID, withdrawAmount)
			switch {
			case errors.Is(err, ledger.ErrBelowMinimum), errors.Is(err, ledger.ErrInsufficientEscrow):
				continue // the race decides; the balance must still add up
			case err != nil:
				errs <- fmt.Errorf("withdraw %d: %w", i, err)
				continue
			}
			mu.Lock()
			withdrawn += withdrawAmount
			mu.Unlock()
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	e := w.escrow()
	if want := initialEscrow + recharged - withdrawn - charged; e.Balance != want {
		t.Fatalf("escrow %d, want %d + %d - %d - %d = %d", e.Balance, initialEscrow, recharged, withdrawn, charged, want)
	}
	if got, want := w.balance(w.dev.Pubkey()), devBefore-recharged+withdrawn; got != want {
		t.Fatalf("developer wallet %d, want %d", got, want)
	}
	if got, want := w.balance(w.prov.Pubkey()), provBefore+charged-commission; got != want {
		t.Fatalf("provider wallet %d, want %d", got, want)
	}
	if charged == 0 {
		t.Fatal("nothing was charged")
	}
	w.conserved()
}
