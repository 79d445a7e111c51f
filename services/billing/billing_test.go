package billing

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/usage"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

const (
	kindFn  = typesv1.UsageKind_USAGE_KIND_FUNCTION_MB_INSTRUCTIONS
	kindReq = typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS
	kindRd  = typesv1.UsageKind_USAGE_KIND_DB_READS
)

func TestReportUsage_ExactTotalsWithDuplicatesAndRetries(t *testing.T) {
	n := startNode(t, testConfig(t, nil), Deps{})
	ctx := t.Context()
	stack, other := testKey("s1").Pubkey(), testKey("s2").Pubkey()

	var first []*billingv1.UsageRecord
	for i := range 100 {
		first = append(first, rec(stack, kindFn, 10, fmt.Sprintf("a/%d", i)))
	}
	resp, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: first})
	must(t, err)
	if len(resp.AcceptedKeys) != 100 || len(resp.DuplicateKeys) != 0 {
		t.Fatalf("first batch: %d accepted, %d duplicate", len(resp.AcceptedKeys), len(resp.DuplicateKeys))
	}
	// A retry of the whole batch, plus a record repeated within the batch
	// with a different amount, plus one new record for another stack.
	retry := append(append([]*billingv1.UsageRecord(nil), first...),
		rec(other, kindReq, 3, "b/0"), rec(other, kindReq, 999, "b/0"))
	resp, err = n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: retry})
	must(t, err)
	if len(resp.AcceptedKeys) != 1 || resp.AcceptedKeys[0] != "b/0" || len(resp.DuplicateKeys) != 101 {
		t.Fatalf("retry: accepted %v, %d duplicates", resp.AcceptedKeys, len(resp.DuplicateKeys))
	}
	// Concurrent senders retrying overlapping keys: each key counts once.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b []*billingv1.UsageRecord
			for i := range 500 {
				b = append(b, rec(stack, kindRd, 1, fmt.Sprintf("c/%d", (i+g*100)%1000)))
			}
			if _, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: b}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Keys c/0..c/999 cover (g*100 .. g*100+499) for g in 0..7: 0..1199 mod 1000 = all 1000.
	u, err := n.c.GetUsage(ctx, &billingv1.GetUsageRequest{StackId: stack.Bytes()})
	must(t, err)
	if got := amountOf(u.Totals, kindFn); got != ledger.U128(1000) {
		t.Errorf("function total = %s, want 1000", got)
	}
	if got := amountOf(u.Totals, kindRd); got != ledger.U128(1000) {
		t.Errorf("db reads total = %s, want 1000", got)
	}
	if got := amountOf(u.Unsettled, kindFn); got != ledger.U128(1000) {
		t.Errorf("function unsettled = %s, want 1000", got)
	}
	u, err = n.c.GetUsage(ctx, &billingv1.GetUsageRequest{StackId: other.Bytes()})
	must(t, err)
	if got := amountOf(u.Totals, kindReq); got != ledger.U128(3) || len(u.Totals) != 1 {
		t.Errorf("other stack totals = %v, want 3 requests", u.Totals)
	}
	reg := n.s.Registry()
	if got := testutil.ToFloat64(n.s.metrics.persisted); got != 1101 {
		t.Errorf("persisted metric = %v, want 1101", got)
	}
	_ = reg
}

func TestGetUsage_PeriodByBucket(t *testing.T) {
	cfg := testConfig(t, nil)
	n := startNode(t, cfg, Deps{})
	ctx := t.Context()
	stack := testKey("s1").Pubkey()
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	_, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{
		recAt(stack, kindReq, 1, "k1", t0.Add(10*time.Minute)),
		recAt(stack, kindReq, 2, "k2", t0.Add(70*time.Minute)),
		recAt(stack, kindReq, 4, "k3", t0.Add(130*time.Minute)),
	}})
	must(t, err)
	for _, c := range []struct {
		from, to time.Time
		want     uint64
	}{
		{t0, t0.Add(time.Hour), 1},
		{t0.Add(30 * time.Minute), t0.Add(2 * time.Hour), 3}, // start rounds down to 10:00
		{t0.Add(time.Hour), t0.Add(3 * time.Hour), 6},
		{t0.Add(3 * time.Hour), t0.Add(4 * time.Hour), 0},
	} {
		u, err := n.c.GetUsage(ctx, &billingv1.GetUsageRequest{StackId: stack.Bytes(), StartTime: timestamppb.New(c.from), EndTime: timestamppb.New(c.to)})
		must(t, err)
		if got := amountOf(u.Totals, kindReq); got != ledger.U128(c.want) {
			t.Errorf("[%s, %s) = %s, want %d", c.from.Format("15:04"), c.to.Format("15:04"), got, c.want)
		}
		if got := amountOf(u.Unsettled, kindReq); got != ledger.U128(7) {
			t.Errorf("unsettled = %s, want all 7 whatever the period", got)
		}
	}
}

func TestReportUsage_InvalidInputNamesRecordAndFieldAndPersistsNothing(t *testing.T) {
	m := newTestMarket(t, 100_000, 1)
	cfg := testConfig(t, m)
	n := startNode(t, cfg, testDeps(m, nil))
	ctx := t.Context()
	stack := m.stacks[0].ID
	good := rec(stack, kindReq, 5, "good")
	long := strings.Repeat("k", 129)
	otherRegion := rec(stack, kindReq, 1, "r")
	otherRegion.RegionId = testKey("elsewhere").Pubkey().Bytes()
	for _, c := range []struct {
		name string
		bad  *billingv1.UsageRecord
		want string
	}{
		{"short stack", &billingv1.UsageRecord{StackId: make([]byte, 31), Kind: kindReq, IdempotencyKey: "x"}, "records[1].stack_id is 31 bytes, want 32"},
		{"unknown kind", &billingv1.UsageRecord{StackId: stack.Bytes(), Kind: 99, IdempotencyKey: "x"}, "records[1].kind"},
		{"unspecified kind", &billingv1.UsageRecord{StackId: stack.Bytes(), IdempotencyKey: "x"}, "records[1].kind"},
		{"empty key", rec(stack, kindReq, 1, ""), "records[1].idempotency_key: is 0 bytes, want 1..128"},
		{"long key", rec(stack, kindReq, 1, long), "records[1].idempotency_key: is 129 bytes, want 1..128"},
		{"control byte", rec(stack, kindReq, 1, "a\nb"), "records[1].idempotency_key: byte 1 is 0x0a"},
		{"other region", otherRegion, "records[1].region_id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{good, c.bad}})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want INVALID_ARGUMENT with %q", err, c.want)
			}
		})
	}
	big := make([]*billingv1.UsageRecord, cfg.MaxBatchRecords+1)
	for i := range big {
		big[i] = rec(stack, kindReq, 1, fmt.Sprintf("big/%d", i))
	}
	_, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: big})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "10001 records, more than max_batch_records 10000") {
		t.Fatalf("oversized batch: %v", err)
	}
	u, err := n.c.GetUsage(ctx, &billingv1.GetUsageRequest{StackId: stack.Bytes()})
	must(t, err)
	if len(u.Totals) != 0 {
		t.Fatalf("refused batches left usage: %v", u.Totals)
	}
	// The good record alone is taken: its key was not burnt by the refusals.
	resp, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{good}})
	must(t, err)
	if len(resp.AcceptedKeys) != 1 {
		t.Fatalf("good record after refusals: %v", resp)
	}
	_, err = n.c.GetUsage(ctx, &billingv1.GetUsageRequest{StackId: []byte{1}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "stack_id is 1 bytes, want 32") {
		t.Fatalf("GetUsage bad stack: %v", err)
	}
}

// due is what the ledger charges for u from a zero carry.
func due(t *testing.T, u ledger.Usage) uint64 {
	d, _, err := ledger.Charge(testRates, u, ledger.Carry{})
	must(t, err)
	v, ok := d.Uint64()
	if !ok {
		t.Fatal("due overflows")
	}
	return v
}

func TestSettle_ChargesEscrowAndPaysProviderAndCommission(t *testing.T) {
	m := newTestMarket(t, 5_000_000, 1)
	n := startNode(t, testConfig(t, m), testDeps(m, nil))
	ctx := t.Context()
	stack := m.stacks[0].ID
	escrow0, prov0, comm0 := m.escrowBalance(), m.balance(m.prov.Pubkey()), m.commission()
	_, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{
		rec(stack, kindFn, 3_000_000_000_000, "f1"), // 3 × 10^12 MB-instructions: 3,000,000
		rec(stack, kindReq, 1_000_000, "g1"),        // 10^6 requests: 30,000
	}})
	must(t, err)
	resp, err := n.c.Settle(ctx, &billingv1.SettleRequest{})
	must(t, err)
	if len(resp.Settlements) != 1 {
		t.Fatalf("settlements = %v", resp.Settlements)
	}
	set := resp.Settlements[0]
	const want = 3_000_000 + 30_000
	if set.Status != billingv1.SettlementStatus_SETTLEMENT_STATUS_SETTLED || set.Charged != want || set.LedgerReference == "" {
		t.Fatalf("settlement = %v, want SETTLED charging %d", set, want)
	}
	if got := escrow0 - m.escrowBalance(); got != want {
		t.Errorf("escrow decreased %d, want %d", got, want)
	}
	commission := ledger.Commission(want, commissionMicros)
	if got := m.commission() - comm0; got != commission {
		t.Errorf("commission increased %d, want %d", got, commission)
	}
	if got := m.balance(m.prov.Pubkey()) - prov0; got != want-commission {
		t.Errorf("provider increased %d, want %d", got, want-commission)
	}
	m.conserved()

	u, err := n.c.GetUsage(ctx, &billingv1.GetUsageRequest{StackId: stack.Bytes()})
	must(t, err)
	if len(u.Unsettled) != 0 {
		t.Errorf("unsettled after settle: %v", u.Unsettled)
	}
	if c := u.Totals[0].GetCost(); u.Totals[0].Kind != kindFn || c.GetLo() != 3_000_000 {
		t.Errorf("function cost = %v, want 3000000", u.Totals[0])
	}
	if string(u.RegionId) != string(m.region.ID.Bytes()) || u.Rates.GetGatewayPerMillionRequests() != testRates.GatewayPerMillionRequests {
		t.Errorf("region/rates = %x %v", u.RegionId, u.Rates)
	}
	es := u.Escrow
	if es.GetBalance() != m.escrowBalance() || es.GetMinEscrowBalance() != minEscrow || !es.GetEnabled() || es.GetBurnPerHour() != want {
		t.Errorf("escrow status = %v, want balance %d, burn %d/h", es, m.escrowBalance(), want)
	}
	if left := es.GetTimeLeft().AsDuration(); left <= 0 {
		t.Errorf("time left = %v", left)
	}
	// Nothing more to settle: a second round sends nothing.
	resp, err = n.c.Settle(ctx, &billingv1.SettleRequest{})
	must(t, err)
	if len(resp.Settlements) != 0 {
		t.Fatalf("second round settled %v", resp.Settlements)
	}
	list, err := n.c.ListSettlements(ctx, &billingv1.ListSettlementsRequest{StackId: stack.Bytes()})
	must(t, err)
	if len(list.Settlements) != 1 || list.Settlements[0].Seed != set.Seed || list.Settlements[0].Charged != want {
		t.Fatalf("ListSettlements = %v", list.Settlements)
	}
	if got := testutil.ToFloat64(n.s.metrics.settlements.WithLabelValues("settled")); got != 1 {
		t.Errorf("settled metric = %v", got)
	}
}

func (m *testMarket) commission() uint64 {
	accts, _, err := m.l.TokenAccounts(m.t.Context())
	if err != nil {
		m.t.Fatal(err)
	}
	for _, a := range accts {
		if a.Kind == "commission" {
			return a.Balance
		}
	}
	return 0
}

// TestRestart_ResumesPendingSettlementAndChargesOnce crashes billing, in
// effect, between the ledger applying an update and billing recording it:
// the wrapper applies the update and answers ErrUnavailable. The restarted
// node (same data dir) resumes the pending settlement with the same seed,
// the ledger refuses it as replayed, and billing takes it as settled: the
// escrow is charged once.
func TestRestart_ResumesPendingSettlementAndChargesOnce(t *testing.T) {
	m := newTestMarket(t, 1_000_000, 1)
	cfg := testConfig(t, m)
	flaky := &flakyLedger{UsageUpdater: m.l}
	flaky.applyThenFail.Store(true)
	n := startNode(t, cfg, testDeps(m, flaky))
	ctx := t.Context()
	stack := m.stacks[0].ID
	escrow0, prov0, comm0 := m.escrowBalance(), m.balance(m.prov.Pubkey()), m.commission()
	records := []*billingv1.UsageRecord{rec(stack, kindReq, 2_000_000, "g1"), rec(stack, kindRd, 5_000_000, "r1")}
	_, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: records})
	must(t, err)
	resp, err := n.c.Settle(ctx, &billingv1.SettleRequest{StackIds: [][]byte{stack.Bytes()}})
	must(t, err)
	if len(resp.Settlements) != 1 || resp.Settlements[0].Status != billingv1.SettlementStatus_SETTLEMENT_STATUS_UNSPECIFIED {
		t.Fatalf("settlement with a lost answer = %v, want pending", resp.Settlements)
	}
	seed := resp.Settlements[0].Seed
	var u ledger.Usage
	u.GatewayRequests, u.DBReads = ledger.U128(2_000_000), ledger.U128(5_000_000)
	want := due(t, u) // 60,000 + 3,500
	if got := escrow0 - m.escrowBalance(); got != want {
		t.Fatalf("ledger applied %d, want %d", got, want)
	}
	un, err := n.c.ListUnsettled(ctx, &billingv1.ListUnsettledRequest{})
	must(t, err)
	if len(un.Stacks) != 1 || amountOf(un.Stacks[0].Totals, kindReq) != ledger.U128(2_000_000) {
		t.Fatalf("pending usage not listed as unsettled: %v", un.Stacks)
	}
	n.close(t)

	flaky.applyThenFail.Store(false)
	n = startNode(t, cfg, testDeps(m, flaky))
	var list *billingv1.ListSettlementsResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err = n.c.ListSettlements(ctx, &billingv1.ListSettlementsRequest{StackId: stack.Bytes()})
		must(t, err)
		if len(list.Settlements) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(list.Settlements) != 1 {
		t.Fatalf("pending settlement not resumed at Start: %v", list.Settlements)
	}
	set := list.Settlements[0]
	if set.Seed != seed || set.Status != billingv1.SettlementStatus_SETTLEMENT_STATUS_SETTLED || !strings.Contains(set.LedgerReference, "replayed") {
		t.Fatalf("resumed settlement = %v, want SETTLED by replay of seed %d", set, seed)
	}
	flaky.mu.Lock()
	if len(flaky.seeds) != 2 || flaky.seeds[0] != flaky.seeds[1] || !isReplay(flaky.errs[1]) {
		t.Errorf("ledger calls: seeds %v errors %v, want the same seed twice, the second replayed", flaky.seeds, flaky.errs)
	}
	flaky.mu.Unlock()
	commission := ledger.Commission(want, commissionMicros)
	if got := escrow0 - m.escrowBalance(); got != want {
		t.Errorf("escrow decreased %d, want %d (charged once)", got, want)
	}
	if got := m.commission() - comm0; got != commission {
		t.Errorf("commission increased %d, want %d", got, commission)
	}
	if got := m.balance(m.prov.Pubkey()) - prov0; got != want-commission {
		t.Errorf("provider increased %d, want %d", got, want-commission)
	}
	m.conserved()
	// The records survived the restart, and their retry is still a duplicate.
	r, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: records})
	must(t, err)
	if len(r.DuplicateKeys) != 2 {
		t.Errorf("retry after restart: %v", r)
	}
	g, err := n.c.GetUsage(ctx, &billingv1.GetUsageRequest{StackId: stack.Bytes()})
	must(t, err)
	if amountOf(g.Totals, kindReq) != ledger.U128(2_000_000) || len(g.Unsettled) != 0 {
		t.Errorf("after restart: totals %v unsettled %v", g.Totals, g.Unsettled)
	}
}

func isReplay(err error) bool { return classify(err) == outcomeReplayed }

func TestSettle_UnavailableLedgerKeepsSeedAndRetriesIt(t *testing.T) {
	m := newTestMarket(t, 1_000_000, 1)
	flaky := &flakyLedger{UsageUpdater: m.l}
	flaky.down.Store(true)
	n := startNode(t, testConfig(t, m), testDeps(m, flaky))
	ctx := t.Context()
	stack := m.stacks[0].ID
	escrow0 := m.escrowBalance()
	_, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{rec(stack, kindReq, 1_000_000, "g1")}})
	must(t, err)
	r1, err := n.c.Settle(ctx, &billingv1.SettleRequest{})
	must(t, err)
	// Usage reported while the settlement is pending goes to the next one.
	_, err = n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{rec(stack, kindReq, 1_000_000, "g2")}})
	must(t, err)
	flaky.down.Store(false)
	r2, err := n.c.Settle(ctx, &billingv1.SettleRequest{})
	must(t, err)
	if len(r2.Settlements) != 1 || r2.Settlements[0].Seed != r1.Settlements[0].Seed || r2.Settlements[0].Charged != 30_000 {
		t.Fatalf("retry = %v, want the pending seed %d charging 30000", r2.Settlements, r1.Settlements[0].Seed)
	}
	r3, err := n.c.Settle(ctx, &billingv1.SettleRequest{})
	must(t, err)
	if len(r3.Settlements) != 1 || r3.Settlements[0].Seed <= r1.Settlements[0].Seed || r3.Settlements[0].Charged != 30_000 {
		t.Fatalf("next = %v, want a new seed charging 30000", r3.Settlements)
	}
	if got := escrow0 - m.escrowBalance(); got != 60_000 {
		t.Errorf("escrow decreased %d, want 60000", got)
	}
	list, err := n.c.ListSettlements(ctx, &billingv1.ListSettlementsRequest{StackId: stack.Bytes(), PageSize: 1})
	must(t, err)
	if len(list.Settlements) != 1 || list.Settlements[0].Seed != r3.Settlements[0].Seed || list.NextPageToken == "" {
		t.Fatalf("page 1 = %v", list)
	}
	list, err = n.c.ListSettlements(ctx, &billingv1.ListSettlementsRequest{StackId: stack.Bytes(), PageSize: 1, PageToken: list.NextPageToken})
	must(t, err)
	if len(list.Settlements) != 1 || list.Settlements[0].Seed != r1.Settlements[0].Seed {
		t.Fatalf("page 2 = %v", list)
	}
}

// TestSettle_FailedIsRetriedWithNewSeed settles with a key that is not the
// region's usage signer (the ledger refuses: bad signer), then restarts on
// the same data dir with the right one.
func TestSettle_FailedIsRetriedWithNewSeed(t *testing.T) {
	m := newTestMarket(t, 1_000_000, 1)
	cfg := testConfig(t, m)
	deps := testDeps(m, nil)
	deps.Signer = testKey("impostor")
	n := startNode(t, cfg, deps)
	ctx := t.Context()
	stack := m.stacks[0].ID
	escrow0 := m.escrowBalance()
	_, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{rec(stack, kindReq, 1_000_000, "g1")}})
	must(t, err)
	r1, err := n.c.Settle(ctx, &billingv1.SettleRequest{})
	must(t, err)
	f := r1.Settlements[0]
	if f.Status != billingv1.SettlementStatus_SETTLEMENT_STATUS_FAILED || !strings.Contains(f.Error, "bad signer") {
		t.Fatalf("settlement = %v, want FAILED with bad signer", f)
	}
	u, err := n.c.GetUsage(ctx, &billingv1.GetUsageRequest{StackId: stack.Bytes()})
	must(t, err)
	if amountOf(u.Unsettled, kindReq) != ledger.U128(1_000_000) {
		t.Fatalf("usage of a failed settlement not back in unsettled: %v", u.Unsettled)
	}
	n.close(t)
	n = startNode(t, cfg, testDeps(m, nil))
	r2, err := n.c.Settle(ctx, &billingv1.SettleRequest{})
	must(t, err)
	s := r2.Settlements[0]
	if s.Status != billingv1.SettlementStatus_SETTLEMENT_STATUS_SETTLED || s.Seed <= f.Seed || s.Charged != 30_000 {
		t.Fatalf("retry = %v, want SETTLED with a seed above %d", s, f.Seed)
	}
	if got := escrow0 - m.escrowBalance(); got != 30_000 {
		t.Errorf("escrow decreased %d, want 30000", got)
	}
	list, err := n.c.ListSettlements(ctx, &billingv1.ListSettlementsRequest{StackId: stack.Bytes()})
	must(t, err)
	if len(list.Settlements) != 2 || list.Settlements[0].Seed != s.Seed || list.Settlements[1].Seed != f.Seed {
		t.Fatalf("history = %v, want newest first", list.Settlements)
	}
}

func TestSettle_InsufficientEscrowChargesWhatIsThereAndFlagsStack(t *testing.T) {
	m := newTestMarket(t, minEscrow+500, 1)
	n := startNode(t, testConfig(t, m), testDeps(m, nil))
	ctx := t.Context()
	stack := m.stacks[0].ID
	_, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{rec(stack, kindReq, 1_000_000, "g1")}})
	must(t, err)
	r, err := n.c.Settle(ctx, &billingv1.SettleRequest{})
	must(t, err)
	s := r.Settlements[0]
	if s.Status != billingv1.SettlementStatus_SETTLEMENT_STATUS_INSUFFICIENT_ESCROW || s.Charged != minEscrow+500 {
		t.Fatalf("settlement = %v, want INSUFFICIENT_ESCROW charging %d", s, minEscrow+500)
	}
	if got := m.escrowBalance(); got != 0 {
		t.Errorf("escrow = %d, want 0", got)
	}
	if got := testutil.ToFloat64(n.s.metrics.underMinimum); got != 1 {
		t.Errorf("mu_billing_stacks_under_minimum = %v, want 1", got)
	}
	u, err := n.c.GetUsage(ctx, &billingv1.GetUsageRequest{StackId: stack.Bytes()})
	must(t, err)
	if es := u.Escrow; es.GetEnabled() || es.GetTimeLeft() == nil || es.GetTimeLeft().AsDuration() != 0 {
		t.Errorf("escrow status = %v, want disabled with zero time left", es)
	}
	m.conserved()
}

// TestMoneyConservation_RandomUsageStream reports a random stream over
// several stacks in random batches with retries, settles between batches,
// and checks to the base unit that the escrow's decrease equals the
// provider's plus the commission's increase and the sum of the charges,
// and that the totals equal the ground truth.
func TestMoneyConservation_RandomUsageStream(t *testing.T) {
	m := newTestMarket(t, developerFunds, 3)
	n := startNode(t, testConfig(t, m), testDeps(m, nil))
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(14, 2))
	escrow0, prov0, comm0 := m.escrowBalance(), m.balance(m.prov.Pubkey()), m.commission()
	truth := map[ledger.Pubkey]*amounts{}
	for _, st := range m.stacks {
		truth[st.ID] = new(amounts)
	}
	var charged uint64
	key := 0
	for round := range 6 {
		var batch []*billingv1.UsageRecord
		for range 50 + rng.IntN(200) {
			st := m.stacks[rng.IntN(len(m.stacks))].ID
			u := ledger.Unit(rng.IntN(int(ledger.NumUnits)))
			amt := rng.Uint64N(1 << 22)
			batch = append(batch, rec(st, u.Kind(), amt, fmt.Sprintf("k/%d", key)))
			key++
			var add amounts
			add[u] = ledger.U128(amt)
			must(t, truth[st].add(add))
		}
		for range 2 { // every batch twice: the retry is all duplicates
			_, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: batch})
			must(t, err)
		}
		r, err := n.c.Settle(ctx, &billingv1.SettleRequest{})
		must(t, err)
		for _, s := range r.Settlements {
			if s.Status != billingv1.SettlementStatus_SETTLEMENT_STATUS_SETTLED {
				t.Fatalf("round %d: %v", round, s)
			}
			charged += s.Charged
		}
	}
	escrowDrop := escrow0 - m.escrowBalance()
	provGain, commGain := m.balance(m.prov.Pubkey())-prov0, m.commission()-comm0
	if escrowDrop != provGain+commGain || escrowDrop != charged || charged == 0 {
		t.Fatalf("escrow -%d, provider +%d, commission +%d, charged %d", escrowDrop, provGain, commGain, charged)
	}
	m.conserved()
	for _, st := range m.stacks {
		u, err := n.c.GetUsage(ctx, &billingv1.GetUsageRequest{StackId: st.ID.Bytes()})
		must(t, err)
		for unit := ledger.Unit(0); unit < ledger.NumUnits; unit++ {
			if got := amountOf(u.Totals, unit.Kind()); got != truth[st.ID][unit] {
				t.Errorf("stack %s %s = %s, want %s", st.ID, unit, got, truth[st.ID][unit])
			}
		}
	}
	t.Logf("charged %d over %d records", charged, key)
}

func TestReceipts_SignGetListAndDuplicates(t *testing.T) {
	m := newTestMarket(t, 100_000, 1)
	n := startNode(t, testConfig(t, m), testDeps(m, nil))
	ctx := t.Context()
	stack := m.stacks[0].ID
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var rs []*billingv1.Receipt
	for i := range 3 {
		req := []byte(fmt.Sprintf("request %d", i))
		rs = append(rs, &billingv1.Receipt{ReceiptId: fmt.Sprintf("rq-%d", i), StackId: stack.Bytes(), Function: "a.f", BinaryId: "bin",
			Request: req, RequestHash: usage.RequestHash(req), Fuel: uint64(100 + i), Time: timestamppb.New(t0.Add(time.Duration(i) * time.Second))})
	}
	resp, err := n.c.ReportReceipts(ctx, &billingv1.ReportReceiptsRequest{Receipts: append(rs, rs[0])})
	must(t, err)
	if len(resp.AcceptedIds) != 3 || len(resp.DuplicateIds) != 1 || resp.DuplicateIds[0] != "rq-0" {
		t.Fatalf("report = %v", resp)
	}
	resp, err = n.c.ReportReceipts(ctx, &billingv1.ReportReceiptsRequest{Receipts: rs[1:2]})
	must(t, err)
	if len(resp.DuplicateIds) != 1 {
		t.Fatalf("second report = %v", resp)
	}
	g, err := n.c.GetReceipt(ctx, &billingv1.GetReceiptRequest{ReceiptId: "rq-1"})
	must(t, err)
	r, signer, err := usage.VerifyReceipt(g.Receipt)
	must(t, err)
	if signer != m.us.Pubkey() || r.Fuel != 101 || string(r.RegionId) != string(m.region.ID.Bytes()) {
		t.Fatalf("receipt %v signed by %s, want fuel 101, region filled, signer %s", r, signer, m.us.Pubkey())
	}
	g.Receipt.Receipt[len(g.Receipt.Receipt)-1] ^= 1
	if _, _, err := usage.VerifyReceipt(g.Receipt); err == nil {
		t.Fatal("an altered receipt verified")
	}
	_, err = n.c.GetReceipt(ctx, &billingv1.GetReceiptRequest{ReceiptId: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("missing receipt: %v", err)
	}
	l, err := n.c.ListReceipts(ctx, &billingv1.ListReceiptsRequest{StackId: stack.Bytes(), PageSize: 2})
	must(t, err)
	if len(l.Receipts) != 2 || l.NextPageToken == "" {
		t.Fatalf("page 1: %d receipts, token %q", len(l.Receipts), l.NextPageToken)
	}
	ids := []string{}
	for _, sr := range l.Receipts {
		r, _, _ := usage.VerifyReceipt(sr)
		ids = append(ids, r.ReceiptId)
	}
	l, err = n.c.ListReceipts(ctx, &billingv1.ListReceiptsRequest{StackId: stack.Bytes(), PageSize: 2, PageToken: l.NextPageToken})
	must(t, err)
	for _, sr := range l.Receipts {
		r, _, _ := usage.VerifyReceipt(sr)
		ids = append(ids, r.ReceiptId)
	}
	if strings.Join(ids, ",") != "rq-2,rq-1,rq-0" || l.NextPageToken != "" {
		t.Fatalf("receipts listed %v (token %q), want newest first", ids, l.NextPageToken)
	}
	bad := []struct {
		r    *billingv1.Receipt
		want string
	}{
		{&billingv1.Receipt{ReceiptId: "", StackId: stack.Bytes()}, "receipts[0].receipt_id: is 0 bytes"},
		{&billingv1.Receipt{ReceiptId: "x", StackId: []byte{1, 2}}, "receipts[0].stack_id is 2 bytes, want 32"},
		{&billingv1.Receipt{ReceiptId: "x", StackId: stack.Bytes(), Request: make([]byte, 300<<10)}, "more than max_receipt_bytes 262144"},
	}
	for _, c := range bad {
		_, err := n.c.ReportReceipts(ctx, &billingv1.ReportReceiptsRequest{Receipts: []*billingv1.Receipt{c.r}})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want INVALID_ARGUMENT with %q", err, c.want)
		}
	}
}

func TestReceipts_NoSignerIsFailedPrecondition(t *testing.T) {
	n := startNode(t, testConfig(t, nil), Deps{})
	_, err := n.c.ReportReceipts(t.Context(), &billingv1.ReportReceiptsRequest{Receipts: []*billingv1.Receipt{
		{ReceiptId: "r", StackId: testKey("s").Pubkey().Bytes()},
	}})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "signer_key_file") {
		t.Fatalf("got %v", err)
	}
	_, err = n.c.Settle(t.Context(), &billingv1.SettleRequest{})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "region_id") || !strings.Contains(err.Error(), "ledger_addr") {
		t.Fatalf("settle without signer/ledger/region: %v", err)
	}
}

func TestSweeper_ForgetsKeysAfterRetention(t *testing.T) {
	cfg := testConfig(t, nil)
	var mu sync.Mutex
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	n := startNode(t, cfg, Deps{Now: clock})
	ctx := t.Context()
	stack := testKey("s").Pubkey()
	report := func(key string) *billingv1.ReportUsageResponse {
		r, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{rec(stack, kindReq, 1, key)}})
		must(t, err)
		return r
	}
	report("old")
	mu.Lock()
	now = now.Add(cfg.KeyRetention - time.Minute)
	mu.Unlock()
	report("new")
	if d, err := n.s.sweepOnce(); err != nil || d != 0 {
		t.Fatalf("swept %d (%v) before retention", d, err)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if d, err := n.s.sweepOnce(); err != nil || d != 1 {
		t.Fatalf("swept %d (%v), want the one old key", d, err)
	}
	if r := report("new"); len(r.DuplicateKeys) != 1 {
		t.Errorf("key within retention: %v", r)
	}
	if r := report("old"); len(r.AcceptedKeys) != 1 {
		t.Errorf("key past retention: %v", r)
	}
}

func TestListUnsettled_PagesAndFiltersByRegion(t *testing.T) {
	n := startNode(t, testConfig(t, nil), Deps{})
	ctx := t.Context()
	regionA, regionB := testKey("ra").Pubkey(), testKey("rb").Pubkey()
	var recs []*billingv1.UsageRecord
	for i := range 5 {
		r := rec(testKey(fmt.Sprint("stack", i)).Pubkey(), kindReq, uint64(i+1), fmt.Sprint("k", i))
		r.RegionId = regionA.Bytes()
		if i == 4 {
			r.RegionId = regionB.Bytes()
		}
		recs = append(recs, r)
	}
	_, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: recs})
	must(t, err)
	seen := map[string]bool{}
	tok := ""
	for pages := 0; ; pages++ {
		r, err := n.c.ListUnsettled(ctx, &billingv1.ListUnsettledRequest{RegionId: regionA.Bytes(), PageSize: 3, PageToken: tok})
		must(t, err)
		for _, s := range r.Stacks {
			if string(s.RegionId) != string(regionA.Bytes()) || s.Oldest == nil || seen[string(s.StackId)] {
				t.Fatalf("bad entry %v", s)
			}
			seen[string(s.StackId)] = true
		}
		if tok = r.NextPageToken; tok == "" {
			break
		}
		if pages > 3 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != 4 {
		t.Fatalf("listed %d stacks of region A, want 4", len(seen))
	}
	_, err = n.c.ListUnsettled(ctx, &billingv1.ListUnsettledRequest{PageToken: "zz"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "page_token") {
		t.Fatalf("bad token: %v", err)
	}
}

func TestSettleLoop_SettlesEveryIntervalAndIgnoresZeroAmounts(t *testing.T) {
	m := newTestMarket(t, 1_000_000, 1)
	cfg := testConfig(t, m)
	cfg.SettleInterval = 50 * time.Millisecond
	n := startNode(t, cfg, testDeps(m, nil))
	ctx := t.Context()
	stack := m.stacks[0].ID
	escrow0 := m.escrowBalance()
	resp, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{
		rec(stack, kindReq, 0, "zero"), rec(stack, kindReq, 1_000_000, "g1"),
	}})
	must(t, err)
	if len(resp.AcceptedKeys) != 2 {
		t.Fatalf("zero-amount record not accepted: %v", resp)
	}
	deadline := time.Now().Add(10 * time.Second)
	for m.escrowBalance() == escrow0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := escrow0 - m.escrowBalance(); got != 30_000 {
		t.Fatalf("escrow decreased %d, want 30000 from the loop", got)
	}
	list, err := n.c.ListSettlements(ctx, &billingv1.ListSettlementsRequest{StackId: stack.Bytes()})
	must(t, err)
	if len(list.Settlements) != 1 || len(list.Settlements[0].Usage) != 1 {
		t.Fatalf("settlements = %v", list.Settlements)
	}
}
