package wasm

import (
	"context"
	"strings"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// tapeWat is a reactor whose work depends on what it reads from the
// clock and random_get in each call: it loops (clock & 0xff) + (random
// byte & 0xff) times, so a replayed tape gives the same fuel only if the
// values are the recorded ones.
const tapeWat = `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "\0e\00\00\00\02\00\c8\00\00\00\00\00\02\00\00\00hi")
  (func (export "_initialize"))
  (func (export "mu_init"))
  (func (export "mu_serve") (result i32) (local $i i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 60000))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
    (if (call $clock (i32.const 0) (i64.const 1) (i32.const 512)) (then unreachable))
    (if (call $random (i32.const 520) (i32.const 4)) (then unreachable))
    (local.set $i (i32.add (i32.and (i32.load (i32.const 512)) (i32.const 255))
                           (i32.load8_u (i32.const 520))))
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $i)))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.store (i32.const 8) (i32.const 256))
    (i32.store (i32.const 12) (i32.const 18))
    (drop (call $fd_write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 20)))
    (i32.const 0)))`

func tapeCall(t *testing.T, f *fixture, m *Module, tape *Tape) (*Result, error) {
	t.Helper()
	inst, err := f.e.NewInstance(context.Background(), m, InstanceConfig{Tape: tape})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	return inst.Call(context.Background(), "f", request(""), nil, defaultLimits)
}

func TestTape_ReplayGivesTheRecordedFuelAndDivergenceFails(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	bin, err := wasmtime.Wat2Wasm(tapeWat)
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.e.Compile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var noted []string
	rec := NewRecordingTape(func(in string) { noted = append(noted, in) })
	res, err := tapeCall(t, f, m, rec)
	if err != nil {
		t.Fatal(err)
	}
	es := rec.Entries()
	if len(es) != 2 || es[0].IsRandom || !es[1].IsRandom || len(es[1].Random) != 4 || strings.Join(noted, ",") != "clock,random" {
		t.Fatalf("recorded %+v, noted %v", es, noted)
	}

	// The same values: the same fuel, on every replay.
	for range 2 {
		rp := NewReplayTape(es)
		got, err := tapeCall(t, f, m, rp)
		if err != nil || got.Fuel != res.Fuel || rp.Replayed() != 2 {
			t.Fatalf("replay: %v %v (fuel %d, recorded %d)", got, err, got.Fuel, res.Fuel)
		}
	}

	// Other values: other work, exactly one loop iteration per unit.
	other := []TapeEntry{{Clock: es[0].Clock &^ 0xff}, {IsRandom: true, Random: []byte{0, 0, 0, 0}}}
	zero, err := tapeCall(t, f, m, NewReplayTape(other))
	if err != nil {
		t.Fatal(err)
	}
	other[0].Clock |= 10
	ten, err := tapeCall(t, f, m, NewReplayTape(other))
	if err != nil {
		t.Fatal(err)
	}
	if ten.Fuel <= zero.Fuel || (ten.Fuel-zero.Fuel)%10 != 0 {
		t.Fatalf("fuel with 0 iterations %d, with 10 %d", zero.Fuel, ten.Fuel)
	}

	for name, tape := range map[string][]TapeEntry{
		"empty":         nil,
		"random first":  {es[1], es[0]},
		"short random":  {es[0], {IsRandom: true, Random: []byte{1}}},
		"clock for all": {es[0], es[0]},
	} {
		_, err := tapeCall(t, f, m, NewReplayTape(tape))
		ce, ok := AsCallError(err)
		if !ok || ce.Kind != KindCrash || !strings.Contains(ce.Message, "replay tape diverged") {
			t.Errorf("%s: %v", name, err)
		}
	}

	// Without a tape the module runs on the plain linker, unrecorded.
	if _, err := tapeCall(t, f, m, nil); err != nil {
		t.Fatal(err)
	}
	// A stopped recording keeps nothing more.
	rec.Stop()
	if rec.recording() {
		t.Fatal("recording after Stop")
	}
}
