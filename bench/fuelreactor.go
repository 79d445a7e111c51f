package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/muprotocol/mu/libs/fnproto"
)

// Fuel overhead on real handlers: SDK functions are reactors, entered once
// per request through mu_serve with the request's ExecuteFunction frame on
// stdin and answering FunctionResult on stdout (services/runtime/internal/
// wasm/mode_reactor.go). The bench serves them the same way on the fuel
// benchmark's two engines (fuel on and off), with stdin and stdout shadowed
// by host functions over byte slices as the runtime does, and times each
// mu_serve call: the guest's work plus the few host calls it makes, without
// the gateway, the pool or any hop.

// reactorGuest is one SDK function of the fuel benchmark.
type reactorGuest struct {
	name string // the metric's suffix
	what string // for results.md
	// wasm builds the module.
	wasm func(ctx context.Context, s *Suite) ([]byte, error)
	req  fnproto.ExecuteFunction
	// want is the body every call must answer with status 200.
	want string
}

var reactorGuests = []reactorGuest{
	{name: "hello", what: "examples/hello greet_user: GET /greet/world, one slog line, text answer",
		wasm: func(ctx context.Context, s *Suite) ([]byte, error) {
			h, err := s.helloWasm(ctx)
			if err != nil {
				return nil, err
			}
			return h.wasm, nil
		},
		req:  fnproto.ExecuteFunction{Function: "greet_user", Request: fnproto.Request{Method: "GET", PathParams: map[string]string{"name": "world"}}},
		want: "Hello, world!"},
	{name: "json", what: "bench/guests/json order: decode a 70-byte JSON body, answer JSON",
		wasm: func(ctx context.Context, s *Suite) ([]byte, error) {
			_, bins, err := s.guestStack(ctx, "json")
			if err != nil {
				return nil, err
			}
			for _, b := range bins {
				return b, nil
			}
			return nil, errors.New("json: no binary")
		},
		req: fnproto.ExecuteFunction{Function: "order", Request: fnproto.Request{Method: "POST",
			Headers: []fnproto.Header{{Name: "Content-Type", Value: "application/json"}},
			Body:    []byte(`{"item":"tea","quantity":3,"unit_cents":250,"tags":["hot","green"]}`)}},
		want: `{"item":"tea","quantity":3,"total_cents":750,"tags":2}`},
}

// reactorInstance is one instance of a reactor on one engine, its stdin
// and stdout byte slices.
type reactorInstance struct {
	store   *wasmtime.Store
	serve   *wasmtime.Func
	mem     *wasmtime.Memory
	in      []byte
	inOff   int
	out     []byte
	fuel    bool
	fuelCap uint64
}

const reactorFuelBudget = 1 << 62

// newReactorInstance instantiates mod on e, with WASI but for fd_read and
// fd_write, and runs _initialize and mu_init.
func newReactorInstance(e *fuelEngine, mod *wasmtime.Module) (*reactorInstance, error) {
	ri := &reactorInstance{fuel: e.fuel}
	l := wasmtime.NewLinker(e.engine)
	if err := l.DefineWasi(); err != nil {
		return nil, err
	}
	l.AllowShadowing(true)
	memory := func(c *wasmtime.Caller) []byte {
		if ri.mem == nil {
			if ex := c.GetExport("memory"); ex != nil {
				ri.mem = ex.Memory()
			}
			if ri.mem == nil {
				return nil
			}
		}
		return ri.mem.UnsafeData(c)
	}
	iov := func(mem []byte, iovs, n int32, fn func([]byte) bool) bool {
		if iovs < 0 || n < 0 || int64(iovs)+int64(n)*8 > int64(len(mem)) {
			return false
		}
		for k := range n {
			off := int(iovs) + int(k)*8
			p, ln := binary.LittleEndian.Uint32(mem[off:]), binary.LittleEndian.Uint32(mem[off+4:])
			if uint64(p)+uint64(ln) > uint64(len(mem)) {
				return false
			}
			if !fn(mem[p : p+ln]) {
				break
			}
		}
		return true
	}
	const errnoBadf, errnoFault = 8, 21
	put := func(mem []byte, ptr int32, v int) int32 {
		if ptr < 0 || int(ptr)+4 > len(mem) {
			return errnoFault
		}
		binary.LittleEndian.PutUint32(mem[ptr:], uint32(v))
		return 0
	}
	if err := l.FuncWrap("wasi_snapshot_preview1", "fd_read", func(c *wasmtime.Caller, fd, iovs, n, nread int32) int32 {
		if fd != 0 {
			return errnoBadf
		}
		mem := memory(c)
		total := 0
		if !iov(mem, iovs, n, func(b []byte) bool {
			k := copy(b, ri.in[ri.inOff:])
			ri.inOff += k
			total += k
			return ri.inOff < len(ri.in)
		}) {
			return errnoFault
		}
		return put(mem, nread, total) // 0 bytes: end of file, as a reactor's stdin between calls
	}); err != nil {
		return nil, err
	}
	if err := l.FuncWrap("wasi_snapshot_preview1", "fd_write", func(c *wasmtime.Caller, fd, iovs, n, nwritten int32) int32 {
		if fd != 1 && fd != 2 {
			return errnoBadf
		}
		mem := memory(c)
		total := 0
		if !iov(mem, iovs, n, func(b []byte) bool {
			total += len(b)
			if fd == 1 {
				ri.out = append(ri.out, b...)
			}
			return true
		}) {
			return errnoFault
		}
		return put(mem, nwritten, total)
	}); err != nil {
		return nil, err
	}
	ri.store = wasmtime.NewStore(e.engine)
	ri.store.SetWasi(wasmtime.NewWasiConfig())
	if e.fuel {
		if err := ri.store.SetFuel(reactorFuelBudget); err != nil {
			ri.store.Close()
			return nil, err
		}
	}
	ri.store.SetEpochDeadline(1 << 40) // never, in practice; the check is what we pay for
	inst, err := l.Instantiate(ri.store, mod)
	if err != nil {
		ri.store.Close()
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	for _, name := range []string{"_initialize", fnproto.ExportInit} {
		f := inst.GetFunc(ri.store, name)
		if f == nil {
			ri.store.Close()
			return nil, fmt.Errorf("no export %s: not a reactor", name)
		}
		if _, err := f.Call(ri.store); err != nil {
			ri.store.Close()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if ri.serve = inst.GetFunc(ri.store, fnproto.ExportServe); ri.serve == nil {
		ri.store.Close()
		return nil, fmt.Errorf("no export %s", fnproto.ExportServe)
	}
	return ri, nil
}

// call serves one request frame and returns how long mu_serve took and
// the fuel it burnt (0 on the fuel-off engine).
func (ri *reactorInstance) call(frame []byte, want string) (time.Duration, uint64, error) {
	ri.in, ri.inOff, ri.out = frame, 0, ri.out[:0]
	var before uint64
	if ri.fuel {
		before, _ = ri.store.GetFuel()
	}
	t0 := time.Now()
	v, err := ri.serve.Call(ri.store)
	d := time.Since(t0)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", fnproto.ExportServe, err)
	}
	if n, _ := v.(int32); n != 0 {
		return 0, 0, fmt.Errorf("%s returned %d", fnproto.ExportServe, n)
	}
	var fuel uint64
	if ri.fuel {
		after, _ := ri.store.GetFuel()
		fuel = before - after
	}
	r := fnproto.NewReader(bytes.NewReader(ri.out), fnproto.FromFunction, 0)
	for {
		m, err := r.Read()
		if errors.Is(err, io.EOF) {
			return 0, 0, errors.New("no FunctionResult")
		}
		if err != nil {
			return 0, 0, err
		}
		if res, ok := m.(*fnproto.FunctionResult); ok {
			if res.Response.Status != 200 || string(res.Response.Body) != want {
				return 0, 0, fmt.Errorf("answered %d %q, want 200 %q", res.Response.Status, res.Response.Body, want)
			}
			return d, fuel, nil
		}
	}
}

func (ri *reactorInstance) close() { ri.store.Close() }

// reactorFuelResult is the outcome for one SDK function.
type reactorFuelResult struct {
	guest         reactorGuest
	on, off       time.Duration // median mu_serve call
	minOn, minOff time.Duration
	fuelPerCall   uint64
	calls         int // per side
}

func (r *reactorFuelResult) ratio() float64 { return float64(r.on) / float64(r.off) }

// measureReactorFuel serves each guest on both engines, one instance
// each, alternating single calls between them after a warm-up.
func measureReactorFuel(ctx context.Context, s *Suite, guests []reactorGuest, on, off *fuelEngine, calls int) ([]*reactorFuelResult, error) {
	var out []*reactorFuelResult
	for _, g := range guests {
		wasm, err := g.wasm(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", g.name, err)
		}
		frame, err := fnproto.AppendFrame(nil, &g.req)
		if err != nil {
			return nil, err
		}
		res := &reactorFuelResult{guest: g, calls: calls}
		insts := map[bool]*reactorInstance{}
		for _, e := range []*fuelEngine{on, off} {
			mod, err := compileCached(e, wasm, s.wasmCache)
			if err != nil {
				return nil, fmt.Errorf("compile %s: %w", g.name, err)
			}
			ri, err := newReactorInstance(e, mod)
			mod.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", g.name, err)
			}
			defer ri.close()
			insts[e.fuel] = ri
		}
		ds := map[bool][]time.Duration{}
		var fuels []uint64
		for i := range calls/10 + calls {
			if i%1000 == 0 {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
			for _, fuel := range []bool{i%2 == 0, i%2 != 0} {
				d, f, err := insts[fuel].call(frame, g.want)
				if err != nil {
					return nil, fmt.Errorf("%s (fuel %t): %w", g.name, fuel, err)
				}
				if i < calls/10 {
					continue // warm-up
				}
				ds[fuel] = append(ds[fuel], d)
				if fuel {
					fuels = append(fuels, f)
				}
			}
		}
		res.on, res.off = median(ds[true]), median(ds[false])
		res.minOn, res.minOff = slices.Min(ds[true]), slices.Min(ds[false])
		slices.Sort(fuels)
		res.fuelPerCall = fuels[len(fuels)/2]
		s.logf("fuel: %s mu_serve on %v off %v ratio %.3f, fastest %v / %v (%d calls each, %d fuel per call)", g.name, res.on, res.off, res.ratio(),
			res.minOn, res.minOff, calls, res.fuelPerCall)
		out = append(out, res)
	}
	return out, nil
}

func (r *Results) reactorFuelFor(name string) *reactorFuelResult {
	for _, f := range r.reactorFuel {
		if f.guest.name == name {
			return f
		}
	}
	return nil
}

// reactorFuelBound says what the overhead on a real handler is made of.
func (r *Results) reactorFuelBound(name string) string {
	f := r.reactorFuelFor(name)
	if f == nil {
		return ""
	}
	parts := []string{fmt.Sprintf("one warm mu_serve call of %s takes %s with fuel metering and %s without (fastest %s and %s), %d fuel (≈ wasm instructions) per call",
		f.guest.name, dur(f.on), dur(f.off), dur(f.minOn), dur(f.minOff), f.fuelPerCall)}
	parts = append(parts, fmt.Sprintf("the difference, %s per call, is the metering code Cranelift emits with consume_fuel (a counter update per basic block, checks at function entries and loop headers)", dur(f.on-f.off)))
	var cpu []string
	for _, g := range r.fuel {
		cpu = append(cpu, fmt.Sprintf("%s %.3f×", g.guest.name, g.ratio()))
	}
	if len(cpu) > 0 {
		parts = append(parts, "a real handler's call is partly host work (the stdio host calls, the SDK's framing) that metering does not touch, so it pays less than CPU-bound guests ("+strings.Join(cpu, ", ")+")")
	}
	return strings.Join(parts, "; ") + "."
}

// compileCached compiles wasm on e, or loads it from the artifact a
// previous run left in dir (keyed by the module's content and the fuel
// setting; an artifact wasmtime refuses is compiled again): compiling an
// SDK function with Cranelift takes seconds, which the quick run cannot
// spend twice per handler. Compile time is not what this step measures.
func compileCached(e *fuelEngine, wasm []byte, dir string) (*wasmtime.Module, error) {
	sum := sha256.Sum256(wasm)
	path := filepath.Join(dir, fmt.Sprintf("mubench-fuel-%x-fuel%t.cwasm", sum[:12], e.fuel))
	if mod, err := wasmtime.NewModuleDeserializeFile(e.engine, path); err == nil {
		return mod, nil
	}
	mod, err := wasmtime.NewModule(e.engine, wasm)
	if err != nil {
		return nil, err
	}
	if b, err := mod.Serialize(); err == nil && os.MkdirAll(dir, 0o755) == nil {
		writeFile(path, b) // best effort: the next run compiles again without it
	}
	return mod, nil
}
