package bench

import (
	"context"
	"fmt"
	"os"

	"github.com/muprotocol/mu/bench/load"
	"github.com/muprotocol/mu/region"
	"github.com/muprotocol/mu/services/runtime"
)

// runInstanceStart measures starting one hello instance with and without
// snapshot_start (issue 19): on a region whose artifact cache already holds
// hello (and, with snapshots, its snapshot), new stacks of it are deployed
// and asked once each (PrewarmInstances 0, so each first request starts an
// instance), once the runtime has the new stack's snapshot: it loads it in
// the background after the deploy, and an instance started before starts
// normally. The figure is the runtime's own mu_runtime_instance_start_seconds
// (NewInstance: instantiate and start-up), mean over the new stacks; the
// first stack, which fills the cache, is left out.
func (s *Suite) runInstanceStart(ctx context.Context) error {
	n := 12
	if s.opts.Quick {
		n = 6
	}
	for _, snap := range []bool{true, false} {
		mean, fuel, err := s.instanceStartWith(ctx, snap, n)
		if err != nil {
			return err
		}
		name, how := "instance_start_us", "from a snapshot (snapshot_start)"
		if !snap {
			name, how = "instance_start_us_no_snapshot", "with its start-up (_initialize, mu_init)"
		}
		s.logf("instancestart: %s: %.0f µs per hello instance (mean of %d), start-up fuel billed %.0f", how, mean, n, fuel)
		s.res.add(name, mean, "µs", fmt.Sprintf("NewInstance of hello %s, mean of %d new stacks (mu_runtime_instance_start_seconds)", how, n))
		if snap {
			s.res.add("instance_startup_fuel_billed", fuel, "fuel", "start-up fuel billed to a snapshot instance's first call: what the snapshot build burnt")
		}
	}
	return nil
}

func (s *Suite) instanceStartWith(ctx context.Context, snap bool, n int) (meanUS, startupFuel float64, err error) {
	dir, err := os.MkdirTemp("", "mubench-start-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	reg, err := region.Start(ctx, region.Options{
		DataDir: dir,
		Runtime: &region.RuntimeOptions{
			Config: func(_ int, c *runtime.Config) { c.PrewarmInstances = 0; c.SnapshotStart = snap },
		},
		Gateway: &region.GatewayOptions{},
	})
	if err != nil {
		return 0, 0, err
	}
	cr := &coldRegion{region: reg, client: load.NewClient(1), base: "http://" + reg.Gateway().Addr()}
	defer cr.close()
	if err := cr.get(cr.base + "/_mu/health"); err != nil {
		return 0, 0, err
	}
	if err := s.deploySnapshotAndAsk(ctx, cr); err != nil { // fills the caches
		return 0, 0, err
	}
	rt := reg.Runtime().Server()
	sum0, count0 := histogramValue(rt, "mu_runtime_instance_start_seconds")
	fuel0, started0 := counterValue(rt, "mu_runtime_startup_fuel_total"), counterValue(rt, "mu_runtime_instances_started_total")
	for range n {
		if err := s.deploySnapshotAndAsk(ctx, cr); err != nil {
			return 0, 0, err
		}
	}
	sum, count := histogramValue(rt, "mu_runtime_instance_start_seconds")
	if count <= count0 {
		return 0, 0, fmt.Errorf("instancestart: no instance started (snapshot_start %v)", snap)
	}
	if snap && counterValue(rt, "mu_runtime_snapshots_total") == 0 {
		return 0, 0, fmt.Errorf("instancestart: hello got no snapshot")
	}
	fuel, started := counterValue(rt, "mu_runtime_startup_fuel_total")-fuel0, counterValue(rt, "mu_runtime_instances_started_total")-started0
	return (sum - sum0) / float64(count-count0) * 1e6, fuel / max(started, 1), nil
}

// deploySnapshotAndAsk deploys hello as a new stack, waits until the
// runtime has built or loaded its snapshot (none without snapshot_start)
// and asks it once.
func (s *Suite) deploySnapshotAndAsk(ctx context.Context, cr *coldRegion) error {
	h, err := s.helloWasm(ctx)
	if err != nil {
		return err
	}
	id, err := newStackID()
	if err != nil {
		return err
	}
	if err := cr.region.Deploy(ctx, id, 1, h.manifest, h.binaries()); err != nil {
		return err
	}
	if err := cr.region.Runtime().Server().WaitSnapshots(ctx); err != nil {
		return fmt.Errorf("instancestart: waiting for the snapshot of stack %s: %w", id, err)
	}
	return cr.get(cr.base + "/" + id.String() + "/greeting/greet/world")
}

// histogramValue is the sum and count of the runtime's histogram name,
// over all its labels.
func histogramValue(rt *runtime.Server, name string) (sum float64, count uint64) {
	mfs, err := rt.Registry().Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetHistogram().GetSampleSum()
				count += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return sum, count
}
