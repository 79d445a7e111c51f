package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/rpcerr"
	"github.com/muprotocol/mu/libs/usage"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	"github.com/muprotocol/mu/services/gateway"
)

func TestGateway_RoutesToMostSpecificEndpoint(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		method, path string
		function     string
		params       map[string]string
	}{
		{"GET", "web", "api.root", nil},
		{"GET", "web/", "api.root", nil},
		{"GET", "web/todos", "api.list", nil},
		{"POST", "web/todos", "api.create", nil},
		{"GET", "web/todos/", "api.list_slash", nil},
		{"GET", "web/todos/42", "api.get", map[string]string{"id": "42"}},
		{"GET", "web/todos/new", "api.new_form", nil},
		{"DELETE", "web/todos/new", "api.remove", map[string]string{"id": "new"}},
		{"GET", "web/x/b/y", "api.ab", map[string]string{"a": "x", "c": "y"}},
		{"GET", "web/files/a%2Fb%20c", "api.file", map[string]string{"name": "a/b c"}},
		{"GET", "web/files/%E2%9C%93", "api.file", map[string]string{"name": "✓"}},
		{"GET", "web/t%6Fdos", "api.list", nil},
		{"GET", "admin/stats", "api.stats", nil},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			resp, body := h.do(c.method, h.url(c.path), nil, nil)
			if resp.StatusCode != 200 || string(body) != c.function {
				t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, c.function)
			}
			got := h.rt.last(t)
			if got.GetFunction() != c.function {
				t.Errorf("function = %q", got.GetFunction())
			}
			if got.GetRequest().GetMethod() != c.method {
				t.Errorf("method = %q", got.GetRequest().GetMethod())
			}
			if !maps.Equal(got.GetRequest().GetPathParams(), c.params) {
				t.Errorf("path params = %v, want %v", got.GetRequest().GetPathParams(), c.params)
			}
			if !slices.Equal(got.GetStackId(), h.stack.Bytes()) {
				t.Errorf("stack id = %x", got.GetStackId())
			}
		})
	}
}

func TestGateway_UnknownThingsGet404(t *testing.T) {
	h := newHarness(t)
	other, _, _ := ids.NewStackID()
	cases := []struct{ name, url, kind string }{
		{"root", h.base + "/", gateway.KindNotFound},
		{"malformed stack id", h.base + "/not-base58!/web/todos", gateway.KindStackNotFound},
		{"unknown stack", h.base + "/" + other.String() + "/web/todos", gateway.KindStackNotFound},
		{"stack without gateway", h.base + "/" + h.stack.String(), gateway.KindGatewayNotFound},
		{"unknown gateway", h.url("nope/todos"), gateway.KindGatewayNotFound},
		{"unknown path", h.url("web/nope"), gateway.KindRouteNotFound},
		{"trailing slash is significant", h.url("web/todos/42/"), gateway.KindRouteNotFound},
		{"param needs a value", h.url("web/files/"), gateway.KindRouteNotFound},
		{"unknown /_mu/ path", h.base + "/_mu/nope", gateway.KindNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := h.do("GET", c.url, nil, nil)
			wantError(t, resp, body, http.StatusNotFound, c.kind)
		})
	}
	if n := h.rt.callCount(); n != 0 {
		t.Fatalf("runtime called %d times", n)
	}
}

func TestGateway_WrongMethodGets405WithAllow(t *testing.T) {
	h := newHarness(t)
	cases := []struct{ method, path, allow string }{
		{"PUT", "web/todos", "GET, HEAD, POST"},
		{"PATCH", "web/todos/new", "DELETE, GET, HEAD"}, // union over /todos/new and /todos/{id}
		{"GET", "web/only-head", "HEAD"},
		{"OPTIONS", "web/", "GET, HEAD"},
	}
	for _, c := range cases {
		resp, body := h.do(c.method, h.url(c.path), nil, nil)
		wantError(t, resp, body, http.StatusMethodNotAllowed, gateway.KindMethodNotAllowed)
		if got := resp.Header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow = %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	if n := h.rt.callCount(); n != 0 {
		t.Fatalf("runtime called %d times", n)
	}
}

func TestGateway_HeadUsesGetEndpointWithoutBody(t *testing.T) {
	h := newHarness(t)
	resp, body := h.do("HEAD", h.url("web/todos/7"), nil, nil)
	if resp.StatusCode != 200 || len(body) != 0 {
		t.Fatalf("got %d with %d body bytes", resp.StatusCode, len(body))
	}
	if resp.ContentLength != int64(len("api.get")) {
		t.Errorf("Content-Length = %d, want the GET body's length", resp.ContentLength)
	}
	got := h.rt.last(t)
	if got.GetFunction() != "api.get" || got.GetRequest().GetMethod() != "HEAD" {
		t.Errorf("invoked %s with method %s", got.GetFunction(), got.GetRequest().GetMethod())
	}
	// A declared HEAD endpoint is used as such.
	resp, _ = h.do("HEAD", h.url("web/only-head"), nil, nil)
	if resp.StatusCode != 200 || h.rt.last(t).GetFunction() != "api.head" {
		t.Fatalf("HEAD endpoint: %d %s", resp.StatusCode, h.rt.last(t).GetFunction())
	}
}

func TestGateway_DisabledStackGets402(t *testing.T) {
	h := newHarness(t)
	h.srv.SetStackEnabled(h.stack, false, "escrow balance 3 is below the region minimum 10")
	resp, body := h.do("GET", h.url("web/todos"), nil, nil)
	e := wantError(t, resp, body, http.StatusPaymentRequired, gateway.KindStackDisabled)
	if !strings.Contains(e.Error.Message, "escrow balance 3 is below the region minimum 10") {
		t.Errorf("message %q does not name the reason", e.Error.Message)
	}
	// Routing happens first: an unknown path of a disabled stack is still 404.
	resp, body = h.do("GET", h.url("web/nope"), nil, nil)
	wantError(t, resp, body, http.StatusNotFound, gateway.KindRouteNotFound)
	if n := h.rt.callCount(); n != 0 {
		t.Fatalf("runtime called %d times for a disabled stack", n)
	}
	if err := h.srv.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := h.sink.Records(); n != 0 {
		t.Fatalf("a disabled stack was billed %d records", n)
	}
	// The state survives a new revision, and enabling serves again.
	m, _ := manifest.Parse([]byte(testManifest))
	if err := h.srv.PutStack(h.stack, m, 2); err != nil {
		t.Fatal(err)
	}
	resp, _ = h.do("GET", h.url("web/todos"), nil, nil)
	if resp.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("after PutStack: %d", resp.StatusCode)
	}
	h.srv.SetStackEnabled(h.stack, true, "")
	resp, body = h.do("GET", h.url("web/todos"), nil, nil)
	if resp.StatusCode != 200 || string(body) != "api.list" {
		t.Fatalf("after enabling: %d %q", resp.StatusCode, body)
	}
}

func TestGateway_BodyOverLimitGets413(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config, _ *gateway.Deps) { c.MaxRequestBodyBytes = 16 })
	atLimit := strings.Repeat("a", 16)
	resp, _ := h.do("POST", h.url("web/echo"), strings.NewReader(atLimit), nil)
	if resp.StatusCode != 200 || string(h.rt.last(t).GetRequest().GetBody()) != atLimit {
		t.Fatalf("body at the limit: %d", resp.StatusCode)
	}
	calls := h.rt.callCount()

	resp, body := h.do("POST", h.url("web/echo"), strings.NewReader(atLimit+"b"), nil)
	wantError(t, resp, body, http.StatusRequestEntityTooLarge, gateway.KindBodyTooLarge)

	// Without Content-Length (chunked) the limit applies while reading.
	chunked := io.MultiReader(strings.NewReader(atLimit), strings.NewReader("overflow"))
	resp, body = h.do("POST", h.url("web/echo"), chunked, nil)
	wantError(t, resp, body, http.StatusRequestEntityTooLarge, gateway.KindBodyTooLarge)
	if resp.Request.ContentLength != -1 && resp.Request.ContentLength != 0 {
		t.Errorf("the chunked case sent Content-Length %d", resp.Request.ContentLength)
	}
	if h.rt.callCount() != calls {
		t.Fatal("runtime called for an oversized body")
	}
}

func TestGateway_HeadersOverLimitGet431(t *testing.T) {
	const limit = 2048
	h := newHarness(t, func(c *gateway.Config, _ *gateway.Deps) { c.MaxHeaderBytes = limit })
	// request builds a request whose line and headers are exactly n bytes.
	request := func(n int) string {
		head := "GET /" + h.stack.String() + "/web/todos HTTP/1.1\r\nHost: gw\r\nX-Pad: "
		pad := n - len(head) - len("\r\n\r\n")
		return head + strings.Repeat("p", pad) + "\r\n\r\n"
	}
	rc := h.dialRaw()
	resp, body := rc.roundTrip("GET", request(limit))
	if resp.StatusCode != 200 || string(body) != "api.list" {
		t.Fatalf("headers at the limit: %d %q", resp.StatusCode, body)
	}
	resp, body = rc.roundTrip("GET", request(limit+1))
	wantError(t, resp, body, http.StatusRequestHeaderFieldsTooLarge, gateway.KindHeadersTooLarge)

	// Far over the limit, net/http answers 431 itself before the handler.
	rc = h.dialRaw()
	resp, _ = rc.roundTrip("GET", request(limit+8192))
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	if h.rt.callCount() != 1 {
		t.Fatalf("runtime called %d times", h.rt.callCount())
	}
}

func TestGateway_PassesQueryHeadersAndBody(t *testing.T) {
	h := newHarness(t)
	rc := h.dialRaw()
	raw := "POST /" + h.stack.String() + "/web/echo?b=2&a=1&a=3&empty=&sp=x%20y HTTP/1.1\r\n" +
		"Host: gw.example\r\n" +
		"X-Multi: one\r\n" +
		"Content-Length: 11\r\n" +
		"Connection: keep-alive, X-Hop\r\n" +
		"X-Hop: dropped\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"Te: trailers\r\n" +
		"Upgrade: websocket\r\n" +
		"X-Multi: two\r\n" +
		"Authorization: Bearer t\r\n" +
		"\r\n" +
		"hello\x00world"
	resp, _ := rc.roundTrip("POST", raw)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	req := h.rt.last(t).GetRequest()
	if req.GetMethod() != "POST" {
		t.Errorf("method %q", req.GetMethod())
	}
	wantQuery := map[string]string{"a": "1", "b": "2", "empty": "", "sp": "x y"}
	if !maps.Equal(req.GetQueryParams(), wantQuery) {
		t.Errorf("query = %v, want %v", req.GetQueryParams(), wantQuery)
	}
	wantHeaders := "Host: gw.example\nAuthorization: Bearer t\nContent-Length: 11\nX-Multi: one\nX-Multi: two\n"
	if got := headerPairs(req.GetHeaders()); got != wantHeaders {
		t.Errorf("headers:\n%s\nwant:\n%s", got, wantHeaders)
	}
	if string(req.GetBody()) != "hello\x00world" {
		t.Errorf("body = %q", req.GetBody())
	}
	if len(req.GetPathParams()) != 0 {
		t.Errorf("path params = %v", req.GetPathParams())
	}
}

func TestGateway_PropagatesTraceContextToRuntime(t *testing.T) {
	h := newHarness(t)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	h.do("GET", h.url("web/todos"), nil, http.Header{"Traceparent": {tp}, "Tracestate": {"mu=1"}})
	md := h.rt.lastMD()
	if got := md.Get("traceparent"); len(got) != 1 || got[0] != tp {
		t.Errorf("traceparent metadata = %v", got)
	}
	if got := md.Get("tracestate"); len(got) != 1 || got[0] != "mu=1" {
		t.Errorf("tracestate metadata = %v", got)
	}
	h.do("GET", h.url("web/todos"), nil, nil)
	if got := h.rt.lastMD().Get("traceparent"); len(got) != 0 {
		t.Errorf("traceparent without one in the request: %v", got)
	}
}

func TestGateway_InvalidUTF8Gets400(t *testing.T) {
	h := newHarness(t)
	resp, body := h.do("GET", h.url("web/files/%FF"), nil, nil)
	wantError(t, resp, body, http.StatusBadRequest, gateway.KindBadRequest)
	resp, body = h.do("GET", h.url("web/todos?q=%FE"), nil, nil)
	wantError(t, resp, body, http.StatusBadRequest, gateway.KindBadRequest)
	if h.rt.callCount() != 0 {
		t.Fatal("runtime called")
	}
}

func TestGateway_WritesFunctionResponseWithoutHopByHop(t *testing.T) {
	h := newHarness(t)
	h.rt.setHandle(func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
		return &runtimev1.InvokeResponse{Response: &typesv1.HttpResponse{
			Status: 201,
			Headers: []*typesv1.Header{
				{Name: "X-A", Value: "1"},
				{Name: "x-a", Value: "2"},
				{Name: "Connection", Value: "X-Drop"},
				{Name: "X-Drop", Value: "secret"},
				{Name: "Transfer-Encoding", Value: "chunked"},
				{Name: "Keep-Alive", Value: "timeout=1"},
				{Name: "Content-Length", Value: "999"},
				{Name: "Bad Name", Value: "x"},
				{Name: "X-Bad-Value", Value: "a\r\nInjected: yes"},
				{Name: "Set-Cookie", Value: "a=b"},
			},
			Body: []byte("hello"),
		}}, nil
	})
	resp, body := h.do("GET", h.url("web/todos"), nil, nil)
	if resp.StatusCode != 201 || string(body) != "hello" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Values("X-A"); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("X-A = %v", got)
	}
	for _, name := range []string{"X-Drop", "Keep-Alive", "Bad Name", "X-Bad-Value", "Injected", "Content-Type"} {
		if v := resp.Header.Values(name); len(v) != 0 {
			t.Errorf("%s = %v, want absent", name, v)
		}
	}
	if resp.ContentLength != 5 || len(resp.TransferEncoding) != 0 {
		t.Errorf("Content-Length %d, Transfer-Encoding %v", resp.ContentLength, resp.TransferEncoding)
	}
	if resp.Header.Get("Set-Cookie") != "a=b" {
		t.Errorf("Set-Cookie = %q", resp.Header.Get("Set-Cookie"))
	}
}

func TestGateway_InvalidFunctionResponseGets502(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config, _ *gateway.Deps) {
		c.MaxResponseBytes = 8
		c.MaxResponseHeaderBytes = 32
	})
	resp := func(status uint32, body string, hs ...*typesv1.Header) *runtimev1.InvokeResponse {
		return &runtimev1.InvokeResponse{Response: &typesv1.HttpResponse{Status: status, Body: []byte(body), Headers: hs}}
	}
	cases := []struct {
		name string
		r    *runtimev1.InvokeResponse
		kind string
	}{
		{"status 0", resp(0, ""), gateway.KindInvalidResponse},
		{"status 99", resp(99, ""), gateway.KindInvalidResponse},
		{"status 600", resp(600, ""), gateway.KindInvalidResponse},
		{"informational status", resp(101, ""), gateway.KindInvalidResponse},
		{"neither response nor error", &runtimev1.InvokeResponse{}, gateway.KindInvalidResponse},
		{"body over the limit", resp(200, "123456789"), gateway.KindResponseTooLarge},
		{"headers over the limit", resp(200, "", &typesv1.Header{Name: "X-Big", Value: strings.Repeat("v", 30)}),
			gateway.KindResponseTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.rt.setHandle(func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
				return c.r, nil
			})
			resp, body := h.do("GET", h.url("web/todos"), nil, nil)
			wantError(t, resp, body, http.StatusBadGateway, c.kind)
		})
	}
	// At the limits the response goes through; 599 is a valid status.
	h.rt.setHandle(func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
		return resp(599, "12345678"), nil
	})
	r, body := h.do("GET", h.url("web/todos"), nil, nil)
	if r.StatusCode != 599 || string(body) != "12345678" {
		t.Fatalf("at the limit: %d %q", r.StatusCode, body)
	}
}

func TestGateway_InvokeErrorKindsMapToStatuses(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		kind   runtimev1.InvokeError_Kind
		status int
		name   string
	}{
		{runtimev1.InvokeError_KIND_FUNCTION_ERROR, 500, gateway.KindFunctionError},
		{runtimev1.InvokeError_KIND_FUEL_EXHAUSTED, 500, gateway.KindFuelExhausted},
		{runtimev1.InvokeError_KIND_CRASH, 502, gateway.KindCrash},
		{runtimev1.InvokeError_KIND_MEMORY_LIMIT, 502, gateway.KindMemoryLimit},
		{runtimev1.InvokeError_KIND_PROTOCOL, 502, gateway.KindProtocol},
		{runtimev1.InvokeError_KIND_UNSPECIFIED, 502, gateway.KindFunctionFailed},
		{runtimev1.InvokeError_Kind(99), 502, gateway.KindFunctionFailed},
		{runtimev1.InvokeError_KIND_DEADLINE_EXCEEDED, 504, gateway.KindDeadlineExceeded},
	}
	for _, c := range cases {
		t.Run(c.name+"/"+c.kind.String(), func(t *testing.T) {
			detail := "detail for " + c.kind.String()
			h.rt.setHandle(func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
				return &runtimev1.InvokeResponse{
					FuelUsed: 77,
					Error:    &runtimev1.InvokeError{Kind: c.kind, Message: detail},
				}, nil
			})
			resp, body := h.do("GET", h.url("web/todos"), nil, nil)
			e := wantError(t, resp, body, c.status, c.name)
			if !strings.Contains(e.Error.Message, detail) {
				t.Errorf("message %q does not carry the runtime's detail", e.Error.Message)
			}
		})
	}
}

func TestGateway_RuntimeCallErrorsMapToStatuses(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		err    error
		status int
		kind   string
	}{
		{status.Error(codes.Unavailable, "draining"), 503, gateway.KindRuntimeUnavailable},
		{status.Error(codes.NotFound, "no stack"), 404, gateway.KindFunctionNotFound},
		{status.Error(codes.DeadlineExceeded, "slow"), 504, gateway.KindDeadlineExceeded},
		// Told apart by the runtime's ErrorInfo reason, not by the message:
		// the texts here are swapped on purpose.
		{rpcerr.Errorf(codes.ResourceExhausted, rpcerr.CapacityExhausted, "larger than max"), 503, gateway.KindRuntimeOverloaded},
		{status.Error(codes.ResourceExhausted, "pool full"), 502, gateway.KindMessageTooLarge},
		{rpcerr.Errorf(codes.InvalidArgument, rpcerr.RequestTooLarge, "request: frame over 8 MiB"), 413, gateway.KindBodyTooLarge},
		{status.Error(codes.InvalidArgument, "bad header"), 400, gateway.KindBadRequest},
		{status.Error(codes.Internal, "boom"), 502, gateway.KindRuntimeError},
		{errors.New("plain error"), 502, gateway.KindRuntimeError},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.err), func(t *testing.T) {
			h.rt.setHandle(func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
				return nil, c.err
			})
			resp, body := h.do("GET", h.url("web/todos"), nil, nil)
			wantError(t, resp, body, c.status, c.kind)
		})
	}
}

func TestGateway_InvokeTimeoutGets504(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config, _ *gateway.Deps) { c.InvokeTimeout = 50 * time.Millisecond })
	h.rt.setHandle(func(ctx context.Context, _ *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
		<-ctx.Done() // the gateway's deadline propagates to the runtime
		return nil, ctx.Err()
	})
	resp, body := h.do("GET", h.url("web/todos"), nil, nil)
	wantError(t, resp, body, http.StatusGatewayTimeout, gateway.KindDeadlineExceeded)
}

func TestGateway_RuntimeDownGets503(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close() // nothing listens there any more
	h := newHarness(t, func(_ *gateway.Config, d *gateway.Deps) {
		conns := gateway.NewConns()
		t.Cleanup(func() { conns.Close() })
		rt, err := gateway.DialRuntime(conns, deadAddr)
		if err != nil {
			t.Fatal(err)
		}
		d.Runtimes = rt
	})
	resp, body := h.do("GET", h.url("web/todos"), nil, nil)
	e := wantError(t, resp, body, http.StatusServiceUnavailable, gateway.KindRuntimeUnavailable)
	if strings.Contains(e.Error.Message, deadAddr) {
		t.Errorf("message %q leaks the runtime's address", e.Error.Message)
	}
	if got := resp.Header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want the default 1", got)
	}
}

// resolverFunc is a RuntimeResolver from a function.
type resolverFunc func(id ids.StackID, limit int, dst []gateway.Candidate) []gateway.Candidate

func (f resolverFunc) Candidates(id ids.StackID, limit int, dst []gateway.Candidate) []gateway.Candidate {
	return f(id, limit, dst)
}

// noRuntimes is a resolver that knows no runtime for any stack.
var noRuntimes = resolverFunc(func(_ ids.StackID, _ int, dst []gateway.Candidate) []gateway.Candidate { return dst })

func TestGateway_NoRuntimeForStackGets503(t *testing.T) {
	h := newHarness(t, func(_ *gateway.Config, d *gateway.Deps) { d.Runtimes = noRuntimes })
	resp, body := h.do("GET", h.url("web/todos"), nil, nil)
	wantError(t, resp, body, http.StatusServiceUnavailable, gateway.KindRuntimeUnavailable)
	if got := resp.Header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want the default 1", got)
	}
}

// hdrBytes is the metered size of one header field.
func hdrBytes(name, value string) int { return len(name) + len(value) }

func TestGateway_MetersRequestsAndTrafficBytes(t *testing.T) {
	h := newHarness(t)
	S := h.stack.String()
	rc := h.dialRaw()
	var wantBytes, wantRequests int

	// 1. GET with a query: the function's response.
	resp, body := rc.roundTrip("GET", "GET /"+S+"/web/todos/7?x=1&y=2 HTTP/1.1\r\nHost: gw.test\r\nX-Trace: abc\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("1: %d", resp.StatusCode)
	}
	wantBytes += len("/"+S+"/web/todos/7") + len("x=1&y=2") + hdrBytes("Host", "gw.test") + hdrBytes("X-Trace", "abc") +
		hdrBytes("X-Function", "api.get") + hdrBytes("Content-Length", "7") + len("api.get")
	wantRequests++
	if string(body) != "api.get" {
		t.Fatalf("1: body %q", body)
	}

	// 2. POST with a body.
	resp, _ = rc.roundTrip("POST", "POST /"+S+"/web/todos HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n\r\nhello")
	if resp.StatusCode != 200 {
		t.Fatalf("2: %d", resp.StatusCode)
	}
	wantBytes += len("/"+S+"/web/todos") + hdrBytes("Host", "gw.test") + hdrBytes("Content-Length", "5") + len("hello") +
		hdrBytes("X-Function", "api.create") + hdrBytes("Content-Length", "10") + len("api.create")
	wantRequests++

	// 3. Unknown path of the stack: billed, with the gateway's JSON body.
	resp, body = rc.roundTrip("GET", "GET /"+S+"/web/nope HTTP/1.1\r\nHost: gw.test\r\n\r\n")
	if resp.StatusCode != 404 {
		t.Fatalf("3: %d", resp.StatusCode)
	}
	wantBytes += len("/"+S+"/web/nope") + hdrBytes("Host", "gw.test") +
		hdrBytes("Content-Type", "application/json") + hdrBytes("Content-Length", strconv.Itoa(len(body))) + len(body)
	wantRequests++

	// 4. Wrong method: billed, Allow counted.
	resp, body = rc.roundTrip("PUT", "PUT /"+S+"/web/todos HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0\r\n\r\n")
	if resp.StatusCode != 405 {
		t.Fatalf("4: %d", resp.StatusCode)
	}
	wantBytes += len("/"+S+"/web/todos") + hdrBytes("Host", "gw.test") + hdrBytes("Content-Length", "0") +
		hdrBytes("Content-Type", "application/json") + hdrBytes("Allow", "GET, HEAD, POST") +
		hdrBytes("Content-Length", strconv.Itoa(len(body))) + len(body)
	wantRequests++

	// 5. HEAD: headers billed, no body sent.
	resp, _ = rc.roundTrip("HEAD", "HEAD /"+S+"/web/todos/7 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("5: %d", resp.StatusCode)
	}
	wantBytes += len("/"+S+"/web/todos/7") + hdrBytes("Host", "gw.test") +
		hdrBytes("X-Function", "api.get") + hdrBytes("Content-Length", "7")
	wantRequests++

	// 6. A failing function is billed too.
	h.rt.setHandle(func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
		return &runtimev1.InvokeResponse{Error: &runtimev1.InvokeError{Kind: runtimev1.InvokeError_KIND_CRASH, Message: "trap"}}, nil
	})
	resp, body = rc.roundTrip("GET", "GET /"+S+"/web/todos HTTP/1.1\r\nHost: gw.test\r\n\r\n")
	if resp.StatusCode != 502 {
		t.Fatalf("6: %d", resp.StatusCode)
	}
	wantBytes += len("/"+S+"/web/todos") + hdrBytes("Host", "gw.test") +
		hdrBytes("Content-Type", "application/json") + hdrBytes("Content-Length", strconv.Itoa(len(body))) + len(body)
	wantRequests++

	// Not billed: an unknown stack, and a disabled stack's 402.
	other, _, _ := ids.NewStackID()
	resp, _ = rc.roundTrip("GET", "GET /"+other.String()+"/web/todos HTTP/1.1\r\nHost: gw.test\r\n\r\n")
	if resp.StatusCode != 404 {
		t.Fatalf("unknown stack: %d", resp.StatusCode)
	}
	h.srv.SetStackEnabled(h.stack, false, "low escrow")
	resp, _ = rc.roundTrip("GET", "GET /"+S+"/web/todos HTTP/1.1\r\nHost: gw.test\r\n\r\n")
	if resp.StatusCode != 402 {
		t.Fatalf("disabled: %d", resp.StatusCode)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.srv.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.sink.Total(h.stack, usage.GatewayRequests); got != uint64(wantRequests) {
		t.Errorf("requests = %d, want %d", got, wantRequests)
	}
	if got := h.sink.Total(h.stack, usage.GatewayTrafficBytes); got != uint64(wantBytes) {
		t.Errorf("traffic bytes = %d, want %d", got, wantBytes)
	}
	if got := h.sink.Records(); got != 2*wantRequests {
		t.Errorf("records = %d, want one per kind per request: %d", got, 2*wantRequests)
	}
	if got := h.sink.Total(other, usage.GatewayRequests); got != 0 {
		t.Errorf("unknown stack billed %d requests", got)
	}
}

func TestGateway_ClientGoneMidCallIsBilledWithoutResponseBytes(t *testing.T) {
	h := newHarness(t)
	called := make(chan struct{})
	h.rt.setHandle(func(ctx context.Context, _ *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
		close(called)
		<-ctx.Done() // the client's disconnect cancels the call
		return nil, ctx.Err()
	})
	rc := h.dialRaw()
	raw := "GET /" + h.stack.String() + "/web/todos HTTP/1.1\r\nHost: gw.test\r\n\r\n"
	if _, err := io.WriteString(rc.c, raw); err != nil {
		t.Fatal(err)
	}
	select {
	case <-called:
	case <-time.After(30 * time.Second):
		t.Fatal("the request never reached the runtime")
	}
	rc.c.Close()
	if err := h.srv.Close(); err != nil { // waits for the handler and flushes its usage
		t.Fatal(err)
	}
	if got := h.sink.Total(h.stack, usage.GatewayRequests); got != 1 {
		t.Errorf("requests = %d", got)
	}
	want := len("/"+h.stack.String()+"/web/todos") + hdrBytes("Host", "gw.test")
	if got := h.sink.Total(h.stack, usage.GatewayTrafficBytes); got != uint64(want) {
		t.Errorf("traffic = %d, want %d (request only)", got, want)
	}
}

// keyedSink records every record it accepts, failing the first `fail`
// reports.
type keyedSink struct {
	mu   sync.Mutex
	fail int
	recs []usage.Record
}

func (s *keyedSink) Report(_ context.Context, recs ...usage.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return errors.New("billing down")
	}
	s.recs = append(s.recs, recs...)
	return nil
}

func TestGateway_CloseFlushesUsageDespiteSinkFailures(t *testing.T) {
	sink := &keyedSink{fail: 3}
	h := newHarness(t, func(c *gateway.Config, d *gateway.Deps) {
		c.Usage.FlushInterval = time.Hour // only Close sends
		d.Usage = sink
	})
	const n = 5
	for range n {
		if resp, _ := h.do("GET", h.url("web/todos"), nil, nil); resp.StatusCode != 200 {
			t.Fatal(resp.StatusCode)
		}
	}
	if err := h.srv.Close(); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.recs) != 2*n {
		t.Fatalf("%d records after Close, want %d", len(sink.recs), 2*n)
	}
	keys := map[string]bool{}
	for _, r := range sink.recs {
		if r.Stack != h.stack || r.Key == "" || keys[r.Key] || !strings.HasPrefix(r.Key, "gateway/test/") {
			t.Fatalf("bad record %+v", r)
		}
		keys[r.Key] = true
	}
}

func TestGateway_ReusesOneRuntimeConnection(t *testing.T) {
	h := newHarness(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				resp, err := http.Get(h.url("web/todos"))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	if got := h.rt.callCount(); got != 40 {
		t.Fatalf("calls = %d", got)
	}
	if got := h.rt.conns.Load(); got != 1 {
		t.Fatalf("the runtime saw %d connections, want 1 shared by all requests", got)
	}
}

func TestConns_DialsEachAddressOnce(t *testing.T) {
	c := gateway.NewConns()
	a1, err := c.Get("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := c.Get("127.0.0.1:1")
	b, _ := c.Get("127.0.0.1:2")
	if a1 != a2 || a1 == b {
		t.Fatal("Get does not reuse per address")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Get("127.0.0.1:1"); !errors.Is(err, gateway.ErrConnsClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}

func TestGateway_CloseTwice(t *testing.T) {
	h := newHarness(t)
	addr := h.srv.Addr()
	if resp, _ := h.do("GET", h.url("web/todos"), nil, nil); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	if err := h.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := h.srv.Start(context.Background()); err == nil {
		t.Fatal("Start after Close succeeded")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("still listening after Close")
	}
	// Usage of the request was flushed by Close.
	if got := h.sink.Total(h.stack, usage.GatewayRequests); got != 1 {
		t.Fatalf("requests = %d", got)
	}
}

func TestGateway_CloseWithoutStart(t *testing.T) {
	srv, err := gateway.New(testConfig(), gateway.Deps{
		Runtimes: noRuntimes,
		Usage:    usage.Discard{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != "" || srv.GRPCAddr() != "" || srv.AdminAddr() != "" {
		t.Fatal("addresses before Start")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestGateway_CloseWaitsForInFlightRequest(t *testing.T) {
	h := newHarness(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	h.rt.setHandle(func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
		close(entered)
		<-release
		return okResponse("late"), nil
	})
	type result struct {
		status int
		body   string
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(h.url("web/todos"))
		if err != nil {
			got <- result{status: -1, body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{resp.StatusCode, string(b)}
	}()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- h.srv.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while a request was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if r := <-got; r.status != 200 || r.body != "late" {
		t.Fatalf("in-flight request got %+v", r)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if got := h.sink.Total(h.stack, usage.GatewayRequests); got != 1 {
		t.Fatalf("in-flight request's usage: %d", got)
	}
}

func TestGateway_StackRevisionsAndRemoval(t *testing.T) {
	h := newHarness(t)
	parse := func(path string) *manifest.Manifest {
		m, err := manifest.Parse([]byte(strings.ReplaceAll(`
name: T
version: "1"
services:
  - type: Function
    name: api
    binary: b
    runtime: wasi1.0
    memory_limit: 1MiB
  - type: Gateway
    name: web
    endpoints:
      PATH: {get: api.f}
`, "PATH", path)))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if err := h.srv.PutStack(h.stack, parse("/v5"), 5); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.PutStack(h.stack, parse("/v4"), 4); err != nil { // stale: ignored
		t.Fatal(err)
	}
	if resp, _ := h.do("GET", h.url("web/v5"), nil, nil); resp.StatusCode != 200 {
		t.Fatalf("v5: %d", resp.StatusCode)
	}
	if resp, _ := h.do("GET", h.url("web/v4"), nil, nil); resp.StatusCode != 404 {
		t.Fatalf("stale v4 installed: %d", resp.StatusCode)
	}
	if err := h.srv.PutStack(h.stack, nil, 6); !errors.Is(err, gateway.ErrNilManifest) {
		t.Fatalf("nil manifest: %v", err)
	}
	bad := parse("/ok")
	bad.Gateways[0].Endpoints[0].Path = "/{broken"
	bad.Gateways[0].Endpoints = append(bad.Gateways[0].Endpoints, manifest.Endpoint{Path: "/x/{}", Method: "GET", RouteTo: "api.f"})
	if err := h.srv.PutStack(h.stack, bad, 7); err == nil {
		t.Fatal("uncompilable routes accepted")
	}
	if resp, _ := h.do("GET", h.url("web/v5"), nil, nil); resp.StatusCode != 200 {
		t.Fatalf("a failed PutStack replaced the installed revision: %d", resp.StatusCode)
	}
	h.srv.RemoveStack(h.stack)
	resp, body := h.do("GET", h.url("web/v5"), nil, nil)
	wantError(t, resp, body, http.StatusNotFound, gateway.KindStackNotFound)
	h.srv.RemoveStack(h.stack) // unknown: no-op
}

func TestGateway_HealthAndMetrics(t *testing.T) {
	h := newHarness(t)
	resp, body := h.do("GET", h.base+gateway.HealthPath, nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("health: %d %s", resp.StatusCode, body)
	}
	h.do("GET", h.url("web/todos"), nil, nil)
	h.do("GET", h.url("web/nope"), nil, nil)
	// Metrics are on the admin port only, never the public one.
	resp, body = h.do("GET", h.base+"/_mu/metrics", nil, nil)
	wantError(t, resp, body, http.StatusNotFound, gateway.KindNotFound)
	resp, body = h.do("GET", "http://"+h.srv.AdminAddr()+"/metrics", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("metrics: %d", resp.StatusCode)
	}
	for _, want := range []string{
		`mu_gateway_http_requests_total{code_class="2xx"} 1`,
		`mu_gateway_http_requests_total{code_class="4xx"} 1`,
		`mu_gateway_http_request_duration_seconds_count{code_class="2xx"} 1`,
		`mu_gateway_errors_total{kind="route_not_found"} 1`,
		`mu_gateway_stacks 1`,
		`go_goroutines`,
		`grpc_server_handled_total`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestNew_RequiresDeps(t *testing.T) {
	rt := noRuntimes
	_, err := gateway.New(testConfig(), gateway.Deps{Usage: usage.Discard{}})
	if err == nil || !strings.Contains(err.Error(), "Deps.Runtimes") || !strings.Contains(err.Error(), "cluster_bind_addr") {
		t.Errorf("without Runtimes or a cluster: %v, want an error naming both ways", err)
	}
	both := testConfig()
	both.Cluster.BindAddr = "127.0.0.1:0"
	both.Cluster.Plaintext = true
	_, err = gateway.New(both, gateway.Deps{Runtimes: rt, Usage: usage.Discard{}})
	if err == nil || !strings.Contains(err.Error(), "exclude each other") {
		t.Errorf("Runtimes and a cluster: %v, want an error", err)
	}
	if _, err := gateway.New(testConfig(), gateway.Deps{Runtimes: rt}); err == nil {
		t.Error("no error without Usage")
	}
	bad := testConfig()
	bad.MaxHeaderBytes = 0
	if _, err := gateway.New(bad, gateway.Deps{Runtimes: rt, Usage: usage.Discard{}}); err == nil {
		t.Error("invalid config accepted")
	}
}
