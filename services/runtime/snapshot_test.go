package runtime

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

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

// waitSnapshots waits for the snapshot builds the deploys so far queued.
func waitSnapshots(t *testing.T, h *harness) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.srv.WaitSnapshots(ctx); err != nil {
		t.Fatalf("snapshot builds still pending: %v", err)
	}
}

// instanceStarts is how many instances started from a snapshot (true) or
// normally (false).
func instanceStarts(t *testing.T, h *harness, snapshot bool) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.srv.metrics.instanceStart.WithLabelValues(strconv.FormatBool(snapshot)).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
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
		h := newDBHarness(t, func(c *Config) { c.SnapshotStart = on; c.PrewarmInstances = 0 }, Deps{})
		if err := h.deploy(t, id, 1, bin); err != nil {
			t.Fatal(err)
		}
		// PrewarmInstances 0: the first call starts an instance, from
		// the snapshot once it is ready.
		waitSnapshots(t, h.harness)
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
	waitSnapshots(t, h.harness)
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
		waitSnapshots(t, h.harness)
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

// TestRuntime_DeployCompletesBeforeItsSnapshot: the deploy completes on
// the normal module (its prewarmed instance starts normally) while the
// snapshot build waits its turn; instances started once the snapshot is
// ready use it, the one started before keeps serving, and every call is
// billed exactly what it is without snapshots: each instance's first call
// its own start-up (the snapshot's: the fuel its build burnt), the others
// none.
func TestRuntime_DeployCompletesBeforeItsSnapshot(t *testing.T) {
	bin := wat(t, reactorWAT(""))
	id := ids.StackID{23}
	off := newDBHarness(t, func(c *Config) { c.SnapshotStart = false; c.PrewarmInstances = 0 }, Deps{})
	if err := off.deploy(t, id, 1, bin); err != nil {
		t.Fatal(err)
	}
	want := invokeFuel(t, off.harness, id, 2) // first call with the start-up, then without

	h := newDBHarness(t, func(c *Config) { c.PrewarmInstances = 1 }, Deps{})
	// Hold the only build slot: the deploy must not wait for it.
	if err := h.srv.snapBuilds.Acquire(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if err := h.deploy(t, id, 1, bin); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(h.srv.metrics.snapshotBuildsPending); got != 1 {
		t.Fatalf("%v snapshot builds pending after the deploy, want 1", got)
	}
	if instanceStarts(t, h.harness, false) != 1 || instanceStarts(t, h.harness, true) != 0 {
		t.Fatal("the deploy did not prewarm one normal instance")
	}
	h.srv.snapBuilds.Release(1)
	waitSnapshots(t, h.harness)
	if got := testutil.ToFloat64(h.srv.metrics.snapshots.WithLabelValues("built")); got != 1 {
		t.Fatalf("%v snapshots built", got)
	}
	if got := testutil.ToFloat64(h.srv.metrics.snapshotBuildsPending); got != 0 {
		t.Fatalf("%v snapshot builds pending once built", got)
	}
	first := invokeFuel(t, h.harness, id, 1)[0] // the prewarmed normal instance
	// Take that instance out of the pool, so the next call starts one.
	h.srv.mu.RLock()
	f := h.srv.stacks[id].functions["fn"]
	h.srv.mu.RUnlock()
	held, err := h.srv.pool.Get(context.Background(), f.poolKey, f.start)
	if err != nil {
		t.Fatal(err)
	}
	if instanceStarts(t, h.harness, true) != 0 {
		t.Fatal("the pool started an instance instead of handing out the idle one")
	}
	snapFirst := invokeFuel(t, h.harness, id, 1)[0]
	if instanceStarts(t, h.harness, true) != 1 || instanceStarts(t, h.harness, false) != 1 {
		t.Fatal("the instance started after the snapshot was ready did not start from it")
	}
	h.srv.pool.Put(f.poolKey, held)
	later := invokeFuel(t, h.harness, id, 2)
	if first != want[0] || snapFirst != want[0] || later[0] != want[1] || later[1] != want[1] {
		t.Fatalf("fuel: normal instance's first call %d, snapshot instance's first call %d, later calls %v; without snapshots %v",
			first, snapFirst, later, want)
	}
}

// TestRuntime_SnapshotBuildSkippedForARetiredDeployment: a stack
// undeployed, or redeployed, while its build waits its turn builds nothing
// for the revision that is gone, holds no snapshot, and the queue drains.
func TestRuntime_SnapshotBuildSkippedForARetiredDeployment(t *testing.T) {
	h := newDBHarness(t, nil, Deps{})
	bin := wat(t, reactorWAT(""))
	a, b := ids.StackID{24}, ids.StackID{25}
	if err := h.srv.snapBuilds.Acquire(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	for _, id := range []ids.StackID{a, b} {
		if err := h.deploy(t, id, 1, bin); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.client.Undeploy(context.Background(), &runtimev1.UndeployRequest{StackId: a.Bytes()}); err != nil {
		t.Fatal(err)
	}
	if err := h.deploy(t, b, 2, bin); err != nil { // revision 1 is retired before its turn
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(h.srv.metrics.snapshotBuildsPending); got != 3 {
		t.Fatalf("%v snapshot builds pending, want 3", got)
	}
	h.srv.snapBuilds.Release(1)
	waitSnapshots(t, h.harness)
	h.srv.mu.Lock()
	n, refs := len(h.srv.snapshots), 0
	for _, ref := range h.srv.snapshots {
		refs += ref.refs
	}
	h.srv.mu.Unlock()
	built := testutil.ToFloat64(h.srv.metrics.snapshots.WithLabelValues("built"))
	cached := testutil.ToFloat64(h.srv.metrics.snapshots.WithLabelValues("cached"))
	if n != 1 || refs != 1 || built+cached != 1 {
		t.Fatalf("%d snapshot modules with %d references, %v built and %v cached, for the one live revision", n, refs, built, cached)
	}
	if got := invokeFuel(t, h.harness, b, 1); len(got) != 1 {
		t.Fatal("no call")
	}
}

// TestRuntime_CloseEndsQueuedSnapshotBuilds: Close neither hangs on nor
// leaves behind a build still waiting for its turn.
func TestRuntime_CloseEndsQueuedSnapshotBuilds(t *testing.T) {
	h := newDBHarness(t, nil, Deps{})
	if err := h.srv.snapBuilds.Acquire(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if err := h.deploy(t, ids.StackID{26}, 1, wat(t, reactorWAT(""))); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Close(); err != nil {
		t.Fatal(err)
	}
	// Close waited for the build's goroutine (building), which gave up.
	if got := testutil.ToFloat64(h.srv.metrics.snapshotBuildsPending); got != 0 {
		t.Fatalf("%v snapshot builds pending after Close", got)
	}
	if got := testutil.ToFloat64(h.srv.metrics.snapshots.WithLabelValues("built")); got != 0 {
		t.Fatalf("%v snapshots built by a closing node", got)
	}
	waitSnapshots(t, h.harness)
}

// TestRuntime_DeployOfAKnownBinaryStartsFromItsSnapshot: a deploy whose
// snapshot is ready, held by another stack or cached and checked on a
// restarted node, takes it at once, so that its first instances (here the
// prewarmed one) start from it with no build queued; and every call is
// billed exactly what it is without snapshots.
func TestRuntime_DeployOfAKnownBinaryStartsFromItsSnapshot(t *testing.T) {
	bin := wat(t, reactorWAT(""))
	bid := ids.BinaryID(bin)
	off := newDBHarness(t, func(c *Config) { c.SnapshotStart = false; c.PrewarmInstances = 0 }, Deps{})
	if err := off.deploy(t, ids.StackID{27}, 1, bin); err != nil {
		t.Fatal(err)
	}
	want := invokeFuel(t, off.harness, ids.StackID{27}, 2)

	dir := t.TempDir()
	edit := func(c *Config) { c.DataDir = dir; c.PrewarmInstances = 1 }
	h := newDBHarness(t, edit, Deps{})
	if err := h.deploy(t, ids.StackID{28}, 1, bin); err != nil {
		t.Fatal(err)
	}
	waitSnapshots(t, h.harness)
	byID := func(h *dbHarness, id ids.StackID) {
		t.Helper()
		// Neither a build slot nor the binary's bytes: only a ready snapshot serves.
		if err := h.srv.snapBuilds.Acquire(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		defer h.srv.snapBuilds.Release(1)
		normal, snap := instanceStarts(t, h.harness, false), instanceStarts(t, h.harness, true)
		if _, err := h.client.Deploy(context.Background(), &runtimev1.DeployRequest{
			Stack: &runtimev1.Stack{Id: id.Bytes(), Revision: 1, Manifest: manifestFor(bid)}}); err != nil {
			t.Fatal(err)
		}
		if got := testutil.ToFloat64(h.srv.metrics.snapshotBuildsPending); got != 0 {
			t.Fatalf("%v snapshot builds queued by a deploy whose snapshot is ready", got)
		}
		if instanceStarts(t, h.harness, false) != normal || instanceStarts(t, h.harness, true) != snap+1 {
			t.Fatal("the deploy's prewarmed instance did not start from the snapshot")
		}
		if got := invokeFuel(t, h.harness, id, 2); got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("fuel per call from the snapshot taken at deploy %v, without snapshots %v", got, want)
		}
	}
	byID(h, ids.StackID{29}) // another stack holds the snapshot
	if err := h.srv.Close(); err != nil {
		t.Fatal(err)
	}

	restarted := newDBHarness(t, edit, Deps{})
	<-restarted.srv.engine.CacheChecked()
	byID(restarted, ids.StackID{30}) // the artifact cache holds it, checked at start
	if got := testutil.ToFloat64(restarted.srv.metrics.snapshots.WithLabelValues("cached")); got != 1 {
		t.Fatalf("%v snapshots loaded from the cache, want 1", got)
	}
}
