package wasm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/gobuild"
)

// compileWAT compiles a module made of decls and body (see watModuleDecls).
func compileWAT(t *testing.T, e *Engine, mode, decls, body string) *Module {
	t.Helper()
	wasm, err := wasmtime.Wat2Wasm(watModuleDecls(mode, decls, body))
	if err != nil {
		t.Fatalf("wat: %v", err)
	}
	m, err := e.Compile(wasm)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return m
}

// TestBulk_FuelIsProportional: every bulk operator costs fuel in proportion
// to what it touches. Each module applies one operator to a size derived
// from the request length $n; a request 1000 bytes longer must cost exactly
// 1000 × the operator's rate more (plus the 125 fuel of the extra bytes read).
func TestBulk_FuelIsProportional(t *testing.T) {
	f := newFixture(t, Config{})
	data := strings.Repeat("d", 8*1200)
	elems := strings.Repeat(" (ref.null func)", 1200)
	cases := []struct {
		name, decls, body string
		perN              uint64 // fuel per unit of $n
	}{
		// 32 bytes per $n at 8 bytes per fuel.
		{"memory.fill", "", `(memory.fill (i32.const 1024) (i32.const 7) (i32.shl (local.get $n) (i32.const 5)))`, 4},
		{"memory.copy", "", `(memory.copy (i32.const 1024) (i32.const 0) (i32.shl (local.get $n) (i32.const 5)))`, 4},
		{"memory.init", `(data $d "` + data + `")`, `(memory.init $d (i32.const 1024) (i32.const 0) (i32.shl (local.get $n) (i32.const 3)))`, 1},
		// One page per $n: 65536 / 8 fuel, charged once the grow succeeded.
		{"memory.grow", "", `(drop (memory.grow (local.get $n)))`, 65536 / 8},
		// One element per $n.
		{"table.fill", `(table $t 2400 funcref)`, `(table.fill $t (i32.const 0) (ref.null func) (local.get $n))`, 1},
		{"table.copy", `(table $t 2400 funcref)`, `(table.copy $t $t (i32.const 1200) (i32.const 0) (local.get $n))`, 1},
		{"table.init", `(table $t 2400 funcref) (elem $e funcref` + elems + `)`, `(table.init $t $e (i32.const 0) (i32.const 0) (local.get $n))`, 1},
		{"table.grow", `(table $t 0 funcref)`, `(drop (table.grow $t (ref.null func) (local.get $n)))`, 1},
	}
	inModes(t, func(t *testing.T, mode string) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				mod := compileWAT(t, f.e, mode, tc.decls, tc.body)
				if mod.shape.Rewritten == 0 {
					t.Fatal("nothing was rewritten")
				}
				var fuel [2]uint64
				for k, size := range []int{0, 1000} {
					inst, err := f.e.NewInstance(context.Background(), mod, InstanceConfig{})
					if err != nil {
						t.Fatal(err)
					}
					res := callOK(t, inst, strings.Repeat("x", size), nil)
					fuel[k] = res.Fuel - inst.StartupFuel
					if tc.name == "memory.grow" && inst.MemorySize() < uint64(size)*65536 {
						t.Fatalf("memory did not grow: %d bytes", inst.MemorySize())
					}
					inst.Close()
				}
				if got, want := fuel[1]-fuel[0], 1000*tc.perN+frameFuel(1000)-frameFuel(0); got != want {
					t.Fatalf("1000 more units cost %d fuel (%d then %d), want %d", got, fuel[0], fuel[1], want)
				}
				// The short request: its ~30 units, the serving loop and the
				// helper's fixed cost, nothing more.
				if fuel[0] > 100+helperFuel+40*tc.perN {
					t.Fatalf("a small operation cost %d fuel", fuel[0])
				}
			})
		}
	})
}

// TestBulk_NoFreeWork: 100 fills of 60 MB cost at least their bytes'
// fuel; with a smaller budget they run out of fuel, billed the budget.
func TestBulk_NoFreeWork(t *testing.T) {
	f := newFixture(t, Config{})
	body := `(drop (memory.grow (i32.const 960)))
      (local.set $i (i32.const 100))
      (block $d (loop $l (br_if $d (i32.eqz (local.get $i)))
        (memory.fill (i32.const 65536) (local.get $i) (i32.const 60000000))
        (local.set $i (i32.sub (local.get $i) (i32.const 1))) (br $l)))`
	inModes(t, func(t *testing.T, mode string) {
		mod := compileWAT(t, f.e, mode, "", body)
		inst, err := f.e.NewInstance(context.Background(), mod, InstanceConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer inst.Close()
		res, err := inst.Call(context.Background(), "f", request(""), nil, Limits{Fuel: 2_000_000_000, Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if min := uint64(100 * 60_000_000 / 8); res.Fuel < min {
			t.Fatalf("6 GB of fills billed %d fuel, less than %d", res.Fuel, min)
		}
		inst2, err := f.e.NewInstance(context.Background(), mod, InstanceConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer inst2.Close()
		_, err = inst2.Call(context.Background(), "f", request(""), nil, Limits{Fuel: 100_000_000, Timeout: 30 * time.Second})
		ce, ok := AsCallError(err)
		if !ok || ce.Kind != KindFuelExhausted || ce.Fuel-inst2.StartupFuel != 100_000_000+frameFuel(0) {
			t.Fatalf("got %v (fuel %d)", err, ce.Fuel)
		}
	})
}

// TestCompile_RefusesWhatIsNotMetered: features outside what the rewrite
// decodes and what memory_limit bounds are refused at Compile.
func TestCompile_RefusesWhatIsNotMetered(t *testing.T) {
	f := newFixture(t, Config{MaxTables: 2})
	cases := map[string]string{
		"multi-memory":    `(memory 1)`,
		"shared memory":   `(memory $s 1 1 shared)`,
		"simd":            `(func (drop (v128.const i64x2 0 0)))`,
		"atomics":         `(func (drop (i32.atomic.load (i32.const 0))))`,
		"imported memory": `(import "env" "m" (memory 1))`,
		"reserved export": `(func (export "mu:x"))`,
		"tables":          `(table 1 funcref) (table 1 funcref) (table 1 funcref)`,
	}
	for name, decls := range cases {
		t.Run(name, func(t *testing.T) {
			src := watModuleDecls(modeReactor, decls, "")
			if name == "imported memory" {
				// imports go first
				src = strings.Replace(src, "(module\n", "(module\n  "+decls+"\n", 1)
				src = strings.Replace(src, "  "+decls+"\n  (func $reactor", "  (func $reactor", 1)
			}
			wasm, err := wasmtime.Wat2Wasm(src)
			if err != nil {
				t.Skipf("wat cannot express it: %v", err)
			}
			if _, err := f.e.Compile(wasm); !errors.Is(err, ErrInvalidModule) {
				t.Fatalf("compiled: %v", err)
			}
		})
	}
}

// TestMemoryLimit_CountsTables: tables count against memory_limit, at
// TableElementBytes per element, and so does the pool's MemorySize.
func TestMemoryLimit_CountsTables(t *testing.T) {
	f := newFixture(t, Config{MaxTableElements: 1 << 20})
	inModes(t, func(t *testing.T, mode string) {
		// A fixed table of 100k elements: 800 kB besides the 64 KiB page.
		mod := compileWAT(t, f.e, mode, `(table 100000 funcref)`, "")
		inst, err := f.e.NewInstance(context.Background(), mod, InstanceConfig{MemoryLimit: 2 << 20})
		if err != nil {
			t.Fatal(err)
		}
		res := callOK(t, inst, "", nil)
		if got, want := inst.MemorySize(), uint64(65536+100000*TableElementBytes); got != want || res.Fuel == 0 {
			t.Fatalf("MemorySize %d, want %d", got, want)
		}
		inst.Close()
		// The same table does not fit in 512 KiB.
		_, err = f.e.NewInstance(context.Background(), mod, InstanceConfig{MemoryLimit: 512 << 10})
		if ce, ok := AsCallError(err); !ok || ce.Kind != KindMemoryLimit || ce.Fuel != 0 {
			t.Fatalf("got %v", err)
		}
		// More elements than max_table_elements never start.
		big := compileWAT(t, f.e, mode, `(table 100000000 funcref)`, "")
		_, err = f.e.NewInstance(context.Background(), big, InstanceConfig{MemoryLimit: 4 << 30})
		if ce, ok := AsCallError(err); !ok || ce.Kind != KindMemoryLimit || !strings.Contains(ce.Message, "max_table_elements") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestMemoryLimit_BoundsMemoryAndTablesTogether: a module that grows its
// table and its memory as far as they go holds no more than memory_limit,
// and the refused grow makes its crash a memory-limit failure.
func TestMemoryLimit_BoundsMemoryAndTablesTogether(t *testing.T) {
	const limit = 8 << 20
	f := newFixture(t, Config{MaxTableElements: 256 << 10}) // 2 MiB of table at most
	body := `(block $b (loop $g (br_if $b (i32.eq (table.grow $t (ref.null func) (i32.const 4096)) (i32.const -1))) (br $g)))
      (block $b (loop $g (br_if $b (i32.eq (memory.grow (i32.const 1)) (i32.const -1))) (br $g)))
      unreachable`
	inModes(t, func(t *testing.T, mode string) {
		mod := compileWAT(t, f.e, mode, `(table $t 0 funcref)`, body)
		inst, err := f.e.NewInstance(context.Background(), mod, InstanceConfig{MemoryLimit: limit})
		if err != nil {
			t.Fatal(err)
		}
		defer inst.Close()
		_, err = inst.Call(context.Background(), "f", request(""), nil, defaultLimits)
		ce, ok := AsCallError(err)
		if !ok || ce.Kind != KindMemoryLimit || ce.Fuel == 0 || ce.Fuel >= defaultLimits.Fuel {
			t.Fatalf("got %v", err)
		}
		// What it held when the call ended: at most the limit, of which
		// the table got its whole MaxTableElements.
		if held := inst.MemorySize(); held > limit || held < 256<<10*TableElementBytes+limit/2 ||
			!strings.Contains(ce.Message, fmt.Sprintf("tables %d bytes", 256<<10*TableElementBytes)) {
			t.Fatalf("holds %d bytes under a %d-byte limit: %v", held, limit, ce)
		}
	})
}

// goGuest builds a Go package for wasip1 (cached across runs).
func goGuest(t *testing.T, dir string, mode gobuild.Mode) []byte {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a Go guest")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	path, err := gobuild.Cached(ctx, dir, gobuild.TestCacheDir(), mode)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGoGuest_HelloIsInstrumentedAndServes: Go's wasip1 output uses bulk
// memory (rewritten) and nothing the engine refuses, and still answers.
func TestGoGuest_HelloIsInstrumentedAndServes(t *testing.T) {
	wasm := goGuest(t, filepath.Join("..", "..", "..", "..", "examples", "hello"), gobuild.Reactor)
	f := newFixture(t, Config{OptLevel: "none"})
	mod, err := f.e.Compile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	if !mod.Reactor() || mod.shape.Rewritten == 0 || mod.shape.TableGrow {
		t.Fatalf("reactor %v, rewritten %d, table.grow %v", mod.Reactor(), mod.shape.Rewritten, mod.shape.TableGrow)
	}
	inst, err := f.e.NewInstance(context.Background(), mod, InstanceConfig{MemoryLimit: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	req := &fnproto.Request{Method: "GET", PathParams: map[string]string{"name": "mu"}}
	for k := range 2 {
		res, err := inst.Call(context.Background(), "greet_user", req, nil, defaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Response.Body) != "Hello, mu!" || res.Fuel == 0 || (k == 0 && res.Fuel <= inst.StartupFuel) {
			t.Fatalf("call %d: %q, fuel %d", k, res.Response.Body, res.Fuel)
		}
	}
	if want := 65536*mod.shape.MemoryMin + mod.shape.Tables[0].Min*TableElementBytes; inst.MemorySize() < want {
		t.Fatalf("MemorySize %d does not count Go's function table (at least %d)", inst.MemorySize(), want)
	}
}

// TestGoGuest_OutOfMemoryIsTheMemoryLimit: a Go function that allocates
// 16 MiB at a time past its limit fails as the memory limit, not a crash,
// and is billed exactly (it exits through proc_exit).
func TestGoGuest_OutOfMemoryIsTheMemoryLimit(t *testing.T) {
	wasm := goGuest(t, filepath.Join("testdata", "oomguest"), gobuild.Command)
	f := newFixture(t, Config{OptLevel: "none"})
	mod, err := f.e.Compile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	for _, limit := range []uint64{64 << 20, 100 << 20} {
		t.Run(fmt.Sprint(limit>>20, "MiB"), func(t *testing.T) {
			var stderr []string
			inst, err := f.e.NewInstance(context.Background(), mod, InstanceConfig{MemoryLimit: limit, Log: func(l Log) { stderr = append(stderr, l.Body) }})
			if err != nil {
				t.Fatal(err)
			}
			defer inst.Close()
			_, err = inst.Call(context.Background(), "f", request(""), nil, Limits{Fuel: 5_000_000_000, Timeout: 20 * time.Second})
			ce, ok := AsCallError(err)
			if !ok || ce.Kind != KindMemoryLimit || !strings.Contains(ce.Message, "exited with status 2") {
				t.Fatalf("got %v; stderr %q", err, stderr)
			}
			if ce.Fuel <= inst.StartupFuel || ce.Fuel >= 5_000_000_000 {
				t.Fatalf("billed %d (start-up %d)", ce.Fuel, inst.StartupFuel)
			}
			if held := inst.MemorySize(); held > limit || held < limit/2 {
				t.Fatalf("held %d bytes at the end, limit %d", held, limit)
			}
		})
	}
}

// TestDeadline_NeverEarlyBoundedLate: 8 spinners on 2 cores end no earlier
// than their deadline and not long after it (a generous bound: the figure
// itself is BenchmarkDeadlineOverrun8's).
func TestDeadline_NeverEarlyBoundedLate(t *testing.T) {
	o, err := MeasureDeadlineOverrun(context.Background(), Config{}, 8, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(o)
	if o.Early != 0 || o.Max > time.Second {
		t.Fatalf("%v", o)
	}
}

// BenchmarkDeadlineOverrun8 reports how far 8 concurrent spinners with a
// 1 s deadline run past it (target: at most 10% + one tick).
func BenchmarkDeadlineOverrun8(b *testing.B) {
	for range b.N {
		o, err := MeasureDeadlineOverrun(context.Background(), Config{}, 8, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(o.Max)/1e6, "max-overrun-ms")
		b.ReportMetric(float64(o.Mean)/1e6, "mean-overrun-ms")
		b.ReportMetric(100*o.MaxFraction(), "max-overrun-%")
	}
}

// TestCompile_CannotReachTheRewritesOwnIndices: a module that names the
// global (or function) the rewrite will append is invalid as written and
// is refused, instead of becoming valid once rewritten.
func TestCompile_CannotReachTheRewritesOwnIndices(t *testing.T) {
	f := newFixture(t, Config{})
	for name, wat := range map[string]string{
		// The module defines no global: index 0 is the one the rewrite adds.
		"global": `(module (memory (export "memory") 1) (func (export "_start") (global.set 0 (i32.const 1))) (func (memory.fill (i32.const 0) (i32.const 0) (i32.const 0))))`,
		// Function 2 is the charge function the rewrite appends.
		"function": `(module (memory (export "memory") 1) (func (export "_start") (call 2 (i64.const 0))) (func (memory.fill (i32.const 0) (i32.const 0) (i32.const 0))))`,
	} {
		t.Run(name, func(t *testing.T) {
			wasm, err := wasmtime.Wat2Wasm(wat)
			if err != nil {
				t.Skipf("wat refuses it: %v", err)
			}
			if _, err := f.e.Compile(wasm); !errors.Is(err, ErrInvalidModule) {
				t.Fatalf("compiled: %v", err)
			}
		})
	}
}

// FuzzInstrument: the rewrite never panics, and whatever it accepts it
// turns into a module wasmtime validates.
func FuzzInstrument(f *testing.F) {
	for _, body := range watBodies {
		for _, mode := range modes {
			if wasm, err := wasmtime.Wat2Wasm(watModule(mode, body)); err == nil {
				f.Add(wasm)
			}
		}
	}
	wasm, _ := wasmtime.Wat2Wasm(watModuleDecls(modeCommand, `(table $t 4 funcref) (elem $e funcref (ref.null func))`,
		`(table.init $t $e (i32.const 0) (i32.const 0) (i32.const 1)) (drop (table.grow $t (ref.null func) (i32.const 1))) (table.fill $t (i32.const 0) (ref.null func) (i32.const 1)) (table.copy $t $t (i32.const 0) (i32.const 1) (i32.const 1))`))
	f.Add(wasm)
	e, err := NewEngine(Config{OptLevel: "none"})
	if err != nil {
		f.Fatal(err)
	}
	defer e.Close()
	f.Fuzz(func(t *testing.T, wasm []byte) {
		if wasmtime.ModuleValidate(e.engine, wasm) != nil {
			return
		}
		out, _, err := instrument(wasm, 8)
		if err != nil {
			return
		}
		if err := wasmtime.ModuleValidate(e.engine, out); err != nil {
			t.Fatalf("the rewrite of a valid module is invalid: %v", err)
		}
	})
}
