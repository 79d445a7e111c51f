package wasm

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/muprotocol/mu/libs/fnproto"
)

// loopN runs $n iterations of 8 metered operators: $n is the number of
// bytes the guest read, so a request 1000 bytes longer runs exactly 8000
// more instructions before the ending that follows it.
const loopN = `(local.set $i (local.get $n))
      (block $done (loop $l
        (br_if $done (i32.eqz (local.get $i)))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $l)))
      `

func init() {
	for name, ending := range map[string]string{
		"n-result":      ``,
		"n-fatal":       `(call $write (i32.const 1) (i32.const 420) (i32.const 13)) (br $serve)`,
		"n-exit":        `(call $proc_exit (i32.const 3))`,
		"n-garbage":     `(call $write (i32.const 1) (i32.const 300) (i32.const 17))`,
		"n-unreachable": `unreachable`,
		"n-recurse":     `(call $recurse (i32.const 0))`,
		"n-spin":        `(call $spin)`,
		"n-oob":         `(drop (i32.load (i32.const -16)))`,
		"n-divzero":     `(drop (i32.div_u (local.get $n) (i32.sub (local.get $n) (local.get $n))))`,
		"n-flood":       `(loop $f ` + stderrOops + ` (br $f))`,
		"n-sleep":       sleepBody(10 * time.Second),
		"n-grow-exit":   `(block $b (loop $g (br_if $b (i32.eq (memory.grow (i32.const 16)) (i32.const -1))) (br $g))) (call $proc_exit (i32.const 2))`,
	} {
		watBodies[name] = loopN + ending
	}
}

// TestInstance_BillsEveryEnding: whichever way a call ends, it is billed at
// least the instructions it ran. Each module runs a known number of
// instructions (loopN) and then ends one way; the same module is called
// with a short and a 1000-byte-longer request. Where the count is exact,
// the bills differ by exactly the 8000 instructions and the 125 fuel of
// the extra request bytes; where it is a bound (a deadline kill, traps
// that lose the count), both are billed the whole budget, which is more
// than the loop ran.
func TestInstance_BillsEveryEnding(t *testing.T) {
	f := newFixture(t, Config{})
	type kind int
	const (
		exact kind = iota
		bound
	)
	cases := []struct {
		module  string
		limits  Limits
		mem     uint64
		want    ErrorKind // 0: a result
		msg     string
		billing kind
	}{
		{module: "n-result", limits: defaultLimits, billing: exact},
		{module: "n-fatal", limits: defaultLimits, want: KindFunctionError, msg: "bad", billing: exact},
		{module: "n-exit", limits: defaultLimits, want: KindCrash, msg: "status 3", billing: exact},
		{module: "n-garbage", limits: defaultLimits, want: KindProtocol, msg: "invalid frame", billing: exact},
		{module: "n-unreachable", limits: defaultLimits, want: KindCrash, msg: "unreachable", billing: exact},
		{module: "n-recurse", limits: defaultLimits, want: KindCrash, msg: "call stack exhausted", billing: exact},
		{module: "n-sleep", limits: Limits{Fuel: 1_000_000, Timeout: 50 * time.Millisecond}, want: KindDeadline, msg: "sleeping", billing: exact},
		{module: "n-grow-exit", limits: defaultLimits, mem: 2 << 20, want: KindMemoryLimit, msg: "status 2", billing: exact},
		{module: "n-spin", limits: Limits{Fuel: 1_000_000, Timeout: 5 * time.Second}, want: KindFuelExhausted, msg: "fuel", billing: bound},
		{module: "n-spin", limits: Limits{Fuel: 50_000_000_000, Timeout: 50 * time.Millisecond}, want: KindDeadline, msg: "deadline", billing: bound},
		{module: "n-oob", limits: defaultLimits, want: KindCrash, msg: "out of bounds memory access", billing: bound},
		{module: "n-divzero", limits: defaultLimits, want: KindCrash, msg: "integer divide by zero", billing: bound},
	}
	inModes(t, func(t *testing.T, mode string) {
		for _, tc := range cases {
			t.Run(tc.module+"/"+tc.want.String(), func(t *testing.T) {
				var fuel [2]uint64
				for k, size := range []int{0, 1000} {
					inst := f.instance(t, mode, tc.module, InstanceConfig{MemoryLimit: tc.mem})
					res, err := inst.Call(context.Background(), "f", request(strings.Repeat("x", size)), nil, tc.limits)
					if tc.want == 0 {
						if err != nil {
							t.Fatalf("call: %v", err)
						}
						fuel[k] = res.Fuel - inst.StartupFuel
						continue
					}
					ce, ok := AsCallError(err)
					if !ok || ce.Kind != tc.want || !strings.Contains(ce.Message, tc.msg) {
						t.Fatalf("got %v, want %v containing %q", err, tc.want, tc.msg)
					}
					fuel[k] = ce.Fuel - inst.StartupFuel
				}
				ran := uint64(8 * 1000) // what the longer request ran more
				extra := frameFuel(1000) - frameFuel(0)
				switch tc.billing {
				case exact:
					if fuel[1]-fuel[0] != ran+extra {
						t.Fatalf("billed %d and %d: the 8000 more instructions and %d more bytes' fuel were billed as %d", fuel[0], fuel[1], extra, fuel[1]-fuel[0])
					}
					if fuel[0] >= tc.limits.Fuel {
						t.Fatalf("billed %d, the whole budget: not an exact count", fuel[0])
					}
				case bound:
					for k, size := range []int{0, 1000} {
						if want := tc.limits.Fuel + frameFuel(size); fuel[k] != want {
							t.Fatalf("request of %d bytes billed %d, want the budget plus its bytes, %d", size, fuel[k], want)
						}
					}
				}
			})
		}
	})
}

// TestInstance_HostLoopStopsAtDeadline: a guest that loops over host calls
// (a stderr flood) is stopped at its deadline, either by the epoch check
// in its loop (billed its budget) or by the host's own check in fd_write
// (billed exactly, less than its budget), and the flood's bytes are billed.
func TestInstance_HostLoopStopsAtDeadline(t *testing.T) {
	f := newFixture(t, Config{})
	inModes(t, func(t *testing.T, mode string) {
		var lines int
		inst := f.instance(t, mode, "n-flood", InstanceConfig{Log: func(Log) { lines++ }})
		lim := Limits{Fuel: 1 << 40, Timeout: 200 * time.Millisecond}
		start := time.Now()
		_, err := inst.Call(context.Background(), "f", request(""), nil, lim)
		elapsed := time.Since(start)
		ce, ok := AsCallError(err)
		if !ok || ce.Kind != KindDeadline {
			t.Fatalf("got %v", err)
		}
		if elapsed < lim.Timeout || elapsed > lim.Timeout+2*time.Second {
			t.Fatalf("a %s deadline ended the flood after %s", lim.Timeout, elapsed)
		}
		// Each "oops\n" costs the loop's operators and 5/8 fuel of bytes.
		if lines == 0 || ce.Fuel <= uint64(lines)*5/8 {
			t.Fatalf("%d lines billed %d fuel", lines, ce.Fuel)
		}
		if ce.Fuel-inst.StartupFuel != lim.Fuel+frameFuel(0) && !strings.Contains(ce.Message, "during fd_write") {
			t.Fatalf("billed %d, neither the budget nor a count from the host's own check (%v)", ce.Fuel, ce)
		}
	})
}

// TestInstance_StartupFailureIsBilled: an instance whose start-up fails
// reports the fuel the start-up burnt, so the call it was started for is
// billed for it.
func TestInstance_StartupFailureIsBilled(t *testing.T) {
	f := newFixture(t, Config{StartupFuel: 1_000_000})
	startup := func(body string) (*Instance, error) {
		wasm, err := wasmtime.Wat2Wasm(`(module
  (memory (export "memory") 1)
  (func (export "_initialize"))
  (func (export "mu_init") (local $i i32) ` + body + `)
  (func (export "mu_serve") (result i32) (i32.const 0)))`)
		if err != nil {
			t.Fatal(err)
		}
		mod, err := f.e.Compile(wasm)
		if err != nil {
			t.Fatal(err)
		}
		return f.e.NewInstance(context.Background(), mod, InstanceConfig{})
	}
	empty, err := startup(``)
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	_, err = startup(`(local.set $i (i32.const 1000))
    (block $d (loop $l (br_if $d (i32.eqz (local.get $i))) (local.set $i (i32.sub (local.get $i) (i32.const 1))) (br $l)))
    unreachable`)
	ce, ok := AsCallError(err)
	if !ok || ce.Kind != KindCrash || !strings.Contains(ce.Message, "mu_init: wasm trap: wasm `unreachable`") {
		t.Fatalf("got %v", err)
	}
	// 2 operators set the counter up, 1000 iterations of 8 and 3 to leave.
	if want := empty.StartupFuel + 2 + 8*1000 + 3; ce.Fuel != want {
		t.Fatalf("failed start-up billed %d fuel, want %d", ce.Fuel, want)
	}
}

// TestCommand_GraceTimeoutBillsTheBudget: a command-mode call the instance
// does not give back (here, a handler that ignores its context past the
// grace period) is billed its whole budget, and its start-up on a first call.
func TestCommand_GraceTimeoutBillsTheBudget(t *testing.T) {
	f := newFixture(t, Config{StartupTimeout: 20 * time.Millisecond})
	inst := f.instance(t, modeCommand, "db", InstanceConfig{})
	release := make(chan struct{})
	defer close(release)
	lim := Limits{Fuel: 7_000_000, Timeout: 20 * time.Millisecond}
	_, err := inst.Call(context.Background(), "f", request(""), func(ctx context.Context, m fnproto.Message) (fnproto.Message, error) {
		<-release // ignores ctx
		return &fnproto.EmptyResult{}, nil
	}, lim)
	ce, ok := AsCallError(err)
	if !ok || ce.Kind != KindDeadline || !strings.Contains(ce.Message, "did not stop") {
		t.Fatalf("got %v", err)
	}
	if ce.Fuel != lim.Fuel+inst.StartupFuel || inst.StartupFuel == 0 {
		t.Fatalf("abandoned call billed %d, want its budget %d and start-up %d", ce.Fuel, lim.Fuel, inst.StartupFuel)
	}
	if inst.Alive() {
		t.Fatal("abandoned instance still alive")
	}
}

// TestTrap_MessageKeepsCauseAndBacktrace: unbounded recursion reports
// "call stack exhausted" and a bounded backtrace.
func TestTrap_MessageKeepsCauseAndBacktrace(t *testing.T) {
	f := newFixture(t, Config{MaxTrapFrames: 3})
	inModes(t, func(t *testing.T, mode string) {
		inst := f.instance(t, mode, "n-recurse", InstanceConfig{})
		_, err := inst.Call(context.Background(), "f", request(""), nil, defaultLimits)
		ce, ok := AsCallError(err)
		if !ok || ce.Kind != KindCrash {
			t.Fatalf("got %v", err)
		}
		if !strings.HasPrefix(ce.Message, "wasm trap: call stack exhausted; at ") || strings.Count(ce.Message, " < ") != 2 ||
			!strings.Contains(ce.Message, "more frames)") || len(ce.Message) > 400 {
			t.Fatalf("message %q", ce.Message)
		}
		if ce.Fuel == 0 || ce.Fuel >= defaultLimits.Fuel {
			t.Fatalf("billed %d", ce.Fuel)
		}
	})
}
