package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/gobuild"
)

// snapWAT is a reactor whose _initialize runs init and whose mu_serve reads
// the request, runs serve and writes the fixed result of watModule ("hi").
func snapWAT(decls, init, serve string) string {
	return `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "\0e\00\00\00\02\00\c8\00\00\00\00\00\02\00\00\00hi")
  (data (i32.const 440) "oops\n")
  (func $read
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 60000))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16))))
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 8) (local.get $ptr))
    (i32.store (i32.const 12) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 8) (i32.const 1) (i32.const 20))))
  ` + decls + `
  (func (export "_initialize") ` + init + `)
  (func (export "mu_init"))
  (func (export "mu_serve") (result i32)
    (call $read)
    ` + serve + `
    (call $write (i32.const 1) (i32.const 256) (i32.const 18))
    (i32.const 0)))`
}

func wat(t *testing.T, src string) []byte {
	t.Helper()
	b, err := wasmtime.Wat2Wasm(src)
	if err != nil {
		t.Fatalf("wat: %v", err)
	}
	return b
}

// snapshotOf compiles wasm and returns its snapshot for cfg.
func snapshotOf(t *testing.T, e *Engine, wasm []byte, cfg InstanceConfig) *Module {
	t.Helper()
	mod, err := e.Compile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Close()
	m, err := e.Snapshot(context.Background(), mod, wasm, cfg)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	t.Cleanup(m.Close)
	if _, ok := m.Snapshot(); !ok {
		t.Fatal("Snapshot returned a module that is not pre-initialized")
	}
	return m
}

func newInstance(t *testing.T, e *Engine, m *Module, cfg InstanceConfig) *Instance {
	t.Helper()
	inst, err := e.NewInstance(context.Background(), m, cfg)
	if err != nil {
		t.Fatalf("instance: %v", err)
	}
	t.Cleanup(inst.Close)
	return inst
}

// TestSnapshot_SkipsStartupAndBillsItsRecordedFuel: watModule's reactor
// traps if _initialize or mu_init runs twice or mu_serve finds them not
// run (its $inits global), so a snapshot instance that serves proves both
// that start-up was skipped and that the global was captured. Every call
// burns what the normal instance's does, the first one included: it is
// billed the build's start-up fuel.
func TestSnapshot_SkipsStartupAndBillsItsRecordedFuel(t *testing.T) {
	f := newFixture(t, Config{})
	wasm := wat(t, watModule(modeReactor, watBodies["loop-n"]))
	normal := newInstance(t, f.e, f.module(t, modeReactor, "loop-n"), InstanceConfig{})
	snapMod := snapshotOf(t, f.e, wasm, InstanceConfig{})
	snap := newInstance(t, f.e, snapMod, InstanceConfig{})
	info, _ := snapMod.Snapshot()
	if snap.StartupFuel != normal.StartupFuel || info.StartupFuel != normal.StartupFuel || normal.StartupFuel == 0 {
		t.Fatalf("start-up fuel: snapshot instance %d, recorded %d, normal %d", snap.StartupFuel, info.StartupFuel, normal.StartupFuel)
	}
	for k, body := range []string{"", "xxxx", strings.Repeat("y", 300), ""} {
		a, b := callOK(t, normal, body, nil), callOK(t, snap, body, nil)
		if a.Fuel != b.Fuel {
			t.Fatalf("call %d: normal burnt %d fuel, snapshot %d", k, a.Fuel, b.Fuel)
		}
	}
}

// TestSnapshot_CapturesMemoryAndGlobals: a start-up that grows memory,
// writes into its new pages and sets globals of every number type leaves a
// snapshot whose instances see all of it (mu_serve traps otherwise), with
// the zero pages left out of its data segments.
func TestSnapshot_CapturesMemoryAndGlobals(t *testing.T) {
	f := newFixture(t, Config{})
	wasm := wat(t, snapWAT(`(global $a (mut i32) (i32.const 0)) (global $b (mut i64) (i64.const 0))
  (global $c (mut f32) (f32.const 0)) (global $d (mut f64) (f64.const 0)) (global $k i32 (i32.const 9))`,
		`(drop (memory.grow (i32.const 4)))
    (i32.store (i32.const 196616) (i32.const 0x1234))
    (i64.store (i32.const 327672) (i64.const -1))
    (global.set $a (i32.const -7)) (global.set $b (i64.const 0x123456789abcdef0))
    (global.set $c (f32.const 1.25)) (global.set $d (f64.const -2.5e300))`,
		`(if (i32.or (i32.ne (memory.size) (i32.const 5))
          (i32.or (i32.ne (i32.load (i32.const 196616)) (i32.const 0x1234))
            (i32.or (i64.ne (i64.load (i32.const 327672)) (i64.const -1))
              (i32.or (i32.ne (global.get $a) (i32.const -7))
                (i32.or (i64.ne (global.get $b) (i64.const 0x123456789abcdef0))
                  (i32.or (f32.ne (global.get $c) (f32.const 1.25))
                    (i32.or (f64.ne (global.get $d) (f64.const -2.5e300)) (i32.ne (global.get $k) (i32.const 9)))))))))
      (then unreachable))`))
	m := snapshotOf(t, f.e, wasm, InstanceConfig{})
	info, _ := m.Snapshot()
	// Page 0 (the fixed data), then pages 3 and 4 as one run (from the
	// 4 bytes in page 3 to the 8 at the end of page 4); pages 1 and 2 are
	// zero and left out.
	if info.MemoryPages != 5 || info.DataBytes > 3*65536 || info.DataBytes < 131064 {
		t.Fatalf("captured %d pages in %d bytes of data", info.MemoryPages, info.DataBytes)
	}
	for range 2 {
		callOK(t, newInstance(t, f.e, m, InstanceConfig{}), "", nil)
	}
}

// TestSnapshot_RandomIsBakedInAndTheMonotonicClockGoesOn: the rule for
// what a start-up may read. Random bytes read at start-up are the build's
// in every instance (per-snapshot seeds, see RATIONALE); the monotonic
// clock an instance reads never goes below what its start-up read.
func TestSnapshot_RandomIsBakedInAndTheMonotonicClockGoesOn(t *testing.T) {
	f := newFixture(t, Config{})
	wasm := wat(t, snapWAT(`(global $t (mut i64) (i64.const 0))`,
		`(drop (call $random (i32.const 512) (i32.const 16)))
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 528)))
    (global.set $t (i64.load (i32.const 528)))`,
		`(drop (call $clock (i32.const 1) (i64.const 1) (i32.const 536)))
    (if (i64.lt_u (i64.load (i32.const 536)) (global.get $t)) (then unreachable))`))
	m := snapshotOf(t, f.e, wasm, InstanceConfig{})
	info, _ := m.Snapshot()
	if info.RandomBytes != 16 || len(m.snapshot.inputs) != 2 || m.snapshot.Monotonic == 0 {
		t.Fatalf("recorded %d random bytes, inputs %+v, monotonic %d", info.RandomBytes, m.snapshot.inputs, m.snapshot.Monotonic)
	}
	for range 2 {
		inst := newInstance(t, f.e, m, InstanceConfig{})
		callOK(t, inst, "", nil)
		if got := inst.mem.UnsafeData(inst.store)[512:528]; !bytes.Equal(got, m.snapshot.inputs[0].Random) {
			t.Fatalf("instance holds random bytes %x, the build read %x", got, m.snapshot.inputs[0].Random)
		}
	}
}

// TestSnapshot_RefusesWhatItCannotReplay: each refusal names its reason,
// and the module still starts normally.
func TestSnapshot_RefusesWhatItCannotReplay(t *testing.T) {
	f := newFixture(t, Config{})
	cases := []struct {
		name, wat, reason string
	}{
		{"realtime clock", snapWAT("", `(drop (call $clock (i32.const 0) (i64.const 1) (i32.const 528)))`, ""), "realtime clock (clock_time_get)"},
		{"stderr", snapWAT("", stderrOops, ""), "wrote to stderr (fd_write)"},
		{"table write", snapWAT(`(table 2 funcref) (func $nop) (elem declare func $nop)`, `(table.set (i32.const 1) (ref.func $nop))`, ""), "changes a table"},
		{"passive data", snapWAT(`(data $p "xy")`, `(memory.init $p (i32.const 600) (i32.const 0) (i32.const 2))`, ""), "passive"},
		{"command", watModule(modeCommand, ""), "only reactor modules"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wasm := wat(t, c.wat)
			mod, err := f.e.Compile(wasm)
			if err != nil {
				t.Fatal(err)
			}
			defer mod.Close()
			_, err = f.e.Snapshot(context.Background(), mod, wasm, InstanceConfig{})
			var re *SnapshotRefusedError
			if !errors.Is(err, ErrSnapshotRefused) || !errors.As(err, &re) || !strings.Contains(re.Reason, c.reason) {
				t.Fatalf("got %v, want a refusal naming %q", err, c.reason)
			}
			callOK(t, newInstance(t, f.e, mod, InstanceConfig{}), "", nil)
		})
	}
}

// TestSnapshot_CachedByBinaryEngineAndEnvironment: a second engine on the
// same cache directory loads the snapshot without the binary; another
// environment or argv is another snapshot.
func TestSnapshot_CachedByBinaryEngineAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	wasm := wat(t, watModule(modeReactor, ""))
	id := ContentID(wasm)
	cfg := InstanceConfig{Env: map[string]string{"A": "1"}, Args: []string{"fn"}}
	f1 := newFixture(t, Config{CacheDir: dir})
	built := snapshotOf(t, f1.e, wasm, cfg)
	if built.FromCache {
		t.Fatal("first snapshot came from an empty cache")
	}
	f2 := newFixture(t, Config{CacheDir: dir})
	m, ok := f2.e.LoadSnapshot(id, cfg)
	if !ok {
		t.Fatal("a second engine found no cached snapshot")
	}
	defer m.Close()
	if info, _ := m.Snapshot(); !m.FromCache || info.StartupFuel == 0 {
		t.Fatalf("cached snapshot: from cache %v, %+v", m.FromCache, info)
	}
	callOK(t, newInstance(t, f2.e, m, cfg), "", nil)
	for _, other := range []InstanceConfig{{Env: map[string]string{"A": "2"}, Args: []string{"fn"}}, {Env: cfg.Env, Args: []string{"other"}}} {
		if _, ok := f2.e.LoadSnapshot(id, other); ok {
			t.Fatalf("snapshot for %+v served for env %v args %v", cfg, other.Env, other.Args)
		}
	}
	if plain, ok := f2.e.LoadCached(id); !ok {
		t.Fatal("the binary's own artifact is gone")
	} else if _, pre := plain.Snapshot(); pre {
		t.Fatal("the binary's own artifact loads as the snapshot")
	} else {
		plain.Close()
	}
}

// memDB is an in-memory table store answering the db messages the examples
// send; other db messages get a DbError and storage ones a StorageError
// (the same answer both ways is all the suite needs).
type memDB map[string][]byte

func (d memDB) handle(_ context.Context, m fnproto.Message) (fnproto.Message, error) {
	key := func(table string, k []byte) string { return table + "\x00" + string(k) }
	switch m := m.(type) {
	case *fnproto.Put:
		d[key(m.Table, m.Key)] = append([]byte(nil), m.Value...)
		return &fnproto.EmptyResult{}, nil
	case *fnproto.Get:
		if v, ok := d[key(m.Table, m.Key)]; ok {
			return &fnproto.SingleResult{Item: &v}, nil
		}
		return &fnproto.SingleResult{}, nil
	case *fnproto.Delete:
		delete(d, key(m.Table, m.Key))
		return &fnproto.EmptyResult{}, nil
	case *fnproto.CompareAndSwap:
		k := key(m.Table, m.Key)
		prev, had := d[k]
		res := &fnproto.CasResult{}
		if had {
			res.PreviousValue = &prev
		}
		if had == (m.PreviousValue != nil) && (!had || bytes.Equal(prev, *m.PreviousValue)) {
			d[k] = append([]byte(nil), m.NewValue...)
			res.IsSwapped = true
		}
		return res, nil
	case *fnproto.ScanPage:
		if len(m.Cursor) > 0 {
			return &fnproto.KeyValuePageResult{}, nil // memDB answers in one page
		}
		res, _ := d.handle(context.Background(), &fnproto.Scan{Table: m.Table, KeyPrefix: m.KeyPrefix, Limit: ^uint32(0)})
		return &fnproto.KeyValuePageResult{List: res.(*fnproto.KeyValueListResult).List}, nil
	case *fnproto.Scan:
		var keys []string
		prefix := key(m.Table, m.KeyPrefix)
		for k := range d {
			if strings.HasPrefix(k, prefix) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		res := &fnproto.KeyValueListResult{}
		for _, k := range keys[:min(len(keys), int(m.Limit))] {
			res.List = append(res.List, fnproto.KeyValue{Key: []byte(k[len(m.Table)+1:]), Value: d[k]})
		}
		return res, nil
	}
	if m.Kind() >= 2000 && m.Kind() < 3000 {
		return &fnproto.StorageError{Error: fmt.Sprintf("memDB has no storage (%T)", m)}, nil
	}
	return &fnproto.DbError{Error: fmt.Sprintf("memDB does not serve %T", m)}, nil
}

// TestSnapshot_GoExamplesServeAlikeWithTheSameFuel is the suite both start
// paths pass: the functions of the examples and of the runtime's SDK test
// modules, called in turn on a normal instance and on a snapshot instance,
// get the same responses and burn the same fuel per request. Both see the
// same inputs, through tapes: the normal instance replays the random and
// clock values the snapshot's start-up read, so both start from the same
// seeds, then records what it reads in each call, which the snapshot
// instance replays in the same call. Without that a Go instance's fuel
// differs from another normal instance's too: the map hash seed changes
// the work, and the GC paces itself by the clock.
func TestSnapshot_GoExamplesServeAlikeWithTheSameFuel(t *testing.T) {
	user := []fnproto.Header{{Name: "x-user-id", Value: "ann"}}
	type step struct {
		function string
		req      fnproto.Request
	}
	examples := []struct {
		dir   string
		steps []step
	}{
		{filepath.Join("examples", "hello"), []step{
			{"greet_user", fnproto.Request{Method: "GET", PathParams: map[string]string{"name": "mu"}}},
			{"greet_user", fnproto.Request{Method: "GET", PathParams: map[string]string{"name": "snapshot"}}},
			{"greet_user", fnproto.Request{Method: "GET"}},
		}},
		{filepath.Join("examples", "todo"), []step{
			{"list", fnproto.Request{Method: "GET", Headers: user}},
			{"add", fnproto.Request{Method: "POST", Headers: user, Body: []byte(`{"title": "milk", "done": false}`)}},
			{"add", fnproto.Request{Method: "POST", Headers: user, Body: []byte(`{"title": "eggs", "done": true}`)}},
			{"get", fnproto.Request{Method: "GET", Headers: user, PathParams: map[string]string{"title": "milk"}}},
			{"list", fnproto.Request{Method: "GET", Headers: user}},
			{"remove", fnproto.Request{Method: "DELETE", Headers: user, PathParams: map[string]string{"title": "milk"}}},
			{"get", fnproto.Request{Method: "GET", Headers: user, PathParams: map[string]string{"title": "milk"}}},
			{"add", fnproto.Request{Method: "POST", Body: []byte(`{}`)}},
		}},
		{filepath.Join("services", "runtime", "testdata", "dbfunc"), []step{
			{"put", fnproto.Request{Method: "PUT", QueryParams: map[string]string{"key": "k"}, Body: []byte("v")}},
			{"get", fnproto.Request{Method: "GET", QueryParams: map[string]string{"key": "k"}}},
			{"ops", fnproto.Request{Method: "GET"}},
			{"undeclared", fnproto.Request{Method: "GET"}},
			{"big_value", fnproto.Request{Method: "GET"}},
		}},
		{filepath.Join("services", "runtime", "testdata", "storagefunc"), []step{
			{"ops", fnproto.Request{Method: "GET"}},
			{"put", fnproto.Request{Method: "PUT", QueryParams: map[string]string{"key": "k"}, Body: []byte("v")}},
			{"get", fnproto.Request{Method: "GET", QueryParams: map[string]string{"key": "k"}}},
		}},
	}
	f := newFixture(t, Config{})
	for _, ex := range examples {
		t.Run(filepath.Base(ex.dir), func(t *testing.T) {
			wasm := goGuest(t, filepath.Join("..", "..", "..", "..", ex.dir), gobuild.Reactor)
			cfg := InstanceConfig{MemoryLimit: 64 << 20, Args: []string{filepath.Base(ex.dir)}, Env: map[string]string{fnproto.FrameSizeEnv: "8388608"}}
			snapMod := snapshotOf(t, f.e, wasm, cfg)
			mod, err := f.e.Compile(wasm)
			if err != nil {
				t.Fatal(err)
			}
			defer mod.Close()
			normalCfg, snapCfg := cfg, cfg
			normalTape, snapTape := NewReplayTape(snapMod.snapshot.inputs), NewReplayTape(nil)
			normalCfg.Tape, snapCfg.Tape = normalTape, snapTape
			normal := newInstance(t, f.e, mod, normalCfg)
			// The tape has replayed the start-up's inputs: from here on it
			// records what the normal instance reads during each call, and
			// the snapshot instance replays that in the same call.
			normalTape.replay = false
			snap := newInstance(t, f.e, snapMod, snapCfg)
			if normal.StartupFuel != snap.StartupFuel {
				t.Fatalf("start-up fuel: normal %d, snapshot instance billed %d", normal.StartupFuel, snap.StartupFuel)
			}
			dbs := [2]memDB{{}, {}}
			for k, s := range ex.steps {
				var res [2]*Result
				var errs [2]*CallError
				normalTape.entries = nil
				for j, inst := range []*Instance{normal, snap} {
					if j == 1 {
						snapTape.entries, snapTape.pos = normalTape.entries, 0
					}
					r, err := inst.Call(context.Background(), s.function, &s.req, dbs[j].handle, defaultLimits)
					if err != nil && !errors.As(err, &errs[j]) {
						t.Fatalf("step %d %s (snapshot %v): %v", k, s.function, j == 1, err)
					}
					res[j] = r
				}
				if errs[0] != nil || errs[1] != nil {
					// A function error (the function answered FatalError) ends
					// the call alike both ways, billed alike.
					if errs[0] == nil || errs[1] == nil || errs[0].Error() != errs[1].Error() || errs[0].Fuel != errs[1].Fuel {
						t.Fatalf("step %d %s: normal %v, snapshot %v", k, s.function, errs[0], errs[1])
					}
					t.Logf("step %d %s: %v, fuel %d", k, s.function, errs[0], errs[0].Fuel)
					continue
				}
				a, b := res[0], res[1]
				if a.Response.Status != b.Response.Status || !bytes.Equal(a.Response.Body, b.Response.Body) || fmt.Sprint(a.Response.Headers) != fmt.Sprint(b.Response.Headers) {
					t.Fatalf("step %d %s: normal %d %q, snapshot %d %q", k, s.function, a.Response.Status, a.Response.Body, b.Response.Status, b.Response.Body)
				}
				if a.Fuel != b.Fuel {
					t.Fatalf("step %d %s: normal burnt %d fuel, snapshot %d", k, s.function, a.Fuel, b.Fuel)
				}
				t.Logf("step %d %s: %d %q, fuel %d", k, s.function, a.Response.Status, a.Response.Body, a.Fuel)
			}
		})
	}
}

// FuzzSnapshotRewrite: the snapshot rewrite reads a module's sections
// itself (Snapshot validates first, but the reader must not trust that):
// any bytes are read without a panic, and a module it can read is
// rewritten, with a captured page, into one whose layout reads back alike.
func FuzzSnapshotRewrite(f *testing.F) {
	for _, src := range []string{watModule(modeReactor, ""), snapWAT(`(global $g (mut i64) (i64.const 5)) (global $k f32 (f32.const 1))`, "", "")} {
		b, err := wasmtime.Wat2Wasm(src)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, wasm []byte) {
		l, err := readSnapLayout(wasm)
		if err != nil || l.reason != "" {
			return
		}
		globals := map[uint32][]byte{}
		for _, g := range l.mutable {
			globals[g] = []byte{0x41, 0x07, 0x0b}
		}
		mem := make([]byte, snapPage)
		mem[100] = 1
		segs, _ := memorySegments(mem)
		out, err := emitSnapshot(wasm, l, globals, 1, segs)
		if err != nil {
			return
		}
		again, err := readSnapLayout(out)
		if err != nil || len(again.globals) != len(l.globals) || len(again.mutable) != len(l.mutable) {
			t.Fatalf("rewritten module reads back as %+v, %v (was %+v)", again, err, l)
		}
	})
}
