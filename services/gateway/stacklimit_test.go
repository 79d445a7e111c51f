package gateway_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/usage"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	"github.com/muprotocol/mu/services/gateway"
)

// fakeClock is a clock the test moves by hand, for the gateway's token
// buckets (Server.SetClock): with time standing still no token comes
// back unless the test says so, so the counts are exact.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// withLimits sets the region's per-stack limits and overrides.
func withLimits(rate float64, burst, concurrency int, overrides ...string) harnessOpt {
	return func(cfg *gateway.Config, _ *gateway.Deps) {
		cfg.StackRate, cfg.StackBurst, cfg.StackConcurrency = rate, burst, concurrency
		cfg.StackLimits = overrides
	}
}

// withRegistry makes the gateway register its metrics in reg.
func withRegistry(reg *prometheus.Registry) harnessOpt {
	return func(_ *gateway.Config, d *gateway.Deps) { d.Registry = reg }
}

// putStack installs testManifest as stack id (revision rev).
func (h *harness) putStack(id ids.StackID, rev uint64) {
	h.t.Helper()
	m, err := manifest.Parse([]byte(testManifest))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.srv.PutStack(id, m, rev); err != nil {
		h.t.Fatal(err)
	}
}

// get sends GET /{id}/web/todos and returns the status, the Retry-After
// header and the body.
func (h *harness) get(id ids.StackID) (*http.Response, []byte) {
	h.t.Helper()
	return h.do("GET", h.base+"/"+id.String()+"/web/todos", nil, nil)
}

// counter reads the counter name{label=value} from reg (0 when absent).
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func wantStatus(t *testing.T, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, status, body)
	}
}

func TestGateway_StackOverItsRateGets429WhileItsNeighbourIsServed(t *testing.T) {
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	h := newHarnessClock(t, clock.now, withLimits(1, 3, 0), withRegistry(reg))
	noisy, neighbour := h.stack, newStackID(t)
	h.putStack(neighbour, 1)

	// The bucket holds 3: three requests are served at once.
	for i := range 3 {
		resp, body := h.get(noisy)
		wantStatus(t, resp, body, 200)
		if i == 0 {
			if resp.Header.Get("Retry-After") != "" {
				t.Errorf("a served request has Retry-After %q", resp.Header.Get("Retry-After"))
			}
		}
	}
	_, bytesServed := h.billed(noisy)
	// The bucket is empty and time stands still: every further request
	// of the noisy stack is refused, while its neighbour, at the same
	// moment, has all its own bucket.
	for range 3 {
		resp, body := h.get(noisy)
		e := wantError(t, resp, body, http.StatusTooManyRequests, gateway.KindRateLimited)
		if ra := resp.Header.Get("Retry-After"); ra != "1" {
			t.Errorf("Retry-After = %q, want 1 (a token a second)", ra)
		}
		for _, want := range []string{noisy.String(), "1 requests per second", "bursts of 3", "retry in 1 s"} {
			if !strings.Contains(e.Error.Message, want) {
				t.Errorf("message %q does not say %q", e.Error.Message, want)
			}
		}
		resp, body = h.get(neighbour)
		wantStatus(t, resp, body, 200)
	}
	if _, b := h.billed(noisy); b != bytesServed {
		t.Errorf("the 429s were billed %d traffic bytes", b-bytesServed)
	}
	// A second later one token is back: one more request, then 429.
	clock.advance(time.Second)
	resp, body := h.get(noisy)
	wantStatus(t, resp, body, 200)
	resp, body = h.get(noisy)
	wantError(t, resp, body, http.StatusTooManyRequests, gateway.KindRateLimited)

	// Refused requests never reached the runtime and are not billed.
	if n := h.rt.callCount(); n != 3+3+1 {
		t.Errorf("the runtime got %d calls, want 7 (4 of the noisy stack, 3 of its neighbour)", n)
	}
	if got, _ := h.billed(noisy); got != 4 {
		t.Errorf("noisy stack billed %d requests, want 4 (its 429s are free)", got)
	}
	if got, _ := h.billed(neighbour); got != 3 {
		t.Errorf("neighbour billed %d requests, want 3", got)
	}
	if got := counter(t, reg, "mu_gateway_rate_limited_total", "reason", "rate"); got != 4 {
		t.Errorf("mu_gateway_rate_limited_total{reason=rate} = %v, want 4", got)
	}
	if got := counter(t, reg, "mu_gateway_rate_limited_total", "reason", "concurrency"); got != 0 {
		t.Errorf("mu_gateway_rate_limited_total{reason=concurrency} = %v, want 0", got)
	}
}

func TestGateway_RetryAfterIsTheWaitForTheNextToken(t *testing.T) {
	clock := newFakeClock()
	slow := newStackID(t)
	// A token every 4 s; the default stack: 2.5 a second (0.4 s).
	h := newHarnessClock(t, clock.now, withLimits(2.5, 1, 0, slow.String()+" rate=0.25"))
	h.putStack(slow, 1)
	for _, c := range []struct {
		id   ids.StackID
		want string
	}{{slow, "4"}, {h.stack, "1"}} { // 0.4 s rounds up to 1
		resp, body := h.get(c.id)
		wantStatus(t, resp, body, 200)
		resp, body = h.get(c.id)
		wantError(t, resp, body, http.StatusTooManyRequests, gateway.KindRateLimited)
		if ra := resp.Header.Get("Retry-After"); ra != c.want {
			t.Errorf("Retry-After = %q, want %s", ra, c.want)
		}
	}
	// 3 s later the slow stack waits 1 s more.
	clock.advance(3 * time.Second)
	resp, body := h.get(slow)
	wantError(t, resp, body, http.StatusTooManyRequests, gateway.KindRateLimited)
	if ra := resp.Header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After = %q after 3 of 4 s, want 1", ra)
	}
	// Refusals take no token: at 4 s the token is there.
	clock.advance(time.Second)
	resp, body = h.get(slow)
	wantStatus(t, resp, body, 200)
}

func TestGateway_StackOverItsConcurrencyGets429WhileItsNeighbourIsServed(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, withLimits(0, 0, 2), withRegistry(reg))
	busy, neighbour := h.stack, newStackID(t)
	h.putStack(neighbour, 1)
	entered := make(chan struct{}, 2)
	release := make(chan struct{})
	h.rt.setHandle(func(_ context.Context, req *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
		if ids.StackID(req.GetStackId()) == busy {
			entered <- struct{}{}
			<-release
		}
		return okResponse(req.GetFunction()), nil
	})

	// Two requests of the busy stack block in its function.
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i := range 2 {
		wg.Go(func() {
			resp, err := http.Get(h.base + "/" + busy.String() + "/web/todos")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	for range 2 {
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the blocked requests never reached the runtime")
		}
	}
	// The third is refused at once; the neighbour is served meanwhile.
	resp, body := h.get(busy)
	wantError(t, resp, body, http.StatusTooManyRequests, gateway.KindTooManyInFlight)
	if ra := resp.Header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After = %q, want 1", ra)
	}
	for range 3 {
		resp, body = h.get(neighbour)
		wantStatus(t, resp, body, 200)
	}
	close(release)
	wg.Wait()
	if statuses[0] != 200 || statuses[1] != 200 {
		t.Fatalf("the blocked requests got %v", statuses)
	}
	// Both answered, their slots are free again.
	resp, body = h.get(busy)
	wantStatus(t, resp, body, 200)

	if got, _ := h.billed(busy); got != 3 {
		t.Errorf("busy stack billed %d requests, want 3 (its 429 is free)", got)
	}
	if got, _ := h.billed(neighbour); got != 3 {
		t.Errorf("neighbour billed %d requests, want 3", got)
	}
	if got := counter(t, reg, "mu_gateway_rate_limited_total", "reason", "concurrency"); got != 1 {
		t.Errorf("mu_gateway_rate_limited_total{reason=concurrency} = %v, want 1", got)
	}
}

// TestGateway_ConcurrencyRefusalKeepsTheRateToken: a request refused for
// concurrency does not spend a token of the stack's bucket.
func TestGateway_ConcurrencyRefusalKeepsTheRateToken(t *testing.T) {
	clock := newFakeClock()
	h := newHarnessClock(t, clock.now, withLimits(1, 2, 1))
	entered, release := make(chan struct{}), make(chan struct{})
	h.rt.setHandle(func(_ context.Context, req *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
		if req.GetFunction() == "api.get" {
			close(entered)
			<-release
		}
		return okResponse(req.GetFunction()), nil
	})
	done := make(chan int)
	go func() {
		resp, err := http.Get(h.url("web/todos/1")) // api.get: blocks, spends token 1
		if err != nil {
			t.Error(err)
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-entered
	for range 3 {
		resp, body := h.get(h.stack)
		wantError(t, resp, body, http.StatusTooManyRequests, gateway.KindTooManyInFlight)
	}
	close(release)
	if st := <-done; st != 200 {
		t.Fatalf("blocked request: %d", st)
	}
	resp, body := h.get(h.stack) // token 2, still there
	wantStatus(t, resp, body, 200)
	resp, body = h.get(h.stack)
	wantError(t, resp, body, http.StatusTooManyRequests, gateway.KindRateLimited)
}

func TestGateway_StackLimitsOverrideRaisesOneStacksLimit(t *testing.T) {
	clock := newFakeClock()
	big, unlimited := newStackID(t), newStackID(t)
	h := newHarnessClock(t, clock.now, withLimits(1, 1, 0,
		big.String()+" burst=5",
		unlimited.String()+" rate=0"))
	h.putStack(big, 1)
	h.putStack(unlimited, 1)

	served := func(id ids.StackID, tries int) int {
		n := 0
		for range tries {
			resp, body := h.get(id)
			switch resp.StatusCode {
			case 200:
				n++
			case http.StatusTooManyRequests:
				wantError(t, resp, body, http.StatusTooManyRequests, gateway.KindRateLimited)
			default:
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
		}
		return n
	}
	if n := served(big, 8); n != 5 {
		t.Errorf("the overridden stack was served %d of 8, want its burst of 5", n)
	}
	if n := served(h.stack, 8); n != 1 {
		t.Errorf("a stack with the region's limits was served %d of 8, want its burst of 1", n)
	}
	if n := served(unlimited, 20); n != 20 {
		t.Errorf("the stack with rate=0 was served %d of 20, want all", n)
	}
}

func TestGateway_RemovedStackLosesItsLimitState(t *testing.T) {
	clock := newFakeClock()
	h := newHarnessClock(t, clock.now, withLimits(1, 1, 0))
	resp, body := h.get(h.stack)
	wantStatus(t, resp, body, 200)
	resp, body = h.get(h.stack)
	wantError(t, resp, body, http.StatusTooManyRequests, gateway.KindRateLimited)

	// A new revision keeps the stack's bucket: still empty.
	h.putStack(h.stack, 2)
	resp, body = h.get(h.stack)
	wantError(t, resp, body, http.StatusTooManyRequests, gateway.KindRateLimited)

	// Removed, the bucket goes with the stack: installed again, with the
	// clock where it was, it starts full.
	h.srv.RemoveStack(h.stack)
	resp, body = h.get(h.stack)
	wantError(t, resp, body, http.StatusNotFound, gateway.KindStackNotFound)
	h.putStack(h.stack, 3)
	resp, body = h.get(h.stack)
	wantStatus(t, resp, body, 200)
	resp, body = h.get(h.stack)
	wantError(t, resp, body, http.StatusTooManyRequests, gateway.KindRateLimited)
}

// TestGateway_DisabledStackOverItsRateIsNotBilled: the limits are checked
// before the stack's enabled state, and neither answer is billed.
func TestGateway_DisabledStackOverItsRateIsNotBilled(t *testing.T) {
	clock := newFakeClock()
	h := newHarnessClock(t, clock.now, withLimits(1, 1, 0))
	h.srv.SetStackEnabled(h.stack, false, "low escrow")
	resp, body := h.get(h.stack)
	wantError(t, resp, body, http.StatusPaymentRequired, gateway.KindStackDisabled)
	resp, body = h.get(h.stack)
	wantError(t, resp, body, http.StatusTooManyRequests, gateway.KindRateLimited)
	if req, bytes := h.billed(h.stack); req != 0 || bytes != 0 {
		t.Errorf("billed %d requests, %d bytes", req, bytes)
	}
}

func TestConfig_StackLimitErrorsNameTheSettingAndStack(t *testing.T) {
	good, dup := newStackID(t), newStackID(t)
	cfg := testConfig()
	cfg.StackRate = -1
	cfg.StackConcurrency = -2
	cfg.StackLimits = []string{
		"not-base58!",
		good.String() + " rate=-3",
		good.String() + "x burst=2",
		dup.String() + " rate=2 burst=0",
		dup.String() + " speed=9 rate=x",
		newStackID(t).String() + " concurrency=1 concurrency=2",
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		"stack_rate: must not be negative",
		"stack_concurrency: must not be negative",
		`stack_limits: "not-base58!"`,
		"stack_limits: stack " + good.String() + ": rate: must not be negative",
		"stack_limits: stack " + dup.String() + ": burst: must be at least 1 with rate 2",
		"stack_limits: stack " + dup.String() + `: unknown key "speed"`,
		`rate "x" is not a number`,
		"concurrency given twice",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q:\n%s", want, msg)
		}
	}

	cfg = testConfig()
	cfg.StackRate, cfg.StackBurst = 5, 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "stack_burst: must be at least 1 with stack_rate 5") {
		t.Errorf("burst 0 with a rate: %v", err)
	}
	cfg.StackBurst = 0
	cfg.StackRate = 0 // no rate limit: the burst is unused
	cfg.StackLimits = []string{good.String() + " burst=2", good.String() + " concurrency=3"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "stack_limits: stack "+good.String()+": given twice") {
		t.Errorf("a stack given twice: %v", err)
	}
	cfg.StackLimits = nil
	cfg.MaxConnections = 0 // no cap
	if err := cfg.Validate(); err != nil {
		t.Errorf("no limits at all: %v", err)
	}
}

// TestConfig_StackLimitsFromYAML loads the settings as a region's
// operators write them: a YAML list of entries.
func TestConfig_StackLimitsFromYAML(t *testing.T) {
	a, b := newStackID(t), newStackID(t)
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	yaml := "stack_rate: 0.5\nstack_burst: 4\nstack_concurrency: 8\nmax_connections: 0\nstack_limits:\n" +
		"  - " + a.String() + " rate=100 burst=200\n" +
		"  - " + b.String() + " concurrency=0\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	if err := config.Load("gateway", &cfg, []string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	if cfg.StackRate != 0.5 || cfg.StackBurst != 4 || cfg.StackConcurrency != 8 || cfg.MaxConnections != 0 {
		t.Errorf("loaded %v %v %v %v", cfg.StackRate, cfg.StackBurst, cfg.StackConcurrency, cfg.MaxConnections)
	}
	want := []string{a.String() + " rate=100 burst=200", b.String() + " concurrency=0"}
	if strings.Join(cfg.StackLimits, "|") != strings.Join(want, "|") {
		t.Errorf("stack_limits = %q, want %q", cfg.StackLimits, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfig_DefaultStackLimits(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	if cfg.StackRate != 1000 || cfg.StackBurst != 2000 || cfg.StackConcurrency != 256 || len(cfg.StackLimits) != 0 {
		t.Errorf("defaults: rate %v burst %d concurrency %d limits %q", cfg.StackRate, cfg.StackBurst, cfg.StackConcurrency, cfg.StackLimits)
	}
}

func TestLimitConnections_ZeroIsNoCap(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnections = 0
	srv, err := gateway.New(cfg, gateway.Deps{Runtimes: noRuntimes, Usage: usage.Discard{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := srv.LimitConnections(ln); got != ln {
		t.Errorf("max_connections 0 wrapped the listener in %T", got)
	}
}
