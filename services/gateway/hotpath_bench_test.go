package gateway_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/usage"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	"github.com/muprotocol/mu/services/gateway"
)

// helloManifest is examples/hello's stack: GET /greet/{name} → one
// function.
const helloManifest = `
name: hello
version: "0.1"
services:
  - type: Function
    name: hello
    binary: hello
    runtime: wasi1.0
    memory_limit: 64MiB
  - type: Gateway
    name: greeting
    endpoints:
      /greet/{name}:
        - method: get
          route_to: hello.greet_user
`

// helloRuntime answers every Invoke with what examples/hello answers
// (mu.Text(200, "Hello, bob!")), built once: it isolates the gateway and
// the gRPC hop from the wasm call.
type helloRuntime struct {
	runtimev1.UnimplementedRuntimeServiceServer
	resp *runtimev1.InvokeResponse
}

func newHelloRuntime() *helloRuntime {
	return &helloRuntime{resp: &runtimev1.InvokeResponse{
		Response: &typesv1.HttpResponse{
			Status:  200,
			Headers: []*typesv1.Header{{Name: "Content-Type", Value: "text/plain; charset=utf-8"}},
			Body:    []byte("Hello, bob!"),
		},
		FuelUsed: 120_000,
	}}
}

func (h *helloRuntime) Invoke(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
	return h.resp, nil
}

// directClient calls a RuntimeServiceServer's Invoke as a function call:
// no serialization, no transport. Only Invoke is implemented.
type directClient struct {
	runtimev1.RuntimeServiceClient
	srv runtimev1.RuntimeServiceServer
}

func (d directClient) Invoke(ctx context.Context, req *runtimev1.InvokeRequest, _ ...grpc.CallOption) (*runtimev1.InvokeResponse, error) {
	return d.srv.Invoke(ctx, req)
}

type oneRuntime struct {
	c runtimev1.RuntimeServiceClient
}

func (o oneRuntime) Candidates(_ ids.StackID, limit int, dst []gateway.Candidate) []gateway.Candidate {
	return append(dst, gateway.Candidate{Node: gateway.StaticNode, Client: o.c})
}

// benchWriter is a ResponseWriter that keeps its header map, as net/http's
// response does for one request, and drops the body.
type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) WriteHeader(s int)   { w.status = s }
func (w *benchWriter) Write(b []byte) (int, error) {
	w.n += len(b)
	return len(b), nil
}

func (w *benchWriter) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
}

// startHelloGRPC serves a helloRuntime over loopback gRPC from a
// service.Runner, the server the runtime serves Invoke from (same server
// options and interceptors), and returns a connection to it from Conns,
// as the gateway dials runtimes.
func startHelloGRPC(b *testing.B) *grpc.ClientConn {
	b.Helper()
	base := service.DefaultBase("127.0.0.1:0", "")
	base.MaxMessageBytes = 64 << 20 // the runtime's default max_message_bytes
	run := service.NewRunner("runtime", base, service.RunnerOptions{})
	runtimev1.RegisterRuntimeServiceServer(run.GRPC(), newHelloRuntime())
	if err := run.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { run.Close(nil) })
	conns := gateway.NewConns()
	b.Cleanup(func() { conns.Close() })
	cc, err := conns.Get(run.GRPCAddr())
	if err != nil {
		b.Fatal(err)
	}
	return cc
}

// newHelloGateway is a gateway serving the hello stack through res, with
// usage discarded; it returns the server and the request path.
func newHelloGateway(b *testing.B, res gateway.RuntimeResolver, start bool) (*gateway.Server, string) {
	b.Helper()
	cfg := gateway.DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.HTTPAddr, cfg.GRPCAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.NodeName = "bench"
	cfg.ShutdownTimeout = 5 * time.Second
	// The stack's limits stay on, so their checks are measured, but far
	// above what one process can send: the default 1000 requests a second
	// would answer most of a benchmark with 429.
	cfg.StackRate, cfg.StackBurst = 1e12, 1<<30
	srv, err := gateway.New(cfg, gateway.Deps{Runtimes: res, Usage: usage.Discard{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	if start {
		if err := srv.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	id, _, err := ids.NewStackID()
	if err != nil {
		b.Fatal(err)
	}
	m, err := manifest.Parse([]byte(helloManifest))
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.PutStack(id, m, 1); err != nil {
		b.Fatal(err)
	}
	return srv, "/" + id.String() + "/greeting/greet/bob"
}

// helloRequest is the request Go's HTTP client sends for GET path (what
// the bench's load generator sends).
func helloRequest(b *testing.B, path string) *http.Request {
	b.Helper()
	r, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:8080"+path, nil)
	if err != nil {
		b.Fatal(err)
	}
	r.RequestURI = path
	r.Header.Set("User-Agent", "Go-http-client/1.1")
	r.Header.Set("Accept-Encoding", "gzip")
	r.Body = http.NoBody
	return r
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure is what a benchmark loop reports beside time and allocations:
// the process's CPU time and read/write syscalls per request (both ends
// of the loopback hop count: they share the process). On a shared
// machine these are steadier than ns/op.
type measure struct {
	cpu time.Duration
	rw  int64
}

func startMeasure() measure { return measure{cpu: cpuTime(), rw: readWriteSyscalls()} }

func (m measure) report(b *testing.B) {
	if b.N == 0 {
		return
	}
	if cpu := cpuTime(); m.cpu >= 0 && cpu >= 0 {
		b.ReportMetric(float64(cpu-m.cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	}
	if rw := readWriteSyscalls(); m.rw >= 0 && rw >= 0 {
		b.ReportMetric(float64(rw-m.rw)/float64(b.N), "rw-syscalls/op")
	}
}

// readWriteSyscalls is the process's count of read and write system
// calls so far (syscr + syscw of /proc/self/io), or -1 where there is none.
func readWriteSyscalls() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	var n int64
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
		if k == "syscr" || k == "syscw" {
			c, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return -1
			}
			n += c
		}
	}
	return n
}

func serveHandler(b *testing.B, srv *gateway.Server, path string) {
	r := helloRequest(b, path)
	w := &benchWriter{h: http.Header{}}
	srv.ServeHTTP(w, r)
	if w.status != http.StatusOK || w.n != len("Hello, bob!") {
		b.Fatalf("got %d with %d body bytes", w.status, w.n)
	}
	b.ReportAllocs()
	m := startMeasure()
	for b.Loop() {
		w.reset()
		srv.ServeHTTP(w, r)
	}
	m.report(b)
	if w.status != http.StatusOK {
		b.Fatalf("got %d", w.status)
	}
}

// BenchmarkHotPath_HelloGET measures one hello GET on the gateway's hot
// path, to compare allocations and time per request before and after a
// change:
//
//   - handler/direct: ServeHTTP → a runtime called as a function (no
//     gRPC): the gateway's own work;
//   - handler/grpc: ServeHTTP → the gRPC client → a runtime over loopback
//     gRPC (client and server sides both count): the gateway plus the
//     remote hop; minus handler/direct, the hop alone;
//   - http/grpc: a Go HTTP client over loopback → the gateway's listener →
//     gRPC → the runtime: the whole request as a load generator sees it
//     (net/http's client and server count too), one at a time;
//   - http/grpc/c64: the same with 64 requests in flight, each client
//     goroutine on a keep-alive connection of its own.
func BenchmarkHotPath_HelloGET(b *testing.B) {
	b.Run("handler/direct", func(b *testing.B) {
		srv, path := newHelloGateway(b, oneRuntime{directClient{srv: newHelloRuntime()}}, false)
		serveHandler(b, srv, path)
	})
	b.Run("handler/grpc", func(b *testing.B) {
		srv, path := newHelloGateway(b, gateway.NewStaticRuntime(startHelloGRPC(b)), false)
		serveHandler(b, srv, path)
	})
	b.Run("http/grpc", func(b *testing.B) {
		get := helloHTTP(b)
		get()
		b.ReportAllocs()
		m := startMeasure()
		for b.Loop() {
			get()
		}
		m.report(b)
	})
	b.Run("http/grpc/c64", func(b *testing.B) {
		const inFlight = 64
		get := helloHTTP(b)
		get()
		b.SetParallelism(max(inFlight/runtime.GOMAXPROCS(0), 1))
		b.ReportAllocs()
		m := startMeasure()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				get()
			}
		})
		b.StopTimer()
		m.report(b)
	})
}

// helloHTTP starts a gateway over loopback gRPC to a hello runtime and
// returns a function sending it one hello GET over HTTP, safe to call
// from many goroutines (up to 64 keep-alive connections).
func helloHTTP(b *testing.B) func() {
	srv, path := newHelloGateway(b, gateway.NewStaticRuntime(startHelloGRPC(b)), true)
	url := "http://" + srv.Addr() + path
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(client.CloseIdleConnections)
	return func() {
		resp, err := client.Get(url)
		if err != nil {
			b.Error(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Errorf("got %d", resp.StatusCode)
		}
	}
}
