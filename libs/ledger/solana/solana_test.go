package solana

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	sol "github.com/gagliardetto/solana-go"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgertest"
	"github.com/muprotocol/mu/libs/ledger/solana/marketplace"
	"github.com/muprotocol/mu/libs/ledger/solana/solanatest"
)

// testChain starts an in-process chain with the marketplace program and a
// funded fee payer, and returns it with a Config for it.
func testChain(t *testing.T) (*solanatest.Chain, Config) {
	t.Helper()
	c := solanatest.New(marketplace.DefaultProgramID)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	payer := seeded("fee-payer")
	path := filepath.Join(t.TempDir(), "fee-payer.json")
	if err := ledger.SaveKeypair(path, payer); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Airdrop(solKey(payer.Pubkey()), 1_000*sol.LAMPORTS_PER_SOL); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.RPCURL, cfg.WSURL = c.RPCURL(), c.WSURL()
	cfg.FeePayerKeypair = path
	cfg.ConfirmPoll = time.Millisecond
	cfg.RetryInitial = 5 * time.Millisecond
	cfg.RetryMax = 50 * time.Millisecond
	return c, cfg
}

func openTest(t *testing.T, cfg Config) *Ledger {
	t.Helper()
	l, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestSolana_ContractSuite runs the ledger contract suite against the
// backend on an in-process chain over HTTP and websocket.
func TestSolana_ContractSuite(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledger.Ledger {
		_, cfg := testChain(t)
		return openTest(t, cfg)
	})
}

func TestSolana_LacksWhatTheProgramCannotKeep(t *testing.T) {
	_, cfg := testChain(t)
	l := openTest(t, cfg)
	for _, c := range []ledger.Capability{ledger.CapCarries, ledger.CapPartialCharge, ledger.CapStorage, ledger.CapMemoryBounds,
		ledger.CapWideInstructionCap, ledger.CapUpdateRegion, ledger.CapReplaceUsageSigner, ledger.CapDeletedStackData} {
		if !ledger.Lacks(l, c) {
			t.Errorf("the Solana ledger does not say it lacks %s", c)
		}
	}
	if !slices.Equal(l.Lacks(), lacks) {
		t.Errorf("Lacks() = %v", l.Lacks())
	}
}

// A second Ledger on the same chain sees the first one's writes through
// its feed, and refuses changes from before it opened.
func TestSolana_FeedDeliversAnotherWritersChanges(t *testing.T) {
	_, cfg := testChain(t)
	writer := openTest(t, cfg)
	ctx := t.Context()
	auth := seeded("authority")
	if err := writer.Initialize(ctx, auth, ledger.InitParams{ProviderDeposit: 10, CommissionMicros: 1000}); err != nil {
		t.Fatal(err)
	}
	reader := openTest(t, cfg)
	start, err := reader.Slot(ctx)
	if err != nil || start == 0 {
		t.Fatalf("reader opened at slot %d (%v)", start, err)
	}
	if _, err := reader.Changes(ctx, 0, 10); !errors.Is(err, ledger.ErrCompacted) {
		t.Fatalf("changes from before the reader opened: %v, want ErrCompacted", err)
	}
	prov := seeded("provider")
	if err := writer.Mint(ctx, auth, prov.Pubkey(), 100); err != nil {
		t.Fatal(err)
	}
	p, err := writer.CreateProvider(ctx, prov, "acme")
	if err != nil {
		t.Fatal(err)
	}
	for {
		cs, err := reader.Changes(ctx, start, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) > 0 {
			if cs[0].Provider == nil || *cs[0].Provider != p {
				t.Fatalf("reader's changes %+v, want provider %+v", cs, p)
			}
			break
		}
		if err := reader.Wait(ctx, start, time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

// Writes survive transport faults without being applied twice.
func TestSolana_WritesSurviveLostRepliesAndRefusals(t *testing.T) {
	c, cfg := testChain(t)
	l := openTest(t, cfg)
	ctx := t.Context()
	auth, dev := seeded("authority"), seeded("developer")
	if err := l.Initialize(ctx, auth, ledger.InitParams{}); err != nil {
		t.Fatal(err)
	}
	c.LoseSendReplies(1)
	if err := l.Mint(ctx, auth, dev.Pubkey(), 70); err != nil {
		t.Fatal(err)
	}
	c.RefuseSends(2)
	if err := l.Mint(ctx, auth, dev.Pubkey(), 30); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Balance(ctx, dev.Pubkey()); err != nil || got != 100 {
		t.Fatalf("balance %d (%v), want 100: a retried mint applied twice or not at all", got, err)
	}
}

// A write whose transaction the network drops is signed again once its
// blockhash expires, and applied once.
func TestSolana_DroppedTransactionIsResignedAfterExpiry(t *testing.T) {
	c, cfg := testChain(t)
	l := openTest(t, cfg)
	ctx := t.Context()
	auth, dev := seeded("authority"), seeded("developer")
	if err := l.Initialize(ctx, auth, ledger.InitParams{}); err != nil {
		t.Fatal(err)
	}
	c.DropSends(1)
	done := make(chan error, 1)
	go func() { done <- l.Mint(ctx, auth, dev.Pubkey(), 5) }()
	// Expire the dropped transaction's blockhash once it was sent.
	for c.SendCount() < 2 {
		select {
		case err := <-done:
			t.Fatalf("mint returned %v before its transaction could expire", err)
		case <-time.After(time.Millisecond):
		}
	}
	c.ExpireBlockhashes()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Balance(ctx, dev.Pubkey()); got != 5 {
		t.Fatalf("balance %d, want 5", got)
	}
}

func TestSolana_OpenNeedsTheFeePayerFile(t *testing.T) {
	_, cfg := testChain(t)
	cfg.FeePayerKeypair = filepath.Join(t.TempDir(), "missing.json")
	if _, err := Open(context.Background(), cfg); err == nil {
		t.Fatal("Open without a fee payer file succeeded")
	}
}

// With its websocket unreachable a Ledger still sees other writers'
// changes: the periodic resync reads them and emits the differences.
func TestSolana_ResyncEmitsWhatNoSubscriptionDelivered(t *testing.T) {
	_, cfg := testChain(t)
	writer := openTest(t, cfg)
	ctx := t.Context()
	auth, prov := seeded("authority"), seeded("provider")
	if err := writer.Initialize(ctx, auth, ledger.InitParams{ProviderDeposit: 10}); err != nil {
		t.Fatal(err)
	}
	if err := writer.Mint(ctx, auth, prov.Pubkey(), 100); err != nil {
		t.Fatal(err)
	}
	deaf := cfg
	deaf.WSURL = "ws://127.0.0.1:1" // nothing listens
	deaf.ResyncInterval = 5 * time.Millisecond
	reader := openTest(t, deaf)
	start, _ := reader.Slot(ctx)
	p, err := writer.CreateProvider(ctx, prov, "acme")
	if err != nil {
		t.Fatal(err)
	}
	for {
		cs, err := reader.Changes(ctx, start, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) > 0 {
			if len(cs) != 1 || cs[0].Provider == nil || *cs[0].Provider != p {
				t.Fatalf("changes %+v, want provider %+v", cs, p)
			}
			return
		}
		if err := reader.Wait(ctx, start, time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSolana_ChangesOlderThanTheRetentionAreCompacted(t *testing.T) {
	_, cfg := testChain(t)
	cfg.ChangeRetention = 2
	l := openTest(t, cfg)
	ctx := t.Context()
	auth, prov := seeded("authority"), seeded("provider")
	if err := l.Initialize(ctx, auth, ledger.InitParams{}); err != nil {
		t.Fatal(err)
	}
	p, err := l.CreateProvider(ctx, prov, "acme")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := l.Mint(ctx, auth, prov.Pubkey(), 1); err != nil { // slots without changes
			t.Fatal(err)
		}
	}
	if err := l.AuthorizeProvider(ctx, auth, p.ID); err != nil {
		t.Fatal(err)
	}
	slot, _ := l.Slot(ctx)
	if _, err := l.Changes(ctx, 0, 10); !errors.Is(err, ledger.ErrCompacted) {
		t.Fatalf("Changes from 0 with retention 2: %v, want ErrCompacted", err)
	}
	cs, err := l.Changes(ctx, slot-2, 10)
	if err != nil || len(cs) != 1 || cs[0].Provider == nil || !cs[0].Provider.Authorized || cs[0].Slot != slot {
		t.Fatalf("changes within the retention: %+v, %v", cs, err)
	}
}

// A usage charge that takes the escrow under the region's minimum
// disables the owner's stacks (computed from the escrow on read), and the
// feed emits the flip with the escrow's change; a recharge flips it back.
func TestSolana_EscrowUnderTheMinimumDisablesStacksInTheFeed(t *testing.T) {
	_, cfg := testChain(t)
	l := openTest(t, cfg)
	ctx := t.Context()
	auth, prov, dev, us := seeded("authority"), seeded("provider"), seeded("developer"), seeded("usage")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.Initialize(ctx, auth, ledger.InitParams{ProviderDeposit: 10}))
	must(l.Mint(ctx, auth, prov.Pubkey(), 10))
	must(l.Mint(ctx, auth, dev.Pubkey(), 1000))
	p, err := l.CreateProvider(ctx, prov, "acme")
	must(err)
	must(l.AuthorizeProvider(ctx, auth, p.ID))
	g, err := l.CreateRegion(ctx, prov, 1, ledger.RegionConfig{Name: "eu1", BaseURL: "https://eu1.example.net",
		Rates: ledger.Rates{DBPerMillionWrites: 60}, MinEscrowBalance: 100})
	must(err)
	must(l.CreateUsageSigner(ctx, prov, g.ID, us.Pubkey()))
	_, err = l.CreateEscrow(ctx, dev, p.ID)
	must(err)
	_, err = l.RechargeEscrow(ctx, dev, p.ID, 150)
	must(err)
	s, err := l.CreateStack(ctx, dev, g.ID, 1, []byte("name: app\n"))
	must(err)
	if !s.Enabled {
		t.Fatalf("new stack %+v not enabled", s)
	}
	flip := func(want bool) {
		t.Helper()
		slot, _ := l.Slot(ctx)
		cs, err := l.Changes(ctx, slot-1, 10)
		must(err)
		var got []string
		for _, c := range cs {
			switch {
			case c.Escrow != nil:
				got = append(got, fmt.Sprintf("escrow %d", c.Escrow.Balance))
			case c.Stack != nil:
				got = append(got, fmt.Sprintf("stack enabled=%v", c.Stack.Enabled))
			}
		}
		if len(got) != 2 || got[1] != fmt.Sprintf("stack enabled=%v", want) {
			t.Fatalf("changes of the last write %v, want the escrow and the stack enabled=%v", got, want)
		}
		if st, _ := l.Stack(ctx, s.ID); st.Enabled != want {
			t.Fatalf("Stack reads enabled=%v, want %v", st.Enabled, want)
		}
	}
	r, err := l.UpdateUsage(ctx, us, s.ID, ledger.U128(1), ledger.Usage{DBWrites: ledger.U128(1_000_000)})
	must(err)
	if r.Charged != 60 {
		t.Fatalf("charged %d, want 60", r.Charged)
	}
	flip(false)
	_, err = l.RechargeEscrow(ctx, dev, p.ID, 10)
	must(err)
	flip(true)
	// Under the minimum, a withdrawal is refused, off chain.
	if _, err := l.WithdrawEscrow(ctx, dev, p.ID, 1); !errors.Is(err, ledger.ErrBelowMinimum) {
		t.Fatalf("withdrawal under the minimum: %v, want ErrBelowMinimum", err)
	}
}
