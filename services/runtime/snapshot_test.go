package runtime

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/muprotocol/mu/libs/ids"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	"github.com/muprotocol/mu/services/runtime/logs"
)

// reactorWAT is a reactor whose mu_serve answers "hi" and traps unless
// _initialize and mu_init each ran exactly once before it (its $inits
// global); init is extra code for _initialize.
func reactorWAT(init string) string {
	return `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "\0e\00\00\00\02\00\c8\00\00\00\00\00\02\00\00\00hi")
  (data (i32.const 440) "oops\n")
  (global $inits (mut i32) (i32.const 0))
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 8) (local.get $ptr))
    (i32.store (i32.const 12) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 8) (i32.const 1) (i32.const 20))))
  (func (export "_initialize")
    (if (i32.ne (global.get $inits) (i32.const 0)) (then unreachable))
    ` + init + `
    (global.set $inits (i32.const 1)))
  (func (export "mu_init")
    (if (i32.ne (global.get $inits) (i32.const 1)) (then unreachable))
    (global.set $inits (i32.const 2)))
  (func (export "mu_serve") (result i32)
    (if (i32.ne (global.get $inits) (i32.const 2)) (then unreachable))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 60000))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
    (call $write (i32.const 1) (i32.const 256) (i32.const 18))
    (i32.const 0)))`
}

// invokeFuel calls fn.handler n times on fresh-enough instances and returns
// the fuel of each call.
func invokeFuel(t *testing.T, h *harness, id ids.StackID, n int) []uint64 {
	t.Helper()
	var fuel []uint64
	for range n {
		resp, err := h.client.Invoke(context.Background(), &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: "fn.handler",
			Request: &typesv1.HttpRequest{Method: "GET"}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetError() != nil || string(resp.GetResponse().GetBody()) != "hi" {
			t.Fatalf("response %v", resp)
		}
		fuel = append(fuel, resp.GetFuelUsed())
	}
	return fuel
}

// TestRuntime_SnapshotStartBillsWhatANormalStartBills: with snapshot_start
// the function's instances start from a snapshot (they would trap had
// their start-up run again), and every call, the first one with the
// start-up included, is billed exactly what it is with snapshot_start off.
func TestRuntime_SnapshotStartBillsWhatANormalStartBills(t *testing.T) {
	bin := wat(t, reactorWAT(""))
	id := ids.StackID{19}
	var fuel [2][]uint64
	for k, on := range []bool{false, true} {
		h := newDBHarness(t, func(c *Config) { c.SnapshotStart = on }, Deps{})
		if err := h.deploy(t, id, 1, bin); err != nil {
			t.Fatal(err)
		}
		built := testutil.ToFloat64(h.srv.metrics.snapshots.WithLabelValues("built"))
		if (built == 1) != on {
			t.Fatalf("snapshot_start %v: %v snapshots built", on, built)
		}
		fuel[k] = invokeFuel(t, h.harness, id, 3)
	}
	if fuel[0][0] <= fuel[0][1] {
		t.Fatalf("the first call was not billed the start-up: %v", fuel[0])
	}
	for k := range fuel[0] {
		if fuel[0][k] != fuel[1][k] {
			t.Fatalf("fuel per call: normal start %v, snapshot start %v", fuel[0], fuel[1])
		}
	}
}

// TestRuntime_SnapshotRefusedFallsBackToANormalStart: a start-up that logs
// cannot be snapshotted; the function starts normally, and its stack's
// logs say why.
func TestRuntime_SnapshotRefusedFallsBackToANormalStart(t *testing.T) {
	h := newDBHarness(t, nil, Deps{})
	id := ids.StackID{20}
	if err := h.deploy(t, id, 1, wat(t, reactorWAT(`(call $write (i32.const 2) (i32.const 440) (i32.const 5))`))); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(h.srv.metrics.snapshots.WithLabelValues("refused")); got != 1 {
		t.Fatalf("%v snapshots refused", got)
	}
	invokeFuel(t, h.harness, id, 2)
	var found bool
	for _, e := range h.srv.logs.Recent(logs.Filter{Stack: id}, 100) {
		found = found || strings.Contains(e.Body, "starts without a snapshot") && strings.Contains(e.Body, "stderr (fd_write)")
	}
	if !found {
		t.Fatal("the stack's logs do not say why the function starts without a snapshot")
	}
}

// TestRuntime_SnapshotSharedByFunctionsAlike: stacks whose functions get
// the same binary, env and argv share one pre-initialized module (one
// memory image, not one per stack), released with the last of them.
func TestRuntime_SnapshotSharedByFunctionsAlike(t *testing.T) {
	h := newDBHarness(t, nil, Deps{})
	bin := wat(t, reactorWAT(""))
	a, b := ids.StackID{21}, ids.StackID{22}
	for _, id := range []ids.StackID{a, b} {
		if err := h.deploy(t, id, 1, bin); err != nil {
			t.Fatal(err)
		}
		invokeFuel(t, h.harness, id, 1)
	}
	shared := func() (n, refs int) {
		h.srv.mu.Lock()
		defer h.srv.mu.Unlock()
		for _, ref := range h.srv.snapshots {
			n, refs = n+1, refs+ref.refs
		}
		return n, refs
	}
	if n, refs := shared(); n != 1 || refs != 2 || testutil.ToFloat64(h.srv.metrics.snapshots.WithLabelValues("built")) != 1 {
		t.Fatalf("%d snapshot modules with %d references for two stacks alike", n, refs)
	}
	for _, id := range []ids.StackID{a, b} {
		if _, err := h.client.Undeploy(context.Background(), &runtimev1.UndeployRequest{StackId: id.Bytes()}); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := shared(); n != 0 {
		t.Fatalf("%d snapshot modules left after both stacks were undeployed", n)
	}
}
