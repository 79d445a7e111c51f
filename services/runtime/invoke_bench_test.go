package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/muprotocol/mu/libs/gobuild"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/usage"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// helloFunc builds examples/hello, the real SDK function `mu run` serves
// (cached between runs).
func helloFunc(tb testing.TB) []byte {
	tb.Helper()
	if testing.Short() {
		tb.Skip("builds a Go function")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	path, err := gobuild.Cached(ctx, filepath.Join("..", "..", "examples", "hello"), gobuild.TestCacheDir(), gobuild.Reactor)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// helloManifest is examples/hello/mu.yaml with the binary's content id.
func helloManifest(binary string) []byte {
	return []byte(fmt.Sprintf(`name: hello
version: "0.1"
services:
  - type: Function
    name: hello
    binary: %s
    runtime: wasi1.0
    memory_limit: 64MiB
  - type: Gateway
    name: greeting
    endpoints:
      /greet/{name}: {get: hello.greet_user}
`, binary))
}

// newHelloServer starts a runtime (not listening) with the hello stack
// deployed as id; edit adjusts the config.
func newHelloServer(tb testing.TB, id ids.StackID, edit func(*Config)) *Server {
	tb.Helper()
	bin := helloFunc(tb)
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.AdminAddr = ""
	cfg.DataDir = tb.TempDir()
	if edit != nil {
		edit(&cfg)
	}
	srv, err := New(cfg, Deps{Usage: usage.Discard{}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	bid := ids.BinaryID(bin)
	if _, err := srv.Deploy(context.Background(), &runtimev1.DeployRequest{
		Stack:    &runtimev1.Stack{Id: id.Bytes(), Revision: 1, Manifest: helloManifest(bid)},
		Binaries: []*runtimev1.FunctionBinary{{BinaryId: bid, Wasm: bin}},
	}); err != nil {
		tb.Fatal(err)
	}
	return srv
}

// helloRequest is the request the gateway sends for GET /greet/bench.
func helloRequest(id ids.StackID) *runtimev1.InvokeRequest {
	return &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: "hello.greet_user", Request: &typesv1.HttpRequest{
		Method:     "GET",
		PathParams: map[string]string{"name": "bench"},
		Headers:    []*typesv1.Header{{Name: "accept", Value: "*/*"}, {Name: "user-agent", Value: "bench"}},
	}}
}

func invokeHello(tb testing.TB, srv *Server, req *runtimev1.InvokeRequest) {
	resp, err := srv.Invoke(context.Background(), req)
	if err != nil || resp.GetError() != nil || resp.GetResponse().GetStatus() != 200 {
		tb.Fatalf("invoke: %v %v", resp, err)
	}
}

// BenchmarkInvoke_Hello calls (*Server).Invoke directly, one call at a
// time, on a warm hello instance: the runtime's own share of a request
// (allocations per call are the figure to watch).
func BenchmarkInvoke_Hello(b *testing.B) {
	id := ids.StackID{0xbe}
	srv := newHelloServer(b, id, nil)
	req := helloRequest(id)
	invokeHello(b, srv, req)
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		invokeHello(b, srv, req)
	}
	reportCPU(b, cpu0)
}

// BenchmarkInvoke_HelloParallel64 calls Invoke from 64 goroutines at once
// (the bench's c=64) and reports, after warm-up, the instances started and
// the calls that ran beside the call workers per 1,000 calls, which a pool
// sized to the concurrency and workers that are not stuck keep near 0.
// MU_BENCH_CALL_WORKER_WAIT overrides call_worker_wait (a duration).
func BenchmarkInvoke_HelloParallel64(b *testing.B) {
	id := ids.StackID{0xbf}
	srv := newHelloServer(b, id, func(c *Config) {
		if w := os.Getenv("MU_BENCH_CALL_WORKER_WAIT"); w != "" {
			c.CallWorkerWait, _ = time.ParseDuration(w)
		}
	})
	req := helloRequest(id)
	warm := func(n int) {
		done := make(chan struct{})
		for range 64 {
			go func() {
				defer func() { done <- struct{}{} }()
				for range n {
					invokeHello(b, srv, req)
				}
			}()
		}
		for range 64 {
			<-done
		}
	}
	// Warm up until a round of 64 × 50 calls starts no instance (the idle
	// cap has caught up with the concurrency), or 20 rounds.
	for range 20 {
		before := testutil.ToFloat64(srv.metrics.instancesStarted)
		warm(50)
		if testutil.ToFloat64(srv.metrics.instancesStarted) == before {
			break
		}
	}
	started := testutil.ToFloat64(srv.metrics.instancesStarted)
	overflowed := testutil.ToFloat64(srv.metrics.workers.overflowWait)
	b.ReportAllocs()
	b.SetParallelism(max(1, 64/max(1, goruntime.GOMAXPROCS(0))))
	b.ResetTimer()
	cpu0 := processCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			invokeHello(b, srv, req)
		}
	})
	b.StopTimer()
	reportCPU(b, cpu0)
	b.ReportMetric(1000*(testutil.ToFloat64(srv.metrics.instancesStarted)-started)/float64(b.N), "starts/1000calls")
	b.ReportMetric(1000*(testutil.ToFloat64(srv.metrics.workers.overflowWait)-overflowed)/float64(b.N), "overflows/1000calls")
	idle, _ := srv.pool.Stats(srv.stacks[id].functions["hello"].poolKey)
	b.ReportMetric(float64(idle), "idle-instances")
}

// BenchmarkInvoke_HelloFreshGoroutine calls Invoke one call at a time, each
// from a new goroutine, as gRPC runs each request: the call finds a small
// stack and cold caches unless a call worker runs it.
func BenchmarkInvoke_HelloFreshGoroutine(b *testing.B) {
	id := ids.StackID{0xc0}
	srv := newHelloServer(b, id, nil)
	req := helloRequest(id)
	invokeHello(b, srv, req)
	done := make(chan struct{})
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		go func() {
			defer func() { done <- struct{}{} }()
			invokeHello(b, srv, req)
		}()
		<-done
	}
	reportCPU(b, cpu0)
}

// processCPU is the CPU time the process has used (user and system).
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process CPU per call since cpu0 (on a shared
// machine a steadier figure than the wall clock).
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}

// BenchmarkInvoke_HelloLongLivedCaller calls Invoke one call at a time
// from one long-lived goroutine woken for each call, as net/http's
// connection goroutine calls the in-process runtime: its stack stays grown
// between calls, but it sleeps between them.
func BenchmarkInvoke_HelloLongLivedCaller(b *testing.B) {
	id := ids.StackID{0xc1}
	srv := newHelloServer(b, id, nil)
	req := helloRequest(id)
	invokeHello(b, srv, req)
	calls, done := make(chan struct{}), make(chan struct{})
	go func() {
		for range calls {
			invokeHello(b, srv, req)
			done <- struct{}{}
		}
	}()
	defer close(calls)
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		calls <- struct{}{}
		<-done
	}
	reportCPU(b, cpu0)
}
