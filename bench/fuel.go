package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/muprotocol/mu/libs/gobuild"
)

// The engine settings the runtime uses (services/runtime/internal/wasm:
// NewEngine and DefaultConfig), repeated here because that package is
// internal to the runtime module. Only fuel metering differs between the two
// engines of the fuel benchmark.
const (
	runtimeMaxWasmStack = 1 << 20              // wasm.DefaultConfig().MaxWasmStack
	runtimeEpochTick    = 5 * time.Millisecond // runtime.DefaultConfig().EpochTick
)

// fuelGuest is one CPU-bound guest of the fuel benchmark.
type fuelGuest struct {
	name   string // directory under guests/ and the metric's suffix
	what   string // what it computes, for results.md
	reps   int    // workload repetitions per instance (per _start)
	expect string // the result every repetition must print
}

var fuelGuests = []fuelGuest{
	{name: "fib", what: "recursive fib(30)", reps: 5, expect: "832040"},
	{name: "loop", what: "tight xorshift loop, 5·10^7 steps", reps: 2, expect: "6161352251317307305"},
	{name: "sieve", what: "sieve of Eratosthenes over 10^7 bits", reps: 2, expect: "664579"},
}

// fuelEngine is a wasmtime engine configured as the runtime's, with fuel
// metering on or off, and its epoch ticker.
type fuelEngine struct {
	fuel   bool
	engine *wasmtime.Engine
	linker *wasmtime.Linker
	stop   chan struct{}
	done   chan struct{}
}

func newFuelEngine(fuel bool) (*fuelEngine, error) {
	wc := wasmtime.NewConfig()
	wc.SetConsumeFuel(fuel)
	wc.SetEpochInterruption(true)
	wc.SetMaxWasmStack(runtimeMaxWasmStack)
	wc.SetCraneliftOptLevel(wasmtime.OptLevelSpeed)
	e := &fuelEngine{fuel: fuel, engine: wasmtime.NewEngineWithConfig(wc), stop: make(chan struct{}), done: make(chan struct{})}
	e.linker = wasmtime.NewLinker(e.engine)
	if err := e.linker.DefineWasi(); err != nil {
		return nil, err
	}
	go func() {
		defer close(e.done)
		t := time.NewTicker(runtimeEpochTick)
		defer t.Stop()
		for {
			select {
			case <-e.stop:
				return
			case <-t.C:
				e.engine.IncrementEpoch()
			}
		}
	}()
	return e, nil
}

func (e *fuelEngine) close() {
	close(e.stop)
	<-e.done
}

// fuelRun is one instance of a guest run to completion.
type fuelRun struct {
	start    time.Duration   // wall time of _start (Go runtime start-up + every repetition)
	workload []time.Duration // each repetition, as timed by the guest
	fuel     uint64          // fuel consumed (fuel-on engine only)
}

// run instantiates mod in a fresh store (not timed) and times _start to
// completion. The guest's stdout goes to a file so its results can be checked.
func (e *fuelEngine) run(mod *wasmtime.Module, g fuelGuest, tmp string) (*fuelRun, error) {
	out := filepath.Join(tmp, fmt.Sprintf("%s-%t.out", g.name, e.fuel))
	wasi := wasmtime.NewWasiConfig()
	wasi.SetArgv([]string{g.name, strconv.Itoa(g.reps)})
	if err := wasi.SetStdoutFile(out); err != nil {
		return nil, err
	}
	store := wasmtime.NewStore(e.engine)
	defer store.Close()
	store.SetWasi(wasi)
	const budget = 1 << 62
	if e.fuel {
		if err := store.SetFuel(budget); err != nil {
			return nil, err
		}
	}
	store.SetEpochDeadline(1 << 40) // never, in practice; the check is what we pay for
	inst, err := e.linker.Instantiate(store, mod)
	if err != nil {
		return nil, fmt.Errorf("instantiate %s: %w", g.name, err)
	}
	start := inst.GetFunc(store, "_start")
	if start == nil {
		return nil, fmt.Errorf("%s exports no _start", g.name)
	}
	t0 := time.Now()
	_, err = start.Call(store)
	elapsed := time.Since(t0)
	if err != nil {
		var werr *wasmtime.Error
		if status, ok := exitStatus(err, &werr); !ok || status != 0 {
			return nil, fmt.Errorf("%s: _start: %w", g.name, err)
		}
	}
	r := &fuelRun{start: elapsed}
	if e.fuel {
		left, err := store.GetFuel()
		if err != nil {
			return nil, err
		}
		r.fuel = budget - left
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		res, ns, ok := strings.Cut(line, " ")
		n, perr := strconv.ParseInt(ns, 10, 64)
		if !ok || perr != nil || res != g.expect {
			return nil, fmt.Errorf("%s printed %q, want %q and a duration", g.name, line, g.expect)
		}
		r.workload = append(r.workload, time.Duration(n))
	}
	if len(r.workload) != g.reps {
		return nil, fmt.Errorf("%s printed %d results, want %d", g.name, len(r.workload), g.reps)
	}
	return r, nil
}

func exitStatus(err error, werr **wasmtime.Error) (int32, bool) {
	if errors.As(err, werr) {
		return (*werr).ExitStatus()
	}
	return 0, false
}

// fuelResult is the outcome for one guest.
type fuelResult struct {
	guest           fuelGuest
	on, off         time.Duration // median workload repetition
	minOn, minOff   time.Duration // fastest repetition
	startOn         time.Duration // median _start wall time, fuel on
	startOff        time.Duration
	fuelPerWorkload uint64 // fuel of one repetition (≈ wasm instructions), from the median run
	compileOn       time.Duration
	compileOff      time.Duration
	samples         int
}

func (r *fuelResult) ratio() float64 { return float64(r.on) / float64(r.off) }

// measureFuel builds each guest, compiles it for both engines and runs it
// instances times per engine, alternating which engine goes first.
func measureFuel(ctx context.Context, s *Suite, guests []fuelGuest, instances int) ([]*fuelResult, error) {
	on, err := newFuelEngine(true)
	if err != nil {
		return nil, err
	}
	defer on.close()
	off, err := newFuelEngine(false)
	if err != nil {
		return nil, err
	}
	defer off.close()
	tmp, err := os.MkdirTemp("", "mubench-fuel-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	var out []*fuelResult
	for _, g := range guests {
		s.logf("fuel: building guest %s", g.name)
		path, err := gobuild.Cached(ctx, filepath.Join(s.benchDir(), "guests", g.name), s.wasmCache, gobuild.Command)
		if err != nil {
			return nil, err
		}
		wasm, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		res := &fuelResult{guest: g}
		// The full run times both compiles; a quick run, which does not
		// report them, loads the artifacts of an earlier run.
		compile := func(e *fuelEngine) (*wasmtime.Module, error) { return wasmtime.NewModule(e.engine, wasm) }
		if s.opts.Quick {
			compile = func(e *fuelEngine) (*wasmtime.Module, error) { return compileCached(e, wasm, s.wasmCache) }
		}
		t0 := time.Now()
		modOn, err := compile(on)
		if err != nil {
			return nil, fmt.Errorf("compile %s: %w", g.name, err)
		}
		res.compileOn = time.Since(t0)
		t0 = time.Now()
		modOff, err := compile(off)
		if err != nil {
			return nil, fmt.Errorf("compile %s: %w", g.name, err)
		}
		res.compileOff = time.Since(t0)

		var wOn, wOff, sOn, sOff []time.Duration
		var fuels []uint64
		// One unmeasured run each warms caches and page tables.
		for _, e := range []*fuelEngine{on, off} {
			m := map[bool]*wasmtime.Module{true: modOn, false: modOff}[e.fuel]
			if _, err := e.run(m, g, tmp); err != nil {
				return nil, err
			}
		}
		for i := range instances {
			order := []*fuelEngine{on, off}
			if i%2 == 1 {
				order = []*fuelEngine{off, on}
			}
			for _, e := range order {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				m := modOff
				if e.fuel {
					m = modOn
				}
				r, err := e.run(m, g, tmp)
				if err != nil {
					return nil, err
				}
				if e.fuel {
					wOn = append(wOn, r.workload...)
					sOn = append(sOn, r.start)
					fuels = append(fuels, r.fuel)
				} else {
					wOff = append(wOff, r.workload...)
					sOff = append(sOff, r.start)
				}
			}
		}
		modOn.Close()
		modOff.Close()
		res.on, res.off = median(wOn), median(wOff)
		res.minOn, res.minOff = slices.Min(wOn), slices.Min(wOff)
		res.startOn, res.startOff = median(sOn), median(sOff)
		slices.Sort(fuels)
		res.fuelPerWorkload = fuels[len(fuels)/2] / uint64(g.reps)
		res.samples = len(wOn)
		s.logf("fuel: %s on %v off %v ratio %.3f, fastest %v / %v = %.3f (%d samples each)", g.name, res.on, res.off, res.ratio(),
			res.minOn, res.minOff, float64(res.minOn)/float64(res.minOff), res.samples)
		out = append(out, res)
	}
	return out, nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (s *Suite) runFuel(ctx context.Context) error {
	guests, instances := fuelGuests, 9
	if s.opts.Quick {
		guests, instances = fuelGuests[:1], 3
	}
	rs, err := measureFuel(ctx, s, guests, instances)
	if err != nil {
		return err
	}
	s.res.fuel = rs
	if err := s.runReactorFuel(ctx); err != nil {
		return err
	}
	for _, r := range rs {
		note := fmt.Sprintf("%s; median of %d guest-timed repetitions per side, fuel on ÷ fuel off, epoch interruption on in both", r.guest.what, r.samples)
		s.res.add("fuel_overhead_"+r.guest.name, r.ratio(), "×", note)
		s.res.add("fuel_overhead_"+r.guest.name+"_fastest", float64(r.minOn)/float64(r.minOff), "×", r.guest.what+"; fastest repetition fuel on ÷ fastest fuel off (noise only adds time)")
		s.res.add("fuel_on_ms_"+r.guest.name, ms(r.on), "ms", r.guest.what+", fuel metering on")
		s.res.add("fuel_off_ms_"+r.guest.name, ms(r.off), "ms", r.guest.what+", fuel metering off")
	}
	return nil
}

// runReactorFuel measures fuel on and off on SDK functions (fuelreactor.go).
func (s *Suite) runReactorFuel(ctx context.Context) error {
	guests, calls := reactorGuests, 20000
	if s.opts.Quick {
		guests, calls = reactorGuests[:1], 3000 // fuel_overhead_hello
	}
	on, err := newFuelEngine(true)
	if err != nil {
		return err
	}
	defer on.close()
	off, err := newFuelEngine(false)
	if err != nil {
		return err
	}
	defer off.close()
	rs, err := measureReactorFuel(ctx, s, guests, on, off, calls)
	if err != nil {
		return err
	}
	s.res.reactorFuel = rs
	for _, r := range rs {
		note := fmt.Sprintf("%s; median of %d warm mu_serve calls per side, one instance per engine, calls alternating; fuel on ÷ fuel off, epoch interruption on in both", r.guest.what, r.calls)
		s.res.add("fuel_overhead_"+r.guest.name, r.ratio(), "×", note)
		s.res.add("fuel_overhead_"+r.guest.name+"_fastest", float64(r.minOn)/float64(r.minOff), "×", r.guest.what+"; fastest call fuel on ÷ fastest fuel off")
		s.res.add("fuel_on_us_"+r.guest.name, us(r.on), "µs", r.guest.what+"; one mu_serve call, fuel metering on")
		s.res.add("fuel_off_us_"+r.guest.name, us(r.off), "µs", r.guest.what+"; one mu_serve call, fuel metering off")
		s.res.add("fuel_per_call_"+r.guest.name, float64(r.fuelPerCall), "fuel", r.guest.what+"; fuel one call burns")
	}
	return nil
}
