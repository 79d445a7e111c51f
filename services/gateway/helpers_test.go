package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/proto"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/usage"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	"github.com/muprotocol/mu/services/gateway"
)

// testManifest has one function and two gateways with the routing cases
// the tests use.
const testManifest = `
name: Test
version: "1"
services:
  - type: Function
    name: api
    binary: bin1
    runtime: wasi1.0
    memory_limit: 64MiB
  - type: Gateway
    name: web
    endpoints:
      /: {get: api.root}
      /todos: {get: api.list, post: api.create}
      /todos/: {get: api.list_slash}
      /todos/{id}: {get: api.get, delete: api.remove}
      /todos/new: {get: api.new_form}
      /files/{name}: {get: api.file}
      /{a}/b/{c}: {get: api.ab}
      /echo: {get: api.echo, post: api.echo, put: api.echo}
      /only-head: {head: api.head}
  - type: Gateway
    name: admin
    endpoints:
      /stats: {get: api.stats}
`

// fakeRuntime is a real gRPC RuntimeService on 127.0.0.1:0 whose Invoke
// records each request and answers with handle (default: 200, header
// X-Function and the function name as body).
type fakeRuntime struct {
	runtimev1.UnimplementedRuntimeServiceServer
	addr  string
	conns atomic.Int64 // transport connections accepted
	gs    *grpc.Server
	ln    net.Listener

	mu     sync.Mutex
	calls  []*runtimev1.InvokeRequest
	md     []metadata.MD // incoming metadata per call
	handle func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error)
	// status answers Status (nil: UNIMPLEMENTED); logs serves StreamLogs
	// (nil: UNIMPLEMENTED). See stackapi_test.go.
	status func(context.Context, *runtimev1.StatusRequest) (*runtimev1.StatusResponse, error)
	logs   func(*runtimev1.StreamLogsRequest, runtimev1.RuntimeService_StreamLogsServer) error
}

func (f *fakeRuntime) Invoke(ctx context.Context, req *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
	f.mu.Lock()
	f.calls = append(f.calls, proto.Clone(req).(*runtimev1.InvokeRequest))
	md, _ := metadata.FromIncomingContext(ctx)
	f.md = append(f.md, md.Copy())
	h := f.handle
	f.mu.Unlock()
	if h != nil {
		return h(ctx, req)
	}
	return okResponse(req.GetFunction()), nil
}

func okResponse(fn string) *runtimev1.InvokeResponse {
	return &runtimev1.InvokeResponse{
		Response: &typesv1.HttpResponse{
			Status:  200,
			Headers: []*typesv1.Header{{Name: "X-Function", Value: fn}},
			Body:    []byte(fn),
		},
		FuelUsed: 1000,
	}
}

func (f *fakeRuntime) setHandle(h func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handle = h
}

func (f *fakeRuntime) lastMD() metadata.MD {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.md[len(f.md)-1]
}

func (f *fakeRuntime) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeRuntime) last(t *testing.T) *runtimev1.InvokeRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		t.Fatal("the runtime was not called")
	}
	return f.calls[len(f.calls)-1]
}

// TagConn etc. make fakeRuntime a stats.Handler counting connections.
func (f *fakeRuntime) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (f *fakeRuntime) HandleRPC(context.Context, stats.RPCStats)                         {}
func (f *fakeRuntime) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (f *fakeRuntime) HandleConn(_ context.Context, s stats.ConnStats) {
	if _, ok := s.(*stats.ConnBegin); ok {
		f.conns.Add(1)
	}
}

func startRuntime(t *testing.T) *fakeRuntime {
	t.Helper()
	f := &fakeRuntime{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// 64 MiB, the real runtime's default max_message_bytes, so requests
	// with the largest bodies reach Invoke as they would reach a runtime.
	gs := grpc.NewServer(grpc.StatsHandler(f), grpc.MaxRecvMsgSize(64<<20))
	runtimev1.RegisterRuntimeServiceServer(gs, f)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	f.addr, f.gs, f.ln = ln.Addr().String(), gs, ln
	return f
}

// kill stops the runtime the hard way, as a killed process would: every
// connection is cut, running calls fail and the port refuses connections.
func (f *fakeRuntime) kill() {
	f.gs.Stop()
	f.ln.Close()
}

// harness is a gateway on 127.0.0.1:0 talking to a fakeRuntime, with one
// stack of testManifest installed.
type harness struct {
	t     *testing.T
	srv   *gateway.Server
	rt    *fakeRuntime
	sink  *usage.Memory
	stack ids.StackID
	base  string // http://addr
}

func testConfig() gateway.Config {
	cfg := gateway.DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.NodeName = "test"
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Usage.FlushInterval = 10 * time.Millisecond
	cfg.Usage.RetryMin = time.Millisecond
	cfg.Usage.RetryMax = 10 * time.Millisecond
	return cfg
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type harnessOpt func(*gateway.Config, *gateway.Deps)

func newHarness(t *testing.T, opts ...harnessOpt) *harness {
	t.Helper()
	return newHarnessClock(t, nil, opts...)
}

// newHarnessClock is newHarness with now, when not nil, as the clock of
// the gateway's response counts (Server.SetClock, before Start).
func newHarnessClock(t *testing.T, now func() time.Time, opts ...harnessOpt) *harness {
	t.Helper()
	rt := startRuntime(t)
	conns := gateway.NewConns()
	t.Cleanup(func() { conns.Close() })
	res, err := gateway.DialRuntime(conns, rt.addr)
	if err != nil {
		t.Fatal(err)
	}
	sink := usage.NewMemory()
	cfg := testConfig()
	deps := gateway.Deps{Runtimes: res, Usage: sink, Logger: testLogger(t)}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	srv, err := gateway.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if now != nil {
		srv.SetClock(now)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	id, _, err := ids.NewStackID()
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse([]byte(testManifest))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.PutStack(id, m, 1); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, srv: srv, rt: rt, sink: sink, stack: id, base: "http://" + srv.Addr()}
}

// url returns the gateway URL of path (which starts with the gateway name).
func (h *harness) url(path string) string { return h.base + "/" + h.stack.String() + "/" + path }

// do sends a request with the standard client and returns the response
// with its body read.
func (h *harness) do(method, url string, body io.Reader, hdr http.Header) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, b
}

// rawConn is a client connection that writes requests byte for byte.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (h *harness) dialRaw() *rawConn {
	h.t.Helper()
	c, err := net.Dial("tcp", h.srv.Addr())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return &rawConn{t: h.t, c: c, br: bufio.NewReader(c)}
}

// roundTrip writes raw and reads one response to a request of method.
func (rc *rawConn) roundTrip(method, raw string) (*http.Response, []byte) {
	rc.t.Helper()
	rc.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(rc.c, raw); err != nil {
		rc.t.Fatal(err)
	}
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatal(err)
	}
	return resp, b
}

type errorJSON struct {
	Error struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
	} `json:"error"`
}

// wantError checks a gateway error response.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, kind string) errorJSON {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var e errorJSON
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("body %q is not the error JSON: %v", body, err)
	}
	if e.Error.Kind != kind {
		t.Errorf("kind = %q, want %q (message %q)", e.Error.Kind, kind, e.Error.Message)
	}
	if e.Error.Message == "" {
		t.Error("empty error message")
	}
	return e
}

func headerPairs(hs []*typesv1.Header) string {
	var b strings.Builder
	for _, h := range hs {
		b.WriteString(h.GetName() + ": " + h.GetValue() + "\n")
	}
	return b.String()
}
