package bench

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	"github.com/muprotocol/mu/services/runtime"
)

// breakdown splits the c=1 latency of a hello request into its hops by
// measuring the inner ones alone, sequentially, on the same region.
type breakdown struct {
	// nullRPC is a gRPC health check on the runtime: the gRPC hop alone.
	nullRPC time.Duration
	// invoke is Runtime.Invoke called directly (no gateway).
	invoke time.Duration
	// serverInvoke is the runtime's own mean Invoke time (its
	// mu_runtime_call_seconds histogram) during those calls.
	serverInvoke time.Duration
	// fuelPerCall is the fuel one hello call burns.
	fuelPerCall float64
	calls       int
}

func (s *Suite) measureBreakdown(ctx context.Context, t *helloTarget, stackID []byte, calls int) (*breakdown, error) {
	conn, err := grpc.NewClient(t.region.Runtime().Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	rt := runtimev1.NewRuntimeServiceClient(conn)
	req := &runtimev1.InvokeRequest{StackId: stackID, Function: "hello.greet_user",
		Request: &typesv1.HttpRequest{Method: "GET", PathParams: map[string]string{"name": "world"}}}
	null := func() error { _, err := health.Check(ctx, &healthpb.HealthCheckRequest{}); return err }
	invoke := func() error {
		resp, err := rt.Invoke(ctx, req)
		if err == nil && resp.GetError() != nil {
			err = fmt.Errorf("invoke: %s", resp.GetError().GetMessage())
		}
		return err
	}
	timeEach := func(f func() error) (time.Duration, error) {
		for range calls / 10 { // warm up
			if err := f(); err != nil {
				return 0, err
			}
		}
		ds := make([]time.Duration, 0, calls)
		for range calls {
			t0 := time.Now()
			if err := f(); err != nil {
				return 0, err
			}
			ds = append(ds, time.Since(t0))
		}
		return median(ds), nil
	}
	b := &breakdown{calls: calls}
	if b.nullRPC, err = timeEach(null); err != nil {
		return nil, err
	}
	sum0, n0 := histogram(t.region.Runtime().Server(), "mu_runtime_call_seconds")
	fuel0 := counterValue(t.region.Runtime().Server(), "mu_runtime_fuel_total")
	if b.invoke, err = timeEach(invoke); err != nil {
		return nil, err
	}
	sum1, n1 := histogram(t.region.Runtime().Server(), "mu_runtime_call_seconds")
	fuel1 := counterValue(t.region.Runtime().Server(), "mu_runtime_fuel_total")
	if n1 > n0 {
		b.serverInvoke = time.Duration((sum1 - sum0) / float64(n1-n0) * float64(time.Second))
		b.fuelPerCall = (fuel1 - fuel0) / float64(n1-n0)
	}
	return b, nil
}

// histogram returns the sample sum and count of a runtime histogram.
func histogram(rt *runtime.Server, name string) (float64, uint64) {
	mfs, err := rt.Registry().Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			var n uint64
			for _, m := range mf.GetMetric() {
				sum += m.GetHistogram().GetSampleSum()
				n += m.GetHistogram().GetSampleCount()
			}
			return sum, n
		}
	}
	return 0, 0
}
