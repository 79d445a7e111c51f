package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mr-tron/base58"
	"google.golang.org/grpc/codes"

	"github.com/muprotocol/mu/libs/chainwatch"
	"github.com/muprotocol/mu/libs/chainwatch/chainwatchtest"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/rpcerr"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	"github.com/muprotocol/mu/services/gateway"
)

var (
	chainRegion   = bytes.Repeat([]byte{0x5e}, 32)
	otherRegion   = bytes.Repeat([]byte{0x6f}, 32)
	chainProvider = bytes.Repeat([]byte{0x70}, 32)
	chainOwner    = bytes.Repeat([]byte{0x0e}, 32)
)

// chainHarness is a gateway following a fake indexer that holds the region
// test-1 (minimum escrow 1000) of chainProvider.
type chainHarness struct {
	*harness
	x *chainwatchtest.Indexer
}

func newChainHarness(t *testing.T, opts ...harnessOpt) *chainHarness {
	t.Helper()
	x := chainwatchtest.New(t)
	x.PutRegion(&chainindexerv1.Region{Id: chainRegion, ProviderId: chainProvider, Name: "test-1", MinEscrowBalance: 1000})
	h := newHarness(t, append([]harnessOpt{func(c *gateway.Config, _ *gateway.Deps) {
		c.ChainIndexerAddr = x.Addr()
		c.RegionID = base58.Encode(chainRegion)
		c.ChainRetry = chainwatch.Backoff{Initial: time.Millisecond, Max: 50 * time.Millisecond}
	}}, opts...)...)
	return &chainHarness{harness: h, x: x}
}

func newStackID(t *testing.T) ids.StackID {
	t.Helper()
	id, _, err := ids.NewStackID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func chainStack(id ids.StackID, rev uint64, enabled bool) *chainindexerv1.Stack {
	return &chainindexerv1.Stack{Id: id.Bytes(), Owner: chainOwner, RegionId: chainRegion, Revision: rev,
		Manifest: []byte(testManifest), State: chainindexerv1.StackState_STACK_STATE_ACTIVE, Enabled: enabled}
}

// get answers GET of path (after the stack id) without failing the test on
// a transport error, for polling.
func (h *chainHarness) get(id ids.StackID, path string) (int, errorJSON) {
	resp, err := http.Get(h.base + "/" + id.String() + "/" + path)
	if err != nil {
		return 0, errorJSON{}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e errorJSON
	_ = json.Unmarshal(body, &e)
	return resp.StatusCode, e
}

// eventually polls cond; the deadline only bounds a test that would hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func statusIs(h *chainHarness, id ids.StackID, path string, want int) func() bool {
	return func() bool { code, _ := h.get(id, path); return code == want }
}

func TestFollow_RoutesActiveStacksAndForgetsDeletedOnes(t *testing.T) {
	h := newChainHarness(t)
	a, other, bad := newStackID(t), newStackID(t), newStackID(t)
	h.x.PutStack(chainStack(a, 1, true))
	o := chainStack(other, 1, true)
	o.RegionId = otherRegion
	h.x.PutStack(o)
	b := chainStack(bad, 1, true)
	b.Manifest = []byte("name: Bad\nservices: [{type: Function}]\n")
	h.x.PutStack(b)
	eventually(t, "stack a routed", statusIs(h, a, "web/todos", 200))
	if code, e := h.get(other, "web/todos"); code != 404 || e.Error.Kind != gateway.KindStackNotFound {
		t.Fatalf("a stack of another region: %d %s", code, e.Error.Kind)
	}
	if code, e := h.get(bad, "web/todos"); code != 404 || e.Error.Kind != gateway.KindStackNotFound {
		t.Fatalf("a stack with a bad manifest: %d %s", code, e.Error.Kind)
	}
	// The stack installed directly (PutStack) is left alone by the chain.
	if resp, _ := h.do("GET", h.url("web/todos"), nil, nil); resp.StatusCode != 200 {
		t.Fatalf("the directly installed stack: %d", resp.StatusCode)
	}

	gone := chainStack(a, 2, false)
	gone.State = chainindexerv1.StackState_STACK_STATE_DELETED
	h.x.PutStack(gone)
	eventually(t, "stack a removed", statusIs(h, a, "web/todos", 404))
	if _, e := h.get(a, "web/todos"); e.Error.Kind != gateway.KindStackNotFound {
		t.Fatalf("a deleted stack: kind %s", e.Error.Kind)
	}
}

func TestFollow_DisabledStackAnswers402SayingHowMuchToAdd(t *testing.T) {
	h := newChainHarness(t)
	id := newStackID(t)
	dev, prov := base58.Encode(chainOwner), base58.Encode(chainProvider)
	h.x.PutEscrow(&chainindexerv1.Escrow{Developer: chainOwner, ProviderId: chainProvider, Balance: 120})
	h.x.PutStack(chainStack(id, 1, false))

	reason := func(want string) {
		t.Helper()
		var last string
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			code, e := h.get(id, "web/todos")
			if code == 402 && e.Error.Kind == gateway.KindStackDisabled && strings.Contains(e.Error.Message, want) {
				return
			}
			last = fmt.Sprint(code, " ", e.Error.Kind, ": ", e.Error.Message)
			if time.Now().After(deadline) {
				t.Fatalf("the 402 never said\n  %s\nlast answer: %s", want, last)
			}
		}
	}
	reason(fmt.Sprintf("escrow balance 120 of developer %s with provider %s is under region test-1's minimum 1000; add at least 880", dev, prov))
	if h.rt.callCount() != 0 {
		t.Fatal("a disabled stack's request reached the runtime")
	}

	// The reason follows the escrow: topped up but not yet enabled.
	h.x.PutEscrow(&chainindexerv1.Escrow{Developer: chainOwner, ProviderId: chainProvider, Balance: 1500})
	reason("escrow balance 1500 of developer " + dev + " with provider " + prov + " is at or over region test-1's minimum 1000, but the escrow is overdrawn by usage not yet settled; recharge it")

	// And the region: a higher minimum.
	h.x.PutRegion(&chainindexerv1.Region{Id: chainRegion, ProviderId: chainProvider, Name: "test-1", MinEscrowBalance: 2000})
	reason("escrow balance 1500 of developer " + dev + " with provider " + prov + " is under region test-1's minimum 2000; add at least 500")

	h.x.PutStack(chainStack(id, 1, true))
	eventually(t, "enabled again", statusIs(h, id, "web/todos", 200))
}

func TestFollow_OwnerWithoutEscrowIsToldToAddTheMinimum(t *testing.T) {
	h := newChainHarness(t)
	id := newStackID(t)
	h.x.PutStack(chainStack(id, 1, false))
	want := fmt.Sprintf("escrow balance 0 of developer %s with provider %s is under region test-1's minimum 1000; add at least 1000",
		base58.Encode(chainOwner), base58.Encode(chainProvider))
	eventually(t, "the reason", func() bool {
		code, e := h.get(id, "web/todos")
		return code == 402 && strings.Contains(e.Error.Message, want)
	})
}

func TestFollow_UpdatesUnderLoadFailNoRequest(t *testing.T) {
	h := newChainHarness(t)
	id := newStackID(t)
	h.x.PutStack(chainStack(id, 1, true))
	eventually(t, "routed", statusIs(h, id, "web/todos", 200))

	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok       int
		failures []int
	)
	client := &http.Client{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := client.Get(h.base + "/" + id.String() + "/web/todos")
				code := 0
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				if code == 200 {
					ok++
				} else {
					failures = append(failures, code)
				}
				mu.Unlock()
			}
		}()
	}
	for rev := uint64(2); rev <= 20; rev++ {
		st := chainStack(id, rev, true)
		// Every revision routes /todos and adds an endpoint of its own.
		st.Manifest = []byte(strings.Replace(testManifest, "      /stats: {get: api.stats}", fmt.Sprintf("      /stats: {get: api.stats}\n      /v%d: {get: api.v}", rev), 1))
		h.x.PutStack(st)
		eventually(t, fmt.Sprintf("revision %d", rev), statusIs(h, id, fmt.Sprintf("admin/v%d", rev), 200))
	}
	mu.Lock()
	before := ok
	mu.Unlock()
	eventually(t, "more requests", func() bool { mu.Lock(); defer mu.Unlock(); return ok > before+50 })
	cancel()
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed across updates, statuses %v", len(failures), len(failures)+ok, failures[:min(len(failures), 10)])
	}
	t.Logf("%d requests across 19 updates, none failed", ok)
}

func TestFollow_StoppedIndexerKeepsEverythingServing(t *testing.T) {
	h := newChainHarness(t)
	id, off := newStackID(t), newStackID(t)
	h.x.PutStack(chainStack(id, 1, true))
	h.x.PutStack(chainStack(off, 1, false))
	eventually(t, "routed", func() bool { return statusIs(h, id, "web/todos", 200)() && statusIs(h, off, "web/todos", 402)() })

	h.x.Stop()
	for i := range 20 {
		if code, _ := h.get(id, "web/todos"); code != 200 {
			t.Fatalf("request %d while the indexer is stopped: %d", i, code)
		}
		if code, _ := h.get(off, "web/todos"); code != 402 {
			t.Fatalf("request %d to the disabled stack while the indexer is stopped: %d", i, code)
		}
	}
	// Changes made during the outage arrive after it.
	h.x.PutStack(chainStack(id, 2, false))
	h.x.Restart()
	eventually(t, "the change after the restart", statusIs(h, id, "web/todos", 402))
}

func TestGateway_RuntimeRefusingADisabledStackIs402(t *testing.T) {
	h := newHarness(t)
	h.rt.setHandle(func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
		return nil, rpcerr.Errorf(codes.FailedPrecondition, rpcerr.StackDisabled, "stack X is disabled: escrow too low")
	})
	resp, body := h.do("GET", h.url("web/todos"), nil, nil)
	e := wantError(t, resp, body, http.StatusPaymentRequired, gateway.KindStackDisabled)
	if !strings.Contains(e.Error.Message, "escrow too low") {
		t.Fatalf("message %q", e.Error.Message)
	}
	// FAILED_PRECONDITION without that reason stays a runtime error.
	h.rt.setHandle(func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
		return nil, rpcerr.Errorf(codes.FailedPrecondition, rpcerr.InvalidRequest, "something else")
	})
	resp, body = h.do("GET", h.url("web/todos"), nil, nil)
	wantError(t, resp, body, http.StatusBadGateway, gateway.KindRuntimeError)
}

func TestConfig_ChainSettings(t *testing.T) {
	tests := []struct {
		name string
		set  func(*gateway.Config)
		want []string
	}{
		{"on", func(c *gateway.Config) { c.ChainIndexerAddr, c.RegionID = "127.0.0.1:1", base58.Encode(chainRegion) }, nil},
		{"region required", func(c *gateway.Config) { c.ChainIndexerAddr = "127.0.0.1:1" }, []string{"region_id: is required with chain_indexer_addr"}},
		{"bad values", func(c *gateway.Config) {
			c.ChainIndexerAddr, c.RegionID, c.ChainRetry = ":1", "xyz", chainwatch.Backoff{Initial: time.Second, Max: time.Millisecond}
		}, []string{"chain_indexer_addr:", "region_id: public key \"xyz\" decodes to", "chain_retry_max: 1ms is below chain_retry_initial 1s"}},
	}
	for _, tc := range tests {
		cfg := gateway.DefaultConfig()
		cfg.Plaintext = true // tests run on loopback
		tc.set(&cfg)
		err := cfg.Validate()
		if tc.want == nil && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v does not say %q", tc.name, err, w)
			}
		}
	}
}

func TestConfigDocs_DocumentEveryField(t *testing.T) {
	docs := gateway.ConfigDocs()
	ct := reflect.TypeFor[gateway.Config]()
	for i := range ct.NumField() {
		if f := ct.Field(i); !f.Anonymous && docs["Config."+f.Name] == "" {
			t.Errorf("Config.%s has no doc comment (--help shows none)", f.Name)
		}
	}
	for _, k := range []string{"Base.GRPCAddr", "BatchConfig.BatchSize", "Backoff.Initial", "Backoff.Max"} {
		if docs[k] == "" {
			t.Errorf("%s has no doc", k)
		}
	}
}
