package billing

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgerpb"
	"github.com/muprotocol/mu/libs/ledger/local"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// Amounts of the test market, token base units.
const (
	commissionMicros = 100_000 // 10%
	minEscrow        = 1_000
	developerFunds   = 100_000_000
)

var testRates = ledger.Rates{
	FunctionPerTeraMBInstructions: 1_000_000,
	DBPerMillionReads:             700,
	DBPerMillionWrites:            2_000,
	DBPerGiBMonthStored:           5_000,
	GatewayPerMillionRequests:     30_000,
	GatewayPerGiBTraffic:          9_000,
	StoragePerGiBMonthStored:      2_500,
	StoragePerGiBTraffic:          8_000,
}

func testKey(name string) *ledger.Keypair {
	seed := sha256.Sum256([]byte("billing-test/" + name))
	k, err := ledger.KeypairFromSeed(seed[:])
	if err != nil {
		panic(err)
	}
	return k
}

// testMarket is a real local ledger (in memory) with one authorized provider,
// one region whose usage signer is usageKey, and a developer with an
// escrow and stacks there (the minimal steps of region.SetUpMarket).
type testMarket struct {
	t                   *testing.T
	l                   *local.Ledger
	auth, prov, dev, us *ledger.Keypair
	provider            ledger.Provider
	region              ledger.Region
	stacks              []ledger.Stack
}

func newTestMarket(t *testing.T, escrow uint64, stacks int) *testMarket {
	t.Helper()
	ctx := t.Context()
	l, err := local.Open(local.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	m := &testMarket{t: t, l: l, auth: testKey("authority"), prov: testKey("provider"), dev: testKey("developer"), us: testKey("usage")}
	must(t, l.Initialize(ctx, m.auth, ledger.InitParams{ProviderDeposit: 100, CommissionMicros: commissionMicros}))
	must(t, l.Mint(ctx, m.auth, m.prov.Pubkey(), 1_000))
	must(t, l.Mint(ctx, m.auth, m.dev.Pubkey(), developerFunds))
	if m.provider, err = l.CreateProvider(ctx, m.prov, "acme"); err != nil {
		t.Fatal(err)
	}
	must(t, l.AuthorizeProvider(ctx, m.auth, m.provider.ID))
	m.region, err = l.CreateRegion(ctx, m.prov, 1, ledger.RegionConfig{
		Name: "eu1", BaseURL: "https://eu1.example.net", Rates: testRates, MinEscrowBalance: minEscrow,
	})
	if err != nil {
		t.Fatal(err)
	}
	must(t, l.CreateUsageSigner(ctx, m.prov, m.region.ID, m.us.Pubkey()))
	if _, err := l.CreateEscrow(ctx, m.dev, m.provider.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RechargeEscrow(ctx, m.dev, m.provider.ID, escrow); err != nil {
		t.Fatal(err)
	}
	for i := range stacks {
		st, err := l.CreateStack(ctx, m.dev, m.region.ID, uint64(i+1), []byte("name: app"))
		if err != nil {
			t.Fatal(err)
		}
		m.stacks = append(m.stacks, st)
	}
	return m
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (m *testMarket) escrowBalance() uint64 {
	m.t.Helper()
	e, err := m.l.Escrow(m.t.Context(), m.dev.Pubkey(), m.provider.ID)
	if err != nil {
		m.t.Fatal(err)
	}
	return e.Balance
}

func (m *testMarket) balance(p ledger.Pubkey) uint64 {
	m.t.Helper()
	b, err := m.l.Balance(m.t.Context(), p)
	if err != nil {
		m.t.Fatal(err)
	}
	return b
}

// conserved checks that the token accounts add up to the supply.
func (m *testMarket) conserved() {
	m.t.Helper()
	accts, supply, err := m.l.TokenAccounts(m.t.Context())
	if err != nil {
		m.t.Fatal(err)
	}
	var sum uint64
	for _, a := range accts {
		sum += a.Balance
	}
	if sum != supply {
		m.t.Fatalf("token accounts sum to %d, supply is %d", sum, supply)
	}
}

// indexer answers the chain indexer's List calls from the ledger, as the
// real indexer does once it has caught up.
type indexer struct {
	chainindexerv1.ChainIndexerServiceClient // other methods are not used by billing
	l                                        ledger.Ledger
}

func (x indexer) ListStacks(ctx context.Context, req *chainindexerv1.ListStacksRequest, _ ...grpc.CallOption) (*chainindexerv1.ListStacksResponse, error) {
	resp := &chainindexerv1.ListStacksResponse{}
	for _, id := range req.GetStackIds() {
		p, err := ledger.PubkeyFromBytes("stack_ids", id)
		if err != nil {
			return nil, err
		}
		st, err := x.l.Stack(ctx, p)
		if err != nil {
			continue
		}
		resp.Stacks = append(resp.Stacks, &chainindexerv1.Stack{Id: st.ID.Bytes(), Owner: st.Owner.Bytes(), RegionId: st.Region.Bytes(), Enabled: st.Enabled})
	}
	return resp, nil
}

func (x indexer) ListRegions(ctx context.Context, _ *chainindexerv1.ListRegionsRequest, _ ...grpc.CallOption) (*chainindexerv1.ListRegionsResponse, error) {
	rs, err := x.l.Regions(ctx)
	if err != nil {
		return nil, err
	}
	resp := &chainindexerv1.ListRegionsResponse{}
	for _, r := range rs {
		resp.Regions = append(resp.Regions, &chainindexerv1.Region{Id: r.ID.Bytes(), ProviderId: r.Provider.Bytes(), Rates: ledgerpb.RatesProto(r.Rates), MinEscrowBalance: r.MinEscrowBalance})
	}
	return resp, nil
}

func (x indexer) ListEscrows(ctx context.Context, req *chainindexerv1.ListEscrowsRequest, _ ...grpc.CallOption) (*chainindexerv1.ListEscrowsResponse, error) {
	dev, err := ledger.PubkeyFromBytes("developer", req.GetDeveloper())
	if err != nil {
		return nil, err
	}
	prov, err := ledger.PubkeyFromBytes("provider_id", req.GetProviderId())
	if err != nil {
		return nil, err
	}
	e, err := x.l.Escrow(ctx, dev, prov)
	if err != nil {
		return &chainindexerv1.ListEscrowsResponse{}, nil
	}
	return &chainindexerv1.ListEscrowsResponse{Escrows: []*chainindexerv1.Escrow{{Developer: dev.Bytes(), ProviderId: prov.Bytes(), Balance: e.Balance}}}, nil
}

// flakyLedger wraps a ledger: while applyThenFail is set, UpdateUsage
// applies the update and then reports ErrUnavailable (a crash between the
// ledger's apply and billing's record); while down is set, it applies
// nothing and reports ErrUnavailable.
type flakyLedger struct {
	ledger.UsageUpdater
	applyThenFail atomic.Bool
	down          atomic.Bool
	mu            sync.Mutex
	seeds         []ledger.Uint128
	errs          []error
}

func (f *flakyLedger) UpdateUsage(ctx context.Context, signer ledger.Signer, stack ledger.Pubkey, seed ledger.Uint128, u ledger.Usage) (ledger.UsageResult, error) {
	var res ledger.UsageResult
	var err error
	if f.down.Load() {
		err = fmt.Errorf("%w: connection refused", ledger.ErrUnavailable)
	} else {
		res, err = f.UsageUpdater.UpdateUsage(ctx, signer, stack, seed, u)
		if err == nil && f.applyThenFail.Load() {
			res, err = ledger.UsageResult{}, fmt.Errorf("%w: connection reset after send", ledger.ErrUnavailable)
		}
	}
	f.mu.Lock()
	f.seeds, f.errs = append(f.seeds, seed), append(f.errs, err)
	f.mu.Unlock()
	return res, err
}

// node is a billing server on a data dir, with a client.
type node struct {
	s   *Server
	c   billingv1.BillingServiceClient
	cc  *grpc.ClientConn
	cfg Config
}

func testConfig(t testing.TB, m *testMarket) Config {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.SettleInterval = time.Hour // tests settle with Settle
	if m != nil {
		cfg.RegionID = m.region.ID.String()
	}
	return cfg
}

func testDeps(m *testMarket, l ledger.UsageUpdater) Deps {
	d := Deps{}
	if m != nil {
		d.Signer, d.Indexer = m.us, indexer{l: m.l}
		d.Ledger = m.l
	}
	if l != nil {
		d.Ledger = l
	}
	return d
}

func startNode(t testing.TB, cfg Config, deps Deps) *node {
	t.Helper()
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		s.Close()
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(cfg.MaxMessageBytes)))
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	n := &node{s: s, c: billingv1.NewBillingServiceClient(cc), cc: cc, cfg: cfg}
	t.Cleanup(func() { n.close(t) })
	return n
}

func (n *node) close(t testing.TB) {
	if n.s == nil {
		return
	}
	n.cc.Close()
	if err := n.s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	n.s = nil
}

func rec(stack ledger.Pubkey, kind typesv1.UsageKind, amount uint64, key string) *billingv1.UsageRecord {
	return &billingv1.UsageRecord{StackId: stack.Bytes(), Kind: kind, Amount: amount, IdempotencyKey: key}
}

func recAt(stack ledger.Pubkey, kind typesv1.UsageKind, amount uint64, key string, at time.Time) *billingv1.UsageRecord {
	r := rec(stack, kind, amount, key)
	r.Time = timestamppb.New(at)
	return r
}

// amountOf returns the amount of kind in totals (0 when absent).
func amountOf(totals []*billingv1.UsageTotal, kind typesv1.UsageKind) ledger.Uint128 {
	for _, t := range totals {
		if t.GetKind() == kind {
			return ledger.Uint128{Hi: t.GetAmount().GetHi(), Lo: t.GetAmount().GetLo()}
		}
	}
	return ledger.Uint128{}
}
