package pool

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/services/runtime/internal/wasm"
)

// serveWAT answers every request with status 200; 15 extra 64 KiB pages
// are grown at start-up, and written, so tests can give instances a known
// memory size that they also hold (ResidentBytes).
var serveWAT = serveWATWriting(15 * 64 << 10)

// serveWATWriting is serveWAT writing n bytes of the grown pages at start-up.
func serveWATWriting(n int) string {
	return `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "\0e\00\00\00\02\00\c8\00\00\00\00\00\02\00\00\00hi")
  (func (export "_start")
    (drop (memory.grow (i32.const 15)))
    (memory.fill (i32.const 65536) (i32.const 1) (i32.const ` + fmt.Sprint(n) + `))
    (loop $serve
      (i32.store (i32.const 0) (i32.const 1024))
      (i32.store (i32.const 4) (i32.const 60000))
      (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
      (if (i32.eqz (i32.load (i32.const 16))) (then (return)))
      (i32.store (i32.const 8) (i32.const 256))
      (i32.store (i32.const 12) (i32.const 18))
      (drop (call $fd_write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 20)))
      (br $serve))))`
}

const instanceBytes = 16 * 64 << 10 // 1 MiB after the start-up grow

type env struct {
	e       *wasm.Engine
	mod     *wasm.Module
	started atomic.Int32
}

func newEnv(t *testing.T) *env { return newEnvWAT(t, serveWAT) }

func newEnvWAT(t *testing.T, wat string) *env {
	t.Helper()
	e, err := wasm.NewEngine(wasm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	bin, err := wasmtime.Wat2Wasm(wat)
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

func newPool(t *testing.T, cfg Config, keys ...string) *Pool {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	for _, k := range keys {
		if err := p.Add(k); err != nil {
			t.Fatal(err)
		}
	}
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
	p := newPool(t, DefaultConfig(), "a")
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
	p := newPool(t, cfg, "f")
	a, _ := p.Get(context.Background(), "f", v.factory)
	b, _ := p.Get(context.Background(), "f", v.factory)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.Get(ctx, "f", v.factory); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third concurrent Get: %v", err)
	}
	p.Put("f", a)
	p.Put("f", b) // over max_idle_per_function, but the function ran 2 at once: kept
	if idle, active := p.Stats("f"); idle != 2 || active != 0 {
		t.Fatalf("idle %d active %d", idle, active)
	}
	if !a.Alive() || !b.Alive() {
		t.Fatal("an instance within the function's concurrency was closed")
	}
}

// The idle cap follows the most instances a function had in use at once
// within the last IdleTimeout: a steady load keeps an idle instance for
// each of its concurrent calls, so it starts none, and once the load has
// been lower for two windows the cap falls back.
func TestPool_IdleCapFollowsConcurrency(t *testing.T) {
	v := newEnv(t)
	cfg := DefaultConfig()
	cfg.MaxActivePerFunction = 8
	cfg.MaxIdlePerFunction = 1
	p := newPool(t, cfg, "f")
	ctx := context.Background()
	for round := range 3 {
		var insts []*wasm.Instance
		for range 3 {
			inst, err := p.Get(ctx, "f", v.factory)
			if err != nil {
				t.Fatal(err)
			}
			insts = append(insts, inst)
		}
		for _, inst := range insts {
			p.Put("f", inst)
		}
		if idle, _ := p.Stats("f"); idle != 3 {
			t.Fatalf("round %d: %d idle, want the 3 the function ran at once", round, idle)
		}
	}
	if got := v.started.Load(); got != 3 {
		t.Fatalf("%d instances started for 3 rounds of 3 concurrent calls, want 3", got)
	}
	// Two windows of IdleTimeout without use: the cap is back to
	// max_idle_per_function (the idle instances themselves are younger
	// than IdleTimeout and stay until they expire).
	for range 2 {
		p.mu.Lock()
		p.fns["f"].window = time.Now().Add(-cfg.IdleTimeout)
		p.mu.Unlock()
		p.expire(time.Now())
	}
	x, _ := p.Get(ctx, "f", v.factory)
	y, _ := p.Get(ctx, "f", v.factory)
	p.Put("f", x)
	p.Put("f", y) // 2 idle already, and 2 is the most in use since: closed
	if idle, _ := p.Stats("f"); idle != 2 {
		t.Fatalf("idle %d, want 2", idle)
	}
	if !eventually(func() bool { return !y.Alive() }) {
		t.Fatal("instance over the idle cap was not closed")
	}
}

func TestPool_MemoryBudgetEvictsLeastValuableFunction(t *testing.T) {
	v := newEnv(t)
	cfg := DefaultConfig()
	cfg.IdleMemoryBudget = 2 * instanceBytes
	p := newPool(t, cfg, "hot", "warm", "cold")
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

// TestPool_MemoryBudgetCountsWhatIdleInstancesHold: instances that grew
// 1 MiB of memory but wrote one page of it count that page against the
// budget, not the 1 MiB, so a budget of two instances' memory sizes keeps
// eight of them; instances that wrote all of it are evicted down to two.
func TestPool_MemoryBudgetCountsWhatIdleInstancesHold(t *testing.T) {
	if goruntime.GOOS != "linux" {
		t.Skip("ResidentBytes reads Linux's page tables; elsewhere it is MemorySize")
	}
	for _, tc := range []struct {
		wrote    int
		wantIdle int
	}{{4096, 8}, {15 * 64 << 10, 2}} {
		v := newEnvWAT(t, serveWATWriting(tc.wrote))
		cfg := DefaultConfig()
		cfg.IdleMemoryBudget = 2 * instanceBytes
		keys := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
		p := newPool(t, cfg, keys...)
		for _, k := range keys {
			inst, err := p.Get(context.Background(), k, v.factory)
			if err != nil {
				t.Fatal(err)
			}
			call(t, inst)
			p.Put(k, inst)
		}
		idle := 0
		for _, k := range keys {
			n, _ := p.Stats(k)
			idle += n
		}
		if idle != tc.wantIdle || p.IdleBytes() > cfg.IdleMemoryBudget {
			t.Fatalf("instances that wrote %d bytes: %d kept idle (want %d), %d bytes counted against a budget of %d",
				tc.wrote, idle, tc.wantIdle, p.IdleBytes(), cfg.IdleMemoryBudget)
		}
	}
}

func TestPool_DeadInstancesAreNotReused(t *testing.T) {
	v := newEnv(t)
	p := newPool(t, DefaultConfig(), "f")
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
	p.Add("g")
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

// TestPool_RemovedKeyStaysRemoved: Get on a removed key fails instead of
// starting an instance that would idle until IdleTimeout, also for Gets
// racing with Remove (run under -race); an instance handed out before the
// removal is closed when it comes back, even after the key was added again.
func TestPool_RemovedKeyStaysRemoved(t *testing.T) {
	v := newEnv(t)
	cfg := DefaultConfig()
	cfg.MaxActivePerFunction = 2
	p := newPool(t, cfg, "k")
	if _, err := p.Get(context.Background(), "never-added", v.factory); !errors.Is(err, ErrRemoved) {
		t.Fatalf("Get of a key never added: %v", err)
	}
	old, err := p.Get(context.Background(), "k", v.factory)
	if err != nil {
		t.Fatal(err)
	}
	call(t, old)
	p.Remove("k")
	if _, err := p.Get(context.Background(), "k", v.factory); !errors.Is(err, ErrRemoved) {
		t.Fatalf("Get after Remove: %v", err)
	}
	p.Add("k") // explicitly re-added: a new function under the old key
	p.Put("k", old)
	if !eventually(func() bool { return !old.Alive() }) {
		t.Fatal("an instance of the removed function was kept")
	}
	if idle, active := p.Stats("k"); idle != 0 || active != 0 {
		t.Fatalf("the old instance counts in the new function: idle %d active %d", idle, active)
	}
	fresh, err := p.Get(context.Background(), "k", v.factory)
	if err != nil {
		t.Fatal(err)
	}
	call(t, fresh)
	p.Put("k", fresh)

	// Concurrent Gets and a Remove: no Get that starts after Remove
	// returned succeeds, and nothing of the key is left idle.
	for round := range 20 {
		key := fmt.Sprint("r", round)
		p.Add(key)
		var wg sync.WaitGroup
		var removed atomic.Bool
		var late atomic.Int32
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 {
					after := removed.Load()
					inst, err := p.Get(context.Background(), key, v.factory)
					if err != nil {
						if !errors.Is(err, ErrRemoved) {
							t.Error(err)
						}
						return
					}
					if after {
						late.Add(1)
					}
					p.Put(key, inst)
				}
			}()
		}
		p.Remove(key)
		removed.Store(true)
		wg.Wait()
		if late.Load() != 0 {
			t.Fatalf("round %d: %d Gets started after Remove returned and succeeded", round, late.Load())
		}
		if idle, active := p.Stats(key); idle != 0 || active != 0 {
			t.Fatalf("round %d: removed key has idle %d active %d", round, idle, active)
		}
	}
	if got := p.IdleBytes(); got != instanceBytes {
		t.Fatalf("idle bytes %d: only k's fresh instance should idle (%d)", got, instanceBytes)
	}
}

// TestPool_WaitersWakeOnRemove: a Get waiting for a busy function fails as
// soon as the function is removed.
func TestPool_WaitersWakeOnRemove(t *testing.T) {
	v := newEnv(t)
	cfg := DefaultConfig()
	cfg.MaxActivePerFunction = 1
	p := newPool(t, cfg, "w")
	busy, err := p.Get(context.Background(), "w", v.factory)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.Get(context.Background(), "w", v.factory)
		done <- err
	}()
	p.Remove("w")
	if err := <-done; !errors.Is(err, ErrRemoved) {
		t.Fatalf("waiting Get: %v", err)
	}
	p.Put("w", busy)
	if !eventually(func() bool { return !busy.Alive() }) {
		t.Fatal("busy instance of a removed function kept")
	}
}
