package runtime

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mr-tron/base58"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/muprotocol/mu/libs/chainwatch"
	"github.com/muprotocol/mu/libs/chainwatch/chainwatchtest"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/rpcerr"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// spinWAT reads its request and then loops until its fuel runs out.
const spinWAT = `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 60000))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
    (loop $spin (br $spin))))`

var (
	testRegion      = bytes.Repeat([]byte{0x5e}, 32)
	otherRegion     = bytes.Repeat([]byte{0x6f}, 32)
	testProvider    = bytes.Repeat([]byte{0x70}, 32)
	testStackOwner  = bytes.Repeat([]byte{0x0e}, 32)
	chainTestRetry  = chainwatch.Backoff{Initial: time.Millisecond, Max: 50 * time.Millisecond}
	chainWaitBudget = 60 * time.Second
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// chainHarness is a runtime node that follows a fake indexer, with the
// fake muDB and storage behind it and okWAT in storage.
type chainHarness struct {
	*harness
	x       *chainwatchtest.Indexer
	mudb    *fakeMudb
	storage *fakeStorage
	logs    *syncBuffer
	okID    string
}

func newChainHarness(t *testing.T, region *chainindexerv1.Region, bins ...[]byte) *chainHarness {
	t.Helper()
	x := chainwatchtest.New(t)
	if region != nil {
		x.PutRegion(region)
	}
	mdb, st := newFakeMudb(), newFakeStorage()
	ok := wat(t, okWAT)
	for _, b := range append(bins, ok) {
		st.binaries[ids.BinaryID(b)] = b
	}
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.ChainIndexerAddr = x.Addr()
	cfg.RegionID = base58.Encode(testRegion)
	cfg.ChainRetry = chainTestRetry
	cfg.MudbAddr = serveFakeMudb(t, mdb)
	cfg.StorageAddr = serveFakeStorage(t, st)
	logs := &syncBuffer{}
	srv, err := New(cfg, Deps{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h := &harness{srv: srv, client: runtimev1.NewRuntimeServiceClient(conn), conn: conn}
	return &chainHarness{harness: h, x: x, mudb: mdb, storage: st, logs: logs, okID: ids.BinaryID(ok)}
}

func testRegionObject() *chainindexerv1.Region {
	return &chainindexerv1.Region{Id: testRegion, ProviderId: testProvider, Name: "test-1"}
}

// chainStack is an active, enabled stack of the test region running binary.
func chainStack(id ids.StackID, rev uint64, binary string) *chainindexerv1.Stack {
	return &chainindexerv1.Stack{Id: id.Bytes(), Owner: testStackOwner, RegionId: testRegion, Revision: rev,
		Manifest: manifestWithData(binary), State: chainindexerv1.StackState_STACK_STATE_ACTIVE, Enabled: true}
}

// manifestWithData is manifestFor plus a table and a box.
func manifestWithData(binary string) []byte {
	return append(manifestFor(binary), []byte(`  - type: KeyValueTable
    name: items
  - type: Storage
    name: files
`)...)
}

func (h *chainHarness) invoke(id ids.StackID) (*runtimev1.InvokeResponse, error) {
	return h.client.Invoke(context.Background(), &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: "fn.handler", Request: &typesv1.HttpRequest{Method: "GET"}})
}

// revision is the revision of id deployed on the node, 0 when none.
func (h *chainHarness) revision(id ids.StackID) uint64 {
	h.srv.mu.RLock()
	defer h.srv.mu.RUnlock()
	if d := h.srv.stacks[id]; d != nil {
		return d.revision
	}
	return 0
}

// gauge reads the metric name (a gauge or counter without labels) from
// s's registry.
func gauge(t *testing.T, s *Server, name string) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// eventually polls cond; the budget only bounds a test that would hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(chainWaitBudget); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestFollow_DeploysTheActiveStacksOfItsRegionFromStorage(t *testing.T) {
	h := newChainHarness(t, testRegionObject())
	a, b := ids.StackID{0xa1}, ids.StackID{0xb1}
	h.x.PutStack(chainStack(a, 3, h.okID))
	other := chainStack(b, 1, h.okID)
	other.RegionId = otherRegion
	h.x.PutStack(other)

	eventually(t, "stack a deployed", func() bool { return h.revision(a) == 3 })
	resp, err := h.invoke(a)
	if err != nil || resp.GetResponse().GetStatus() != 200 {
		t.Fatalf("invoke: %v %v", resp, err)
	}
	if _, err := h.invoke(b); code(err) != codes.NotFound {
		t.Fatalf("a stack of another region: %v, want NotFound", err)
	}
	h.storage.mu.Lock()
	binGets := h.storage.binGets
	h.storage.mu.Unlock()
	if binGets != 1 {
		t.Errorf("%d GetBinary calls, want 1 (the binary comes from storage)", binGets)
	}
	// The declared table and box were created for it.
	h.mudb.mu.Lock()
	created := h.mudb.tables[fmt.Sprintf("%x/items", a[:])]
	h.mudb.mu.Unlock()
	if !created {
		t.Error("table items not created")
	}
	h.x.Bookmark()
	eventually(t, "the follower to reach the indexer's sequence", func() bool {
		return gauge(t, h.srv, "mu_runtime_chain_sequence") == float64(h.x.Sequence())
	})
	if got := gauge(t, h.srv, "mu_runtime_chain_synced"); got != 1 {
		t.Fatalf("mu_runtime_chain_synced = %v", got)
	}
}

// An update from the chain swaps revisions under a load of concurrent
// calls without failing one; revisions pushed faster than they deploy end
// at the latest.
func TestFollow_UpdatesUnderLoadFailNoCall(t *testing.T) {
	h := newChainHarness(t, testRegionObject())
	id := ids.StackID{0xc1}
	h.x.PutStack(chainStack(id, 1, h.okID))
	eventually(t, "revision 1", func() bool { return h.revision(id) == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok       int
		failures []string
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := h.invoke(id)
				mu.Lock()
				if err != nil || resp.GetError() != nil || resp.GetResponse().GetStatus() != 200 {
					failures = append(failures, fmt.Sprintf("%v %v", err, resp.GetError()))
				} else {
					ok++
				}
				mu.Unlock()
			}
		}()
	}
	for rev := uint64(2); rev <= 6; rev++ {
		h.x.PutStack(chainStack(id, rev, h.okID))
		eventually(t, fmt.Sprintf("revision %d", rev), func() bool { return h.revision(id) == rev })
	}
	// Revisions faster than deploys: the last one wins.
	for rev := uint64(7); rev <= 12; rev++ {
		h.x.PutStack(chainStack(id, rev, h.okID))
	}
	eventually(t, "revision 12", func() bool { return h.revision(id) == 12 })
	mu.Lock()
	before := ok
	mu.Unlock()
	eventually(t, "calls on the last revision", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ok >= before+50
	})
	cancel()
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d calls failed across updates, e.g. %s", len(failures), len(failures)+ok, failures[0])
	}
	t.Logf("%d calls across 11 updates, none failed", ok)
}

func TestFollow_DisabledStackIsRefusedAndLosesItsInstancesUntilEnabled(t *testing.T) {
	h := newChainHarness(t, testRegionObject())
	id, neighbour := ids.StackID{0xd1}, ids.StackID{0xd2}
	st := chainStack(id, 1, h.okID)
	h.x.PutStack(st)
	h.x.PutStack(chainStack(neighbour, 1, h.okID))
	eventually(t, "both deployed", func() bool { return h.revision(id) == 1 && h.revision(neighbour) == 1 })
	if resp, err := h.invoke(id); err != nil || resp.GetResponse().GetStatus() != 200 {
		t.Fatalf("invoke: %v %v", resp, err)
	}
	warm := func(id ids.StackID) int {
		s, err := h.client.Status(context.Background(), &runtimev1.StatusRequest{StackId: id.Bytes()})
		if err != nil {
			t.Fatal(err)
		}
		return int(s.GetStacks()[0].GetFunctions()[0].GetWarmInstances())
	}
	if warm(id) == 0 {
		t.Fatal("no warm instance before disabling")
	}

	binGets := func() int {
		h.storage.mu.Lock()
		defer h.storage.mu.Unlock()
		return h.storage.binGets
	}
	fetched := binGets()

	off := proto.CloneOf(st)
	off.Enabled = false
	h.x.PutStack(off)
	var err error
	eventually(t, "calls refused", func() bool {
		_, err = h.invoke(id)
		return err != nil
	})
	if code(err) != codes.FailedPrecondition || rpcerr.ReasonOf(err) != rpcerr.StackDisabled || !strings.Contains(err.Error(), "escrow") {
		t.Fatalf("invoke of a disabled stack: %v (reason %q), want FailedPrecondition STACK_DISABLED naming the escrow", err, rpcerr.ReasonOf(err))
	}
	if n := warm(id); n != 0 {
		t.Fatalf("%d warm instances of a disabled stack", n)
	}
	if resp, err := h.invoke(neighbour); err != nil || resp.GetResponse().GetStatus() != 200 {
		t.Fatalf("the neighbour stack: %v %v", resp, err)
	}
	h.srv.mu.RLock()
	_, compiled := h.srv.modules[h.okID]
	h.srv.mu.RUnlock()
	if !compiled {
		t.Fatal("the compiled module was dropped with the instances")
	}

	on := proto.CloneOf(st)
	h.x.PutStack(on)
	eventually(t, "calls served again", func() bool {
		resp, err := h.invoke(id)
		return err == nil && resp.GetResponse().GetStatus() == 200
	})
	if n := binGets(); n != fetched {
		t.Errorf("%d GetBinary calls, %d before disabling: enabling fetched the binary again", n, fetched)
	}
}

func TestFollow_DeletedStackIsUndeployedAndItsDataDeletedDespiteFailures(t *testing.T) {
	h := newChainHarness(t, testRegionObject())
	id, neighbour := ids.StackID{0xe1}, ids.StackID{0xe2}
	st := chainStack(id, 1, h.okID)
	h.x.PutStack(st)
	h.x.PutStack(chainStack(neighbour, 1, h.okID))
	eventually(t, "both deployed", func() bool { return h.revision(id) == 1 && h.revision(neighbour) == 1 })
	h.mudb.mu.Lock()
	h.mudb.failStackDeletes = 3 // muDB fails the first deletes: they are retried
	h.mudb.mu.Unlock()

	gone := proto.CloneOf(st)
	gone.Revision, gone.State, gone.Enabled = 2, chainindexerv1.StackState_STACK_STATE_DELETED, false
	h.x.PutStack(gone)
	eventually(t, "the data deleted", func() bool { return h.mudb.stackDataDeletes(id[:]) == 1 && h.storage.dataDeletes(id) == 1 })
	if _, err := h.invoke(id); code(err) != codes.NotFound {
		t.Fatalf("invoke of a deleted stack: %v, want NotFound", err)
	}
	if h.mudb.stackDataDeletes(neighbour[:]) != 0 || h.storage.dataDeletes(neighbour) != 0 {
		t.Fatal("the neighbour's data was deleted")
	}
	if resp, err := h.invoke(neighbour); err != nil || resp.GetResponse().GetStatus() != 200 {
		t.Fatalf("the neighbour stack: %v %v", resp, err)
	}
}

// A stack deleted while the node's follower missed it (the indexer lost the
// history: OUT_OF_RANGE) is found missing from the new snapshot and
// deleted; one deleted by account closure (DELETE) likewise.
func TestFollow_StackDeletedWhileUnseenIsRemovedAfterOutOfRange(t *testing.T) {
	h := newChainHarness(t, testRegionObject())
	missed, closed, kept := ids.StackID{0xf1}, ids.StackID{0xf2}, ids.StackID{0xf3}
	h.x.PutStack(chainStack(missed, 1, h.okID))
	h.x.PutStack(chainStack(closed, 1, h.okID))
	h.x.PutStack(chainStack(kept, 1, h.okID))
	eventually(t, "all deployed", func() bool { return h.revision(missed) == 1 && h.revision(closed) == 1 && h.revision(kept) == 1 })

	h.x.DeleteStack(chainStack(closed, 1, h.okID))
	eventually(t, "the closed stack's data deleted", func() bool { return h.storage.dataDeletes(closed) == 1 })

	h.x.Stop()
	gone := chainStack(missed, 2, h.okID)
	gone.State, gone.Enabled = chainindexerv1.StackState_STACK_STATE_DELETED, false
	h.x.PutStack(gone)
	h.x.Forget()
	h.x.Restart()
	eventually(t, "the missed stack's data deleted", func() bool { return h.storage.dataDeletes(missed) == 1 && h.mudb.stackDataDeletes(missed[:]) == 1 })
	if h.revision(missed) != 0 || h.revision(closed) != 0 {
		t.Fatal("deleted stacks still deployed")
	}
	if h.revision(kept) != 1 || h.storage.dataDeletes(kept) != 0 {
		t.Fatalf("the kept stack: revision %d, %d data deletes", h.revision(kept), h.storage.dataDeletes(kept))
	}
}

func TestFollow_StoppedIndexerChangesNothingAndChangesArriveAfterItsReturn(t *testing.T) {
	h := newChainHarness(t, testRegionObject())
	id := ids.StackID{0x11}
	h.x.PutStack(chainStack(id, 1, h.okID))
	eventually(t, "deployed", func() bool { return h.revision(id) == 1 })

	h.x.Stop()
	eventually(t, "the follower to notice", func() bool { return !h.srv.follow.stacks.Connected() })
	for i := range 20 {
		if resp, err := h.invoke(id); err != nil || resp.GetResponse().GetStatus() != 200 {
			t.Fatalf("call %d while the indexer is stopped: %v %v", i, resp, err)
		}
	}
	if got := gauge(t, h.srv, "mu_runtime_chain_synced"); got != 1 {
		t.Fatalf("mu_runtime_chain_synced = %v during the outage, want 1", got)
	}
	h.x.PutStack(chainStack(id, 2, h.okID)) // made while the node cannot see it
	h.x.Restart()
	eventually(t, "revision 2 after the restart", func() bool { return h.revision(id) == 2 })
	if resp, err := h.invoke(id); err != nil || resp.GetResponse().GetStatus() != 200 {
		t.Fatalf("invoke: %v %v", resp, err)
	}
}

func TestFollow_RegionBoundsMemoryAtDeployAndARaisedBoundLetsTheRetrySucceed(t *testing.T) {
	r := testRegionObject()
	r.MaxMemoryLimitBytes = 2 << 20 // manifestFor declares 3MiB
	h := newChainHarness(t, r)
	id, fine := ids.StackID{0x21}, ids.StackID{0x22}
	h.x.PutStack(chainStack(id, 1, h.okID))
	eventually(t, "a failed deploy", func() bool { return testutil.ToFloat64(h.srv.metrics.chainDeployFailures) >= 2 })
	if h.revision(id) != 0 {
		t.Fatal("a manifest over the region's memory bound was deployed")
	}
	logs := h.logs.String()
	for _, want := range []string{"deploying a stack from the chain failed", "revision=1", `Function \"fn\"`, "memory_limit: 3MiB is above the maximum of 2MiB", `region \"test-1\"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log does not say %q:\n%s", want, logs)
		}
	}
	// A failing stack does not hold up another one.
	small := chainStack(fine, 1, h.okID)
	small.Manifest = bytes.Replace(small.Manifest, []byte("3MiB"), []byte("2MiB"), 1)
	h.x.PutStack(small)
	eventually(t, "the stack within the bound deployed", func() bool { return h.revision(fine) == 1 })

	r.MaxMemoryLimitBytes = 4 << 20
	h.x.PutRegion(r)
	eventually(t, "the retry under the raised bound", func() bool { return h.revision(id) == 1 })
}

func TestFollow_RegionCapsTheFuelOfACall(t *testing.T) {
	r := testRegionObject()
	r.MaxGigaInstructionsPerCall = 1
	spin := wat(t, spinWAT)
	h := newChainHarness(t, r, spin)
	id := ids.StackID{0x31}
	h.x.PutStack(chainStack(id, 1, ids.BinaryID(spin)))
	eventually(t, "deployed", func() bool { return h.revision(id) == 1 })
	if got := h.srv.fuelLimit(); got != 1_000_000_000 {
		t.Fatalf("fuel limit %d, want the region's 10^9 (below max_fuel_per_call %d)", got, h.srv.cfg.MaxFuelPerCall)
	}
	resp, err := h.invoke(id)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetError().GetKind() != runtimev1.InvokeError_KIND_FUEL_EXHAUSTED {
		t.Fatalf("response %v, want FUEL_EXHAUSTED", resp)
	}
	// The call's fuel, plus its instance's start-up (a few instructions).
	if f := resp.GetFuelUsed(); f < 1_000_000_000 || f > 1_000_000_000+1_000_000 {
		t.Fatalf("fuel used %d, want the region's cap of 10^9", f)
	}
}

func TestConfig_ChainSettings(t *testing.T) {
	region := base58.Encode(testRegion)
	tests := []struct {
		name string
		set  func(*Config)
		want []string // "" entries: valid
	}{
		{"off by default", func(*Config) {}, nil},
		{"on", func(c *Config) { c.ChainIndexerAddr, c.RegionID = "127.0.0.1:1", region }, nil},
		{"region required", func(c *Config) { c.ChainIndexerAddr = "127.0.0.1:1" }, []string{"region_id: is required with chain_indexer_addr"}},
		{"bad values", func(c *Config) {
			c.ChainIndexerAddr, c.RegionID = "nohost", "0OIl"
			c.ChainRetry = chainwatch.Backoff{}
			c.ChainDeployWorkers, c.ChainDeployTimeout = 0, 0
		}, []string{"chain_indexer_addr:", "region_id: public key \"0OIl\" is not base58", "chain_retry_initial:", "chain_retry_max:", "chain_deploy_workers:", "chain_deploy_timeout:"}},
		{"short region", func(c *Config) { c.RegionID = base58.Encode([]byte{1, 2, 3}) }, []string{"region_id: public key", "decodes to 3 bytes, want 32"}},
	}
	for _, tc := range tests {
		cfg := DefaultConfig()
		cfg.Plaintext = true // tests run on loopback
		tc.set(&cfg)
		err := cfg.Validate()
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v does not say %q", tc.name, err, w)
			}
		}
	}
}

func TestConfigDocs_DocumentEveryField(t *testing.T) {
	docs := ConfigDocs()
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		if f := ct.Field(i); !f.Anonymous && docs["Config."+f.Name] == "" {
			t.Errorf("Config.%s has no doc comment (--help shows none)", f.Name)
		}
	}
	for _, k := range []string{"Backoff.Initial", "Backoff.Max", "Base.GRPCAddr", "BatchConfig.BatchSize"} {
		if docs[k] == "" {
			t.Errorf("%s has no doc comment (--help shows none)", k)
		}
	}
}

func TestWorkQueue_OneWorkerPerStackAndRequeuedWhileBusy(t *testing.T) {
	q := newWorkQueue()
	a, b := ids.StackID{1}, ids.StackID{2}
	q.add(a)
	q.add(b)
	q.add(a) // already queued: once
	if got, _ := q.get(); got != a {
		t.Fatalf("first %v", got)
	}
	q.add(a) // queued again while busy: not handed out until done
	if got, _ := q.get(); got != b {
		t.Fatalf("second %v, want b (a is busy)", got)
	}
	q.done(b)
	q.done(a)
	if got, _ := q.get(); got != a {
		t.Fatalf("third %v, want a again", got)
	}
	q.close()
	if _, ok := q.get(); ok {
		t.Fatal("get after close")
	}
}
