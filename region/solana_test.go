package region

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	sol "github.com/gagliardetto/solana-go"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/backend"
	"github.com/muprotocol/mu/libs/ledger/solana"
	"github.com/muprotocol/mu/libs/ledger/solana/solanatest"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	billingsvc "github.com/muprotocol/mu/services/billing"
)

// startChain starts the in-process Solana endpoint with the marketplace
// program at its deployed address, charging rent as a cluster does (the
// region must fund the keys that pay it).
func startChain(t *testing.T) *solanatest.Chain {
	t.Helper()
	c := solanatest.New(sol.MustPublicKeyFromBase58(solana.DefaultProgramID))
	c.ChargeRent(true)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// solanaSettings are the backend's settings for chain, reached over HTTP
// and websocket.
func solanaSettings(c *solanatest.Chain) *backend.Solana {
	s := backend.DefaultSolana()
	s.RPCURL, s.WSURL, s.ProgramID = c.RPCURL(), c.WSURL(), c.ProgramID().String()
	return &s
}

// usageOf reads billing's amounts per unit from a usage list.
func usageOf(ts []*billingv1.UsageTotal) ledger.Usage {
	var u ledger.Usage
	for _, x := range ts {
		if unit, ok := ledger.UnitOf(x.GetKind()); ok {
			u.Set(unit, ledger.Uint128{Hi: x.GetAmount().GetHi(), Lo: x.GetAmount().GetLo()})
		}
	}
	return u
}

// TestSolana_HelloIsServedAndBilledOnTheProgram runs a region like `mu
// run --ledger solana`'s against the in-process Solana endpoint: the dev
// market is set up on the program, hello is posted with create_stack and
// served once the chain-indexer sees it, and a settlement charges the
// escrow exactly the whole-token part of the usage, the rest carried to
// the next; the provider and the commission account get exactly the
// charge, and over two settlements nothing is lost to the program's
// truncation.
func TestSolana_HelloIsServedAndBilledOnTheProgram(t *testing.T) {
	chain := startChain(t)
	rates := ledger.Rates{
		FunctionPerTeraMBInstructions: 1_000_000, // a token per 10^6 MB-instructions
		DBPerMillionReads:             700,
		DBPerMillionWrites:            2_000,
		DBPerGiBMonthStored:           5_000,
		GatewayPerMillionRequests:     1_500_000, // 3 tokens per 2 requests
		GatewayPerGiBTraffic:          1 << 20,   // a token per KiB
	}
	opts := billingRegionOptions(t, func(s *MarketSettings) { s.Region.Rates = rates })
	opts.Ledger.Solana = solanaSettings(chain)
	r := startRegion(t, opts)
	ctx := waitCtx(t)
	mk := r.Market()
	if mk.Region.Rates != rates || mk.Region.UsageSigner != mk.Keys.Provider.Pubkey() {
		t.Fatalf("the market's region on the program: %+v", mk.Region)
	}
	m, bins := stackFromDir(t, "../examples/hello")
	st, err := r.Post(ctx, mk.Keys.Developer, 1, m, bins)
	if err != nil {
		t.Fatal(err)
	}
	id := ids.StackID(st.ID)
	if err := r.WaitServed(ctx, id, st.Revision); err != nil {
		t.Fatal(err)
	}
	url := "http://" + r.Gateway().Addr() + "/" + id.String() + "/greeting/greet/ann"

	var charged, carriedPrice ledger.Uint128 // the charges, and the total's price with carries
	var all ledger.Usage
	start := readBalances(ctx, t, r.Ledger(), mk)
	for round, n := range []uint64{25, 26} {
		b0 := getBilled(ctx, t, r, id).totals[typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS]
		for range n {
			if code, body := get(t, url); code != http.StatusOK {
				t.Fatalf("round %d: %d %s", round, code, body)
			}
		}
		if err := r.FlushUsage(ctx); err != nil {
			t.Fatal(err)
		}
		b := waitBilled(ctx, t, r, id, typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS, b0+n)
		unsettled := usageOf(b.resp.GetUnsettled())
		send, carry := ledger.WholeTokenUsage(rates, unsettled)
		want, _, err := ledger.Charge(rates, send, ledger.Carry{})
		if err != nil {
			t.Fatal(err)
		}

		before := readBalances(ctx, t, r.Ledger(), mk)
		resp, err := r.Billing().Client().Settle(ctx, &billingv1.SettleRequest{StackIds: [][]byte{id.Bytes()}})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetSettlements()) != 1 {
			t.Fatalf("round %d: settlements %v, want one", round, resp.GetSettlements())
		}
		s := resp.GetSettlements()[0]
		if s.GetStatus() != billingv1.SettlementStatus_SETTLEMENT_STATUS_SETTLED || ledger.U128(s.GetCharged()) != want {
			t.Fatalf("round %d: settlement %v (%s), want SETTLED charging %s", round, s.GetStatus(), s.GetError(), want)
		}
		if got := usageOf(s.GetUsage()); got != send {
			t.Fatalf("round %d: sent %+v, want the whole-token part %+v of %+v", round, got, send, unsettled)
		}
		after := readBalances(ctx, t, r.Ledger(), mk)
		commission := ledger.Commission(s.GetCharged(), 50_000)
		if before.escrow-after.escrow != s.GetCharged() || after.provider-before.provider != s.GetCharged()-commission ||
			after.commission-before.commission != commission || after.supply != before.supply {
			t.Fatalf("round %d: escrow -%d, provider +%d, commission +%d, supply %d → %d; want -%d, +%d, +%d",
				round, before.escrow-after.escrow, after.provider-before.provider, after.commission-before.commission,
				before.supply, after.supply, s.GetCharged(), s.GetCharged()-commission, commission)
		}
		indexedEscrow(ctx, t, r, mk, after.escrow)
		if left := usageOf(getBilled(ctx, t, r, id).resp.GetUnsettled()); left != carry {
			t.Fatalf("round %d: unsettled %+v, want the carry %+v", round, left, carry)
		}
		charged, _ = charged.Add(ledger.U128(s.GetCharged()))
		for u := ledger.Unit(0); u < ledger.NumUnits; u++ {
			a, _ := all.Amount(u).Add(send.Amount(u))
			all.Set(u, a)
		}
		if round == 1 {
			// The carry's price (with carries) is all the program did not
			// charge: the charges plus it are the whole usage's price.
			total := all
			for u := ledger.Unit(0); u < ledger.NumUnits; u++ {
				a, _ := total.Amount(u).Add(carry.Amount(u))
				total.Set(u, a)
			}
			carriedPrice, _, _ = ledger.Charge(rates, total, ledger.Carry{})
			rest, _, _ := ledger.Charge(rates, carry, ledger.Carry{})
			if sum, _ := charged.Add(rest); sum != carriedPrice {
				t.Fatalf("charged %s + the carry's %s != the usage's price %s", charged, rest, carriedPrice)
			}
		}
	}
	end := readBalances(ctx, t, r.Ledger(), mk)
	if ledger.U128(start.escrow-end.escrow) != charged || charged.IsZero() {
		t.Fatalf("the escrow paid %d over two settlements, billing charged %s", start.escrow-end.escrow, charged)
	}
}

// TestSolana_EscrowDrainedByASettlementGets402UntilRecharged: a
// settlement that leaves the escrow under the region minimum disables the
// stack (the program has no such rule: the backend computes Enabled from
// the escrow and the indexer serves it), and a recharge brings it back.
// The program cannot charge part of an update, so billing sends only what
// the escrow holds: 5 requests at 1,000 tokens each from 5,500.
func TestSolana_EscrowDrainedByASettlementGets402UntilRecharged(t *testing.T) {
	chain := startChain(t)
	opts := billingRegionOptions(t, func(s *MarketSettings) {
		s.Region.Rates = ledger.Rates{GatewayPerMillionRequests: 1_000_000_000} // 1,000 a request
		s.Region.MinEscrowBalance = 1_000
		s.Escrow = 5_500
	})
	opts.Ledger.Solana = solanaSettings(chain)
	r := startRegion(t, opts)
	ctx := waitCtx(t)
	mk := r.Market()
	m, bins := stackFromDir(t, "../examples/hello")
	st, err := r.Post(ctx, mk.Keys.Developer, 1, m, bins)
	if err != nil {
		t.Fatal(err)
	}
	id := ids.StackID(st.ID)
	if err := r.WaitServed(ctx, id, st.Revision); err != nil {
		t.Fatal(err)
	}
	url := "http://" + r.Gateway().Addr() + "/" + id.String() + "/greeting/greet/ann"
	for range 6 {
		if code, body := get(t, url); code != http.StatusOK {
			t.Fatalf("%d %s", code, body)
		}
	}
	if err := r.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	waitBilled(ctx, t, r, id, typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS, 6)
	resp, err := r.Billing().Client().Settle(ctx, &billingv1.SettleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetSettlements()) != 1 || resp.GetSettlements()[0].GetCharged() != 5_000 ||
		resp.GetSettlements()[0].GetStatus() != billingv1.SettlementStatus_SETTLEMENT_STATUS_INSUFFICIENT_ESCROW {
		t.Fatalf("settlements %v, want INSUFFICIENT_ESCROW charging the 5 requests the escrow could pay", resp.GetSettlements())
	}
	if b := readBalances(ctx, t, r.Ledger(), mk); b.escrow != 500 {
		t.Fatalf("escrow %d, want 500", b.escrow)
	}
	if u := getBilled(ctx, t, r, id); u.unsettled[typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS] != 1 {
		t.Fatalf("unsettled %v, want the sixth request", u.unsettled)
	}
	if err := r.WaitEnabled(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, url); code != http.StatusPaymentRequired {
		t.Fatalf("under the minimum: %d %s, want 402", code, body)
	}

	if err := r.Ledger().Mint(ctx, mk.Keys.Authority, mk.Keys.Developer.Pubkey(), 100_000); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Ledger().RechargeEscrow(ctx, mk.Keys.Developer, mk.Provider.ID, 100_000); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitEnabled(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, url); code != http.StatusOK {
		t.Fatalf("after the recharge: %d %s", code, body)
	}
	resp, err = r.Billing().Client().Settle(ctx, &billingv1.SettleRequest{StackIds: [][]byte{id.Bytes()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetSettlements()) != 1 || resp.GetSettlements()[0].GetStatus() != billingv1.SettlementStatus_SETTLEMENT_STATUS_SETTLED {
		t.Fatalf("after the recharge: %v, want the waiting request settled", resp.GetSettlements())
	}
}

// TestSolana_BillingChildSettlesOnTheProgramItself runs billing as a
// child process (mu-billing, ledger_backend solana, the ledger_solana_*
// settings as flags): it signs and sends its update_usage to the Solana
// endpoint itself, since a Solana write cannot be forwarded through the
// chain-indexer, and charges the escrow exactly the whole-token part.
func TestSolana_BillingChildSettlesOnTheProgramItself(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the billing command")
	}
	chain := startChain(t)
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	rates := ledger.Rates{GatewayPerMillionRequests: 1_500_000} // 3 tokens per 2 requests
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r, err := Start(ctx, Options{
		Mode:    Processes,
		DataDir: t.TempDir(),
		Ledger:  &LedgerOptions{Solana: solanaSettings(chain), Market: func(s *MarketSettings) { s.Region.Rates = rates }},
		Billing: &BillingOptions{Config: func(c *billingsvc.Config) { c.SettleInterval = time.Hour }},
		Process: ProcessOptions{RepoDir: repo, LogDir: t.TempDir(), StopTimeout: 20 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if r.Billing().Process() == nil {
		t.Fatal("billing does not run as a child")
	}
	mk := r.Market()
	st, err := r.Ledger().CreateStack(ctx, mk.Keys.Developer, mk.Region.ID, 7, []byte("name: app\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Billing().Client().ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{{
		StackId: st.ID.Bytes(), Kind: typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS, Amount: 7, IdempotencyKey: "r/1"}}})
	if err != nil {
		t.Fatal(err)
	}
	before := readBalances(ctx, t, r.Ledger(), mk)
	resp, err := r.Billing().Client().Settle(ctx, &billingv1.SettleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetSettlements()) != 1 || resp.GetSettlements()[0].GetStatus() != billingv1.SettlementStatus_SETTLEMENT_STATUS_SETTLED ||
		resp.GetSettlements()[0].GetCharged() != 9 {
		t.Fatalf("settlements %v, want 6 of the 7 requests settled for 9 tokens", resp.GetSettlements())
	}
	after := readBalances(ctx, t, r.Ledger(), mk)
	if before.escrow-after.escrow != 9 || (after.provider-before.provider)+(after.commission-before.commission) != 9 {
		t.Fatalf("escrow -%d, provider +%d, commission +%d; want 9 moved", before.escrow-after.escrow,
			after.provider-before.provider, after.commission-before.commission)
	}
	u, err := r.Billing().Client().GetUsage(ctx, &billingv1.GetUsageRequest{StackId: st.ID.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	if got := usageOf(u.GetUnsettled()); got != (ledger.Usage{GatewayRequests: ledger.U128(1)}) {
		t.Fatalf("unsettled %+v, want the one request carried", got)
	}
}

// indexedEscrow waits until the chain indexer has applied the ledger up to
// its slot now, then requires it to serve the developer's escrow with the
// provider at balance: a settlement's charge reaches the indexer (it once
// kept the balance from before, taking the settlement's slot as seen
// before the backend's feed held its changes).
func indexedEscrow(ctx context.Context, t *testing.T, r *Region, mk *Market, balance uint64) {
	t.Helper()
	slot, err := r.Ledger().Slot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ix := r.ChainIndexer().Client()
	for {
		st, err := ix.GetStatus(ctx, &chainindexerv1.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if st.GetLedgerSlot() >= slot {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the chain indexer stayed at slot %d, the ledger is at %d", st.GetLedgerSlot(), slot)
		case <-time.After(10 * time.Millisecond):
		}
	}
	list, err := ix.ListEscrows(ctx, &chainindexerv1.ListEscrowsRequest{Developer: mk.Keys.Developer.Pubkey().Bytes(), ProviderId: mk.Provider.ID.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetEscrows()) != 1 || list.GetEscrows()[0].GetBalance() != balance {
		t.Fatalf("the chain indexer serves escrows %v at slot %d, want one of balance %d", list.GetEscrows(), slot, balance)
	}
}
