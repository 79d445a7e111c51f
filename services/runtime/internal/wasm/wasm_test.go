package wasm

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/muprotocol/mu/libs/fnproto"
)

// watModule builds a WASI command that serves requests forever: it reads a
// request from stdin, runs body, writes a fixed FunctionResult (status 200,
// body "hi") and reads again. $n holds the bytes read, so a test can make the
// module's work depend on the request size.
func watModule(body string) string {
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
  (func (export "_start") (local $n i32) (local $i i32)
    (loop $serve
      (local.set $n (call $read))
      (if (i32.eqz (local.get $n)) (then (return)))
      ` + body + `
      (call $write (i32.const 1) (i32.const 256) (i32.const 18))
      (br $serve)))
)`
}

var watBodies = map[string]string{
	"ok": ``,
	"loop-n": `(local.set $i (local.get $n))
      (block $done (loop $l
        (br_if $done (i32.eqz (local.get $i)))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $l)))`,
	"spin":      `(call $spin)`,
	"grow":      `(block $b (loop $g (br_if $b (i32.eq (memory.grow (i32.const 16)) (i32.const -1))) (br $g))) unreachable`,
	"sleep":     `(i64.store (i32.const 64) (i64.const 7)) (i32.store8 (i32.const 72) (i32.const 0)) (i32.store (i32.const 80) (i32.const 1)) (i64.store (i32.const 88) (i64.const 10000000000)) (i64.store (i32.const 96) (i64.const 0)) (i32.store16 (i32.const 104) (i32.const 0)) (drop (call $poll (i32.const 64) (i32.const 128) (i32.const 1) (i32.const 24)))`,
	"nap":       `(i64.store (i32.const 64) (i64.const 7)) (i32.store8 (i32.const 72) (i32.const 0)) (i32.store (i32.const 80) (i32.const 1)) (i64.store (i32.const 88) (i64.const 1000000)) (i64.store (i32.const 96) (i64.const 0)) (i32.store16 (i32.const 104) (i32.const 0)) (drop (call $poll (i32.const 64) (i32.const 128) (i32.const 1) (i32.const 24)))`,
	"exit":      `(call $proc_exit (i32.const 3))`,
	"garbage":   `(call $write (i32.const 1) (i32.const 300) (i32.const 17))`,
	"oversize":  `(call $write (i32.const 1) (i32.const 340) (i32.const 6))`,
	"db":        `(call $write (i32.const 1) (i32.const 360) (i32.const 16)) (drop (call $read))`,
	"unpending": `(drop (call $read))`,
	"log":       `(call $write (i32.const 1) (i32.const 400) (i32.const 16)) (call $write (i32.const 2) (i32.const 440) (i32.const 5))`,
	"fatal":     `(call $write (i32.const 1) (i32.const 420) (i32.const 13)) (br $serve)`,
	"fatalexit": `(call $write (i32.const 1) (i32.const 420) (i32.const 13)) (call $proc_exit (i32.const 1))`,
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

func (f *fixture) module(t *testing.T, name string) *Module {
	t.Helper()
	if m, ok := f.mods[name]; ok {
		return m
	}
	body, ok := watBodies[name]
	if !ok {
		t.Fatalf("no wat body %q", name)
	}
	wasm, err := wasmtime.Wat2Wasm(watModule(body))
	if err != nil {
		t.Fatalf("wat %s: %v", name, err)
	}
	m, err := f.e.Compile(wasm)
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	f.mods[name] = m
	return m
}

func (f *fixture) instance(t *testing.T, name string, cfg InstanceConfig) *Instance {
	t.Helper()
	inst, err := f.e.NewInstance(context.Background(), f.module(t, name), cfg)
	if err != nil {
		t.Fatalf("instance %s: %v", name, err)
	}
	t.Cleanup(inst.Close)
	return inst
}

var defaultLimits = Limits{Fuel: 10_000_000, Timeout: 5 * time.Second}

func request(body string) *fnproto.Request {
	return &fnproto.Request{Method: "GET", Body: []byte(body)}
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
	inst := f.instance(t, "loop-n", InstanceConfig{})
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
	// Each loop iteration is 8 metered operators (block, loop and end are free).
	bigger := callOK(t, inst, strings.Repeat("x", 1000), nil).Fuel
	if got := bigger - base; got != 8*1000 {
		t.Fatalf("1000 more iterations cost %d fuel, want %d", got, 8*1000)
	}
	if inst.Calls() != 4 || !inst.Alive() {
		t.Fatalf("calls %d alive %v", inst.Calls(), inst.Alive())
	}
}

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
		{module: "spin", limits: Limits{Fuel: 1_000_000, Timeout: 5 * time.Second}, kind: KindFuelExhausted, msg: "fuel",
			fuel: func(f uint64) bool { return f == 1_000_000 }},
		{module: "spin", limits: Limits{Fuel: 1 << 62, Timeout: 50 * time.Millisecond}, kind: KindDeadline, msg: "deadline",
			fuel: func(f uint64) bool { return f > 0 }},
		{module: "sleep", limits: Limits{Fuel: 1_000_000, Timeout: 50 * time.Millisecond}, kind: KindDeadline, msg: "sleeping"},
		{module: "grow", limits: defaultLimits, mem: 2 << 20, kind: KindMemoryLimit, msg: "2097152-byte limit"},
		{module: "exit", limits: defaultLimits, kind: KindCrash, msg: "status 3"},
		{module: "fatalexit", limits: defaultLimits, kind: KindCrash, msg: "bad (then: function exited with status 1)"},
		{module: "garbage", limits: defaultLimits, kind: KindProtocol, msg: "exceeds"},
		{module: "oversize", limits: defaultLimits, kind: KindProtocol, msg: "16777216"},
		{module: "unpending", limits: defaultLimits, kind: KindProtocol, msg: "no reply was pending"},
		{module: "db", limits: defaultLimits, kind: KindProtocol, msg: "serves no host requests"},
	}
	for _, tc := range cases {
		t.Run(tc.module+"/"+tc.kind.String(), func(t *testing.T) {
			inst := f.instance(t, tc.module, InstanceConfig{MemoryLimit: tc.mem})
			_, err := inst.Call(context.Background(), "f", request(""), nil, tc.limits)
			ce, ok := AsCallError(err)
			if !ok {
				t.Fatalf("error %v is not a CallError", err)
			}
			if ce.Kind != tc.kind || !strings.Contains(ce.Error(), tc.msg) {
				t.Fatalf("got %v (kind %d), want kind %v containing %q", ce, ce.Kind, tc.kind, tc.msg)
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
		})
	}
}

func TestInstance_FatalErrorKeepsInstance(t *testing.T) {
	f := newFixture(t, Config{})
	inst := f.instance(t, "fatal", InstanceConfig{})
	for range 2 {
		_, err := inst.Call(context.Background(), "f", request(""), nil, defaultLimits)
		ce, ok := AsCallError(err)
		if !ok || ce.Kind != KindFunctionError || ce.Message != "bad" || ce.Fatal() {
			t.Fatalf("got %v", err)
		}
	}
	if !inst.Alive() {
		t.Fatal("instance died after a FatalError message")
	}
}

func TestInstance_HostRequestsAndLogs(t *testing.T) {
	f := newFixture(t, Config{})
	var got []fnproto.Message
	h := func(ctx context.Context, m fnproto.Message) (fnproto.Message, error) {
		got = append(got, m)
		v := []byte("v")
		return &fnproto.SingleResult{Item: &v}, nil
	}
	inst := f.instance(t, "db", InstanceConfig{})
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
	inst = f.instance(t, "log", InstanceConfig{Log: func(l Log) { mu.Lock(); logs = append(logs, l); mu.Unlock() }})
	callOK(t, inst, "", nil)
	mu.Lock()
	defer mu.Unlock()
	want := []Log{{Source: SourceLog, Level: fnproto.LogLevelInfo, Body: "hello"}, {Source: SourceStderr, Level: fnproto.LogLevelError, Body: "oops"}}
	if len(logs) != 2 || logs[0] != want[0] || logs[1] != want[1] {
		t.Fatalf("logs %+v, want %+v", logs, want)
	}
}

func TestInstance_HostErrorsEndTheCall(t *testing.T) {
	f := newFixture(t, Config{})
	inst := f.instance(t, "db", InstanceConfig{})
	_, err := inst.Call(context.Background(), "f", request(""), func(ctx context.Context, m fnproto.Message) (fnproto.Message, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, Limits{Fuel: 1_000_000, Timeout: 30 * time.Millisecond})
	if ce, ok := AsCallError(err); !ok || ce.Kind != KindDeadline {
		t.Fatalf("got %v", err)
	}
}

func TestInstance_SleepWithinDeadline(t *testing.T) {
	f := newFixture(t, Config{})
	inst := f.instance(t, "nap", InstanceConfig{})
	callOK(t, inst, "", nil)
	callOK(t, inst, "", nil)
}

func TestInstance_NeighbourKeepsAnswering(t *testing.T) {
	f := newFixture(t, Config{})
	good := f.instance(t, "ok", InstanceConfig{})
	bad := f.instance(t, "spin", InstanceConfig{})
	done := make(chan error, 1)
	go func() {
		_, err := bad.Call(context.Background(), "f", request(""), nil, Limits{Fuel: 1 << 62, Timeout: 300 * time.Millisecond})
		done <- err
	}()
	for k := 0; k < 50; k++ {
		callOK(t, good, "", nil)
	}
	if err := <-done; err == nil {
		t.Fatal("spinning call succeeded")
	}
	callOK(t, good, "", nil)
}

func TestInstance_RequestOverFrameLimit(t *testing.T) {
	f := newFixture(t, Config{MaxFrameSize: 1024})
	inst := f.instance(t, "ok", InstanceConfig{})
	_, err := inst.Call(context.Background(), "f", request(strings.Repeat("x", 2000)), nil, defaultLimits)
	if !errors.Is(err, ErrRequestTooLarge) || !strings.Contains(err.Error(), "limit 1024") {
		t.Fatalf("got %v", err)
	}
	callOK(t, inst, "", nil) // the instance was never touched
}

func TestInstance_CloseEndsGuest(t *testing.T) {
	f := newFixture(t, Config{})
	inst := f.instance(t, "ok", InstanceConfig{})
	inst.Close()
	inst.Close()
	if inst.Alive() {
		t.Fatal("alive after Close")
	}
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
	wasm, _ := wasmtime.Wat2Wasm(watModule(""))
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
	other, _ := wasmtime.Wat2Wasm(watModule(watBodies["spin"]))
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
		inst.Close()
		inst.Close()
	}
}
