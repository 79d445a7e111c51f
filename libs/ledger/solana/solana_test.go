package solana

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// TestSolana_ContractSuiteChargingRent runs the suite on a chain that
// charges rent as a validator does: every key but the fee payer starts
// with no SOL, so each write that creates or grows an account must bring
// its rent (the backend moves it from the fee payer).
func TestSolana_ContractSuiteChargingRent(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledger.Ledger {
		c, cfg := testChain(t)
		c.ChargeRent(true)
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

// BenchmarkSolana_Transfer is one write end to end against the in-process
// chain: build, sign, preflight, confirm, read back (client and chain in
// one process, so allocations count both).
func BenchmarkSolana_Transfer(b *testing.B) {
	c := solanatest.New(marketplace.DefaultProgramID)
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	payer := seeded("fee-payer")
	path := filepath.Join(b.TempDir(), "fee-payer.json")
	if err := ledger.SaveKeypair(path, payer); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Airdrop(solKey(payer.Pubkey()), 1_000_000*sol.LAMPORTS_PER_SOL); err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.RPCURL, cfg.WSURL, cfg.FeePayerKeypair, cfg.ConfirmPoll = c.RPCURL(), c.WSURL(), path, time.Millisecond
	l, err := Open(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	auth, dev := seeded("authority"), seeded("developer")
	if err := l.Initialize(b.Context(), auth, ledger.InitParams{}); err != nil {
		b.Fatal(err)
	}
	if err := l.Mint(b.Context(), auth, dev.Pubkey(), 1<<40); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Transfer(b.Context(), dev, auth.Pubkey(), 1); err != nil {
			b.Fatal(err)
		}
	}
}

// The fee payer file is what solana-keygen writes: a JSON array of the 64
// private key bytes; one whose public half does not match is refused,
// naming the setting.
func TestOpen_ReadsSolanaKeygenFiles(t *testing.T) {
	c, cfg := testChain(t)
	k := seeded("keygen")
	if _, err := c.Airdrop(solKey(k.Pubkey()), sol.LAMPORTS_PER_SOL); err != nil {
		t.Fatal(err)
	}
	ints := make([]string, 0, 64)
	for _, b := range k.PrivateKey() {
		ints = append(ints, fmt.Sprint(int(b)))
	}
	good := filepath.Join(t.TempDir(), "id.json")
	if err := os.WriteFile(good, []byte("["+strings.Join(ints, ",")+"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.FeePayerKeypair = good
	l := openTest(t, cfg)
	if solKey(l.payer.Pubkey()) != solKey(k.Pubkey()) {
		t.Fatalf("fee payer %s, want %s", l.payer.Pubkey(), k.Pubkey())
	}
	if err := l.Initialize(t.Context(), seeded("authority"), ledger.InitParams{}); err != nil {
		t.Fatalf("a write paid by the keygen file's key: %v", err)
	}
	ints[63] = fmt.Sprint((k.PrivateKey()[63] + 1) % 255)
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("["+strings.Join(ints, ",")+"]"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.FeePayerKeypair = bad
	if _, err := Open(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "fee_payer_keypair") {
		t.Fatalf("a keypair whose public half does not match: %v", err)
	}
}

// A manifest travels in one transaction (1232 bytes): CreateStack takes
// manifests up to what fits and refuses a larger one with
// ErrInvalidArgument, changing nothing.
func TestSolana_ManifestsUpToWhatATransactionCarries(t *testing.T) {
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
	must(l.Initialize(ctx, auth, ledger.InitParams{}))
	must(l.Mint(ctx, auth, dev.Pubkey(), 10))
	p, err := l.CreateProvider(ctx, prov, "acme")
	must(err)
	must(l.AuthorizeProvider(ctx, auth, p.ID))
	g, err := l.CreateRegion(ctx, prov, 1, ledger.RegionConfig{Name: "eu1", BaseURL: "https://eu1.example.net"})
	must(err)
	_, err = l.CreateEscrow(ctx, dev, p.ID)
	must(err)
	// The largest manifest that fits, found by bisection.
	lo, hi := 1, maxTransactionBytes
	for seed := uint64(1); lo < hi; seed++ {
		mid := (lo + hi + 1) / 2
		_, err := l.CreateStack(ctx, dev, g.ID, seed, make([]byte, mid))
		switch {
		case err == nil:
			lo = mid
		case errors.Is(err, ledger.ErrInvalidArgument):
			hi = mid - 1
		default:
			t.Fatal(err)
		}
	}
	t.Logf("the largest manifest one CreateStack carries is %d bytes", lo)
	if lo < 700 {
		t.Fatalf("only %d-byte manifests fit", lo)
	}
	s, err := l.CreateStack(ctx, dev, g.ID, 1000, make([]byte, lo))
	must(err)
	if _, err := l.UpdateStack(ctx, dev, s.ID, make([]byte, lo)); err != nil {
		t.Fatal(err)
	}
	before, _ := l.Stack(ctx, s.ID)
	if _, err := l.UpdateStack(ctx, dev, s.ID, make([]byte, lo+100)); !errors.Is(err, ledger.ErrInvalidArgument) {
		t.Fatalf("UpdateStack 100 bytes over: %v, want ErrInvalidArgument", err)
	}
	if after, _ := l.Stack(ctx, s.ID); after.Revision != before.Revision {
		t.Fatalf("a refused update moved the revision to %d", after.Revision)
	}
}

// BenchmarkEscrowAddress is one escrow address derivation (uncached), the
// cost Escrows and the feed pay once per (wallet owner, provider) pair.
func BenchmarkEscrowAddress(b *testing.B) {
	p := marketplace.Default
	provider := solKey(seeded("provider").Pubkey())
	var user sol.PublicKey
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		user[0], user[1] = byte(i), byte(i>>8)
		i++
		p.Escrow(user, provider)
	}
}

// A Ledger opened before the marketplace exists learns the mint from the
// state's notification and then follows the token accounts too.
func TestSolana_FeedFollowsTheMintOnceInitialized(t *testing.T) {
	_, cfg := testChain(t)
	reader := openTest(t, cfg)
	writer := openTest(t, cfg)
	ctx := t.Context()
	auth, prov, dev := seeded("authority"), seeded("provider"), seeded("developer")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(writer.Initialize(ctx, auth, ledger.InitParams{}))
	must(writer.Mint(ctx, auth, dev.Pubkey(), 10))
	p, err := writer.CreateProvider(ctx, prov, "acme")
	must(err)
	must(writer.AuthorizeProvider(ctx, auth, p.ID))
	_, err = writer.CreateEscrow(ctx, dev, p.ID)
	must(err)
	_, err = writer.RechargeEscrow(ctx, dev, p.ID, 5)
	must(err)
	for after := uint64(0); ; {
		cs, err := reader.Changes(ctx, after, 100)
		must(err)
		for _, c := range cs {
			if c.Escrow != nil && c.Escrow.Balance == 5 && c.Escrow.Developer == dev.Pubkey() {
				return
			}
			after = c.Slot
		}
		must(reader.Wait(ctx, after, time.Second))
	}
}

// A cut websocket is noticed: the feed reconnects, subscribes again and
// resyncs, so a write made while it was down still reaches Changes (the
// periodic resync is an hour away here).
func TestSolana_FeedRecoversFromACutWebsocket(t *testing.T) {
	c, cfg := testChain(t)
	cfg.ResyncInterval = time.Hour
	writer := openTest(t, cfg)
	ctx := t.Context()
	auth, prov := seeded("authority"), seeded("provider")
	if err := writer.Initialize(ctx, auth, ledger.InitParams{}); err != nil {
		t.Fatal(err)
	}
	reader := openTest(t, cfg)
	// Both ledgers subscribe to the program and the mint's token accounts.
	if err := c.WaitSubscriptions(ctx, 4); err != nil {
		t.Fatal(err)
	}
	start, _ := reader.Slot(ctx)
	c.DisconnectWebsockets()
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
				t.Fatalf("changes %+v, want provider %+v", cs, p)
			}
			break
		}
		if err := reader.Wait(ctx, start, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// And it is subscribed again: a later write arrives too.
	if err := c.WaitSubscriptions(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if err := writer.AuthorizeProvider(ctx, auth, p.ID); err != nil {
		t.Fatal(err)
	}
	for {
		slot, _ := reader.Slot(ctx)
		cs, err := reader.Changes(ctx, start, 10)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(cs); n > 1 && cs[n-1].Provider != nil && cs[n-1].Provider.Authorized {
			return
		}
		if err := reader.Wait(ctx, slot, time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

// The fee payer pays, in each transaction, the rent the program makes the
// instruction's authority pay: the developer ends up with exactly the rent
// of its escrow and stack (the test chain creates accounts without
// debiting their payer).
func TestSolana_TheFeePayerFundsTheAuthoritysRent(t *testing.T) {
	c, cfg := testChain(t)
	l := openTest(t, cfg)
	ctx := t.Context()
	auth, prov, dev := seeded("authority"), seeded("provider"), seeded("developer")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.Initialize(ctx, auth, ledger.InitParams{}))
	must(l.Mint(ctx, auth, prov.Pubkey(), 1))
	p, err := l.CreateProvider(ctx, prov, "acme")
	must(err)
	must(l.AuthorizeProvider(ctx, auth, p.ID))
	g, err := l.CreateRegion(ctx, prov, 1, ledger.RegionConfig{Name: "eu1", BaseURL: "https://eu1.example.net"})
	must(err)
	_, err = l.CreateEscrow(ctx, dev, p.ID)
	must(err)
	manifest := []byte("name: app\n")
	s, err := l.CreateStack(ctx, dev, g.ID, 1, manifest)
	must(err)
	want := solanatest.RentExemptMinimum(marketplace.TokenAccountSpace) +
		solanatest.RentExemptMinimum(uint64(marketplace.StackSpace(0, len(manifest))))
	if got, _ := c.Account(solKey(dev.Pubkey())); got.Lamports != want {
		t.Fatalf("the developer holds %d lamports, want %d", got.Lamports, want)
	}
	// Growing the stack pays the difference; shrinking it nothing.
	bigger := make([]byte, 100)
	_, err = l.UpdateStack(ctx, dev, s.ID, bigger)
	must(err)
	want += solanatest.RentExemptMinimum(uint64(marketplace.StackSpace(0, len(bigger)))) -
		solanatest.RentExemptMinimum(uint64(marketplace.StackSpace(0, len(manifest))))
	_, err = l.DeleteStack(ctx, dev, s.ID)
	must(err)
	if got, _ := c.Account(solKey(dev.Pubkey())); got.Lamports != want {
		t.Fatalf("after growing and deleting the stack the developer holds %d lamports, want %d", got.Lamports, want)
	}
}
