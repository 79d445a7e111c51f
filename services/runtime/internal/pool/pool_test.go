package pool

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/services/runtime/internal/wasm"
)

// serveWAT answers every request with status 200; "pages" extra 64 KiB pages
// are grown at start-up so tests can give instances a known memory size.
const serveWAT = `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "\0e\00\00\00\02\00\c8\00\00\00\00\00\02\00\00\00hi")
  (func (export "_start")
    (drop (memory.grow (i32.const 15)))
    (loop $serve
      (i32.store (i32.const 0) (i32.const 1024))
      (i32.store (i32.const 4) (i32.const 60000))
      (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
      (if (i32.eqz (i32.load (i32.const 16))) (then (return)))
      (i32.store (i32.const 8) (i32.const 256))
      (i32.store (i32.const 12) (i32.const 18))
      (drop (call $fd_write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 20)))
      (br $serve))))`

const instanceBytes = 16 * 64 << 10 // 1 MiB after the start-up grow

type env struct {
	e       *wasm.Engine
	mod     *wasm.Module
	started atomic.Int32
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e, err := wasm.NewEngine(wasm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	bin, err := wasmtime.Wat2Wasm(serveWAT)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := e.Compile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return &env{e: e, mod: mod}
}

func (v *env) factory(ctx context.Context) (*wasm.Instance, error) {
	v.started.Add(1)
	return v.e.NewInstance(ctx, v.mod, wasm.InstanceConfig{})
}

func newPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func call(t *testing.T, inst *wasm.Instance) {
	t.Helper()
	if _, err := inst.Call(context.Background(), "f", &fnproto.Request{Method: "GET"}, nil, wasm.Limits{Fuel: 1e6, Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
}

func TestPool_ReusesWarmInstances(t *testing.T) {
	v := newEnv(t)
	p := newPool(t, DefaultConfig())
	for range 5 {
		inst, err := p.Get(context.Background(), "a", v.factory)
		if err != nil {
			t.Fatal(err)
		}
		call(t, inst)
		p.Put("a", inst)
	}
	if n := v.started.Load(); n != 1 {
		t.Fatalf("started %d instances for 5 sequential calls, want 1", n)
	}
	if idle, active := p.Stats("a"); idle != 1 || active != 0 {
		t.Fatalf("idle %d active %d", idle, active)
	}
	if got := p.IdleBytes(); got != instanceBytes {
		t.Fatalf("idle bytes %d, want %d", got, instanceBytes)
	}
}

func TestPool_CapsActiveAndIdle(t *testing.T) {
	v := newEnv(t)
	cfg := DefaultConfig()
	cfg.MaxActivePerFunction = 2
	cfg.MaxIdlePerFunction = 1
	p := newPool(t, cfg)
	a, _ := p.Get(context.Background(), "f", v.factory)
	b, _ := p.Get(context.Background(), "f", v.factory)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.Get(ctx, "f", v.factory); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third concurrent Get: %v", err)
	}
	p.Put("f", a)
	p.Put("f", b) // over the idle cap: closed
	if idle, active := p.Stats("f"); idle != 1 || active != 0 {
		t.Fatalf("idle %d active %d", idle, active)
	}
	if !eventually(func() bool { return !b.Alive() }) {
		t.Fatal("instance over the idle cap was not closed")
	}
}

func TestPool_MemoryBudgetEvictsLeastValuableFunction(t *testing.T) {
	v := newEnv(t)
	cfg := DefaultConfig()
	cfg.IdleMemoryBudget = 2 * instanceBytes
	p := newPool(t, cfg)
	use := func(key string, times int) {
		for range times {
			inst, err := p.Get(context.Background(), key, v.factory)
			if err != nil {
				t.Fatal(err)
			}
			p.Put(key, inst)
		}
	}
	use("hot", 10)
	use("warm", 3)
	use("cold", 1) // over budget: the least used function goes
	if p.IdleBytes() > cfg.IdleMemoryBudget {
		t.Fatalf("idle bytes %d over budget %d", p.IdleBytes(), cfg.IdleMemoryBudget)
	}
	if idle, _ := p.Stats("hot"); idle != 1 {
		t.Fatal("the hottest function lost its warm instance")
	}
}

func TestPool_DeadInstancesAreNotReused(t *testing.T) {
	v := newEnv(t)
	p := newPool(t, DefaultConfig())
	inst, _ := p.Get(context.Background(), "f", v.factory)
	inst.Close()
	p.Put("f", inst)
	inst2, err := p.Get(context.Background(), "f", v.factory)
	if err != nil || inst2 == inst {
		t.Fatalf("got the dead instance back (%v)", err)
	}
	call(t, inst2)
	p.Put("f", inst2)
}

func TestPool_RemoveExpireAndClose(t *testing.T) {
	v := newEnv(t)
	cfg := DefaultConfig()
	cfg.IdleTimeout = 30 * time.Millisecond
	p := newPool(t, cfg)
	if err := p.Prewarm(context.Background(), "f", v.factory, 2); err != nil {
		t.Fatal(err)
	}
	if idle, _ := p.Stats("f"); idle != 2 {
		t.Fatalf("prewarmed %d", idle)
	}
	deadline := time.Now().Add(2 * time.Second)
	for p.IdleBytes() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if p.IdleBytes() != 0 {
		t.Fatal("idle instances did not expire")
	}
	inst, _ := p.Get(context.Background(), "g", v.factory)
	p.Remove("g")
	p.Put("g", inst)
	if !eventually(func() bool { return !inst.Alive() }) {
		t.Fatal("instance of a removed function kept alive")
	}
	p.Close()
	p.Close()
	if _, err := p.Get(context.Background(), "f", v.factory); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}

// eventually polls cond for up to 5 s: instances are closed in the
// background, and a loaded machine may take a while to get there.
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}
