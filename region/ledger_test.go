package region

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/local"
	"github.com/muprotocol/mu/libs/manifest"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
)

// startLedgerRegion starts muDB, storage, the local ledger with its dev
// market and the chain-indexer, a runtime and a gateway, all following
// the indexer.
func startLedgerRegion(t *testing.T, dataDir string, lo *LedgerOptions) *Region {
	t.Helper()
	if lo == nil {
		lo = &LedgerOptions{}
	}
	return startRegion(t, Options{DataDir: dataDir, Mudb: &MudbOptions{}, Storage: &StorageOptions{}, Ledger: lo})
}

func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// withExtraRoute returns a copy of m whose first gateway also routes
// GET /v2/{name} to the same function as its first endpoint.
func withExtraRoute(m *manifest.Manifest) *manifest.Manifest {
	c := *m
	c.Gateways = append([]manifest.Gateway(nil), m.Gateways...)
	g := c.Gateways[0]
	g.Endpoints = append(append([]manifest.Endpoint(nil), g.Endpoints...), manifest.Endpoint{
		Path: "/v2/{name}", Method: "GET", RouteTo: g.Endpoints[0].RouteTo,
		Assembly: g.Endpoints[0].Assembly, Function: g.Endpoints[0].Function,
	})
	c.Gateways[0] = g
	return &c
}

// TestLedger_DeployUpdateDeleteThroughTheLedgerUnderLoad posts a stack on
// the ledger, serves it, updates it while a load runs (no request may
// fail), then deletes it: its routes go, and so do its tables.
func TestLedger_DeployUpdateDeleteThroughTheLedgerUnderLoad(t *testing.T) {
	r := startLedgerRegion(t, t.TempDir(), nil)
	ctx := waitCtx(t)
	dev := r.Market().Keys.Developer
	m, bins := stackFromDir(t, "../examples/todo")

	posted := time.Now()
	st, err := r.Post(ctx, dev, 7, m, bins)
	if err != nil {
		t.Fatal(err)
	}
	if st.Revision != 1 || st.State != ledger.StackActive || !st.Enabled {
		t.Fatalf("posted stack: %+v", st)
	}
	id := ids.StackID(st.ID)
	base := "http://" + r.Gateway().Addr() + "/" + id.String() + "/todo"
	// The time from the ledger write to the first request served.
	for {
		code, _ := getAs(t, base+"/", "ann")
		if code == http.StatusOK {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("stack never served: last status %d", code)
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("ledger write → first request served: %s", time.Since(posted))
	if code, body := doAs(t, "POST", base+"/", "ann", `{"title":"milk"}`); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, body)
	}

	// A load of GETs across the update: none may fail.
	var failed, served atomic.Int64
	var firstFailure atomic.Value
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
				code, body := getAs(t, base+"/milk", "ann")
				if code != http.StatusOK {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, body)
					continue
				}
				served.Add(1)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	m2 := withExtraRoute(m)
	st2, err := r.Post(ctx, dev, 7, m2, bins)
	if err != nil {
		t.Fatal(err)
	}
	if st2.ID != st.ID || st2.Revision != 2 {
		t.Fatalf("update: id %s revision %d, want %s revision 2", st2.ID, st2.Revision, st.ID)
	}
	if err := r.WaitServed(ctx, id, 2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed across the update; first: %v", n, n+served.Load(), firstFailure.Load())
	}
	if served.Load() == 0 {
		t.Fatal("the load served nothing")
	}
	t.Logf("%d requests across the update, 0 failed", served.Load())
	// The new revision's route is served, with the same data.
	if code, body := getAs(t, "http://"+r.Gateway().Addr()+"/"+id.String()+"/todo/v2/milk", "ann"); code != http.StatusOK || !strings.Contains(body, "milk") {
		t.Fatalf("revision 2 route: %d %s", code, body)
	}
	// Posting the same manifest again changes nothing.
	if st3, err := r.Post(ctx, dev, 7, m2, bins); err != nil || st3.Revision != 2 {
		t.Fatalf("same manifest again: revision %d, %v", st3.Revision, err)
	}

	// Delete: routes gone, tables gone.
	if _, err := r.Ledger().DeleteStack(ctx, dev, st.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitGone(ctx, id); err != nil {
		t.Fatal(err)
	}
	if code, _ := getAs(t, base+"/", "ann"); code != http.StatusNotFound {
		t.Fatalf("deleted stack answers %d, want 404", code)
	}
	waitTablesGone(t, ctx, r, id)
	// A deleted stack cannot be posted again under the same seed.
	if _, err := r.Post(ctx, dev, 7, m, bins); !errors.Is(err, ledger.ErrStackDeleted) {
		t.Fatalf("post after delete: %v, want ErrStackDeleted", err)
	}
}

// waitTablesGone waits until muDB lists no table of the stack.
func waitTablesGone(t *testing.T, ctx context.Context, r *Region, id ids.StackID) {
	t.Helper()
	for {
		resp, err := r.Mudb().Client().TableList(ctx, &mudbv1.TableListRequest{StackId: id.Bytes()})
		if err == nil && len(resp.GetTables()) == 0 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the deleted stack's tables are still there: %v %v", resp.GetTables(), err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLedger_EscrowUnderMinimumGets402UntilRecharged charges a stack more
// than its escrow holds: the stack is disabled (402 with a JSON body
// saying why), not deleted, and a recharge brings it back.
func TestLedger_EscrowUnderMinimumGets402UntilRecharged(t *testing.T) {
	r := startLedgerRegion(t, t.TempDir(), nil)
	ctx := waitCtx(t)
	mk := r.Market()
	m, bins := stackFromDir(t, "../examples/hello")
	st, err := r.Post(ctx, mk.Keys.Developer, 1, m, bins)
	if err != nil {
		t.Fatal(err)
	}
	id := ids.StackID(st.ID)
	t0 := time.Now()
	if err := r.WaitServed(ctx, id, st.Revision); err != nil {
		t.Fatal(err)
	}
	t.Logf("ledger write → served: %s", time.Since(t0))
	url := "http://" + r.Gateway().Addr() + "/" + id.String() + "/greeting/greet/ann"
	if code, body := get(t, url); code != http.StatusOK {
		t.Fatalf("before: %d %s", code, body)
	}

	// Usage worth far more than the escrow: 10^18 gateway requests.
	res, err := r.Ledger().UpdateUsage(ctx, mk.Keys.Provider, st.ID, ledger.U128(1), ledger.Usage{GatewayRequests: ledger.U128(1e18)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Shortfall.IsZero() || res.Charged != mk.Escrow.Balance {
		t.Fatalf("usage result %+v, want the whole balance %d charged and a shortfall", res, mk.Escrow.Balance)
	}
	if err := r.WaitEnabled(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, url)
	if code != http.StatusPaymentRequired {
		t.Fatalf("overdrawn: %d %s, want 402", code, body)
	}
	var e struct {
		Error struct {
			Kind, Message string
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("402 body is not JSON: %s", body)
	}
	if !strings.Contains(strings.ToLower(body), "escrow") {
		t.Fatalf("402 body does not say why: %s", body)
	}
	// Disabled, not deleted.
	if s, err := r.Ledger().Stack(ctx, st.ID); err != nil || s.State != ledger.StackActive || s.Enabled {
		t.Fatalf("stack on the ledger: %+v %v", s, err)
	}

	if err := r.Ledger().Mint(ctx, mk.Keys.Authority, mk.Keys.Developer.Pubkey(), 10_000); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Ledger().RechargeEscrow(ctx, mk.Keys.Developer, mk.Provider.ID, 10_000); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitEnabled(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, url); code != http.StatusOK {
		t.Fatalf("after recharge: %d %s", code, body)
	}
}

// flakyLedger is a ledger that can be made unreachable.
type flakyLedger struct {
	ledger.Ledger
	down atomic.Bool
}

var errDown = errors.Join(ledger.ErrUnavailable, errors.New("test: ledger unplugged"))

func (f *flakyLedger) Slot(ctx context.Context) (uint64, error) {
	if f.down.Load() {
		return 0, errDown
	}
	return f.Ledger.Slot(ctx)
}

func (f *flakyLedger) Changes(ctx context.Context, after uint64, limit int) ([]ledger.Change, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Ledger.Changes(ctx, after, limit)
}

func (f *flakyLedger) Stacks(ctx context.Context) ([]ledger.Stack, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Ledger.Stacks(ctx)
}

func (f *flakyLedger) Wait(ctx context.Context, after uint64, poll time.Duration) error {
	if f.down.Load() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
			return errDown
		}
	}
	return f.Ledger.Wait(ctx, after, poll)
}

// TestLedger_LedgerOutageKeepsStacksServed unplugs the ledger under a
// served stack: the region keeps serving it, the indexer reports growing
// staleness, and after the ledger is back a new write is served again.
func TestLedger_LedgerOutageKeepsStacksServed(t *testing.T) {
	cfg := local.DefaultConfig()
	cfg.DataDir = t.TempDir()
	l, err := local.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	flaky := &flakyLedger{Ledger: l}
	r := startRegion(t, Options{Mudb: &MudbOptions{}, Storage: &StorageOptions{}, Ledger: &LedgerOptions{Ledger: flaky}})
	ctx := waitCtx(t)
	dev := r.Market().Keys.Developer
	m, bins := stackFromDir(t, "../examples/hello")
	st, err := r.Post(ctx, dev, 1, m, bins)
	if err != nil {
		t.Fatal(err)
	}
	id := ids.StackID(st.ID)
	if err := r.WaitServed(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	url := "http://" + r.Gateway().Addr() + "/" + id.String() + "/greeting/greet/ann"

	flaky.down.Store(true)
	ix := r.ChainIndexer().Client()
	var stale time.Duration
	for i := 0; ; i++ {
		s, err := ix.GetStatus(ctx, &chainindexerv1.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if !s.GetLedgerReachable() && s.GetStaleness().AsDuration() > stale && stale > 0 {
			break // staleness grows while the ledger is away
		}
		if !s.GetLedgerReachable() {
			stale = s.GetStaleness().AsDuration()
		}
		if code, body := get(t, url); code != http.StatusOK {
			t.Fatalf("during the outage (poll %d): %d %s", i, code, body)
		}
		if ctx.Err() != nil {
			t.Fatal("the indexer never reported the outage")
		}
		time.Sleep(50 * time.Millisecond)
	}
	list, err := ix.ListStacks(ctx, &chainindexerv1.ListStacksRequest{})
	if err != nil || len(list.GetStacks()) != 1 || !list.GetStacks()[0].GetEnabled() {
		t.Fatalf("during the outage the indexer lists %v (%v), want the one enabled stack", list.GetStacks(), err)
	}
	if code, body := get(t, url); code != http.StatusOK {
		t.Fatalf("during the outage: %d %s", code, body)
	}

	flaky.down.Store(false)
	st2, err := r.Post(ctx, dev, 1, withExtraRoute(m), bins)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WaitServed(ctx, id, st2.Revision); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, "http://"+r.Gateway().Addr()+"/"+id.String()+"/greeting/v2/ann"); code != http.StatusOK {
		t.Fatalf("after the outage: %d %s", code, body)
	}
}

// TestLedger_RegionRestartServesTheLedgersStacks restarts the whole region
// on its data directory: the stack posted before is served again without
// being posted, from the ledger and indexer state kept on disk.
func TestLedger_RegionRestartServesTheLedgersStacks(t *testing.T) {
	dir := t.TempDir()
	r := startLedgerRegion(t, dir, nil)
	ctx := waitCtx(t)
	keys := r.Market().Keys
	m, bins := stackFromDir(t, "../examples/hello")
	st, err := r.Post(ctx, keys.Developer, 1, m, bins)
	if err != nil {
		t.Fatal(err)
	}
	id := ids.StackID(st.ID)
	if err := r.WaitServed(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	seq, err := r.ChainIndexer().Client().GetStatus(ctx, &chainindexerv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	r2 := startLedgerRegion(t, dir, &LedgerOptions{Keys: keys})
	if err := r2.WaitServed(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, "http://"+r2.Gateway().Addr()+"/"+id.String()+"/greeting/greet/ann"); code != http.StatusOK {
		t.Fatalf("after restart: %d %s", code, body)
	}
	seq2, err := r2.ChainIndexer().Client().GetStatus(ctx, &chainindexerv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if seq2.GetSequence() < seq.GetSequence() {
		t.Fatalf("indexer sequence went back from %d to %d across the restart", seq.GetSequence(), seq2.GetSequence())
	}
}

func getAs(t *testing.T, url, user string) (int, string) {
	t.Helper()
	return doAs(t, "GET", url, user, "")
}

func doAs(t *testing.T, method, url, user, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-user-id", user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
