package gateway_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/rpcerr"
	"github.com/muprotocol/mu/libs/usage"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	"github.com/muprotocol/mu/services/gateway"
)

// listRuntimes is a resolver offering the same runtimes, in order, for
// every stack, and recording the limits it was asked for.
type listRuntimes struct {
	cands []gateway.Candidate

	mu     sync.Mutex
	limits []int
}

func (l *listRuntimes) Candidates(_ ids.StackID, limit int, dst []gateway.Candidate) []gateway.Candidate {
	l.mu.Lock()
	l.limits = append(l.limits, limit)
	l.mu.Unlock()
	return append(dst, l.cands[:min(limit, len(l.cands))]...)
}

func (l *listRuntimes) lastLimit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limits[len(l.limits)-1]
}

// retryHarness is a gateway in front of n fake runtimes that a
// listRuntimes offers in order, rts[0] first.
type retryHarness struct {
	*harness
	rts []*fakeRuntime
	res *listRuntimes
}

func newRetryHarness(t *testing.T, n int, opts ...harnessOpt) *retryHarness {
	t.Helper()
	conns := gateway.NewConns()
	t.Cleanup(func() { conns.Close() })
	rh := &retryHarness{res: &listRuntimes{}}
	for i := range n {
		rt := startRuntime(t)
		cc, err := conns.Get(rt.addr)
		if err != nil {
			t.Fatal(err)
		}
		rh.rts = append(rh.rts, rt)
		rh.res.cands = append(rh.res.cands, gateway.Candidate{Node: "rt" + strconv.Itoa(i), Client: runtimev1.NewRuntimeServiceClient(cc)})
	}
	opts = append([]harnessOpt{func(_ *gateway.Config, d *gateway.Deps) { d.Runtimes = rh.res }}, opts...)
	rh.harness = newHarness(t, opts...)
	return rh
}

// calls is the number of Invoke calls each fake runtime received.
func (rh *retryHarness) calls() []int {
	out := make([]int, len(rh.rts))
	for i, rt := range rh.rts {
		out[i] = rt.callCount()
	}
	return out
}

func (rh *retryHarness) wantCalls(t *testing.T, want ...int) {
	t.Helper()
	got := rh.calls()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Invoke calls per runtime = %v, want %v", got, want)
		}
	}
}

// metric reads one sample from the gateway's /metrics: name with its
// labels, as the exposition format writes them. A sample that is absent
// reads as 0.
func (h *harness) metric(sample string) float64 {
	h.t.Helper()
	resp, body := h.do("GET", "http://"+h.srv.AdminAddr()+"/metrics", nil, nil)
	if resp.StatusCode != 200 {
		h.t.Fatalf("metrics: %d", resp.StatusCode)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				h.t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

func retries(h *harness, method string) float64 {
	return h.metric(`mu_gateway_invoke_retries_total{method="` + method + `"}`)
}

func totalRetries(h *harness) float64 {
	var n float64
	for _, m := range []string{"GET", "HEAD", "PUT", "DELETE", "POST"} {
		n += retries(h, m)
	}
	return n
}

func TestGateway_IdempotentRequestsRetryOnNextRuntimeWhenOwnerIsDown(t *testing.T) {
	rh := newRetryHarness(t, 3)
	S := rh.stack.String()
	rc := rh.dialRaw()
	var wantBytes int

	// The owner serves while it is up, over the connection the gateway
	// then keeps.
	resp, _ := rc.roundTrip("GET", "GET /"+S+"/web/todos HTTP/1.1\r\nHost: gw.test\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("warm-up: %d", resp.StatusCode)
	}
	wantBytes += len("/"+S+"/web/todos") + hdrBytes("Host", "gw.test") +
		hdrBytes("X-Function", "api.list") + hdrBytes("Content-Length", "8") + len("api.list")
	rh.wantCalls(t, 1, 0, 0)

	rh.rts[0].kill()
	for _, c := range []struct {
		method, raw string
		fn          string
		reqBytes    int
		body        bool
	}{
		{"GET", "GET /" + S + "/web/todos/7 HTTP/1.1\r\nHost: gw.test\r\n\r\n", "api.get",
			len("/"+S+"/web/todos/7") + hdrBytes("Host", "gw.test"), true},
		{"HEAD", "HEAD /" + S + "/web/todos/7 HTTP/1.1\r\nHost: gw.test\r\n\r\n", "api.get",
			len("/"+S+"/web/todos/7") + hdrBytes("Host", "gw.test"), false},
		{"PUT", "PUT /" + S + "/web/echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n\r\nhello", "api.echo",
			len("/"+S+"/web/echo") + hdrBytes("Host", "gw.test") + hdrBytes("Content-Length", "5") + len("hello"), true},
		{"DELETE", "DELETE /" + S + "/web/todos/7 HTTP/1.1\r\nHost: gw.test\r\n\r\n", "api.remove",
			len("/"+S+"/web/todos/7") + hdrBytes("Host", "gw.test"), true},
	} {
		resp, body := rc.roundTrip(c.method, c.raw)
		if resp.StatusCode != 200 || resp.Header.Get("X-Function") != c.fn {
			t.Fatalf("%s with the owner down: %d %s", c.method, resp.StatusCode, body)
		}
		wantBytes += c.reqBytes + hdrBytes("X-Function", c.fn) + hdrBytes("Content-Length", strconv.Itoa(len(c.fn)))
		if c.body {
			wantBytes += len(c.fn)
		}
		if got := retries(rh.harness, c.method); got != 1 {
			t.Errorf("%s retries = %v, want 1", c.method, got)
		}
	}
	// Every request went to the next candidate, once, whole.
	rh.wantCalls(t, 1, 4, 0)
	rh.rts[1].mu.Lock()
	put := rh.rts[1].calls[2]
	rh.rts[1].mu.Unlock()
	if put.GetRequest().GetMethod() != "PUT" || string(put.GetRequest().GetBody()) != "hello" {
		t.Errorf("the retried PUT arrived as %s %q", put.GetRequest().GetMethod(), put.GetRequest().GetBody())
	}

	// Billing: each HTTP request once, its bytes as received and sent,
	// however many runtimes were tried.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rh.srv.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rh.sink.Total(rh.stack, usage.GatewayRequests); got != 5 {
		t.Errorf("requests billed = %d, want 5", got)
	}
	if got := rh.sink.Records(); got != 10 {
		t.Errorf("usage records = %d, want 2 per request: 10", got)
	}
	if got := rh.sink.Total(rh.stack, usage.GatewayTrafficBytes); got != uint64(wantBytes) {
		t.Errorf("traffic bytes = %d, want %d", got, wantBytes)
	}
}

func TestGateway_NonIdempotentRequestIsNotReplayedWhenOwnerIsDown(t *testing.T) {
	rh := newRetryHarness(t, 3)
	rh.rts[0].kill()
	for _, method := range []string{"POST", "PATCH"} {
		resp, body := rh.do(method, rh.url("web/todos"), strings.NewReader("x"), nil)
		if method == "PATCH" { // no PATCH endpoint: the router answers first
			wantError(t, resp, body, http.StatusMethodNotAllowed, gateway.KindMethodNotAllowed)
			continue
		}
		wantError(t, resp, body, http.StatusServiceUnavailable, gateway.KindRuntimeUnavailable)
		if got := resp.Header.Get("Retry-After"); got != "1" {
			t.Errorf("%s: Retry-After = %q, want 1", method, got)
		}
		if got := rh.res.lastLimit(); got != 1 {
			t.Errorf("%s asked the resolver for %d candidates, want the owner alone", method, got)
		}
	}
	rh.wantCalls(t, 0, 0, 0)
	if got := totalRetries(rh.harness); got != 0 {
		t.Errorf("retries = %v, want 0", got)
	}
	if resp, _ := rh.do("GET", rh.url("web/todos"), nil, nil); resp.StatusCode != 200 {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	if got := rh.res.lastLimit(); got != 3 {
		t.Errorf("GET asked the resolver for %d candidates, want invoke_attempts 3", got)
	}
}

// killMidCall makes rt's next call cut its connections while the call
// runs, as a node killed mid-request would.
func killMidCall(rt *fakeRuntime) {
	rt.setHandle(func(ctx context.Context, _ *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
		go rt.kill()
		<-ctx.Done()
		return nil, ctx.Err()
	})
}

func TestGateway_ConnectionCutMidCallRetriesGetNotPost(t *testing.T) {
	rh := newRetryHarness(t, 3)
	killMidCall(rh.rts[0])
	resp, body := rh.do("GET", rh.url("web/todos"), nil, nil)
	if resp.StatusCode != 200 || string(body) != "api.list" {
		t.Fatalf("GET with the owner killed mid-call: %d %s", resp.StatusCode, body)
	}
	rh.wantCalls(t, 1, 1, 0)
	if got := retries(rh.harness, "GET"); got != 1 {
		t.Errorf("GET retries = %v, want 1", got)
	}

	rh = newRetryHarness(t, 3)
	killMidCall(rh.rts[0])
	resp, body = rh.do("POST", rh.url("web/todos"), strings.NewReader("once"), nil)
	wantError(t, resp, body, http.StatusServiceUnavailable, gateway.KindRuntimeUnavailable)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	// The owner may have run the POST before it died: no other node gets it.
	rh.wantCalls(t, 1, 0, 0)
	if got := totalRetries(rh.harness); got != 0 {
		t.Errorf("retries = %v, want 0", got)
	}
}

func TestGateway_UnavailableAnswerIsRetriedForGetNotPost(t *testing.T) {
	rh := newRetryHarness(t, 3)
	rh.rts[0].setHandle(func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
		return nil, status.Error(codes.Unavailable, "the runtime is shutting down")
	})
	if resp, body := rh.do("GET", rh.url("web/todos"), nil, nil); resp.StatusCode != 200 {
		t.Fatalf("GET: %d %s", resp.StatusCode, body)
	}
	rh.wantCalls(t, 1, 1, 0)
	resp, body := rh.do("POST", rh.url("web/todos"), strings.NewReader("x"), nil)
	wantError(t, resp, body, http.StatusServiceUnavailable, gateway.KindRuntimeUnavailable)
	if resp.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
	}
	rh.wantCalls(t, 2, 1, 0)
	if got, post := retries(rh.harness, "GET"), retries(rh.harness, "POST"); got != 1 || post != 0 {
		t.Errorf("retries GET %v POST %v, want 1 and 0", got, post)
	}
}

func TestGateway_OtherFailuresAreNotRetried(t *testing.T) {
	for _, c := range []struct {
		name   string
		handle func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error)
		status int
		kind   string
	}{
		{"internal", func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
			return nil, status.Error(codes.Internal, "boom")
		}, http.StatusBadGateway, gateway.KindRuntimeError},
		{"not found", func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
			return nil, status.Error(codes.NotFound, "no such stack")
		}, http.StatusNotFound, gateway.KindFunctionNotFound},
		{"overloaded", func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
			return nil, rpcerr.Errorf(codes.ResourceExhausted, rpcerr.CapacityExhausted, "all instance slots busy")
		}, http.StatusServiceUnavailable, gateway.KindRuntimeOverloaded},
		{"function error", func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
			return &runtimev1.InvokeResponse{Error: &runtimev1.InvokeError{Kind: runtimev1.InvokeError_KIND_FUNCTION_ERROR, Message: "bad"}}, nil
		}, http.StatusInternalServerError, gateway.KindFunctionError},
		{"crash", func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
			return &runtimev1.InvokeResponse{Error: &runtimev1.InvokeError{Kind: runtimev1.InvokeError_KIND_CRASH, Message: "trap"}}, nil
		}, http.StatusBadGateway, gateway.KindCrash},
		{"invoke timeout", func(ctx context.Context, _ *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}, http.StatusGatewayTimeout, gateway.KindDeadlineExceeded},
	} {
		t.Run(c.name, func(t *testing.T) {
			rh := newRetryHarness(t, 3, func(cfg *gateway.Config, _ *gateway.Deps) { cfg.InvokeTimeout = 300 * time.Millisecond })
			rh.rts[0].setHandle(c.handle)
			resp, body := rh.do("GET", rh.url("web/todos"), nil, nil)
			wantError(t, resp, body, c.status, c.kind)
			rh.wantCalls(t, 1, 0, 0)
			if got := totalRetries(rh.harness); got != 0 {
				t.Errorf("retries = %v, want 0", got)
			}
		})
	}
}

func TestGateway_InvokeAttemptsBoundsRetries(t *testing.T) {
	// One attempt: no retry at all.
	rh := newRetryHarness(t, 3, func(c *gateway.Config, _ *gateway.Deps) { c.InvokeAttempts = 1 })
	rh.rts[0].kill()
	resp, body := rh.do("GET", rh.url("web/todos"), nil, nil)
	wantError(t, resp, body, http.StatusServiceUnavailable, gateway.KindRuntimeUnavailable)
	if resp.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
	}
	rh.wantCalls(t, 0, 0, 0)
	if got := totalRetries(rh.harness); got != 0 {
		t.Errorf("retries = %v, want 0", got)
	}

	// Two attempts with three runtimes down: one retry, then 503.
	rh = newRetryHarness(t, 3, func(c *gateway.Config, _ *gateway.Deps) { c.InvokeAttempts = 2 })
	for _, rt := range rh.rts {
		rt.kill()
	}
	resp, body = rh.do("HEAD", rh.url("web/todos"), nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || len(body) != 0 {
		t.Fatalf("HEAD with every runtime down: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if got := retries(rh.harness, "HEAD"); got != 1 {
		t.Errorf("HEAD retries = %v, want 1 (two attempts)", got)
	}

	// Three attempts, all down: two retries.
	rh = newRetryHarness(t, 3)
	for _, rt := range rh.rts {
		rt.kill()
	}
	resp, body = rh.do("DELETE", rh.url("web/todos/1"), nil, nil)
	wantError(t, resp, body, http.StatusServiceUnavailable, gateway.KindRuntimeUnavailable)
	if got := retries(rh.harness, "DELETE"); got != 2 {
		t.Errorf("DELETE retries = %v, want 2", got)
	}
}
