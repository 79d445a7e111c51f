package wasm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/muprotocol/mu/libs/fnproto"
)

// The two execution modes (see Instance): every WAT body below is built as a
// command (_start loops over requests, parked in fd_read) and as a reactor
// (mu_serve serves one request per entry), and the tests run in both.
const (
	modeCommand = "command"
	modeReactor = "reactor"
)

var modes = []string{modeCommand, modeReactor}

// inModes runs fn as one subtest per mode.
func inModes(t *testing.T, fn func(t *testing.T, mode string)) {
	t.Helper()
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { fn(t, mode) })
	}
}

// watModule builds a module that serves requests in the given mode: it
// reads a request from stdin, runs body, writes a fixed FunctionResult
// (status 200, body "hi"). As a command it then reads again, until end of
// file; as a reactor mu_serve returns 0 (and traps unless _initialize and
// mu_init each ran once, in that order). $n holds the bytes read, so a test
// can make the module's work depend on the request size; (br $serve) skips
// the result in both modes.
func watModule(mode, body string) string { return watModuleDecls(mode, "", body) }

// watModuleDecls is watModule with extra module fields (tables, segments).
func watModuleDecls(mode, decls, body string) string {
	var entry string
	switch mode {
	case modeCommand:
		entry = `(func (export "_start") (local $n i32) (local $i i32)
    (loop $serve
      (local.set $n (call $read))
      (if (i32.eqz (local.get $n)) (then (return)))
      ` + body + `
      (call $write (i32.const 1) (i32.const 256) (i32.const 18))
      (br $serve)))`
	case modeReactor:
		entry = `(global $inits (mut i32) (i32.const 0))
  (func (export "_initialize")
    (if (i32.ne (global.get $inits) (i32.const 0)) (then unreachable))
    (global.set $inits (i32.const 1)))
  (func (export "mu_init")
    (if (i32.ne (global.get $inits) (i32.const 1)) (then unreachable))
    (global.set $inits (i32.const 2)))
  (func (export "mu_serve") (result i32) (local $n i32) (local $i i32)
    (if (i32.ne (global.get $inits) (i32.const 2)) (then unreachable))
    (block $serve
      (local.set $n (call $read))
      ` + body + `
      (call $write (i32.const 1) (i32.const 256) (i32.const 18)))
    (i32.const 0))`
	default:
		panic("unknown mode " + mode)
	}
	return `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "\0e\00\00\00\02\00\c8\00\00\00\00\00\02\00\00\00hi")
  (data (i32.const 300) "garbage on stdout")
  (data (i32.const 340) "\00\00\00\01\02\00")
  (data (i32.const 360) "\0c\00\00\00\ea\03\01\00\00\00t\01\00\00\00k")
  (data (i32.const 400) "\0c\00\00\00\03\00\05\00\00\00hello\02")
  (data (i32.const 420) "\09\00\00\00\01\00\03\00\00\00bad")
  (data (i32.const 440) "oops\n")
  (func $read (result i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 60000))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
    (i32.load (i32.const 16)))
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 8) (local.get $ptr))
    (i32.store (i32.const 12) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 8) (i32.const 1) (i32.const 20))))
  (func $spin (loop $l (br $l)))
  (func $recurse (param i32) (call $recurse (i32.add (local.get 0) (i32.const 1))))
  ` + decls + `
  ` + entry + `
)`
}

// sleepBody sleeps d with poll_oneoff (one relative clock subscription,
// userdata 7) and traps unless poll_oneoff reported exactly that clock
// event without error.
func sleepBody(d time.Duration) string {
	return fmt.Sprintf(`(i64.store (i32.const 64) (i64.const 7)) (i32.store8 (i32.const 72) (i32.const 0)) (i32.store (i32.const 80) (i32.const 1)) (i64.store (i32.const 88) (i64.const %d)) (i64.store (i32.const 96) (i64.const 0)) (i32.store16 (i32.const 104) (i32.const 0))
      (if (i32.or (call $poll (i32.const 64) (i32.const 128) (i32.const 1) (i32.const 24))
            (i32.or (i32.ne (i32.load (i32.const 24)) (i32.const 1))
              (i32.or (i64.ne (i64.load (i32.const 128)) (i64.const 7))
                (i32.or (i32.load16_u (i32.const 136)) (i32.load8_u (i32.const 138))))))
        (then unreachable))`, d.Nanoseconds())
}

// napTime is how long the "nap" body sleeps, well within defaultLimits.
const napTime = 20 * time.Millisecond

// stderrOops writes "oops\n" to stderr: one log line, emitted at once.
const stderrOops = `(call $write (i32.const 2) (i32.const 440) (i32.const 5))`

var watBodies = map[string]string{
	"ok": ``,
	"loop-n": `(local.set $i (local.get $n))
      (block $done (loop $l
        (br_if $done (i32.eqz (local.get $i)))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $l)))`,
	"spin":       `(call $spin)`,
	"oops-spin":  stderrOops + ` (call $spin)`,
	"grow":       `(block $b (loop $g (br_if $b (i32.eq (memory.grow (i32.const 16)) (i32.const -1))) (br $g))) unreachable`,
	"sleep":      sleepBody(10 * time.Second),
	"oops-sleep": stderrOops + ` ` + sleepBody(10*time.Second),
	"nap":        sleepBody(napTime),
	"exit":       `(call $proc_exit (i32.const 3))`,
	"garbage":    `(call $write (i32.const 1) (i32.const 300) (i32.const 17))`,
	"oversize":   `(call $write (i32.const 1) (i32.const 340) (i32.const 6))`,
	"db":         `(call $write (i32.const 1) (i32.const 360) (i32.const 16)) (drop (call $read))`,
	"unpending":  `(drop (call $read))`,
	"log":        `(call $write (i32.const 1) (i32.const 400) (i32.const 16)) ` + stderrOops,
	"fatal":      `(call $write (i32.const 1) (i32.const 420) (i32.const 13)) (br $serve)`,
	"fatalexit":  `(call $write (i32.const 1) (i32.const 420) (i32.const 13)) (call $proc_exit (i32.const 1))`,
}

type fixture struct {
	e    *Engine
	mods map[string]*Module
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return &fixture{e: e, mods: map[string]*Module{}}
}

// module compiles the WAT body name in mode, once per fixture, and checks
// the engine serves it in that mode.
func (f *fixture) module(t *testing.T, mode, name string) *Module {
	t.Helper()
	key := mode + "/" + name
	if m, ok := f.mods[key]; ok {
		return m
	}
	body, ok := watBodies[name]
	if !ok {
		t.Fatalf("no wat body %q", name)
	}
	wasm, err := wasmtime.Wat2Wasm(watModule(mode, body))
	if err != nil {
		t.Fatalf("wat %s: %v", key, err)
	}
	m, err := f.e.Compile(wasm)
	if err != nil {
		t.Fatalf("compile %s: %v", key, err)
	}
	if m.Reactor() != (mode == modeReactor) {
		t.Fatalf("%s: Reactor() = %v", key, m.Reactor())
	}
	f.mods[key] = m
	return m
}

func (f *fixture) instance(t *testing.T, mode, name string, cfg InstanceConfig) *Instance {
	t.Helper()
	inst, err := f.e.NewInstance(context.Background(), f.module(t, mode, name), cfg)
	if err != nil {
		t.Fatalf("instance %s/%s: %v", mode, name, err)
	}
	t.Cleanup(inst.Close)
	return inst
}

var defaultLimits = Limits{Fuel: 10_000_000, Timeout: 5 * time.Second}

func request(body string) *fnproto.Request {
	return &fnproto.Request{Method: "GET", Body: []byte(body)}
}

// frameFuel is what fd_read charges for delivering the request frame of
// function "f" with a body of n bytes, read in one piece.
func frameFuel(n int) uint64 {
	frame, err := fnproto.AppendFrame(nil, &fnproto.ExecuteFunction{Function: "f", Request: *request(strings.Repeat("x", n))})
	if err != nil {
		panic(err)
	}
	return uint64(len(frame)) / uint64(DefaultConfig().BulkBytesPerFuel)
}

func callOK(t *testing.T, inst *Instance, body string, h Handler) *Result {
	t.Helper()
	res, err := inst.Call(context.Background(), "f", request(body), h, defaultLimits)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if res.Response.Status != 200 || string(res.Response.Body) != "hi" {
		t.Fatalf("response %d %q", res.Response.Status, res.Response.Body)
	}
	return res
}

func TestInstance_ServesManyCallsWithExactFuel(t *testing.T) {
	f := newFixture(t, Config{})
	inModes(t, func(t *testing.T, mode string) {
		inst := f.instance(t, mode, "loop-n", InstanceConfig{})
		first := callOK(t, inst, "", nil)
		if first.Fuel <= inst.StartupFuel || inst.StartupFuel == 0 {
			t.Fatalf("first call fuel %d must include start-up fuel %d", first.Fuel, inst.StartupFuel)
		}
		base := callOK(t, inst, "", nil).Fuel
		if again := callOK(t, inst, "", nil).Fuel; again != base {
			t.Fatalf("same request burnt %d then %d fuel", base, again)
		}
		if first.Fuel != base+inst.StartupFuel {
			t.Fatalf("first call %d != steady %d + startup %d", first.Fuel, base, inst.StartupFuel)
		}
		// Each loop iteration is 8 metered operators (block, loop and end
		// are free); the 1000 more bytes fd_read delivers cost 1000/8.
		bigger := callOK(t, inst, strings.Repeat("x", 1000), nil).Fuel
		if got, want := bigger-base, uint64(8*1000+frameFuel(1000)-frameFuel(0)); got != want {
			t.Fatalf("1000 more iterations cost %d fuel, want %d", got, want)
		}
		if inst.Calls() != 4 || !inst.Alive() {
			t.Fatalf("calls %d alive %v", inst.Calls(), inst.Alive())
		}
	})
}

// TestInstance_Failures runs every way a call can fail against both modes
// and checks the error kind and message, what is billed and that the
// instance is discarded.
func TestInstance_Failures(t *testing.T) {
	f := newFixture(t, Config{})
	cases := []struct {
		module string
		limits Limits
		mem    uint64
		kind   ErrorKind
		msg    string
		fuel   func(uint64) bool
	}{
		// Out of fuel: the budget, plus the request bytes fd_read delivered.
		{module: "spin", limits: Limits{Fuel: 1_000_000, Timeout: 5 * time.Second}, kind: KindFuelExhausted, msg: "fuel",
			fuel: func(f uint64) bool { return f == 1_000_000+frameFuel(0) }},
		// A deadline kill loses the count: the whole budget is billed.
		{module: "spin", limits: Limits{Fuel: 1 << 62, Timeout: 50 * time.Millisecond}, kind: KindDeadline, msg: "deadline",
			fuel: func(f uint64) bool { return f == 1<<62+frameFuel(0) }},
		{module: "sleep", limits: Limits{Fuel: 1_000_000, Timeout: 50 * time.Millisecond}, kind: KindDeadline, msg: "sleeping",
			fuel: func(f uint64) bool { return f < 1_000_000 }},
		{module: "grow", limits: defaultLimits, mem: 2 << 20, kind: KindMemoryLimit, msg: "2097152-byte limit",
			fuel: func(f uint64) bool { return f < defaultLimits.Fuel }},
		{module: "exit", limits: defaultLimits, kind: KindCrash, msg: "status 3"},
		{module: "fatalexit", limits: defaultLimits, kind: KindCrash, msg: "bad (then: function exited with status 1)"},
		{module: "garbage", limits: defaultLimits, kind: KindProtocol, msg: "exceeds"},
		{module: "oversize", limits: defaultLimits, kind: KindProtocol, msg: "16777216"},
		{module: "unpending", limits: defaultLimits, kind: KindProtocol, msg: "no reply was pending"},
		{module: "db", limits: defaultLimits, kind: KindProtocol, msg: "serves no host requests"},
	}
	inModes(t, func(t *testing.T, mode string) {
		for _, tc := range cases {
			t.Run(tc.module+"/"+tc.kind.String(), func(t *testing.T) {
				inst := f.instance(t, mode, tc.module, InstanceConfig{MemoryLimit: tc.mem})
				start := time.Now()
				_, err := inst.Call(context.Background(), "f", request(""), nil, tc.limits)
				elapsed := time.Since(start)
				ce, ok := AsCallError(err)
				if !ok {
					t.Fatalf("error %v is not a CallError", err)
				}
				if ce.Kind != tc.kind || !strings.Contains(ce.Error(), tc.msg) {
					t.Fatalf("got %v (kind %d), want kind %v containing %q", ce, ce.Kind, tc.kind, tc.msg)
				}
				// A deadline is never reported before it passed.
				if tc.kind == KindDeadline && elapsed < tc.limits.Timeout {
					t.Fatalf("deadline of %s reported after %s", tc.limits.Timeout, elapsed)
				}
				if ce.Fuel == 0 {
					t.Fatalf("failed call reports no fuel: %v", ce)
				}
				if tc.fuel != nil && !tc.fuel(ce.Fuel-inst.StartupFuel) {
					t.Fatalf("fuel %d (startup %d) not as expected", ce.Fuel, inst.StartupFuel)
				}
				if inst.Alive() {
					t.Fatal("instance still alive after a fatal error")
				}
				if _, err := inst.Call(context.Background(), "f", request(""), nil, defaultLimits); err == nil {
					t.Fatal("dead instance accepted a call")
				} else if ce, _ := AsCallError(err); ce == nil || ce.Kind != KindUnavailable {
					t.Fatalf("dead instance: %v", err)
				}
				inst.Close()
				inst.Close()
			})
		}
	})
}

func TestInstance_FatalErrorKeepsInstance(t *testing.T) {
	f := newFixture(t, Config{})
	inModes(t, func(t *testing.T, mode string) {
		inst := f.instance(t, mode, "fatal", InstanceConfig{})
		var fuel [2]uint64
		for k := range fuel {
			_, err := inst.Call(context.Background(), "f", request(""), nil, defaultLimits)
			ce, ok := AsCallError(err)
			if !ok || ce.Kind != KindFunctionError || ce.Message != "bad" || ce.Fatal() {
				t.Fatalf("got %v", err)
			}
			fuel[k] = ce.Fuel
		}
		if fuel[1] == 0 || fuel[0] != fuel[1]+inst.StartupFuel {
			t.Fatalf("failed calls billed %d then %d fuel (start-up %d)", fuel[0], fuel[1], inst.StartupFuel)
		}
		if !inst.Alive() {
			t.Fatal("instance died after a FatalError message")
		}
	})
}

func TestInstance_HostRequestsAndLogs(t *testing.T) {
	f := newFixture(t, Config{})
	inModes(t, func(t *testing.T, mode string) {
		var got []fnproto.Message
		h := func(ctx context.Context, m fnproto.Message) (fnproto.Message, error) {
			got = append(got, m)
			v := []byte("v")
			return &fnproto.SingleResult{Item: &v}, nil
		}
		inst := f.instance(t, mode, "db", InstanceConfig{})
		callOK(t, inst, "", h)
		callOK(t, inst, "", h)
		if len(got) != 2 {
			t.Fatalf("handler saw %d requests", len(got))
		}
		g, ok := got[0].(*fnproto.Get)
		if !ok || g.Table != "t" || string(g.Key) != "k" {
			t.Fatalf("handler got %#v", got[0])
		}

		var mu sync.Mutex
		var logs []Log
		inst = f.instance(t, mode, "log", InstanceConfig{Log: func(l Log) { mu.Lock(); logs = append(logs, l); mu.Unlock() }})
		// Each line carries the context of the call that wrote it (its
		// trace span, in the runtime).
		type callKey struct{}
		ctx := context.WithValue(context.Background(), callKey{}, mode)
		if _, err := inst.Call(ctx, "f", request(""), nil, defaultLimits); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		want := []Log{{Source: SourceLog, Level: fnproto.LogLevelInfo, Body: "hello"}, {Source: SourceStderr, Level: fnproto.LogLevelError, Body: "oops"}}
		if len(logs) != 2 {
			t.Fatalf("logs %+v, want %+v", logs, want)
		}
		for i := range logs {
			if logs[i].Context == nil || logs[i].Context.Value(callKey{}) != mode {
				t.Errorf("log %d has context %v, not the call's", i, logs[i].Context)
			}
			logs[i].Context = nil
			if logs[i] != want[i] {
				t.Errorf("log %d: %+v, want %+v", i, logs[i], want[i])
			}
		}
	})
}

func TestInstance_HostErrorsEndTheCall(t *testing.T) {
	f := newFixture(t, Config{})
	inModes(t, func(t *testing.T, mode string) {
		inst := f.instance(t, mode, "db", InstanceConfig{})
		_, err := inst.Call(context.Background(), "f", request(""), func(ctx context.Context, m fnproto.Message) (fnproto.Message, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}, Limits{Fuel: 1_000_000, Timeout: 30 * time.Millisecond})
		if ce, ok := AsCallError(err); !ok || ce.Kind != KindDeadline {
			t.Fatalf("got %v", err)
		}
	})
}

// TestInstance_SleepWithinDeadline: a sleep shorter than the deadline
// really waits (the call takes at least as long as the sleep) and ends with
// the clock event poll_oneoff was asked for (the module traps otherwise).
func TestInstance_SleepWithinDeadline(t *testing.T) {
	f := newFixture(t, Config{})
	inModes(t, func(t *testing.T, mode string) {
		inst := f.instance(t, mode, "nap", InstanceConfig{})
		for range 2 {
			start := time.Now()
			callOK(t, inst, "", nil)
			if elapsed := time.Since(start); elapsed < napTime {
				t.Fatalf("a sleep of %s returned after %s", napTime, elapsed)
			}
		}
	})
}

// TestInstance_CloseWakesASleepingCall: Close during a call ends it, even
// while the guest sleeps far within its deadline.
func TestInstance_CloseWakesASleepingCall(t *testing.T) {
	f := newFixture(t, Config{})
	inModes(t, func(t *testing.T, mode string) {
		asleep := make(chan struct{}, 1)
		inst := f.instance(t, mode, "oops-sleep", InstanceConfig{Log: func(Log) { asleep <- struct{}{} }})
		done := make(chan error, 1)
		go func() {
			_, err := inst.Call(context.Background(), "f", request(""), nil, Limits{Fuel: 1_000_000, Timeout: time.Minute})
			done <- err
		}()
		<-asleep
		inst.Close()
		ce, ok := AsCallError(<-done)
		if !ok || ce.Kind != KindUnavailable || !strings.Contains(ce.Message, "closed while sleeping") || ce.Fuel == 0 {
			t.Fatalf("got %v", ce)
		}
	})
}

// TestInstance_NeighbourKeepsAnswering: while one instance spins until its
// deadline, another keeps answering (and is done before that deadline).
func TestInstance_NeighbourKeepsAnswering(t *testing.T) {
	f := newFixture(t, Config{})
	inModes(t, func(t *testing.T, mode string) {
		good := f.instance(t, mode, "ok", InstanceConfig{})
		spinning := make(chan struct{}, 1)
		bad := f.instance(t, mode, "oops-spin", InstanceConfig{Log: func(Log) { spinning <- struct{}{} }})
		done := make(chan error, 1)
		go func() {
			_, err := bad.Call(context.Background(), "f", request(""), nil, Limits{Fuel: 1 << 62, Timeout: time.Second})
			done <- err
		}()
		<-spinning
		for k := 0; k < 50; k++ {
			callOK(t, good, "", nil)
		}
		select {
		case err := <-done:
			t.Fatalf("the spinning call ended (%v) before its neighbour's 50 calls were answered", err)
		default:
		}
		if ce, ok := AsCallError(<-done); !ok || ce.Kind != KindDeadline {
			t.Fatalf("spinning call: %v", ce)
		}
		callOK(t, good, "", nil)
	})
}

func TestInstance_RequestOverFrameLimit(t *testing.T) {
	f := newFixture(t, Config{MaxFrameSize: 1024})
	inModes(t, func(t *testing.T, mode string) {
		inst := f.instance(t, mode, "ok", InstanceConfig{})
		_, err := inst.Call(context.Background(), "f", request(strings.Repeat("x", 2000)), nil, defaultLimits)
		if !errors.Is(err, ErrRequestTooLarge) || !strings.Contains(err.Error(), "limit 1024") {
			t.Fatalf("got %v", err)
		}
		callOK(t, inst, "", nil) // the instance was never touched
	})
}

func TestInstance_CloseEndsGuest(t *testing.T) {
	f := newFixture(t, Config{})
	inModes(t, func(t *testing.T, mode string) {
		inst := f.instance(t, mode, "ok", InstanceConfig{})
		callOK(t, inst, "", nil)
		inst.Close()
		inst.Close()
		if inst.Alive() {
			t.Fatal("alive after Close")
		}
		if _, err := inst.Call(context.Background(), "f", request(""), nil, defaultLimits); err == nil {
			t.Fatal("closed instance accepted a call")
		} else if ce, _ := AsCallError(err); ce == nil || ce.Kind != KindUnavailable {
			t.Fatalf("closed instance: %v", err)
		}
	})
}

func TestCompile_RejectsNonCommands(t *testing.T) {
	f := newFixture(t, Config{})
	if _, err := f.e.Compile([]byte("not wasm")); !errors.Is(err, ErrInvalidModule) {
		t.Fatalf("garbage: %v", err)
	}
	wasm, _ := wasmtime.Wat2Wasm(`(module (memory (export "memory") 1))`)
	if _, err := f.e.Compile(wasm); !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "_start") {
		t.Fatalf("no _start: %v", err)
	}
}

func TestArtifactCache_ReusedAcrossEnginesAndEvicted(t *testing.T) {
	dir := t.TempDir()
	wasm, _ := wasmtime.Wat2Wasm(watModule(modeCommand, ""))
	e1, err := NewEngine(Config{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m1, err := e1.Compile(wasm)
	if err != nil || m1.FromCache || m1.CacheError() != nil {
		t.Fatalf("first compile: %v %v %v", err, m1.FromCache, m1.CacheError())
	}
	e1.Close()

	e2, err := NewEngine(Config{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	m2, err := e2.Compile(wasm)
	if err != nil || !m2.FromCache || m2.ID != m1.ID {
		t.Fatalf("second compile: err %v fromCache %v", err, m2.FromCache)
	}
	inst, err := e2.NewInstance(context.Background(), m2, InstanceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	callOK(t, inst, "", nil)
	inst.Close()

	// A different engine setting must not load the artifact.
	e3, err := NewEngine(Config{CacheDir: dir, OptLevel: "none"})
	if err != nil {
		t.Fatal(err)
	}
	defer e3.Close()
	if m3, err := e3.Compile(wasm); err != nil || m3.FromCache {
		t.Fatalf("other settings: err %v fromCache %v", err, m3.FromCache)
	}

	// A corrupt artifact is dropped and recompiled, never loaded.
	entries, _ := os.ReadDir(dir)
	for _, de := range entries {
		if strings.HasSuffix(de.Name(), artifactExt) {
			// Replaced, not rewritten in place: the first engine's module
			// still maps the old file (see artifactCache).
			tmp := dir + "/corrupt.tmp"
			os.WriteFile(tmp, []byte("corrupt"), 0o644)
			os.Rename(tmp, dir+"/"+de.Name())
		}
	}
	e4, err := NewEngine(Config{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e4.Close()
	if m4, err := e4.Compile(wasm); err != nil || m4.FromCache {
		t.Fatalf("corrupt: err %v fromCache %v", err, m4.FromCache)
	}

	// A budget smaller than two artifacts keeps only one.
	size := e4.cache.size()
	e5, err := NewEngine(Config{CacheDir: dir, CacheMaxBytes: size + size/2})
	if err != nil {
		t.Fatal(err)
	}
	defer e5.Close()
	other, _ := wasmtime.Wat2Wasm(watModule(modeCommand, watBodies["spin"]))
	if _, err := e5.Compile(other); err != nil {
		t.Fatal(err)
	}
	if got := e5.cache.size(); got > size+size/2 {
		t.Fatalf("cache holds %d bytes over its budget %d", got, size+size/2)
	}
}

// reactorWAT is a reactor module: mu_serve reads the request and, by the
// first byte of the request frame's function name, answers, forgets to
// answer, reports a broken stream or leaves input unread.
const reactorWAT = `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "\0e\00\00\00\02\00\c8\00\00\00\00\00\02\00\00\00hi")
  (global $inits (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $inits (i32.add (global.get $inits) (i32.const 1))))
  (func (export "mu_init") (global.set $inits (i32.add (global.get $inits) (i32.const 1))))
  (func $read (param $len i32) (result i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
    (i32.load (i32.const 16)))
  (func (export "mu_serve") (result i32) (local $op i32)
    (if (i32.ne (global.get $inits) (i32.const 2)) (then unreachable))
    ;; the frame header (6 bytes) and the function name's length (4 bytes), then its first byte
    (drop (call $read (i32.const 11)))
    (local.set $op (i32.load8_u (i32.const 1034)))
    (if (i32.eq (local.get $op) (i32.const 98)) (then (return (i32.const 1))))  ;; 'b': broken
    (if (i32.eq (local.get $op) (i32.const 117)) (then (return (i32.const 0)))) ;; 'u': unread rest
    (drop (call $read (i32.const 60000)))
    (if (i32.eq (local.get $op) (i32.const 110)) (then (return (i32.const 0)))) ;; 'n': no result
    (i32.store (i32.const 8) (i32.const 256))
    (i32.store (i32.const 12) (i32.const 18))
    (drop (call $fd_write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 20)))
    (i32.const 0)))`

func TestReactor_CallsRunOnTheCallerWithExactFuel(t *testing.T) {
	f := newFixture(t, Config{})
	wasm, err := wasmtime.Wat2Wasm(reactorWAT)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := f.e.Compile(wasm)
	if err != nil || !mod.Reactor() {
		t.Fatalf("compile: %v, reactor %v", err, mod != nil && mod.Reactor())
	}
	inst, err := f.e.NewInstance(context.Background(), mod, InstanceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	call := func(fn string) (*Result, error) {
		return inst.Call(context.Background(), fn, request(""), nil, defaultLimits)
	}
	first, err := call("ok")
	if err != nil || first.Response.Status != 200 || string(first.Response.Body) != "hi" {
		t.Fatalf("first call: %v %v", first, err)
	}
	a, _ := call("ok")
	b, _ := call("ok")
	if a.Fuel != b.Fuel || first.Fuel != a.Fuel+inst.StartupFuel || inst.StartupFuel == 0 {
		t.Fatalf("fuel: first %d, then %d and %d, startup %d", first.Fuel, a.Fuel, b.Fuel, inst.StartupFuel)
	}
	if inst.Calls() != 3 {
		t.Fatalf("calls %d", inst.Calls())
	}
	for _, tc := range []struct{ fn, msg string }{
		{"broken", "broken stream"},
		{"noresult", "without ending the request"},
		{"unread", "unread"},
	} {
		inst, err := f.e.NewInstance(context.Background(), mod, InstanceConfig{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = inst.Call(context.Background(), tc.fn, request(""), nil, defaultLimits)
		ce, ok := AsCallError(err)
		if !ok || ce.Kind != KindProtocol || !strings.Contains(ce.Message, tc.msg) || ce.Fuel == 0 || inst.Alive() {
			t.Errorf("%s: %v (alive %v)", tc.fn, err, inst.Alive())
		}
		if _, err := call("ok"); err != nil {
			t.Errorf("%s broke another instance of the module: %v", tc.fn, err)
		}
		if _, err := inst.Call(context.Background(), "ok", request(""), nil, defaultLimits); err == nil {
			t.Errorf("%s: dead instance accepted a call", tc.fn)
		} else if ce, _ := AsCallError(err); ce == nil || ce.Kind != KindUnavailable {
			t.Errorf("%s: dead instance: %v", tc.fn, err)
		}
		inst.Close()
		inst.Close()
	}

	// The guest runs on the goroutine that called Call: the handler it
	// reaches through fd_write has this test function on its stack. A
	// command's _start runs on its own goroutine, where it does not.
	onCaller := func(mode string) bool {
		var stack string
		h := func(ctx context.Context, m fnproto.Message) (fnproto.Message, error) {
			buf := make([]byte, 64<<10)
			stack = string(buf[:runtime.Stack(buf, false)])
			v := []byte("v")
			return &fnproto.SingleResult{Item: &v}, nil
		}
		callOK(t, f.instance(t, mode, "db", InstanceConfig{}), "", h)
		return strings.Contains(stack, ".TestReactor_CallsRunOnTheCallerWithExactFuel(")
	}
	if !onCaller(modeReactor) {
		t.Error("a reactor call did not run on the caller's goroutine")
	}
	if onCaller(modeCommand) {
		t.Error("a command call ran on the caller's goroutine (the check cannot tell them apart)")
	}
}

// TestArtifactCache_ChecksEachFileOnce: an artifact's CRC32C is read once
// per file (in the background when the cache opens), not at every load;
// an artifact whose file is replaced is checked again, and a corrupt one
// found by the background check is dropped before any load.
func TestArtifactCache_ChecksEachFileOnce(t *testing.T) {
	dir := t.TempDir()
	wasm, _ := wasmtime.Wat2Wasm(watModule(modeCommand, ""))
	id := ContentID(wasm)
	e1, err := NewEngine(Config{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e1.Compile(wasm); err != nil {
		t.Fatal(err)
	}
	if m, ok := e1.LoadCached(id); !ok || e1.cache.reads.Load() != 0 {
		t.Fatalf("loading the artifact this engine wrote: ok %v, %d reads", ok, e1.cache.reads.Load())
	} else {
		m.Close()
	}
	e1.Close()

	e2, err := NewEngine(Config{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	<-e2.CacheChecked()
	for range 3 {
		m, ok := e2.LoadCached(id)
		if !ok {
			t.Fatal("the checked artifact did not load")
		}
		m.Close()
	}
	if got := e2.cache.reads.Load(); got != 1 {
		t.Fatalf("%d reads of the artifact for a start-up check and three loads, want 1", got)
	}

	path := e2.cache.path(artifactKey(id, e2.fingerprint))
	corrupt := func() {
		tmp := dir + "/corrupt.tmp"
		if err := os.WriteFile(tmp, []byte("corrupt"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	corrupt()
	if m, ok := e2.LoadCached(id); ok {
		m.Close()
		t.Fatal("a replaced artifact loaded without being checked again")
	}
	if got := e2.cache.reads.Load(); got != 2 {
		t.Fatalf("%d reads after the artifact was replaced, want 2", got)
	}

	if _, err := e2.Compile(wasm); err != nil { // written again
		t.Fatal(err)
	}
	corrupt()
	e3, err := NewEngine(Config{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e3.Close()
	<-e3.CacheChecked()
	if e3.HasCached(id) {
		t.Fatal("the check at start kept a corrupt artifact")
	}
}

// TestInstance_ResidentBytesCountsWrittenPagesOnly: an instance holds of
// its own the pages it wrote, not its whole linear memory: one that
// touched a few pages holds less than its memory size, one whose call
// filled its memory holds all of it, and neither more than MemorySize.
func TestInstance_ResidentBytesCountsWrittenPagesOnly(t *testing.T) {
	if _, ok := privatePages(0x1000, 1); !ok {
		t.Skip("no /proc/self/pagemap")
	}
	f := newFixture(t, Config{})
	inModes(t, func(t *testing.T, mode string) {
		for _, tc := range []struct {
			body string
			full bool
		}{
			{"", false},
			{"(memory.fill (i32.const 4096) (i32.const 7) (i32.const 61440))", true}, // pages 1-15; the call writes page 0

		} {
			wasm, err := wasmtime.Wat2Wasm(watModule(mode, tc.body))
			if err != nil {
				t.Fatal(err)
			}
			m, err := f.e.Compile(wasm)
			if err != nil {
				t.Fatal(err)
			}
			inst, err := f.e.NewInstance(context.Background(), m, InstanceConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer inst.Close()
			callOK(t, inst, "", nil)
			size, held := inst.MemorySize(), inst.ResidentBytes()
			switch {
			case held > size:
				t.Fatalf("fill %v: ResidentBytes %d over MemorySize %d", tc.full, held, size)
			case tc.full && held != size:
				t.Fatalf("a call that wrote all %d bytes of memory: ResidentBytes %d", size, held)
			case !tc.full && held >= size:
				t.Fatalf("a call that wrote a few pages: ResidentBytes %d, MemorySize %d", held, size)
			}
		}
	})
}
