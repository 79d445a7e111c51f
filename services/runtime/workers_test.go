package runtime

import (
	"context"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/rpcerr"
	"github.com/muprotocol/mu/libs/usage"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// newWorkersHarness is newHarness with the config adjusted by edit.
func newWorkersHarness(t *testing.T, edit func(*Config)) *harness {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	edit(&cfg)
	mem := usage.NewMemory()
	srv, err := New(cfg, Deps{Usage: mem})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &harness{srv: srv, usage: mem}
}

func (h *harness) deployDirect(t *testing.T, id ids.StackID, manifest func(string) []byte, bin []byte) {
	t.Helper()
	bid := ids.BinaryID(bin)
	if _, err := h.srv.Deploy(context.Background(), &runtimev1.DeployRequest{
		Stack:    &runtimev1.Stack{Id: id.Bytes(), Revision: 1, Manifest: manifest(bid)},
		Binaries: []*runtimev1.FunctionBinary{{BinaryId: bid, Wasm: bin}},
	}); err != nil {
		t.Fatal(err)
	}
}

func invokeFn(ctx context.Context, s *Server, id ids.StackID, fn string) (*runtimev1.InvokeResponse, error) {
	return s.Invoke(ctx, &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: fn, Request: &typesv1.HttpRequest{Method: "GET"}})
}

// waitFor polls cond (a state, never a duration) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// After warm-up, a steady load of more concurrent callers than call
// workers starts no instance: the idle cap follows the function's
// concurrency instead of max_idle_per_function, every call is served by a
// worker and billed.
func TestWorkers_SteadyLoadStartsNoInstances(t *testing.T) {
	const workers, callers, calls = 4, 8, 25
	h := newWorkersHarness(t, func(c *Config) {
		c.CallWorkers = workers
		c.CallWorkerWait = time.Hour // every call waits for a worker: none overflows
		c.MaxIdlePerFunction = 1
	})
	id := ids.StackID{0x31}
	h.deployDirect(t, id, manifestFor, wat(t, okWAT))
	load := func() {
		var wg sync.WaitGroup
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range calls {
					resp, err := invokeFn(context.Background(), h.srv, id, "fn.handler")
					if err != nil || resp.GetResponse().GetStatus() != 200 {
						t.Errorf("call: %v %v", resp, err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	key := h.srv.stacks[id].functions["fn"].poolKey
	waitFor(t, "the warm-up brings the function to an idle instance per worker", func() bool {
		load()
		idle, _ := h.srv.pool.Stats(key)
		return idle == workers || t.Failed()
	})
	m := h.srv.metrics
	started := testutil.ToFloat64(m.instancesStarted)
	ok := testutil.ToFloat64(m.invocationsOK)
	if err := h.srv.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	billed := h.usage.Total(id, usage.FunctionMBInstructions)
	load()
	if got := testutil.ToFloat64(m.instancesStarted) - started; got != 0 {
		t.Errorf("%v instances started by %d steady calls, want 0", got, callers*calls)
	}
	if got := testutil.ToFloat64(m.invocationsOK) - ok; got != callers*calls {
		t.Errorf("%v calls ok, want %d", got, callers*calls)
	}
	if idle, active := h.srv.pool.Stats(key); idle != workers || active != 0 {
		t.Errorf("idle %d active %d, want %d idle", idle, active, workers)
	}
	for reason, c := range map[string]float64{"wait": testutil.ToFloat64(m.workers.overflowWait),
		"host_call": testutil.ToFloat64(m.workers.overflowHostCall), "closed": testutil.ToFloat64(m.workers.overflowClosed)} {
		if c != 0 {
			t.Errorf("%v calls overflowed (%s), want 0", c, reason)
		}
	}
	if got := testutil.ToFloat64(m.workers.busy); got != 0 {
		t.Errorf("%v workers busy after the load", got)
	}
	// Every warm call costs the same fuel, so the steady calls' bill is
	// exact: each one's megabyte-instructions, once.
	resp, err := invokeFn(context.Background(), h.srv, id, "fn.handler")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := h.usage.Total(id, usage.FunctionMBInstructions)-billed, (callers*calls+1)*resp.GetMbInstructions(); got != want {
		t.Errorf("billed %d, want %d", got, want)
	}
}

// A stack whose calls spin on every call worker does not hold up another
// stack's call: it waits call_worker_wait for a worker, then runs on its
// own goroutine and completes while the spinners still run. The spinners
// end at their deadline, billed.
func TestWorkers_SpinningStackLeavesNeighboursTheirTime(t *testing.T) {
	const workers = 2
	h := newWorkersHarness(t, func(c *Config) {
		c.CallWorkers = workers
		c.CallWorkerWait = time.Millisecond
		c.CallTimeout = 3 * time.Second
		c.MaxFuelPerCall = 1 << 50 // the deadline, not the fuel, ends a spinner
	})
	spinner, neighbour := ids.StackID{0x32}, ids.StackID{0x33}
	h.deployDirect(t, spinner, manifestFor, wat(t, spinWAT))
	h.deployDirect(t, neighbour, manifestFor, wat(t, okWAT))
	m := h.srv.metrics

	spun := make(chan *runtimev1.InvokeResponse, workers)
	for range workers {
		go func() {
			resp, err := invokeFn(context.Background(), h.srv, spinner, "fn.handler")
			if err != nil {
				t.Errorf("spinner: %v", err)
			}
			spun <- resp
		}()
	}
	waitFor(t, "the spinners hold every call worker", func() bool { return testutil.ToFloat64(m.workers.busy) == workers })

	resp, err := invokeFn(context.Background(), h.srv, neighbour, "fn.handler")
	if err != nil || resp.GetError() != nil || resp.GetResponse().GetStatus() != 200 {
		t.Fatalf("neighbour: %v %v", resp, err)
	}
	if len(spun) != 0 {
		t.Fatal("a spinner ended before the neighbour's call: the test proved nothing")
	}
	if got := testutil.ToFloat64(m.workers.overflowWait); got != 1 {
		t.Errorf("%v calls ran on their own goroutine after call_worker_wait, want 1", got)
	}
	if got := testutil.ToFloat64(m.workers.waited); got != 1 {
		t.Errorf("%v calls waited for a worker, want 1", got)
	}
	var spinnerBill uint64
	for range workers {
		r := <-spun
		if r.GetError().GetKind() != runtimev1.InvokeError_KIND_DEADLINE_EXCEEDED || r.GetFuelUsed() == 0 || r.GetMbInstructions() != 3*r.GetFuelUsed() {
			t.Errorf("spinner: %v", r)
		}
		spinnerBill += r.GetMbInstructions()
	}
	if err := h.srv.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := h.usage.Total(spinner, usage.FunctionMBInstructions); got != spinnerBill {
		t.Errorf("spinners billed %d, want %d", got, spinnerBill)
	}
	if got := h.usage.Total(neighbour, usage.FunctionMBInstructions); got != resp.GetMbInstructions() {
		t.Errorf("neighbour billed %d, want %d", got, resp.GetMbInstructions())
	}
	waitFor(t, "the workers are free again", func() bool { return testutil.ToFloat64(m.workers.busy) == 0 })
}

// A call blocked in a db host call on the only call worker does not make
// another stack's call wait for it, however long call_worker_wait is: it
// runs on its own goroutine at once. The blocked call ends when its
// caller gives up, billed for its fuel.
func TestWorkers_CallBlockedInHostCallLetsOthersRun(t *testing.T) {
	bin := dbFunc(t)
	fake := newFakeMudb()
	h := newDBHarness(t, func(c *Config) {
		c.MudbAddr = serveFakeMudb(t, fake)
		c.CallWorkers = 1
		c.CallWorkerWait = time.Hour
	}, Deps{})
	blocked, neighbour := ids.StackID{0x34}, ids.StackID{0x35}
	if err := h.deployDB(t, blocked, 1, bin); err != nil {
		t.Fatal(err)
	}
	if err := h.deploy(t, neighbour, 1, wat(t, okWAT)); err != nil {
		t.Fatal(err)
	}
	m := h.srv.metrics

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan *runtimev1.InvokeResponse, 1)
	go func() {
		resp, err := h.srv.Invoke(ctx, &runtimev1.InvokeRequest{StackId: blocked.Bytes(), Function: "fn.get",
			Request: &typesv1.HttpRequest{Method: "GET", QueryParams: map[string]string{"key": "block"}}})
		if err != nil {
			t.Errorf("blocked call: %v", err)
		}
		done <- resp
	}()
	waitFor(t, "the call is inside its db call on the worker", func() bool {
		return testutil.ToFloat64(m.workers.busy) == 1 && h.srv.workers.blocked.Load() == 1
	})

	resp, err := invokeFn(context.Background(), h.srv, neighbour, "fn.handler")
	if err != nil || resp.GetResponse().GetStatus() != 200 {
		t.Fatalf("neighbour: %v %v", resp, err)
	}
	if len(done) != 0 {
		t.Fatal("the blocked call ended before the neighbour's")
	}
	if got := testutil.ToFloat64(m.workers.overflowHostCall); got != 1 {
		t.Errorf("%v calls ran beside a blocked worker, want 1", got)
	}
	if got := testutil.ToFloat64(m.workers.waited); got != 0 {
		t.Errorf("%v calls waited for a worker, want 0", got)
	}

	cancel()
	r := <-done
	if r.GetError().GetKind() != runtimev1.InvokeError_KIND_DEADLINE_EXCEEDED || r.GetFuelUsed() == 0 || r.GetMbInstructions() != 32*r.GetFuelUsed() {
		t.Errorf("blocked call after its caller gave up: %v", r)
	}
	waitFor(t, "the worker is free again", func() bool {
		return testutil.ToFloat64(m.workers.busy) == 0 && h.srv.workers.blocked.Load() == 0
	})
}

// A call whose context ends while it waits for a worker does not run and
// gets the status of any call that ran out of time waiting for capacity:
// RESOURCE_EXHAUSTED/CAPACITY_EXHAUSTED at its deadline, CANCELED when its
// caller went away. Neither is billed.
func TestWorkers_ContextEndingWhileWaitingForAWorker(t *testing.T) {
	h := newWorkersHarness(t, func(c *Config) {
		c.CallWorkers = 1
		c.CallWorkerWait = time.Hour
		c.CallTimeout = 3 * time.Second
		c.MaxFuelPerCall = 1 << 50
	})
	spinner, waiter := ids.StackID{0x36}, ids.StackID{0x37}
	h.deployDirect(t, spinner, manifestFor, wat(t, spinWAT))
	h.deployDirect(t, waiter, manifestFor, wat(t, okWAT))
	m := h.srv.metrics
	spun := make(chan struct{})
	go func() {
		defer close(spun)
		if _, err := invokeFn(context.Background(), h.srv, spinner, "fn.handler"); err != nil {
			t.Errorf("spinner: %v", err)
		}
	}()
	waitFor(t, "the spinner holds the worker", func() bool { return testutil.ToFloat64(m.workers.busy) == 1 })

	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	_, err := invokeFn(dctx, h.srv, waiter, "fn.handler")
	if code(err) != codes.ResourceExhausted || rpcerr.ReasonOf(err) != rpcerr.CapacityExhausted {
		t.Errorf("deadline while waiting: %v (reason %q)", err, rpcerr.ReasonOf(err))
	}
	cctx, ccancel := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() {
		_, err := invokeFn(cctx, h.srv, waiter, "fn.handler")
		cancelled <- err
	}()
	waitFor(t, "the call waits for the worker", func() bool { return h.srv.workers.nwait.Load() == 1 })
	ccancel()
	if err := <-cancelled; code(err) != codes.Canceled {
		t.Errorf("cancelled while waiting: %v", err)
	}
	if got := testutil.ToFloat64(m.workers.waited); got != 2 {
		t.Errorf("%v calls waited, want 2", got)
	}
	<-spun
	if err := h.srv.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := h.usage.Total(waiter, usage.FunctionMBInstructions); got != 0 {
		t.Errorf("calls that never ran were billed %d", got)
	}
	if got := testutil.ToFloat64(m.invocationsOK); got != 0 {
		t.Errorf("%v calls ran", got)
	}
}

// A panic on a worker is raised again on the caller's goroutine (where
// gRPC's recovery turns it into INTERNAL) and the worker lives on.
func TestWorkers_PanicOnAWorkerReachesTheCaller(t *testing.T) {
	m, _ := newWorkerMetrics()
	w := newCallWorkers(1, time.Hour, m)
	defer w.stop()
	inv := &invocation{done: make(chan struct{}, 1)}
	inv.s = nil // run panics on the nil server
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not reach the caller")
			}
		}()
		_ = w.do(context.Background(), inv)
	}()
	if len(w.idle) != 1 {
		t.Fatalf("%d idle workers after the panic, want 1", len(w.idle))
	}
}

func TestConfig_CallWorkersValidated(t *testing.T) {
	if got, want := DefaultConfig().CallWorkers, 2*goruntime.GOMAXPROCS(0); got != want {
		t.Errorf("default call_workers %d, want 2 × GOMAXPROCS = %d", got, want)
	}
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.CallWorkers = 0
	cfg.CallWorkerWait = -time.Millisecond
	err := cfg.Validate()
	for _, field := range []string{"call_workers:", "call_worker_wait:"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%v does not name %s", err, field)
		}
	}
}

// Calls waiting for a worker when the workers stop run on their own
// goroutines, as do later calls; none is lost.
func TestWorkers_StopReleasesWaitersAndLaterCalls(t *testing.T) {
	m, _ := newWorkerMetrics()
	w := newCallWorkers(1, time.Hour, m)
	hold, ran := make(chan struct{}), make(chan string, 3)
	go func() {
		wk, err := w.acquire(context.Background())
		if err != nil || wk == nil {
			t.Errorf("first acquire: %v %v", wk, err)
		}
		<-hold
		if wk.release() {
			t.Error("a worker released after stop is kept")
		}
		close(wk.jobs)
		ran <- "first"
	}()
	waitFor(t, "the worker is taken", func() bool { w.mu.Lock(); defer w.mu.Unlock(); return len(w.idle) == 0 })
	go func() {
		wk, err := w.acquire(context.Background())
		if err != nil || wk != nil {
			t.Errorf("waiter after stop: %v %v, want its own goroutine", wk, err)
		}
		ran <- "waiter"
	}()
	waitFor(t, "a call waits", func() bool { return w.nwait.Load() == 1 })
	w.stop()
	if got := <-ran; got != "waiter" {
		t.Fatalf("%s ran first", got)
	}
	if wk, err := w.acquire(context.Background()); wk != nil || err != nil {
		t.Errorf("acquire after stop: %v %v", wk, err)
	}
	close(hold)
	<-ran
	if got := testutil.ToFloat64(m.overflowClosed); got != 2 {
		t.Errorf("%v calls overflowed as closed, want 2", got)
	}
	if got := testutil.ToFloat64(m.overflowHostCall) + testutil.ToFloat64(m.overflowWait); got != 0 {
		t.Errorf("%v overflows counted under other reasons", got)
	}
}
