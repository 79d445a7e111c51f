package region

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/usage"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	"github.com/muprotocol/mu/services/runtime"
)

// The adversarial suite (issue #8, conventions: "Think like the person who
// attacks it"): every way a hostile function can end a call, through a
// real gateway and a real runtime in this process. For each it checks the
// HTTP status, the JSON error kind, what the stack is billed (see
// services/runtime/internal/wasm/metering.go for what each ending bills)
// and that a neighbour stack, hammered for the whole suite, never fails.

const (
	// advTimeout and advFuel are the runtime's CallTimeout and
	// MaxFuelPerCall in the suite: small, so that every call ends quickly,
	// and far apart, so that what should run out of fuel does so well
	// before its deadline even on a loaded 2-core machine (200 M fuel of
	// a spinning loop take 0.1-0.2 s there).
	advTimeout = 2 * time.Second
	advFuel    = 200_000_000
	// advSlack is the most a call billed its budget may be billed on top
	// of it: its instance's start-up (a few instructions for the WAT
	// modules; the Go cases run on warm instances), the request's bytes
	// and the host charges not yet taken from the store.
	advSlack = 1 << 20
	// advOverrun is a generous bound on how far past its deadline any call
	// may answer (deadline correctness, not performance).
	advOverrun = 5 * time.Second
)

// billing is what a call is billed, by how it ended (metering.go).
type billing int

const (
	// billExact: the exact count of what ran, less than the budget (a
	// result, a FatalError, anything the host ends from inside an import,
	// unreachable, a stack overflow).
	billExact billing = iota + 1
	// billBudget: the whole budget (out of fuel: all of it ran; the epoch
	// deadline and other traps: the count is lost, the budget bounds it).
	billBudget
	// billRanOut: whichever of fuel or deadline came first (floods): the
	// budget if fuel, exact or the budget if the deadline.
	billRanOut
)

// outcome is a gateway answer: its status and JSON error kind.
type outcome struct {
	status int
	kind   string
}

var (
	fuelExhausted = outcome{http.StatusInternalServerError, "fuel_exhausted"}
	deadline      = outcome{http.StatusGatewayTimeout, "deadline_exceeded"}
	memoryLimit   = outcome{http.StatusBadGateway, "memory_limit"}
	crash         = outcome{http.StatusBadGateway, "crash"}
	protocolError = outcome{http.StatusBadGateway, "protocol"}
	functionError = outcome{http.StatusInternalServerError, "function_error"}
)

// answer is what the gateway answered one request.
type answer struct {
	outcome
	message string
	body    string
	elapsed time.Duration
}

func (a answer) String() string {
	return fmt.Sprintf("%d %s %q after %v", a.status, a.kind, a.message, a.elapsed.Round(time.Millisecond))
}

var advClient = &http.Client{Timeout: time.Minute}

// send makes one request and decodes the gateway's JSON error body, if any.
func send(t *testing.T, method, url string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := advClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	a := answer{outcome: outcome{status: resp.StatusCode}, body: string(b), elapsed: time.Since(start)}
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	if resp.StatusCode >= 400 {
		var eb errorBody
		if err := json.Unmarshal(b, &eb); err != nil {
			t.Fatalf("%s %s: %d %q is not a JSON error", method, url, resp.StatusCode, b)
		}
		a.kind, a.message = eb.Error.Kind, eb.Error.Message
	}
	return a
}

// neighbour hammers a well-behaved stack from its own goroutine and
// records every request that did not get 200, with the phase of the suite
// it happened in.
type neighbour struct {
	url      string
	phase    atomic.Pointer[string]
	served   atomic.Int64
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	failures []string
}

func startNeighbour(url string) *neighbour {
	n := &neighbour{url: url, stop: make(chan struct{}), done: make(chan struct{})}
	n.during("start")
	go func() {
		defer close(n.done)
		for {
			select {
			case <-n.stop:
				return
			default:
			}
			resp, err := advClient.Get(n.url)
			ok := err == nil && resp.StatusCode == 200
			if resp != nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if ok {
				n.served.Add(1)
				continue
			}
			n.mu.Lock()
			if len(n.failures) < 20 {
				n.failures = append(n.failures, fmt.Sprintf("during %s: %v %v", *n.phase.Load(), err, resp))
			}
			n.mu.Unlock()
		}
	}()
	return n
}

func (n *neighbour) during(phase string) { n.phase.Store(&phase) }

// check fails t for every failure so far.
func (n *neighbour) check(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, f := range n.failures {
		t.Errorf("neighbour: %s", f)
	}
	n.failures = nil
}

func (n *neighbour) finish(t *testing.T) {
	t.Helper()
	close(n.stop)
	<-n.done
	n.check(t)
	if n.served.Load() == 0 {
		t.Error("the neighbour was never served")
	}
	t.Logf("the neighbour served %d requests during the suite", n.served.Load())
}

// advRegion is the region of the suite: a runtime with small budgets and a
// gateway, with the neighbour (examples/hello) deployed and hammered.
type advRegion struct {
	*Region
	p         *path // the gateway's path to the runtime; endings are recorded on it
	hello     *manifest.Manifest
	helloBins map[string][]byte
	neighbour *neighbour
}

func startAdvRegion(t *testing.T, p *path) *advRegion {
	t.Helper()
	r := p.start(t, Options{Runtime: &RuntimeOptions{Config: func(_ int, c *runtime.Config) {
		c.CallTimeout = advTimeout
		c.MaxFuelPerCall = advFuel
	}}})
	a := &advRegion{Region: r, p: p}
	a.hello, a.helloBins = stackFromDir(t, "../examples/hello")
	id := a.deploy(t, a.hello, a.helloBins)
	a.neighbour = startNeighbour(a.url(id, "greeting", "/greet/neighbour"))
	return a
}

// deploy deploys m as a new stack and returns its id.
func (a *advRegion) deploy(t *testing.T, m *manifest.Manifest, bins map[string][]byte) ids.StackID {
	t.Helper()
	id, _, err := ids.NewStackID()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Deploy(context.Background(), id, 1, m, bins); err != nil {
		t.Fatal(err)
	}
	return id
}

func (a *advRegion) url(id ids.StackID, gateway, path string) string {
	return "http://" + a.Gateway().Addr() + "/" + id.String() + "/" + gateway + path
}

// billed is the megabyte-instructions billed to stack so far.
func (a *advRegion) billed(t *testing.T, stack ids.StackID) uint64 {
	t.Helper()
	if err := a.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	return a.Usage.Total(stack, usage.FunctionMBInstructions)
}

// streamLogs subscribes to the runtime's logs of stack and returns once
// the runtime has registered the subscription. The suite's subscriptions
// are its only ones, one at a time: it first waits for earlier ones to be
// gone.
func (a *advRegion) streamLogs(t *testing.T, stack ids.StackID) (runtimev1.RuntimeService_StreamLogsClient, context.CancelFunc) {
	t.Helper()
	hub := a.Runtime().Server().Logs()
	waitFor := func(what string, ok func() bool) {
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
		}
	}
	waitFor("an earlier log stream never unsubscribed", func() bool { return hub.Subscribers() == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	stream, err := a.Runtime().Client().StreamLogs(ctx, &runtimev1.StreamLogsRequest{StackId: stack.Bytes()})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	waitFor("the log stream never subscribed", func() bool { return hub.Subscribers() > 0 })
	return stream, cancel
}

// stderrLines counts the stderr lines the runtime streams for stack until
// stop is called, which returns the count.
func (a *advRegion) stderrLines(t *testing.T, stack ids.StackID) (stop func() int) {
	t.Helper()
	stream, cancel := a.streamLogs(t, stack)
	var lines atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			e, err := stream.Recv()
			if err != nil {
				return
			}
			if e.GetEntry().GetSource() == runtimev1.LogSource_LOG_SOURCE_STDERR {
				lines.Add(1)
			}
		}
	}()
	return func() int {
		// Lines are streamed after they were written; wait (generously)
		// for the first to arrive, then take what has come.
		for deadline := time.Now().Add(10 * time.Second); lines.Load() == 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		<-done
		return int(lines.Load())
	}
}

// checkAnswer checks a hostile call's answer: one of the outcomes wanted,
// a message containing msg, and an answer within advOverrun of the
// deadline.
func checkAnswer(t *testing.T, got answer, want []outcome, msg string) {
	t.Helper()
	ok := false
	for _, w := range want {
		ok = ok || got.outcome == w
	}
	if !ok || !strings.Contains(got.message, msg) {
		t.Errorf("got %v, want one of %v with a message containing %q", got, want, msg)
	}
	if got.elapsed > advTimeout+advOverrun {
		t.Errorf("answered after %v, past the %v deadline", got.elapsed, advTimeout)
	}
}

// checkFuel checks the fuel billed for one call (megabyte-instructions
// divided by the memory_limit in MiB) against how the call ended.
func checkFuel(t *testing.T, fuel uint64, b billing, got outcome) {
	t.Helper()
	inBudget := fuel >= advFuel && fuel <= advFuel+advSlack
	switch {
	case fuel == 0:
		t.Errorf("billed nothing")
	case b == billExact && fuel >= advFuel:
		t.Errorf("billed %d fuel, not an exact count under the %d budget", fuel, advFuel)
	case b == billBudget && !inBudget:
		t.Errorf("billed %d fuel, want the budget %d (at most %d more)", fuel, advFuel, advSlack)
	case b == billRanOut && got == fuelExhausted && !inBudget:
		t.Errorf("ran out of fuel but billed %d fuel, want the budget %d (at most %d more)", fuel, advFuel, advSlack)
	}
}

// The suite runs on both paths from the gateway to the runtime (in
// process and over gRPC); every ending of the go and wat cases, and the
// exact bills, must be the same on both.
func TestAdversarial_HostileFunctionsAreStoppedBilledAndIsolated(t *testing.T) {
	bothPaths(t, func(t *testing.T, p *path) {
		start := time.Now()
		r := startAdvRegion(t, p)
		t.Run("go", func(t *testing.T) { testHostileGo(t, r) })
		t.Run("wat", func(t *testing.T) { testHostileWAT(t, r) })
		t.Run("refused", func(t *testing.T) { testRefusedAtDeploy(t, r) })
		t.Run("undeploy-mid-call", func(t *testing.T) { testUndeployMidCall(t, r) })
		t.Run("undeploy-race", func(t *testing.T) { testUndeployRace(t, r) })
		r.neighbour.finish(t)
		t.Logf("suite ran %v", time.Since(start).Round(time.Millisecond))
	})
}

// testHostileGo: the Go function in testdata/misbehave (the SDK, built as
// a reactor like every mu build), one handler per hostile behaviour.
func testHostileGo(t *testing.T, r *advRegion) {
	m, bins := stackFromDir(t, "testdata/misbehave")
	id := r.deploy(t, m, bins)
	mib := m.Functions[0].MemoryLimit.MiBCeil()
	cases := []struct {
		path string
		want []outcome
		msg  string
		bill billing
		// logLine is the least bytes of each stderr line the handler
		// writes, if it floods stderr: each line it was billed for
		// costs at least logLine/8 fuel (BulkBytesPerFuel).
		logLine int
	}{
		{"/spin", []outcome{fuelExhausted}, "whole fuel budget", billBudget, 0},
		// 8 MiB cleared and 4 MiB copied per iteration (memory.fill and
		// memory.copy): 1.5 M fuel each, out of fuel in ~130 iterations.
		{"/bulk", []outcome{fuelExhausted}, "whole fuel budget", billBudget, 0},
		{"/sleep", []outcome{deadline}, "while sleeping", billExact, 0},
		{"/hog", []outcome{memoryLimit}, "refused at the 33554432-byte limit", billExact, 0},
		{"/exit", []outcome{crash}, "function exited with status 3", billExact, 0},
		{"/recurse", []outcome{crash}, "wasm trap: call stack exhausted", billExact, 0},
		{"/garbage", []outcome{protocolError}, "invalid frame on stdout: fnproto: unknown from-function kind 48879", billExact, 0},
		{"/oversize", []outcome{protocolError}, "frame of 2147483647 bytes exceeds limit of 8388608", billExact, 0},
		{"/panic", []outcome{functionError}, "boom", billExact, 0},
		{"/flood", []outcome{fuelExhausted, deadline}, "", billRanOut, 1002},
	}
	for _, tc := range cases {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			r.neighbour.during("go" + tc.path)
			// A warm instance first, so the hostile call is billed no
			// start-up (its predecessor's replacement is billed to /ok).
			if a := send(t, "GET", r.url(id, "api", "/ok"), nil); a.status != 200 || a.body != "ok" {
				t.Fatalf("/ok before: %v %q", a, a.body)
			}
			before := r.billed(t, id)
			var lines func() int
			if tc.logLine > 0 {
				lines = r.stderrLines(t, id)
			}
			got := send(t, "GET", r.url(id, "api", tc.path), nil)
			checkAnswer(t, got, tc.want, tc.msg)
			if len(tc.want) == 1 { // a flood ends on whichever limit comes first
				r.p.record(t, "go"+tc.path, "%d %s", got.status, got.kind)
			}
			mbi := r.billed(t, id) - before
			if mbi%mib != 0 {
				t.Fatalf("billed %d megabyte-instructions, not a multiple of %d MiB", mbi, mib)
			}
			fuel := mbi / mib
			checkFuel(t, fuel, tc.bill, got.outcome)
			if lines != nil {
				n := lines()
				if n == 0 {
					t.Error("the flood's lines never reached the log stream")
				}
				if min := uint64(n) * uint64(tc.logLine/8); fuel < min {
					t.Errorf("%d lines of at least %d bytes billed %d fuel, less than their bytes' %d", n, tc.logLine, fuel, min)
				}
				t.Logf("%v, %d lines streamed, billed %d fuel", got, n, fuel)
			} else {
				t.Logf("%v, billed %d fuel", got, fuel)
			}
			// The stack itself keeps working, and so does the neighbour.
			if a := send(t, "GET", r.url(id, "api", "/ok"), nil); a.status != 200 {
				t.Errorf("/ok after: %v", a)
			}
			r.neighbour.check(t)
		})
	}
}

// watCommand is a command-mode module speaking the stdio protocol, as
// other SDKs build them: _start reads each request into memory at 1024
// ($n holds the bytes read, the whole frame), runs body and answers 200
// "hi". memory declares its memory (default one page); decls adds fields.
func watCommand(memory, decls, body string) string {
	if memory == "" {
		memory = `(memory (export "memory") 1)`
	}
	return `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  ` + memory + `
  (data (i32.const 256) "\0e\00\00\00\02\00\c8\00\00\00\00\00\02\00\00\00hi") ;; FunctionResult 200 "hi"
  (data (i32.const 300) "\06\00\00\00\ef\bejunk")  ;; a frame of kind 48879, which names nothing
  (data (i32.const 340) "\ff\ff\ff\7f\02\00")      ;; the head of a 2 GiB FunctionResult
  (data (i32.const 360) "\f8\ff\7f\00\ef\be")      ;; the head of an 8 MiB - 8 frame of kind 48879
  (func $read (result i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 60000))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
    (i32.load (i32.const 16)))
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 8) (local.get $ptr))
    (i32.store (i32.const 12) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 8) (i32.const 1) (i32.const 20))))
  (func $recurse (param i32) (call $recurse (i32.add (local.get 0) (i32.const 1))))
  ;; Spins on a host call: about 100 ns and 5 fuel an iteration, far too
  ;; slow to spend advFuel within advTimeout.
  (func $clockspin (loop $c (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 32))) (br $c)))
  ` + decls + `
  (func (export "_start") (local $n i32) (local $i i32)
    (loop $serve
      (local.set $n (call $read))
      (if (i32.eqz (local.get $n)) (then (return)))
      ` + body + `
      (call $write (i32.const 1) (i32.const 256) (i32.const 18))
      (br $serve))))`
}

// watLoopN runs $n iterations of 8 metered operators: a request 8000
// bytes longer runs 64,000 more instructions, and its bytes cost 1,000
// more fuel (BulkBytesPerFuel 8).
const watLoopN = `(local.set $i (local.get $n))
      (block $done (loop $l
        (br_if $done (i32.eqz (local.get $i)))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $l)))
      `

// watSleep sleeps d with one relative clock subscription of poll_oneoff
// and traps unless it slept without error.
func watSleep(d time.Duration) string {
	return fmt.Sprintf(`(i64.store (i32.const 64) (i64.const 7)) (i32.store8 (i32.const 72) (i32.const 0))
      (i32.store (i32.const 80) (i32.const 1)) (i64.store (i32.const 88) (i64.const %d))
      (i64.store (i32.const 96) (i64.const 0)) (i32.store16 (i32.const 104) (i32.const 0))
      (if (call $poll (i32.const 64) (i32.const 128) (i32.const 1) (i32.const 24)) (then unreachable))
      `, d.Nanoseconds())
}

// watManifest is a one-function stack serving POST /x with binary.
func watManifest(t *testing.T, binary, memoryLimit string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse([]byte(fmt.Sprintf(`name: hostile
version: "1"
services:
  - type: Function
    name: fn
    binary: %s
    runtime: wasi1.0
    memory_limit: %s
  - type: Gateway
    name: api
    endpoints:
      /x: {post: fn.handler}
`, binary, memoryLimit)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// watStack compiles src and returns its stack's manifest and binaries.
func watStack(t *testing.T, src, memoryLimit string) (*manifest.Manifest, map[string][]byte) {
	t.Helper()
	bin, err := wasmtime.Wat2Wasm(src)
	if err != nil {
		t.Fatalf("wat: %v", err)
	}
	id := ids.BinaryID(bin)
	return watManifest(t, id, memoryLimit), map[string][]byte{id: bin}
}

// testHostileWAT: what Go cannot express, or expresses only through its
// runtime, as WAT modules deployed through the runtime's gRPC Deploy with
// inline binaries. Each case is its own stack, called twice, with request
// bodies 8000 bytes apart: where the count is exact the longer call is
// billed exactly the 64,000 instructions and 1,000 fuel of bytes more
// (watLoopN); where the call is billed its budget, only the bytes more.
func testHostileWAT(t *testing.T, r *advRegion) {
	const (
		shortBody = 1000 // both sizes have four digits: the Content-Length
		longBody  = 9000 // header costs the same
		moreRan   = 8 * (longBody - shortBody)
		moreBytes = (longBody - shortBody) / 8
	)
	const mem4 = "4MiB"
	cases := []struct {
		name        string
		memory      string // the module's memory declaration; "" for one page
		decls, body string
		limit       string // memory_limit
		want        []outcome
		msg         string
		bill        billing
		logLine     int  // see testHostileGo
		once        bool // one call only: the flood's count depends on time
	}{
		{name: "unreachable", body: watLoopN + `unreachable`, limit: mem4,
			want: []outcome{crash}, msg: "wasm trap: wasm `unreachable` instruction executed", bill: billExact},
		{name: "divide-by-zero", body: watLoopN + `(drop (i32.div_u (local.get $n) (i32.sub (local.get $n) (local.get $n))))`, limit: mem4,
			want: []outcome{crash}, msg: "wasm trap: integer divide by zero", bill: billBudget},
		{name: "out-of-bounds", body: watLoopN + `(drop (i32.load (i32.const -16)))`, limit: mem4,
			want: []outcome{crash}, msg: "memory fault at wasm address 0xfffffff0 in linear memory of size 0x10000: out of bounds memory access", bill: billBudget},
		{name: "deep-recursion", body: watLoopN + `(call $recurse (i32.const 0))`, limit: mem4,
			want: []outcome{crash}, msg: "wasm trap: call stack exhausted", bill: billExact},
		{name: "exit", body: watLoopN + `(call $proc_exit (i32.const 3))`, limit: mem4,
			want: []outcome{crash}, msg: "function exited with status 3", bill: billExact},
		{name: "garbage-frame", body: watLoopN + `(call $write (i32.const 1) (i32.const 300) (i32.const 10))`, limit: mem4,
			want: []outcome{protocolError}, msg: "unknown from-function kind 48879", bill: billExact},
		{name: "oversized-frame", body: watLoopN + `(call $write (i32.const 1) (i32.const 340) (i32.const 6))`, limit: mem4,
			want: []outcome{protocolError}, msg: "frame of 2147483647 bytes exceeds limit of 8388608", bill: billExact},
		// The head of a frame just under the limit, then 64 KiB writes
		// for ever: the host buffers the frame (bounded by its limit)
		// and refuses it once complete.
		{name: "stdout-flood", memory: `(memory (export "memory") 2)`,
			body: watLoopN + `(call $write (i32.const 1) (i32.const 360) (i32.const 6))
      (loop $f (call $write (i32.const 1) (i32.const 65536) (i32.const 65536)) (br $f))`, limit: mem4,
			want: []outcome{protocolError}, msg: "unknown from-function kind 48879", bill: billExact},
		{name: "memory-bomb", body: watLoopN + `(block $b (loop $g (br_if $b (i32.eq (memory.grow (i32.const 16)) (i32.const -1))) (br $g))) unreachable`, limit: mem4,
			want: []outcome{memoryLimit}, msg: "refused at the 4194304-byte limit", bill: billExact},
		// A table that grows is reserved max_table_elements (8 MiB) of
		// the 16 MiB memory_limit; past that its grows are refused.
		{name: "table-bomb", decls: `(table $t 1 funcref)`,
			body:  watLoopN + `(block $b (loop $g (br_if $b (i32.eq (table.grow $t (ref.null func) (i32.const 65536)) (i32.const -1))) (br $g))) unreachable`,
			limit: "16MiB", want: []outcome{memoryLimit}, msg: "refused at the 16777216-byte limit", bill: billExact},
		// Whole-memory fills and copies: 1 MiB and 512 KiB, 196,608 fuel
		// an iteration, out of fuel in ~1,000 (unmetered they would be 2
		// instructions each and run until the deadline).
		{name: "bulk-fill", memory: `(memory (export "memory") 16)`,
			body: watLoopN + `(loop $f
        (memory.fill (i32.const 0) (i32.const 171) (i32.const 1048576))
        (memory.copy (i32.const 0) (i32.const 524288) (i32.const 524288))
        (br $f))`, limit: mem4, want: []outcome{fuelExhausted}, msg: "whole fuel budget", bill: billBudget},
		// One fill of 4 GiB - 1 bytes: it would trap out of bounds, but
		// its 536,870,911 fuel are burnt first, and the budget is less.
		{name: "huge-fill", body: watLoopN + `(memory.fill (i32.const 0) (i32.const 0) (i32.const -1))`, limit: mem4,
			want: []outcome{fuelExhausted}, msg: "whole fuel budget", bill: billBudget},
		{name: "table-fill", decls: `(table $t 65536 funcref)`,
			body:  watLoopN + `(loop $f (table.fill $t (i32.const 0) (ref.null func) (i32.const 65536)) (br $f))`,
			limit: mem4, want: []outcome{fuelExhausted}, msg: "whole fuel budget", bill: billBudget},
		// Computing past the deadline (after sleeping most of it, so
		// that the slow spin has even less time to spend its budget):
		// the epoch check kills it and the count is lost, so the budget
		// is billed.
		{name: "compute-past-deadline", body: watLoopN + watSleep(advTimeout*3/4) + `(call $clockspin)`, limit: mem4,
			want: []outcome{deadline}, msg: "the call ran past its wall-clock deadline", bill: billBudget},
		// Sleeping past it: the host sees the deadline, the count is exact.
		{name: "sleep-past-deadline", body: watLoopN + watSleep(time.Hour), limit: mem4,
			want: []outcome{deadline}, msg: "deadline while sleeping", bill: billExact},
		// 1 KiB lines on stderr for ever: logs, until fuel or deadline.
		{name: "stderr-flood", body: `(memory.fill (i32.const 61440) (i32.const 120) (i32.const 1023))
      (i32.store8 (i32.const 62463) (i32.const 10))
      (loop $f (call $write (i32.const 2) (i32.const 61440) (i32.const 1024)) (br $f))`, limit: mem4,
			want: []outcome{fuelExhausted, deadline}, bill: billRanOut, logLine: 1024, once: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r.neighbour.during("wat/" + tc.name)
			m, bins := watStack(t, watCommand(tc.memory, tc.decls, tc.body), tc.limit)
			id := r.deploy(t, m, bins)
			mib := m.Functions[0].MemoryLimit.MiBCeil()
			var fuel []uint64
			sizes := []int{shortBody, longBody}
			if tc.once {
				sizes = sizes[:1]
			}
			for _, size := range sizes {
				before := r.billed(t, id)
				var lines func() int
				if tc.logLine > 0 {
					lines = r.stderrLines(t, id)
				}
				got := send(t, "POST", r.url(id, "api", "/x"), bytes.Repeat([]byte("x"), size))
				checkAnswer(t, got, tc.want, tc.msg)
				mbi := r.billed(t, id) - before
				if mbi%mib != 0 {
					t.Fatalf("billed %d megabyte-instructions, not a multiple of %d MiB", mbi, mib)
				}
				f := mbi / mib
				checkFuel(t, f, tc.bill, got.outcome)
				if len(tc.want) == 1 {
					ending := fmt.Sprintf("%d %s", got.status, got.kind)
					if tc.bill == billExact { // what ran: the same instructions on both paths
						ending += fmt.Sprintf(", billed %d fuel", f)
					}
					r.p.record(t, fmt.Sprintf("wat/%s/%d", tc.name, size), "%s", ending)
				}
				if lines != nil {
					n := lines()
					if n == 0 {
						t.Error("the flood's lines never reached the log stream")
					}
					if min := uint64(n) * uint64(tc.logLine/8); f < min {
						t.Errorf("%d lines of %d bytes billed %d fuel, less than their bytes' %d", n, tc.logLine, f, min)
					}
					t.Logf("%v, %d lines streamed, billed %d fuel", got, n, f)
				} else {
					t.Logf("%d-byte body: %v, billed %d fuel", size, got, f)
				}
				fuel = append(fuel, f)
			}
			if len(fuel) == 2 {
				want := uint64(moreBytes)
				if tc.bill == billExact {
					want += moreRan
				}
				if fuel[1]-fuel[0] != want {
					t.Errorf("the longer request was billed %d fuel more (%d, %d), want %d", fuel[1]-fuel[0], fuel[0], fuel[1], want)
				}
			}
			r.neighbour.check(t)
		})
	}
}

// testRefusedAtDeploy: modules that would hold more than their
// memory_limit, or use features the engine leaves off, are refused at
// deploy: by Compile (InvalidArgument) or when the prewarmed instance
// cannot fit its memory_limit (FailedPrecondition, the memory limit). The
// gateway never routes to them and nothing is billed.
func testRefusedAtDeploy(t *testing.T, r *advRegion) {
	const grows = `(func (drop (table.grow $t (ref.null func) (i32.const 1))))`
	cases := []struct {
		name          string
		memory, decls string
		limit         string
		code          codes.Code
		msg           string
	}{
		// multi-memory is off: 16 memories would each get the limit.
		{name: "two-memories", memory: `(memory (export "memory") 1) (memory $extra 1)`, limit: "4MiB",
			code: codes.InvalidArgument, msg: "multiple memories"},
		// threads are off: a shared memory's atomic wait blocks a thread.
		{name: "shared-memory", memory: `(memory (export "memory") 1 1 shared)`, limit: "4MiB",
			code: codes.InvalidArgument, msg: "threads must be enabled for shared memories"},
		{name: "five-tables", decls: `(table 1 funcref) (table 1 funcref) (table 1 funcref) (table 1 funcref) (table 1 funcref)`, limit: "4MiB",
			code: codes.InvalidArgument, msg: "5 tables, at most 4 are served (max_tables)"},
		{name: "simd", decls: `(func (drop (v128.const i64x2 0 0)))`, limit: "4MiB",
			code: codes.InvalidArgument, msg: "SIMD support is not enabled"},
		{name: "memory-over-limit", memory: `(memory (export "memory") 100)`, limit: "4MiB",
			code: codes.FailedPrecondition, msg: "6553600 bytes of initial linear memory, more than its 4194304-byte memory_limit"},
		{name: "table-over-max-elements", decls: `(table 2000000 funcref)`, limit: "64MiB",
			code: codes.FailedPrecondition, msg: "table 0 starts with 2000000 elements, more than max_table_elements (1048576)"},
		{name: "table-over-limit", decls: `(table 600000 funcref)`, limit: "4MiB",
			code: codes.FailedPrecondition, msg: "needs 4800000 bytes of tables"},
		// A table that grows is reserved max_table_elements (8 MiB).
		{name: "growable-table-over-limit", decls: `(table $t 1 funcref) ` + grows, limit: "4MiB",
			code: codes.FailedPrecondition, msg: "needs 8388608 bytes of tables"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r.neighbour.during("refused/" + tc.name)
			m, bins := watStack(t, watCommand(tc.memory, tc.decls, ``), tc.limit)
			id, _, _ := ids.NewStackID()
			err := r.Deploy(context.Background(), id, 1, m, bins)
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("deploy: got %v, want %v containing %q", err, tc.code, tc.msg)
			}
			if tc.code == codes.InvalidArgument && !strings.Contains(err.Error(), "invalid wasm module") ||
				tc.code == codes.FailedPrecondition && !strings.Contains(err.Error(), "failed to start: memory limit exceeded") {
				t.Errorf("deploy: %v names neither an invalid module nor the memory limit", err)
			}
			t.Logf("refused: %v", err)
			if _, err := r.Runtime().Client().Status(context.Background(), &runtimev1.StatusRequest{StackId: id.Bytes()}); status.Code(err) != codes.NotFound {
				t.Errorf("the runtime kept the refused stack: %v", err)
			}
			if a := send(t, "POST", r.url(id, "api", "/x"), nil); a.outcome != (outcome{http.StatusNotFound, "stack_not_found"}) {
				t.Errorf("the refused stack's URL: %v", a)
			}
			if got := r.billed(t, id); got != 0 {
				t.Errorf("a refused stack was billed %d", got)
			}
			r.neighbour.check(t)
		})
	}
}

// testUndeployMidCall: a call in progress when its stack is undeployed
// finishes on the revision it started on, answered and billed; the next
// request finds no stack.
func testUndeployMidCall(t *testing.T, r *advRegion) {
	r.neighbour.during("undeploy-mid-call")
	ctx := context.Background()
	m, bins := watStack(t, watCommand("", `(data (i32.const 480) "napping\n")`,
		`(call $write (i32.const 2) (i32.const 480) (i32.const 8)) `+watSleep(advTimeout/4)), "4MiB")
	id := r.deploy(t, m, bins)
	logs, cancel := r.streamLogs(t, id)
	defer cancel()
	answered := make(chan answer, 1)
	go func() {
		resp, err := advClient.Post(r.url(id, "api", "/x"), "text/plain", nil)
		if err != nil {
			t.Errorf("POST: %v", err)
			answered <- answer{}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- answer{outcome: outcome{status: resp.StatusCode}, body: string(b)}
	}()
	for { // the function is inside the call, about to sleep
		e, err := logs.Recv()
		if err != nil {
			t.Fatalf("log stream: %v", err)
		}
		if e.GetEntry().GetSource() == runtimev1.LogSource_LOG_SOURCE_STDERR && e.GetEntry().GetBody() == "napping" {
			break
		}
	}
	if err := r.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if a := <-answered; a.status != 200 || a.body != "hi" {
		t.Errorf("the call in progress: %d %q", a.status, a.body)
	}
	if a := send(t, "POST", r.url(id, "api", "/x"), nil); a.outcome != (outcome{http.StatusNotFound, "stack_not_found"}) {
		t.Errorf("after the undeploy: %v", a)
	}
	if mbi := r.billed(t, id); mbi == 0 || mbi%4 != 0 || mbi/4 >= advFuel {
		t.Errorf("the call that finished on an undeployed stack was billed %d megabyte-instructions", mbi)
	}
	r.neighbour.check(t)
}

// testUndeployRace: requests racing undeploys and redeploys of their stack
// get an answer or "not here" (404) or "try again" (503), never a failure
// blamed on the function; what answered is billed.
func testUndeployRace(t *testing.T, r *advRegion) {
	r.neighbour.during("undeploy-race")
	ctx := context.Background()
	id, _, _ := ids.NewStackID()
	if err := r.Deploy(ctx, id, 1, r.hello, r.helloBins); err != nil {
		t.Fatal(err)
	}
	url := r.url(id, "greeting", "/greet/racer")
	allowed := map[outcome]bool{
		{http.StatusOK, ""}:                                    true,
		{http.StatusNotFound, "stack_not_found"}:               true, // the gateway no longer has it
		{http.StatusNotFound, "function_not_found"}:            true, // the runtime no longer has it
		{http.StatusServiceUnavailable, "runtime_unavailable"}: true,
		{http.StatusServiceUnavailable, "runtime_overloaded"}:  true,
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		counts = map[outcome]int{}
		stop   atomic.Bool
	)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				resp, err := advClient.Get(url)
				if err != nil {
					t.Errorf("GET: %v", err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				o := outcome{status: resp.StatusCode}
				if resp.StatusCode != 200 {
					var eb errorBody
					if err := json.Unmarshal(b, &eb); err != nil {
						t.Errorf("%d %q is not a JSON error", resp.StatusCode, b)
					}
					o.kind = eb.Error.Kind
					if !allowed[o] {
						t.Errorf("%d %s: %s", o.status, o.kind, eb.Error.Message)
					}
				}
				mu.Lock()
				counts[o]++
				mu.Unlock()
			}
		}()
	}
	for rev := uint64(2); rev < 32; rev++ {
		var err error
		if rev%3 == 0 {
			err = r.Remove(ctx, id)
		} else {
			err = r.Deploy(ctx, id, rev, r.hello, r.helloBins)
		}
		if err != nil {
			t.Error(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("outcomes: %v", counts)
	if counts[outcome{http.StatusOK, ""}] == 0 || counts[outcome{http.StatusOK, ""}] == total(counts) {
		t.Errorf("the race was not exercised: %v", counts)
	}
	if a := send(t, "GET", url, nil); a.status != 200 || a.body != "Hello, racer!" {
		t.Errorf("after the race: %v %q", a, a.body)
	}
	if mbi := r.billed(t, id); mbi == 0 || mbi%64 != 0 {
		t.Errorf("the raced stack was billed %d megabyte-instructions (memory_limit 64MiB)", mbi)
	}
	r.neighbour.check(t)
}

func total(counts map[outcome]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// A command-mode module that computes inside _start itself (not in a
// function it calls after reading the request) keeps the epoch deadline
// _start loaded when it was entered, during the instance's start-up: the
// call's own deadline is not seen until StartupTimeout after the instance
// started (metering.go documents it). Whenever call_timeout is shorter than
// startup_timeout, every call of such a module on a fresh instance (and
// each failed call makes the next one fresh) runs until the start-up's
// deadline: here a 2 s call answers after ~10 s.
func TestAdversarial_ComputeInStartMeetsItsDeadline(t *testing.T) {
	r := startRegion(t, Options{Runtime: &RuntimeOptions{Config: func(_ int, c *runtime.Config) {
		c.CallTimeout = advTimeout
		c.MaxFuelPerCall = 50_000_000_000 // fuel out of the picture: only the deadline ends it
	}}})
	m, bins := watStack(t, `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 60000))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
    (loop $c (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 32))) (br $c))))`, "4MiB")
	id, _, _ := ids.NewStackID()
	if err := r.Deploy(context.Background(), id, 1, m, bins); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the prewarmed instance, then a fresh one
		got := send(t, "POST", "http://"+r.Gateway().Addr()+"/"+id.String()+"/api/x", nil)
		checkAnswer(t, got, []outcome{deadline}, "deadline") // and answered within advOverrun of it
	}
}
