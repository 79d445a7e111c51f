package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/rpcerr"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/usage"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// okWAT answers every request with 200 "hi" after writing a Log frame.
const okWAT = `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "\0e\00\00\00\02\00\c8\00\00\00\00\00\02\00\00\00hi")
  (data (i32.const 400) "\0c\00\00\00\03\00\05\00\00\00hello\02")
  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 8) (local.get $ptr))
    (i32.store (i32.const 12) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 20))))
  (func (export "_start")
    (loop $serve
      (i32.store (i32.const 0) (i32.const 1024))
      (i32.store (i32.const 4) (i32.const 60000))
      (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
      (if (i32.eqz (i32.load (i32.const 16))) (then (return)))
      (call $write (i32.const 400) (i32.const 16))
      (call $write (i32.const 256) (i32.const 18))
      (br $serve))))`

// crashWAT fails during start-up.
const crashWAT = `(module (memory (export "memory") 1) (func (export "_start") unreachable))`

func wat(t *testing.T, src string) []byte {
	t.Helper()
	b, err := wasmtime.Wat2Wasm(src)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func manifestFor(binary string) []byte {
	return []byte(fmt.Sprintf(`name: test
version: "1"
services:
  - type: Function
    name: fn
    binary: %s
    runtime: wasi1.0
    memory_limit: 3MiB
  - type: Gateway
    name: gw
    endpoints:
      /x: {get: fn.handler}
`, binary))
}

type harness struct {
	srv    *Server
	client runtimev1.RuntimeServiceClient
	conn   *grpc.ClientConn
	usage  *usage.Memory
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	mem := usage.NewMemory()
	srv, err := New(cfg, Deps{Usage: mem})
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
	return &harness{srv: srv, client: runtimev1.NewRuntimeServiceClient(conn), conn: conn, usage: mem}
}

func (h *harness) deploy(t *testing.T, id ids.StackID, rev uint64, bin []byte) error {
	t.Helper()
	bid := ids.BinaryID(bin)
	_, err := h.client.Deploy(context.Background(), &runtimev1.DeployRequest{
		Stack:    &runtimev1.Stack{Id: id.Bytes(), Revision: rev, Manifest: manifestFor(bid)},
		Binaries: []*runtimev1.FunctionBinary{{BinaryId: bid, Wasm: bin}},
	})
	return err
}

func code(err error) codes.Code { return status.Code(err) }

func TestRuntime_DeployInvokeStatusUndeploy(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id := ids.StackID{7}
	if err := h.deploy(t, id, 1, wat(t, okWAT)); err != nil {
		t.Fatal(err)
	}
	logs, err := h.client.StreamLogs(ctx, &runtimev1.StreamLogsRequest{StackId: id.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	waitForSubscriber(t, h.srv)

	var fuel []uint64
	for range 3 {
		resp, err := h.client.Invoke(ctx, &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: "fn.handler",
			Request: &typesv1.HttpRequest{Method: "GET", Body: []byte("x")}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetError() != nil || resp.GetResponse().GetStatus() != 200 || string(resp.GetResponse().GetBody()) != "hi" {
			t.Fatalf("response %v", resp)
		}
		// memory_limit 3MiB: megabyte-instructions are fuel × 3.
		if resp.GetMbInstructions() != resp.GetFuelUsed()*3 || resp.GetFuelUsed() == 0 {
			t.Fatalf("fuel %d mb-instructions %d", resp.GetFuelUsed(), resp.GetMbInstructions())
		}
		fuel = append(fuel, resp.GetFuelUsed())
	}
	// The prewarmed instance's start-up fuel goes to the first call; later calls cost the same.
	if fuel[1] != fuel[2] || fuel[0] <= fuel[1] {
		t.Fatalf("fuel per call %v", fuel)
	}
	var total uint64
	for _, f := range fuel {
		total += f * 3
	}
	if err := h.srv.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.usage.Total(id, usage.FunctionMBInstructions); got != total {
		t.Fatalf("usage %d, want %d", got, total)
	}
	entry, err := logs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if e := entry.GetEntry(); e.GetBody() != "hello" || e.GetFunction() != "fn" || e.GetLevel() != runtimev1.LogLevel_LOG_LEVEL_INFO {
		t.Fatalf("log %v", e)
	}

	st, err := h.client.Status(ctx, &runtimev1.StatusRequest{StackId: id.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	f := st.GetStacks()[0].GetFunctions()[0]
	if f.GetInvocations() != 3 || f.GetWarmInstances() != 1 || st.GetStacks()[0].GetRevision() != 1 {
		t.Fatalf("status %v", st)
	}

	if _, err := h.client.Undeploy(ctx, &runtimev1.UndeployRequest{StackId: id.Bytes()}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.Invoke(ctx, &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: "fn.handler", Request: &typesv1.HttpRequest{}})
	if code(err) != codes.NotFound {
		t.Fatalf("invoke after undeploy: %v", err)
	}

	hc := healthpb.NewHealthClient(h.conn)
	if r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v %v", r, err)
	}
}

func TestRuntime_DeployErrors(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id := ids.StackID{9}
	bin := wat(t, okWAT)
	bid := ids.BinaryID(bin)
	cases := []struct {
		name string
		req  *runtimev1.DeployRequest
		code codes.Code
		msg  string
	}{
		{"no stack", &runtimev1.DeployRequest{}, codes.InvalidArgument, "stack is required"},
		{"short id", &runtimev1.DeployRequest{Stack: &runtimev1.Stack{Id: []byte{1}}}, codes.InvalidArgument, "stack.id"},
		{"bad manifest", &runtimev1.DeployRequest{Stack: &runtimev1.Stack{Id: id.Bytes(), Manifest: []byte("name: x")}}, codes.InvalidArgument, "manifest"},
		{"binary id mismatch", &runtimev1.DeployRequest{Stack: &runtimev1.Stack{Id: id.Bytes(), Manifest: manifestFor(bid)},
			Binaries: []*runtimev1.FunctionBinary{{BinaryId: bid, Wasm: append(bin, 0)}}}, codes.InvalidArgument, "does not match the content id"},
		{"missing binary", &runtimev1.DeployRequest{Stack: &runtimev1.Stack{Id: id.Bytes(), Manifest: manifestFor(bid)}}, codes.FailedPrecondition, "was not sent"},
		{"not wasm", &runtimev1.DeployRequest{Stack: &runtimev1.Stack{Id: id.Bytes(), Manifest: manifestFor(ids.BinaryID([]byte("nope")))},
			Binaries: []*runtimev1.FunctionBinary{{BinaryId: ids.BinaryID([]byte("nope")), Wasm: []byte("nope")}}}, codes.InvalidArgument, "invalid wasm module"},
	}
	for _, tc := range cases {
		_, err := h.client.Deploy(ctx, tc.req)
		if code(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want %v containing %q", tc.name, err, tc.code, tc.msg)
		}
	}
	if err := h.deploy(t, id, 1, wat(t, crashWAT)); code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "failed to start") {
		t.Errorf("crashing start-up: %v", err)
	}
	if h.srv.Stacks() != 0 {
		t.Fatal("a failed deploy left a stack behind")
	}
	if err := h.deploy(t, id, 5, bin); err != nil {
		t.Fatal(err)
	}
	if err := h.deploy(t, id, 4, bin); code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "older revision") {
		t.Errorf("older revision: %v", err)
	}
	if err := h.deploy(t, id, 5, bin); err != nil {
		t.Errorf("same revision again: %v", err)
	}
	for _, tc := range []struct {
		fn   string
		code codes.Code
	}{{"nodot", codes.InvalidArgument}, {"other.handler", codes.NotFound}} {
		_, err := h.client.Invoke(ctx, &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: tc.fn, Request: &typesv1.HttpRequest{}})
		if code(err) != tc.code {
			t.Errorf("invoke %q: %v", tc.fn, err)
		}
	}
	resp, err := h.client.Invoke(ctx, &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: "fn.handler", Request: &typesv1.HttpRequest{}})
	if err != nil || resp.GetResponse().GetStatus() != 200 {
		t.Fatalf("after redeploy: %v %v", resp, err)
	}
}

func TestRuntime_CloseTwiceEvenWithALogStreamOpen(t *testing.T) {
	h := newHarness(t)
	stream, err := h.client.StreamLogs(context.Background(), &runtimev1.StreamLogsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitForSubscriber(t, h.srv)
	closed := make(chan struct{})
	go func() {
		h.srv.Close()
		h.srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs while a log stream is open")
	}
	if _, err := stream.Recv(); code(err) != codes.Unavailable {
		t.Fatalf("stream after Close: %v", err)
	}
}

func TestRuntime_AdminServesMetricsAndReadiness(t *testing.T) {
	h := newHarness(t)
	id := ids.StackID{9}
	if err := h.deploy(t, id, 1, wat(t, okWAT)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.Invoke(context.Background(), &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: "fn.handler", Request: &typesv1.HttpRequest{}}); err != nil {
		t.Fatal(err)
	}
	admin := "http://" + h.srv.AdminAddr()
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ready",
		"/metrics": `mu_runtime_invocations_total{result="ok"} 1`,
	} {
		resp, err := http.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s = %d, lacks %q:\n%s", path, resp.StatusCode, want, body)
		}
	}
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `grpc_server_handled_total{grpc_code="OK",grpc_method="Invoke",grpc_service="mu.runtime.v1.RuntimeService",grpc_type="unary"} 1`) {
		t.Errorf("/metrics lacks the gRPC server metrics of Invoke")
	}
}

func TestConfig_ValidateNamesEveryBadField(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.NodeName = ""
	cfg.MaxFuelPerCall = 0
	cfg.CallTimeout = 0
	cfg.MaxFrameSize = 1
	cfg.MaxMessageBytes = 1
	cfg.PrewarmInstances = -1
	cfg.SnapshotBuildConcurrency = 0
	cfg.MaxActivePerFunction = 0
	cfg.LogBuffer = 0
	cfg.LogHistoryLines = -1
	cfg.LogHistoryBytes = 0
	cfg.Usage.BatchSize = 0
	err := cfg.Validate()
	if !errors.Is(err, service.ErrInvalidConfig) {
		t.Fatalf("not ErrInvalidConfig: %v", err)
	}
	for _, field := range []string{"node_name", "max_fuel_per_call", "call_timeout", "max_frame_size", "max_message_bytes",
		"prewarm_instances", "snapshot_build_concurrency", "max_active_per_function", "log_buffer", "log_history_lines", "log_history_bytes", "usage_batch_size"} {
		if !strings.Contains(err.Error(), field+":") {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
	def := DefaultConfig()
	def.Plaintext = true // the defaults but for the TLS files, which have none
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
}

// waitForSubscriber returns once a StreamLogs call has subscribed to the hub.
func waitForSubscriber(t *testing.T, s *Server) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.Logs().Subscribers() == 0; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the log stream never subscribed")
		}
	}
}

func TestRuntime_InvokeErrorsCarryReasons(t *testing.T) {
	h := newHarness(t)
	id := ids.StackID{11}
	if err := h.deploy(t, id, 1, wat(t, okWAT)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		stack    []byte
		function string
		code     codes.Code
		reason   rpcerr.Reason
	}{
		{ids.StackID{12}.Bytes(), "fn.handler", codes.NotFound, rpcerr.StackNotDeployed},
		{id.Bytes(), "nope.handler", codes.NotFound, rpcerr.FunctionNotFound},
		{id.Bytes(), "no-dot", codes.InvalidArgument, rpcerr.InvalidRequest},
		{[]byte{1, 2}, "fn.handler", codes.InvalidArgument, rpcerr.InvalidRequest},
	}
	for _, c := range cases {
		_, err := h.client.Invoke(context.Background(), &runtimev1.InvokeRequest{StackId: c.stack, Function: c.function, Request: &typesv1.HttpRequest{}})
		if code(err) != c.code || rpcerr.ReasonOf(err) != c.reason {
			t.Errorf("%x %s: got %v (reason %q), want %v %s", c.stack, c.function, err, rpcerr.ReasonOf(err), c.code, c.reason)
		}
	}
}

// Deploys, redeploys and undeploys racing calls never fail a call as the
// function's fault: every call either answers or is told the stack is not
// deployed. Run under -race by make test.
func TestRuntime_UndeployAndRedeployRaceInvoke(t *testing.T) {
	h := newHarness(t)
	bin := wat(t, okWAT)
	id := ids.StackID{13}
	if err := h.deploy(t, id, 1, bin); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := h.client.Invoke(context.Background(), &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: "fn.handler", Request: &typesv1.HttpRequest{}})
				var outcome string
				switch {
				case err == nil && resp.GetError() == nil && resp.GetResponse().GetStatus() == 200:
					outcome = "ok"
				case code(err) == codes.NotFound && rpcerr.ReasonOf(err) == rpcerr.StackNotDeployed:
					outcome = "not deployed"
				case err != nil:
					outcome = "rpc error: " + err.Error()
				default:
					outcome = "function error: " + resp.GetError().String()
				}
				mu.Lock()
				counts[outcome]++
				mu.Unlock()
			}
		}()
	}
	for rev := uint64(2); rev < 40; rev++ {
		if rev%3 == 0 {
			if _, err := h.client.Undeploy(context.Background(), &runtimev1.UndeployRequest{StackId: id.Bytes()}); err != nil {
				t.Error(err)
			}
			continue
		}
		if err := h.deploy(t, id, rev, bin); err != nil {
			t.Error(err)
		}
	}
	cancel()
	wg.Wait()
	for outcome, n := range counts {
		if outcome != "ok" && outcome != "not deployed" {
			t.Errorf("%d calls: %s", n, outcome)
		}
	}
	if counts["ok"] == 0 || counts["not deployed"] == 0 {
		t.Errorf("the race was not exercised: %v", counts)
	}
	// Once the stack is gone, nothing of it stays: no module, no instance.
	if _, err := h.client.Undeploy(context.Background(), &runtimev1.UndeployRequest{StackId: id.Bytes()}); err != nil {
		t.Fatal(err)
	}
	h.srv.mu.RLock()
	modules := len(h.srv.modules)
	h.srv.mu.RUnlock()
	if modules != 0 {
		t.Errorf("%d modules still held after the last undeploy", modules)
	}
}

func TestRuntime_UndeployIsIdempotent(t *testing.T) {
	h := newHarness(t)
	id := ids.StackID{14}
	for range 2 {
		if _, err := h.client.Undeploy(context.Background(), &runtimev1.UndeployRequest{StackId: id.Bytes()}); err != nil {
			t.Fatalf("undeploy of a stack the node lacks: %v", err)
		}
	}
	if _, err := h.client.Undeploy(context.Background(), &runtimev1.UndeployRequest{StackId: []byte{1}}); code(err) != codes.InvalidArgument {
		t.Fatalf("bad id: %v", err)
	}
}

// A call that finds the node's memory for running calls full waits
// ActiveMemoryWait, then is refused as a busy node (the gateway's 503),
// billed nothing; once memory frees up calls run again.
func TestRuntime_ActiveMemoryBudgetRefusesCallsAsBusy(t *testing.T) {
	h := newHarness(t)
	h.srv.cfg.ActiveMemoryWait = 50 * time.Millisecond
	id := ids.StackID{15}
	if err := h.deploy(t, id, 1, wat(t, okWAT)); err != nil {
		t.Fatal(err)
	}
	invoke := func() (*runtimev1.InvokeResponse, error) {
		return h.client.Invoke(context.Background(), &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: "fn.handler", Request: &typesv1.HttpRequest{}})
	}
	// Running calls hold all of the budget but less than the function's
	// 3 MiB memory_limit.
	hold := h.srv.cfg.ActiveMemoryBudget - 3<<20 + 1
	if !h.srv.active.TryAcquire(hold) {
		t.Fatal("budget not free")
	}
	start := time.Now()
	_, err := invoke()
	if code(err) != codes.ResourceExhausted || rpcerr.ReasonOf(err) != rpcerr.CapacityExhausted || !strings.Contains(err.Error(), "active_memory_budget") {
		t.Fatalf("got %v (reason %q)", err, rpcerr.ReasonOf(err))
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("refused after %v, before active_memory_wait", waited)
	}
	if err := h.srv.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := h.usage.Total(id, usage.FunctionMBInstructions); got != 0 {
		t.Errorf("a refused call was billed %d", got)
	}
	h.srv.active.Release(1) // now exactly 3 MiB is free
	if resp, err := invoke(); err != nil || resp.GetResponse().GetStatus() != 200 {
		t.Fatalf("with room: %v %v", resp, err)
	}
	h.srv.active.Release(hold - 1)
	if !h.srv.active.TryAcquire(h.srv.cfg.ActiveMemoryBudget) {
		t.Error("a finished call kept its reservation")
	}
	h.srv.active.Release(h.srv.cfg.ActiveMemoryBudget)
}

func TestRuntime_DeployOfAGarbageBinaryNamesTheProblemInOneLine(t *testing.T) {
	h := newHarness(t)
	err := h.deploy(t, ids.StackID{3}, 1, []byte("\x00asm\x01\x00\x00\x00garbage"))
	if code(err) != codes.InvalidArgument {
		t.Fatalf("got %v", err)
	}
	msg := status.Convert(err).Message()
	if strings.Contains(msg, "\n") || strings.Contains(msg, "backtrace") || !strings.Contains(msg, "invalid wasm module") || !strings.Contains(msg, "unexpected end-of-file") {
		t.Errorf("message %q", msg)
	}
}

// A redeploy never fails a call: calls that found the old revision finish
// on it, later ones run on the new one.
func TestRuntime_RedeployNeverFailsACall(t *testing.T) {
	h := newHarness(t)
	bin := wat(t, okWAT)
	id := ids.StackID{16}
	if err := h.deploy(t, id, 1, bin); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok int
	var failures []string
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := h.client.Invoke(context.Background(), &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: "fn.handler", Request: &typesv1.HttpRequest{}})
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
	for rev := uint64(2); rev < 30; rev++ {
		if err := h.deploy(t, id, rev, bin); err != nil {
			t.Error(err)
		}
	}
	cancel()
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d of %d calls failed during redeploys, e.g. %s", len(failures), len(failures)+ok, failures[0])
	}
	if ok == 0 {
		t.Error("no call ran")
	}
}
