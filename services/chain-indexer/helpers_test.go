package chainindexer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/local"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
)

// openLocal opens a real local ledger on the embedded store in a temp dir.
func openLocal(t testing.TB) *local.Ledger {
	t.Helper()
	cfg := local.DefaultConfig()
	cfg.DataDir = t.TempDir()
	l, err := local.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// market drives a ledger through its public API as providers and
// developers would.
type market struct {
	t    testing.TB
	led  ledger.Ledger
	auth *ledger.Keypair
	seed uint64
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func key(t testing.TB) *ledger.Keypair {
	t.Helper()
	k, err := ledger.GenerateKeypair()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newMarket(t testing.TB, led ledger.Ledger) *market {
	m := &market{t: t, led: led, auth: key(t)}
	check(t, led.Initialize(ctxT(t), m.auth, ledger.InitParams{ProviderDeposit: 100, CommissionMicros: 10_000}))
	return m
}

// provider registers a provider (authorized when asked) and returns its
// owner and account.
func (m *market) provider(name string, authorized bool) (*ledger.Keypair, ledger.Provider) {
	owner := key(m.t)
	check(m.t, m.led.Mint(ctxT(m.t), m.auth, owner.Pubkey(), 1000))
	p := must[ledger.Provider](m.t)(m.led.CreateProvider(ctxT(m.t), owner, name))
	if authorized {
		check(m.t, m.led.AuthorizeProvider(ctxT(m.t), m.auth, p.ID))
		p.Authorized = true
	}
	return owner, p
}

func regionConfig(name string, minEscrow uint64) ledger.RegionConfig {
	return ledger.RegionConfig{
		Name: name, BaseURL: "https://" + name + ".example.com",
		Rates: ledger.Rates{
			FunctionPerTeraMBInstructions: 1, DBPerMillionReads: 2, DBPerMillionWrites: 3, DBPerGiBMonthStored: 4,
			GatewayPerMillionRequests: 5, GatewayPerGiBTraffic: 6, StoragePerGiBMonthStored: 7, StoragePerGiBTraffic: 8,
		},
		MinEscrowBalance:           minEscrow,
		MaxGigaInstructionsPerCall: 9,
		MinMemoryLimitBytes:        1 << 20,
		MaxMemoryLimitBytes:        1 << 30,
	}
}

func (m *market) region(owner *ledger.Keypair, number uint32, name string, minEscrow uint64) ledger.Region {
	return must[ledger.Region](m.t)(m.led.CreateRegion(ctxT(m.t), owner, number, regionConfig(name, minEscrow)))
}

// developer makes a developer with an escrow of balance at provider.
func (m *market) developer(provider ledger.Pubkey, balance uint64) *ledger.Keypair {
	dev := key(m.t)
	check(m.t, m.led.Mint(ctxT(m.t), m.auth, dev.Pubkey(), 1_000_000))
	must[ledger.Escrow](m.t)(m.led.CreateEscrow(ctxT(m.t), dev, provider))
	if balance > 0 {
		must[ledger.Escrow](m.t)(m.led.RechargeEscrow(ctxT(m.t), dev, provider, balance))
	}
	return dev
}

func (m *market) stack(dev *ledger.Keypair, region ledger.Pubkey, manifest string) ledger.Stack {
	m.seed++
	return must[ledger.Stack](m.t)(m.led.CreateStack(ctxT(m.t), dev, region, m.seed, []byte(manifest)))
}

// flaky is a Ledger that fails every call with ErrUnavailable while down;
// the test writes through the ledger it wraps.
type flaky struct {
	ledger.Ledger
	down  atomic.Bool
	fails atomic.Int64
}

func (f *flaky) fail(op string) error {
	if f.down.Load() {
		f.fails.Add(1)
		return fmt.Errorf("ledger: %s: %w (the test took it down)", op, ledger.ErrUnavailable)
	}
	return nil
}

func (f *flaky) State(ctx context.Context) (ledger.State, error) {
	if err := f.fail("state"); err != nil {
		return ledger.State{}, err
	}
	return f.Ledger.State(ctx)
}

func (f *flaky) Providers(ctx context.Context) ([]ledger.Provider, error) {
	if err := f.fail("providers"); err != nil {
		return nil, err
	}
	return f.Ledger.Providers(ctx)
}

func (f *flaky) Regions(ctx context.Context) ([]ledger.Region, error) {
	if err := f.fail("regions"); err != nil {
		return nil, err
	}
	return f.Ledger.Regions(ctx)
}

func (f *flaky) Stacks(ctx context.Context) ([]ledger.Stack, error) {
	if err := f.fail("stacks"); err != nil {
		return nil, err
	}
	return f.Ledger.Stacks(ctx)
}

func (f *flaky) Escrows(ctx context.Context) ([]ledger.Escrow, error) {
	if err := f.fail("escrows"); err != nil {
		return nil, err
	}
	return f.Ledger.Escrows(ctx)
}

func (f *flaky) Slot(ctx context.Context) (uint64, error) {
	if err := f.fail("slot"); err != nil {
		return 0, err
	}
	return f.Ledger.Slot(ctx)
}

func (f *flaky) Changes(ctx context.Context, after uint64, limit int) ([]ledger.Change, error) {
	if err := f.fail("changes"); err != nil {
		return nil, err
	}
	return f.Ledger.Changes(ctx, after, limit)
}

func (f *flaky) Wait(ctx context.Context, after uint64, poll time.Duration) error {
	if err := f.fail("wait"); err != nil {
		return err
	}
	return f.Ledger.Wait(ctx, after, poll)
}

// testConfig is a config for tests: random loopback ports, fast retries.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.RetryMin, cfg.RetryMax = time.Millisecond, 20*time.Millisecond
	cfg.PersistInterval = 10 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

// start makes and starts a node over led (nil: the configured backend)
// and returns it with a client; both close at the end of the test.
func start(t testing.TB, cfg Config, led ledger.Ledger) (*Server, chainindexerv1.ChainIndexerServiceClient) {
	t.Helper()
	s, err := New(cfg, Deps{Ledger: led})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	check(t, s.Start(context.Background()))
	return s, dial(t, s.Addr())
}

func dial(t testing.TB, addr string, opts ...grpc.DialOption) chainindexerv1.ChainIndexerServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return chainindexerv1.NewChainIndexerServiceClient(conn)
}

// eventually polls cond until it holds, failing the test after a generous
// deadline (a hang guard, not a timing assertion).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// synced waits until the node's view reflects the ledger's current slot.
func synced(t testing.TB, c chainindexerv1.ChainIndexerServiceClient, led ledger.Ledger) *chainindexerv1.GetStatusResponse {
	t.Helper()
	slot := must[uint64](t)(led.Slot(ctxT(t)))
	var st *chainindexerv1.GetStatusResponse
	eventually(t, fmt.Sprintf("the view to reach slot %d", slot), func() bool {
		var err error
		st, err = c.GetStatus(ctxT(t), &chainindexerv1.GetStatusRequest{})
		return err == nil && st.GetServing() && st.GetLedgerSlot() >= slot
	})
	return st
}

// event is one Watch message of any kind.
type event interface {
	GetChange() *chainindexerv1.ChangeMeta
}

// meta is a Watch message's change.
func meta(m any) *chainindexerv1.ChangeMeta { return m.(event).GetChange() }

// recv reads one message, failing the test on an error.
func recv[R any](t testing.TB, s grpc.ServerStreamingClient[R]) *R {
	t.Helper()
	m, err := s.Recv()
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	return m
}

// snapshot reads a from_sequence 0 stream's snapshot up to its BOOKMARK.
func snapshot[R any](t testing.TB, s grpc.ServerStreamingClient[R]) (objs []*R, bookmark uint64) {
	t.Helper()
	for {
		m := recv(t, s)
		ch := meta(m)
		if ch.GetType() == chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK {
			return objs, ch.GetSequence()
		}
		if ch.GetType() != chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT {
			t.Fatalf("snapshot event of type %v", ch.GetType())
		}
		objs = append(objs, m)
	}
}

// nextChange reads past BOOKMARKs to the next change.
func nextChange[R any](t testing.TB, s grpc.ServerStreamingClient[R]) *R {
	t.Helper()
	for {
		m := recv(t, s)
		if meta(m).GetType() != chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK {
			return m
		}
	}
}

func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// recvErr reads until the stream fails and returns the error and how many
// messages came before it.
func recvErr[R any](s grpc.ServerStreamingClient[R]) (msgs []*R, err error) {
	for {
		m, err := s.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return msgs, err
			}
			return msgs, status.Convert(err).Err()
		}
		msgs = append(msgs, m)
	}
}
