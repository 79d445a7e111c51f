package billing

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgerrpc"
	"github.com/muprotocol/mu/libs/ledger/local"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	ledgerv1 "github.com/muprotocol/mu/proto/mu/ledger/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// programLedger is the local ledger behaving as the marketplace program
// does (the Solana backend): it lacks carries and partial charges. Every
// update is priced per unit with no remainder kept, so an update whose
// price truncates would lose tokens: it is refused and counted in lost
// (billing must never send one). An update the escrow cannot pay in full
// fails with ErrInsufficientEscrow and charges nothing.
type programLedger struct {
	*local.Ledger
	mu      sync.Mutex
	lost    []string
	updates int
}

func (p *programLedger) Lacks() []ledger.Capability {
	return []ledger.Capability{ledger.CapCarries, ledger.CapPartialCharge, ledger.CapStorage}
}

func (p *programLedger) UpdateUsage(ctx context.Context, signer ledger.Signer, stack ledger.Pubkey, seed ledger.Uint128, u ledger.Usage) (ledger.UsageResult, error) {
	st, err := p.Stack(ctx, stack)
	if err != nil {
		return ledger.UsageResult{}, err
	}
	reg, err := p.Region(ctx, st.Region)
	if err != nil {
		return ledger.UsageResult{}, err
	}
	if !u.StorageStoredByteSeconds.IsZero() || !u.StorageTrafficBytes.IsZero() {
		p.mu.Lock()
		p.lost = append(p.lost, fmt.Sprintf("seed %s: storage usage sent", seed))
		p.mu.Unlock()
		return ledger.UsageResult{}, fmt.Errorf("%w: the program has no storage usage", ledger.ErrUnsupported)
	}
	due, rem, err := ledger.Charge(reg.Rates, u, ledger.Carry{})
	if err != nil {
		return ledger.UsageResult{}, err
	}
	if rem != (ledger.Carry{}) {
		p.mu.Lock()
		p.lost = append(p.lost, fmt.Sprintf("seed %s: remainders %v", seed, rem))
		p.mu.Unlock()
		return ledger.UsageResult{}, fmt.Errorf("%w: the program would truncate %v", ledger.ErrInvalidArgument, rem)
	}
	es, err := p.Escrow(ctx, st.Owner, reg.Provider)
	if err != nil {
		return ledger.UsageResult{}, err
	}
	if d, _ := due.Uint64(); due.Hi != 0 || d > es.Balance {
		return ledger.UsageResult{}, fmt.Errorf("%w: escrow holds %d, the update costs %s (custom program error: 0x1)", ledger.ErrInsufficientEscrow, es.Balance, due)
	}
	p.mu.Lock()
	p.updates++
	p.mu.Unlock()
	return p.Ledger.UpdateUsage(ctx, signer, stack, seed, u)
}

func (p *programLedger) lostUpdates() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lost...)
}

func settleOnce(t *testing.T, n *node) []*billingv1.Settlement {
	t.Helper()
	r, err := n.c.Settle(t.Context(), &billingv1.SettleRequest{})
	must(t, err)
	return r.Settlements
}

func unsettled(t *testing.T, n *node, stack ledger.Pubkey) []*billingv1.UsageTotal {
	t.Helper()
	u, err := n.c.GetUsage(t.Context(), &billingv1.GetUsageRequest{StackId: stack.Bytes()})
	must(t, err)
	return u.Unsettled
}

// TestSettle_LedgerWithoutCarriesIsSentWholeTokensAndTheRestWaits: at
// the test rates 700 per million reads (a whole token per 10,000 reads)
// and 30,000 per million requests (per 100 requests), 1,234,567 reads and
// 250 requests are sent as 1,230,000 reads (861 tokens) and 200 requests
// (6 tokens); 4,567 reads and 50 requests stay unsettled, across a
// restart, until more usage makes them whole: 10,000 reads and 100
// requests for 10 more tokens. 877 tokens in all, what the exact price of
// 1,240,000 reads and 300 requests is.
func TestSettle_LedgerWithoutCarriesIsSentWholeTokensAndTheRestWaits(t *testing.T) {
	m := newTestMarket(t, 1_000_000, 1)
	pl := &programLedger{Ledger: m.l}
	cfg := testConfig(t, m)
	n := startNode(t, cfg, testDeps(m, pl))
	ctx := t.Context()
	stack := m.stacks[0].ID
	escrow0, prov0, comm0 := m.escrowBalance(), m.balance(m.prov.Pubkey()), m.commission()

	_, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{
		rec(stack, kindRd, 1_234_567, "r1"), rec(stack, kindReq, 250, "q1")}})
	must(t, err)
	s1 := settleOnce(t, n)
	if len(s1) != 1 || s1[0].Status != billingv1.SettlementStatus_SETTLEMENT_STATUS_SETTLED || s1[0].Charged != 867 {
		t.Fatalf("first settlement = %v, want SETTLED charging 861 + 6", s1)
	}
	if amountOf(s1[0].Usage, kindRd) != ledger.U128(1_230_000) || amountOf(s1[0].Usage, kindReq) != ledger.U128(200) {
		t.Fatalf("sent %v, want 1,230,000 reads and 200 requests", s1[0].Usage)
	}
	left := unsettled(t, n, stack)
	if amountOf(left, kindRd) != ledger.U128(4_567) || amountOf(left, kindReq) != ledger.U128(50) {
		t.Fatalf("unsettled %v, want 4,567 reads and 50 requests carried", left)
	}

	// The carry is in the store: a restarted node still has it, and with
	// nothing whole in it sends nothing.
	n.close(t)
	n = startNode(t, cfg, testDeps(m, pl))
	if s := settleOnce(t, n); len(s) != 0 {
		t.Fatalf("a carry below one token was settled: %v", s)
	}
	left = unsettled(t, n, stack)
	if amountOf(left, kindRd) != ledger.U128(4_567) || amountOf(left, kindReq) != ledger.U128(50) {
		t.Fatalf("after a restart unsettled %v, want 4,567 reads and 50 requests", left)
	}

	_, err = n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{
		rec(stack, kindRd, 5_433, "r2"), rec(stack, kindReq, 50, "q2")}})
	must(t, err)
	s2 := settleOnce(t, n)
	if len(s2) != 1 || s2[0].Charged != 10 || s2[0].Seed <= s1[0].Seed {
		t.Fatalf("second settlement = %v, want 7 + 3 with a new seed", s2)
	}
	if left := unsettled(t, n, stack); len(left) != 0 {
		t.Fatalf("unsettled %v after the carry became whole, want none", left)
	}
	if lost := pl.lostUpdates(); len(lost) != 0 {
		t.Fatalf("billing sent updates the program truncates: %v", lost)
	}
	escrowDrop := escrow0 - m.escrowBalance()
	provGain, commGain := m.balance(m.prov.Pubkey())-prov0, m.commission()-comm0
	// Commission 10% of each update, rounded down: 86 of 867, 1 of 10.
	if escrowDrop != 877 || commGain != 87 || provGain != 790 {
		t.Fatalf("escrow -%d, provider +%d, commission +%d; want -877, +790, +87", escrowDrop, provGain, commGain)
	}
	m.conserved()
}

// TestSettle_ShortEscrowOnTheProgramPaysWhatItHoldsAndTheRestWaits: the
// program refuses an update the escrow cannot pay in full, so billing
// sends only what the escrow holds: 1,000,000 requests cost 30,000 tokens,
// the escrow has 1,500, so 50,000 requests (500 whole-token steps of 100
// at 3 tokens) are charged and 950,000 wait. The escrow is then empty and
// the stack flagged; nothing more is sent until a recharge, after which
// the rest settles: 28,500 tokens.
func TestSettle_ShortEscrowOnTheProgramPaysWhatItHoldsAndTheRestWaits(t *testing.T) {
	m := newTestMarket(t, minEscrow+500, 1)
	pl := &programLedger{Ledger: m.l}
	deps := testDeps(m, pl)
	// The ledger is readable: its balance is the budget, not the indexer's
	// lagging one.
	deps.Indexer = staleIndexer{indexer: indexer{l: m.l}, extra: 1_000_000}
	n := startNode(t, testConfig(t, m), deps)
	ctx := t.Context()
	stack := m.stacks[0].ID
	_, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{rec(stack, kindReq, 1_000_000, "g1")}})
	must(t, err)
	s1 := settleOnce(t, n)
	if len(s1) != 1 || s1[0].Status != billingv1.SettlementStatus_SETTLEMENT_STATUS_INSUFFICIENT_ESCROW || s1[0].Charged != 1_500 ||
		amountOf(s1[0].Usage, kindReq) != ledger.U128(50_000) {
		t.Fatalf("settlement = %v, want INSUFFICIENT_ESCROW charging the 1,500 held for 50,000 requests", s1)
	}
	if got := m.escrowBalance(); got != 0 {
		t.Fatalf("escrow = %d, want 0", got)
	}
	if left := unsettled(t, n, stack); amountOf(left, kindReq) != ledger.U128(950_000) {
		t.Fatalf("unsettled %v, want the other 950,000 requests", left)
	}
	if under := n.s.StacksUnderMinimum(); len(under) != 1 || under[0] != stack {
		t.Errorf("StacksUnderMinimum = %v, want [%s]", under, stack)
	}
	// An empty escrow gets nothing sent; the stack stays flagged.
	if s := settleOnce(t, n); len(s) != 0 {
		t.Fatalf("settled %v against an empty escrow", s)
	}
	if got := testutil.ToFloat64(n.s.metrics.underMinimum); got != 1 {
		t.Errorf("mu_billing_stacks_under_minimum = %v, want 1", got)
	}

	if _, err := m.l.RechargeEscrow(ctx, m.dev, m.provider.ID, 100_000); err != nil {
		t.Fatal(err)
	}
	s2 := settleOnce(t, n)
	if len(s2) != 1 || s2[0].Status != billingv1.SettlementStatus_SETTLEMENT_STATUS_SETTLED || s2[0].Charged != 28_500 || s2[0].Seed <= s1[0].Seed {
		t.Fatalf("after the recharge = %v, want SETTLED charging 28,500 with a new seed", s2)
	}
	if got := m.escrowBalance(); got != 100_000-28_500 {
		t.Fatalf("escrow = %d, want %d", got, 100_000-28_500)
	}
	if got := testutil.ToFloat64(n.s.metrics.underMinimum); got != 0 {
		t.Errorf("mu_billing_stacks_under_minimum = %v after the recharge, want 0", got)
	}
	if lost := pl.lostUpdates(); len(lost) != 0 {
		t.Fatalf("billing sent updates the program truncates: %v", lost)
	}
	m.conserved()
}

// staleIndexer reports escrows holding more than they do (its view lags a
// withdrawal or another region's charge).
type staleIndexer struct {
	indexer
	extra uint64
}

func (x staleIndexer) ListEscrows(ctx context.Context, req *chainindexerv1.ListEscrowsRequest, opts ...grpc.CallOption) (*chainindexerv1.ListEscrowsResponse, error) {
	resp, err := x.indexer.ListEscrows(ctx, req, opts...)
	for _, e := range resp.GetEscrows() {
		e.Balance += x.extra
	}
	return resp, err
}

// updateOnly is a ledger billing can only send updates to (as through
// ledgerrpc): the escrow balance then comes from the chain indexer.
type updateOnly struct{ p *programLedger }

func (u updateOnly) UpdateUsage(ctx context.Context, signer ledger.Signer, stack ledger.Pubkey, seed ledger.Uint128, us ledger.Usage) (ledger.UsageResult, error) {
	return u.p.UpdateUsage(ctx, signer, stack, seed, us)
}
func (u updateOnly) Lacks() []ledger.Capability { return u.p.Lacks() }

// TestSettle_RefusedForShortEscrowReturnsTheUsageAndFlags: when the
// escrow holds less than the chain indexer told billing (its view lags),
// the program refuses the update (ErrInsufficientEscrow, nothing
// charged): the usage returns to unsettled, the refusal is recorded
// INSUFFICIENT_ESCROW and the stack flagged.
func TestSettle_RefusedForShortEscrowReturnsTheUsageAndFlags(t *testing.T) {
	m := newTestMarket(t, minEscrow+500, 1)
	pl := &programLedger{Ledger: m.l}
	deps := testDeps(m, updateOnly{pl})
	deps.Indexer = staleIndexer{indexer: indexer{l: m.l}, extra: 1_000_000}
	n := startNode(t, testConfig(t, m), deps)
	ctx := t.Context()
	stack := m.stacks[0].ID
	_, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{rec(stack, kindReq, 1_000_000, "g1")}})
	must(t, err)
	s1 := settleOnce(t, n)
	if len(s1) != 1 || s1[0].Status != billingv1.SettlementStatus_SETTLEMENT_STATUS_INSUFFICIENT_ESCROW || s1[0].Charged != 0 ||
		!strings.Contains(s1[0].Error, "insufficient escrow") {
		t.Fatalf("settlement = %v, want INSUFFICIENT_ESCROW charging 0 with the ledger's error", s1)
	}
	if got := m.escrowBalance(); got != minEscrow+500 {
		t.Fatalf("escrow = %d, want %d untouched", got, minEscrow+500)
	}
	if left := unsettled(t, n, stack); amountOf(left, kindReq) != ledger.U128(1_000_000) {
		t.Fatalf("unsettled %v, want the 1,000,000 requests back", left)
	}
	if under := n.s.StacksUnderMinimum(); len(under) != 1 || under[0] != stack {
		t.Errorf("StacksUnderMinimum = %v, want [%s]", under, stack)
	}
	list, err := n.c.ListSettlements(ctx, &billingv1.ListSettlementsRequest{StackId: stack.Bytes()})
	must(t, err)
	if len(list.Settlements) != 1 || list.Settlements[0].Status != billingv1.SettlementStatus_SETTLEMENT_STATUS_INSUFFICIENT_ESCROW {
		t.Fatalf("history = %v, want the refused settlement kept", list.Settlements)
	}
	m.conserved()
}

// TestSettle_RemoteLedgerWithoutCarriesIsAskedWhatItLacks: billing in
// another process than the ledger (ledger_addr) learns through
// GetCapabilities that its host lacks carries, and splits as in process.
func TestSettle_RemoteLedgerWithoutCarriesIsAskedWhatItLacks(t *testing.T) {
	m := newTestMarket(t, 1_000_000, 1)
	pl := &programLedger{Ledger: m.l}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := grpc.NewServer()
	ledgerv1.RegisterLedgerServiceServer(srv, ledgerrpc.NewServer(pl))
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)

	cfg := testConfig(t, m)
	cfg.LedgerAddr = lis.Addr().String()
	deps := testDeps(m, nil)
	deps.Ledger = nil // dialled from ledger_addr
	n := startNode(t, cfg, deps)
	if _, ok := n.s.ledger.(*ledgerrpc.Client); !ok {
		t.Fatalf("billing's ledger is %T, want the ledgerrpc client of ledger_addr", n.s.ledger)
	}
	stack := m.stacks[0].ID
	_, err = n.c.ReportUsage(t.Context(), &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{rec(stack, kindRd, 25_000, "r1")}})
	must(t, err)
	s := settleOnce(t, n)
	if len(s) != 1 || s[0].Status != billingv1.SettlementStatus_SETTLEMENT_STATUS_SETTLED || s[0].Charged != 14 ||
		amountOf(s[0].Usage, kindRd) != ledger.U128(20_000) {
		t.Fatalf("settlement = %v, want 20,000 reads for 14 tokens", s)
	}
	if left := unsettled(t, n, stack); amountOf(left, kindRd) != ledger.U128(5_000) {
		t.Fatalf("unsettled %v, want 5,000 reads carried", left)
	}
	if lost := pl.lostUpdates(); len(lost) != 0 {
		t.Fatalf("billing sent updates the program truncates: %v", lost)
	}
}

// TestSettle_LedgerWithoutCarriesAndNoIndexerReadsRatesFromTheLedger:
// without a chain indexer, an in-process ledger's own region gives the
// rates.
func TestSettle_LedgerWithoutCarriesAndNoIndexerReadsRatesFromTheLedger(t *testing.T) {
	m := newTestMarket(t, 1_000_000, 1)
	pl := &programLedger{Ledger: m.l}
	deps := testDeps(m, pl)
	deps.Indexer = nil
	n := startNode(t, testConfig(t, m), deps)
	stack := m.stacks[0].ID
	_, err := n.c.ReportUsage(t.Context(), &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{rec(stack, kindReq, 150, "q1")}})
	must(t, err)
	s := settleOnce(t, n)
	if len(s) != 1 || s[0].Charged != 3 || amountOf(s[0].Usage, kindReq) != ledger.U128(100) {
		t.Fatalf("settlement = %v, want 100 requests for 3 tokens", s)
	}
}

// TestSettle_StorageUsageIsListedButNotSentToALedgerWithoutStorage: the
// program has no storage rates or usage fields; storage usage is settled
// (listed in the settlement, not left unsettled) without being sent.
func TestSettle_StorageUsageIsListedButNotSentToALedgerWithoutStorage(t *testing.T) {
	m := newTestMarket(t, 1_000_000, 1)
	pl := &programLedger{Ledger: m.l}
	n := startNode(t, testConfig(t, m), testDeps(m, pl))
	stack := m.stacks[0].ID
	const kindBoxTraffic = typesv1.UsageKind_USAGE_KIND_STORAGE_TRAFFIC_BYTES
	_, err := n.c.ReportUsage(t.Context(), &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{
		rec(stack, kindReq, 100, "q1"), rec(stack, kindBoxTraffic, 12_345, "b1")}})
	must(t, err)
	s := settleOnce(t, n)
	if len(s) != 1 || s[0].Status != billingv1.SettlementStatus_SETTLEMENT_STATUS_SETTLED || s[0].Charged != 3 ||
		amountOf(s[0].Usage, kindBoxTraffic) != ledger.U128(12_345) {
		t.Fatalf("settlement = %v, want SETTLED charging the 100 requests' 3 tokens, listing the storage traffic", s)
	}
	if left := unsettled(t, n, stack); len(left) != 0 {
		t.Fatalf("unsettled %v, want none", left)
	}
	if lost := pl.lostUpdates(); len(lost) != 0 {
		t.Fatalf("the ledger was sent what it lacks: %v", lost)
	}
}

func TestFitBudget_TakesWholeStepsInUnitOrderUpToTheBudget(t *testing.T) {
	var send amounts
	send[ledger.UnitDBReads] = ledger.U128(20_000)          // 2 steps of 10,000 at 7 tokens
	send[ledger.UnitGatewayRequests] = ledger.U128(300)     // 3 steps of 100 at 3 tokens
	send[ledger.UnitStorageTrafficBytes] = ledger.U128(999) // priced 0 below: always fits
	r := testRates
	r.StoragePerGiBTraffic = 0
	cases := []struct {
		budget          uint64
		reads, requests uint64
	}{
		{0, 0, 0},
		{6, 0, 200}, // the reads do not fit, two request steps do
		{7, 10_000, 0},
		{16, 20_000, 0},
		{17, 20_000, 100},
		{22, 20_000, 200},
		{23, 20_000, 300},
		{1 << 63, 20_000, 300},
	}
	for _, c := range cases {
		fit, rest := fitBudget(r, send, c.budget)
		if fit[ledger.UnitDBReads] != ledger.U128(c.reads) || fit[ledger.UnitGatewayRequests] != ledger.U128(c.requests) ||
			fit[ledger.UnitStorageTrafficBytes] != ledger.U128(999) {
			t.Errorf("budget %d: fit %v, want %d reads, %d requests and the free unit", c.budget, fit, c.reads, c.requests)
		}
		sum := fit
		must(t, sum.add(rest))
		if sum != send {
			t.Errorf("budget %d: fit + rest = %v, want %v", c.budget, sum, send)
		}
		if due, _, _ := ledger.Charge(r, fit.usage(), ledger.Carry{}); due.Cmp(ledger.U128(c.budget)) > 0 {
			t.Errorf("budget %d: the fit costs %s", c.budget, due)
		}
	}
}

func TestFitProgram_KeepsEachNarrowUnitsProductWithin64Bits(t *testing.T) {
	r := ledger.Rates{DBPerMillionReads: 7, GatewayPerGiBTraffic: 1 << 20}
	var send amounts
	send[ledger.UnitDBReads] = ledger.Uint128{Hi: 1}                      // 2^64 reads
	send[ledger.UnitGatewayTrafficBytes] = ledger.U128(1 << 50)           // 2^70 at 2^20 per GiB
	send[ledger.UnitFunctionMBInstructions] = ledger.Uint128{Hi: 1 << 10} // 128-bit in the program
	fit, rest := fitProgram(r, send)
	// Reads: (2^64-1)/7 = 2635249153387078802, down to a multiple of 10^6.
	if fit[ledger.UnitDBReads] != ledger.U128(2_635_249_153_387_000_000) {
		t.Errorf("reads fit %s", fit[ledger.UnitDBReads])
	}
	// Traffic: (2^64-1)/2^20 = 2^44-1, down to a multiple of the step 2^10.
	if fit[ledger.UnitGatewayTrafficBytes] != ledger.U128(1<<44-1<<10) {
		t.Errorf("traffic fit %s", fit[ledger.UnitGatewayTrafficBytes])
	}
	if fit[ledger.UnitFunctionMBInstructions] != send[ledger.UnitFunctionMBInstructions] {
		t.Errorf("a wide unit was cut: %s", fit[ledger.UnitFunctionMBInstructions])
	}
	for _, u := range narrowUnits {
		if _, over := fit[u].Mul64(r.Rate(u)); over || fit[u].Hi != 0 {
			t.Errorf("%s: %s × %d leaves 64 bits", u, fit[u], r.Rate(u))
		}
		p, _ := fit[u].Mul64(r.Rate(u))
		if p.Hi != 0 {
			t.Errorf("%s: product %s leaves 64 bits", u, p)
		}
		if sum, _ := fit[u].Add(rest[u]); sum != send[u] {
			t.Errorf("%s: fit + rest != send", u)
		}
	}
}
