package region

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/usage"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	billingsvc "github.com/muprotocol/mu/services/billing"
	"github.com/muprotocol/mu/services/gateway"
	"github.com/muprotocol/mu/services/runtime"
)

// billed is a stack's usage as billing reports it, per kind.
type billed struct {
	totals, unsettled map[typesv1.UsageKind]uint64
	resp              *billingv1.GetUsageResponse
}

func getBilled(ctx context.Context, t *testing.T, r *Region, id ids.StackID) billed {
	t.Helper()
	resp, err := r.Billing().Client().GetUsage(ctx, &billingv1.GetUsageRequest{StackId: id.Bytes()})
	if err != nil {
		t.Fatalf("GetUsage: %v", err)
	}
	b := billed{totals: map[typesv1.UsageKind]uint64{}, unsettled: map[typesv1.UsageKind]uint64{}, resp: resp}
	for _, x := range resp.GetTotals() {
		b.totals[x.GetKind()] = x.GetAmount().GetLo()
	}
	for _, x := range resp.GetUnsettled() {
		b.unsettled[x.GetKind()] = x.GetAmount().GetLo()
	}
	return b
}

// waitBilled polls billing until the stack's total of kind is want (and
// fails if it goes past it: a record counted twice) or ctx ends.
func waitBilled(ctx context.Context, t *testing.T, r *Region, id ids.StackID, kind typesv1.UsageKind, want uint64) billed {
	t.Helper()
	for {
		b := getBilled(ctx, t, r, id)
		got := b.totals[kind]
		if got == want {
			return b
		}
		if got > want {
			t.Fatalf("billing counts %d of %v for stack %s, want %d: records counted twice", got, kind, id, want)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("billing counts %d of %v for stack %s, want %d: records lost", got, kind, id, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// balances are the token accounts that usage moves.
type balances struct{ escrow, provider, commission, supply uint64 }

func readBalances(ctx context.Context, t *testing.T, l ledger.Ledger, mk *Market) balances {
	t.Helper()
	e, err := l.Escrow(ctx, mk.Keys.Developer.Pubkey(), mk.Provider.ID)
	if err != nil {
		t.Fatal(err)
	}
	prov, err := l.Balance(ctx, mk.Keys.Provider.Pubkey())
	if err != nil {
		t.Fatal(err)
	}
	st, err := l.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	accounts, supply, err := l.TokenAccounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sum, commission uint64
	for _, a := range accounts {
		sum += a.Balance
		if a.Address == st.CommissionAccount {
			commission = a.Balance
		}
	}
	if sum != supply {
		t.Fatalf("token accounts hold %d, supply is %d", sum, supply)
	}
	return balances{escrow: e.Balance, provider: prov, commission: commission, supply: supply}
}

func billingRegionOptions(t *testing.T, market func(*MarketSettings)) Options {
	return Options{
		DataDir: t.TempDir(),
		Mudb:    &MudbOptions{},
		Storage: &StorageOptions{},
		Ledger:  &LedgerOptions{Market: market},
		// Settlement only when the test asks (Settle).
		Billing: &BillingOptions{Config: func(c *billingsvc.Config) { c.SettleInterval = time.Hour }},
	}
}

// TestBilling_RequestsAreBilledExactlyAndSettledOnTheLedger serves hello in
// a region like `mu run`'s, with billing: every request reaches billing
// exactly once, and a settlement moves the price from the escrow to the
// provider and the commission account to the base unit.
func TestBilling_RequestsAreBilledExactlyAndSettledOnTheLedger(t *testing.T) {
	r := startRegion(t, billingRegionOptions(t, nil))
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
	const n = 25
	for range n {
		if code, body := get(t, url); code != http.StatusOK {
			t.Fatalf("%d %s", code, body)
		}
	}
	if err := r.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	b := waitBilled(ctx, t, r, id, typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS, n)
	if b.totals[typesv1.UsageKind_USAGE_KIND_FUNCTION_MB_INSTRUCTIONS] == 0 || b.totals[typesv1.UsageKind_USAGE_KIND_GATEWAY_TRAFFIC_BYTES] == 0 {
		t.Fatalf("billed %v: want function work and traffic too", b.totals)
	}
	for _, x := range b.resp.GetTotals() {
		if x.GetCost() == nil {
			t.Fatalf("no cost for %v", x.GetKind())
		}
	}

	before := readBalances(ctx, t, r.Ledger(), mk)
	resp, err := r.Billing().Client().Settle(ctx, &billingv1.SettleRequest{StackIds: [][]byte{id.Bytes()}})
	if err != nil {
		t.Fatal(err)
	}
	var charged uint64
	for _, s := range resp.GetSettlements() {
		if s.GetStatus() != billingv1.SettlementStatus_SETTLEMENT_STATUS_SETTLED {
			t.Fatalf("settlement %v: %s", s.GetStatus(), s.GetError())
		}
		charged += s.GetCharged()
	}
	if len(resp.GetSettlements()) == 0 {
		t.Fatal("nothing settled")
	}
	after := readBalances(ctx, t, r.Ledger(), mk)
	if before.escrow-after.escrow != charged {
		t.Fatalf("escrow went down by %d, billing charged %d", before.escrow-after.escrow, charged)
	}
	if gained := (after.provider - before.provider) + (after.commission - before.commission); gained != charged {
		t.Fatalf("provider and commission gained %d, charged %d", gained, charged)
	}
	if want := ledger.Commission(charged, 50_000); after.commission-before.commission != want {
		t.Fatalf("commission %d, want %d of %d", after.commission-before.commission, want, charged)
	}
	if after.supply != before.supply {
		t.Fatalf("supply moved: %d → %d", before.supply, after.supply)
	}
	if u := getBilled(ctx, t, r, id); len(u.unsettled) != 0 || u.totals[typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS] != n {
		t.Fatalf("after settling: totals %v unsettled %v", u.totals, u.unsettled)
	}
}

// TestBilling_EscrowCutOffBy402ThenRechargeServesAgain prices requests so
// that a few drain the escrow: the settlement that takes the balance under
// the region minimum disables the stack (the gateway answers 402 with a
// JSON body saying how much to add), and a recharge brings it back.
func TestBilling_EscrowCutOffBy402ThenRechargeServesAgain(t *testing.T) {
	r := startRegion(t, billingRegionOptions(t, func(s *MarketSettings) {
		s.Region.Rates.GatewayPerMillionRequests = 1_000_000_000 // 1,000 a request
		s.Region.MinEscrowBalance = 1_000
		s.Escrow = 5_500
	}))
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
	for range 5 {
		if code, body := get(t, url); code != http.StatusOK {
			t.Fatalf("%d %s", code, body)
		}
	}
	if err := r.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	waitBilled(ctx, t, r, id, typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS, 5)
	if _, err := r.Billing().Client().Settle(ctx, &billingv1.SettleRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitEnabled(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	// The gateway learns the disable and the settled balance from two
	// watches (stacks, escrows), so for a moment its 402 may still see
	// the balance from before the settlement ("overdrawn by usage not yet
	// settled"); the reason is rewritten when the balance arrives.
	var e struct {
		Error struct{ Kind, Message string } `json:"error"`
	}
	for {
		code, body := get(t, url)
		if code != http.StatusPaymentRequired {
			t.Fatalf("under the minimum: %d %s, want 402", code, body)
		}
		if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Kind != "stack_disabled" {
			t.Fatalf("402 body %s: want JSON of kind stack_disabled", body)
		}
		if strings.Contains(e.Error.Message, "add at least") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("402 body %s: want JSON saying how much to add once the settled balance is known", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if u := getBilled(ctx, t, r, id); u.resp.GetEscrow() == nil || u.resp.GetEscrow().GetEnabled() {
		t.Fatalf("billing's escrow status: %v", u.resp.GetEscrow())
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
		t.Fatalf("after recharge: %d %s", code, body)
	}
}

// TestBilling_KillNineOfBillingAndOfASenderLosesAndDoublesNothing runs
// billing, the runtime and the gateway as child processes. It kills
// billing with SIGKILL in the middle of a request stream and restarts it;
// then kills the gateway while its usage waits unacknowledged (billing
// down, then a batch in flight) and restarts it from its spool. Billing's
// totals equal what the clients were served, exactly, and a settlement of
// all of it conserves the tokens.
func TestBilling_KillNineOfBillingAndOfASenderLosesAndDoublesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the service commands")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Start(ctx, Options{
		Mode:    Processes,
		DataDir: t.TempDir(),
		Storage: &StorageOptions{},
		Ledger:  &LedgerOptions{},
		Billing: &BillingOptions{Config: func(c *billingsvc.Config) { c.SettleInterval = time.Hour }},
		Runtime: &RuntimeOptions{Config: func(_ int, c *runtime.Config) {
			c.Usage.FlushInterval = 50 * time.Millisecond
			c.Usage.RetryMax = 200 * time.Millisecond
		}},
		Gateway: &GatewayOptions{Config: func(c *gateway.Config) {
			c.Usage.FlushInterval = 50 * time.Millisecond
			c.Usage.RetryMax = 200 * time.Millisecond
		}},
		Process: ProcessOptions{RepoDir: repo, LogDir: t.TempDir()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
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
	const requests = typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS
	const traffic = typesv1.UsageKind_USAGE_KIND_GATEWAY_TRAFFIC_BYTES

	// One request measures the traffic of each (they are all alike).
	if code, body := get(t, url); code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	perRequest := waitBilled(ctx, t, r, id, requests, 1).totals[traffic]
	for perRequest == 0 && ctx.Err() == nil { // the traffic record may follow in a later batch
		time.Sleep(20 * time.Millisecond)
		perRequest = getBilled(ctx, t, r, id).totals[traffic]
	}
	served := int64(1)

	// 1. Billing killed mid-stream: four clients keep sending while it is
	// down and after it is back.
	var ok atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(url)
				if err != nil {
					t.Errorf("request: %v", err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("request: %d", resp.StatusCode)
					return
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	if err := r.Billing().Process().Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := r.Restart(ctx, r.Billing().Process()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	served += ok.Load()
	t.Logf("phase 1: %d requests served across a kill -9 of billing", ok.Load())
	b := waitBilled(ctx, t, r, id, requests, uint64(served))
	if b.totals[traffic] != uint64(served)*perRequest {
		t.Fatalf("traffic %d, want %d × %d", b.totals[traffic], served, perRequest)
	}

	// 2. The gateway killed while its records wait: billing is down, so
	// the batch is retried from the spool; the gateway dies, comes back,
	// and resends once billing is up.
	if err := r.Billing().Process().Kill(); err != nil {
		t.Fatal(err)
	}
	for range 30 {
		if code, body := get(t, url); code != http.StatusOK {
			t.Fatalf("%d %s", code, body)
		}
	}
	served += 30
	time.Sleep(200 * time.Millisecond) // a retry or two against the dead billing
	if err := r.Gateway().Process().Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Restart(ctx, r.Billing().Process()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Restart(ctx, r.Gateway().Process()); err != nil {
		t.Fatal(err)
	}
	waitBilled(ctx, t, r, id, requests, uint64(served))

	// 3. The gateway killed right after its last answers, its batch on the
	// wire or just acknowledged.
	for range 30 {
		if code, body := get(t, url); code != http.StatusOK {
			t.Fatalf("%d %s", code, body)
		}
	}
	served += 30
	if err := r.Gateway().Process().Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Restart(ctx, r.Gateway().Process()); err != nil {
		t.Fatal(err)
	}
	b = waitBilled(ctx, t, r, id, requests, uint64(served))
	if b.totals[traffic] != uint64(served)*perRequest {
		t.Fatalf("traffic %d, want %d × %d", b.totals[traffic], served, perRequest)
	}
	// Settled twice over nothing new: still exact.
	time.Sleep(300 * time.Millisecond)
	if got := getBilled(ctx, t, r, id).totals[requests]; got != uint64(served) {
		t.Fatalf("later: %d requests billed, %d served", got, served)
	}
	t.Logf("crash totals: %d requests served, %d billed, traffic %d bytes = %d × %d", served, b.totals[requests], b.totals[traffic], served, perRequest)

	resp, err := r.Billing().Client().Settle(ctx, &billingv1.SettleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range resp.GetSettlements() {
		if s.GetStatus() != billingv1.SettlementStatus_SETTLEMENT_STATUS_SETTLED {
			t.Fatal(fmt.Sprintf("settlement %v: %s", s.GetStatus(), s.GetError()))
		}
	}
	readBalances(ctx, t, r.Ledger(), mk) // the supply still adds up
}

// TestBilling_SampledHelloReceiptIsSignedKeptAndAuditMatches samples every
// call: the runtime hands hello's receipt to billing, billing signs it with
// the region's usage signer and keeps it, and re-running it on the same
// binary with the same engine settings burns the same fuel; an altered
// receipt is refused.
func TestBilling_SampledHelloReceiptIsSignedKeptAndAuditMatches(t *testing.T) {
	opts := billingRegionOptions(t, nil)
	var rtCfg runtime.Config
	opts.Runtime = &RuntimeOptions{Config: func(_ int, c *runtime.Config) {
		c.ReceiptSampleRate = 1
		rtCfg = *c
	}}
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
	if code, body := get(t, url); code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	var sr *billingv1.SignedReceipt
	for sr == nil {
		resp, err := r.Billing().Client().ListReceipts(ctx, &billingv1.ListReceiptsRequest{StackId: id.Bytes()})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetReceipts()) > 0 {
			sr = resp.GetReceipts()[0]
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no receipt reached billing")
		case <-time.After(20 * time.Millisecond):
		}
	}
	rc, signer, err := usage.VerifyReceipt(sr)
	if err != nil {
		t.Fatal(err)
	}
	if signer != mk.Keys.Provider.Pubkey() || signer != r.Market().Region.UsageSigner {
		t.Fatalf("signed by %s, the region's usage signer is %s", signer, r.Market().Region.UsageSigner)
	}
	if rc.GetFuel() == 0 || rc.GetMbInstructions() == 0 || rc.GetStatus() != http.StatusOK {
		t.Fatalf("receipt %v", rc)
	}
	res, err := runtime.Audit(ctx, rtCfg, bins[rc.GetBinaryId()], rc, runtime.AuditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Fuel != rc.GetFuel() || res.MbInstructions != rc.GetMbInstructions() {
		t.Fatalf("audit burnt %d fuel (%d MB-instructions), the receipt says %d (%d)", res.Fuel, res.MbInstructions, rc.GetFuel(), rc.GetMbInstructions())
	}
	t.Logf("receipt %s: fuel %d matched by the audit (tape %d entries)", rc.GetReceiptId(), res.Fuel, len(rc.GetTape().GetEntries()))

	altered := &billingv1.SignedReceipt{Receipt: append([]byte(nil), sr.GetReceipt()...), Signer: sr.GetSigner(), Signature: sr.GetSignature()}
	altered.Receipt[len(altered.Receipt)/2] ^= 1
	if _, _, err := usage.VerifyReceipt(altered); err == nil {
		t.Fatal("an altered receipt verified")
	}
}
