package gateway_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"

	gatewayv1 "github.com/muprotocol/mu/proto/mu/gateway/v1"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	"github.com/muprotocol/mu/services/gateway"
)

// inProcessFake calls a fakeRuntime's Invoke as a function, as a runtime's
// InProcessClient calls its server.
type inProcessFake struct {
	runtimev1.RuntimeServiceClient // other methods: not used here
	f                              *fakeRuntime
}

func (d inProcessFake) Invoke(ctx context.Context, in *runtimev1.InvokeRequest, _ ...grpc.CallOption) (*runtimev1.InvokeResponse, error) {
	return d.f.Invoke(ctx, in)
}

func invokes(h *harness, transport string) float64 {
	return h.metric(`mu_gateway_invokes_total{transport="` + transport + `"}`)
}

func TestCluster_CallsLocalRuntimesInProcess(t *testing.T) {
	local := gateway.NewLocalRuntimes()
	ch := newClusterHarness(t, 24, func(_ *gateway.Config, d *gateway.Deps) { d.Local = local })
	a, b := ch.joinRuntime("rt-a"), ch.joinRuntime("rt-b")
	local.Add(a.addr, inProcessFake{f: a.fakeRuntime}) // rt-a runs "in this process"; rt-b does not
	ch.waitRuntimes(a, b)

	// serveAll requests every stack once and returns the calls each
	// runtime got.
	serveAll := func() (na, nb int) {
		t.Helper()
		a0, b0 := a.callCount(), b.callCount()
		for _, id := range ch.stacks {
			resp, body := ch.do("GET", ch.stackURL(id, "web/todos"), nil, nil)
			if resp.StatusCode != 200 || string(body) != "api.list" {
				t.Fatalf("stack %s: %d %s", id, resp.StatusCode, body)
			}
		}
		return a.callCount() - a0, b.callCount() - b0
	}
	na, nb := serveAll()
	if na == 0 || nb == 0 {
		t.Fatalf("calls: rt-a %d, rt-b %d; want stacks on both", na, nb)
	}
	if got := invokes(ch.harness, "in_process"); got != float64(na) {
		t.Errorf("in_process invokes = %v, want rt-a's %d", got, na)
	}
	if got := invokes(ch.harness, "grpc"); got != float64(nb) {
		t.Errorf("grpc invokes = %v, want rt-b's %d", got, nb)
	}
	if n := a.conns.Load(); n != 0 {
		t.Errorf("the gateway opened %d connections to the in-process runtime", n)
	}
	if n := b.conns.Load(); n == 0 {
		t.Error("the gateway never connected to the remote runtime")
	}

	// Removed, rt-a is called over gRPC; added again, in process.
	local.Remove(a.addr)
	grpc0, inproc0 := invokes(ch.harness, "grpc"), invokes(ch.harness, "in_process")
	na, nb = serveAll()
	if got := invokes(ch.harness, "grpc") - grpc0; got != float64(na+nb) {
		t.Errorf("after Remove: %v grpc invokes, want %d", got, na+nb)
	}
	if invokes(ch.harness, "in_process") != inproc0 {
		t.Error("after Remove: the runtime was still called in process")
	}
	if a.conns.Load() == 0 {
		t.Error("after Remove: no connection to the runtime")
	}
	local.Add(a.addr, inProcessFake{f: a.fakeRuntime})
	inproc0 = invokes(ch.harness, "in_process")
	na, _ = serveAll()
	if got := invokes(ch.harness, "in_process") - inproc0; got != float64(na) {
		t.Errorf("after Add: %v in_process invokes, want %d", got, na)
	}
}

func TestStatic_LocalRuntimeIsCalledInProcess(t *testing.T) {
	rt := startRuntime(t) // called in process; newHarness's own runtime stays unused
	h := newHarness(t, func(_ *gateway.Config, d *gateway.Deps) {
		d.Runtimes = gateway.NewLocalStaticRuntime(inProcessFake{f: rt}, rt.addr)
	})
	for range 3 {
		resp, body := h.do("GET", h.url("web/todos"), nil, nil)
		if resp.StatusCode != 200 || string(body) != "api.list" {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	if got := invokes(h, "in_process"); got != 3 || invokes(h, "grpc") != 0 {
		t.Errorf("invokes: in_process %v, grpc %v; want 3 and 0", got, invokes(h, "grpc"))
	}
	if rt.conns.Load() != 0 || rt.callCount() != 3 || h.rt.callCount() != 0 {
		t.Errorf("runtime: %d connections, %d calls (the dialled one %d); want 0, 3, 0", rt.conns.Load(), rt.callCount(), h.rt.callCount())
	}
	pl, err := gatewayv1.NewGatewayServiceClient(adminConn(t, h)).Placement(context.Background(), &gatewayv1.PlacementRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pl.GetMembers()) != 1 || pl.GetMembers()[0].GetGrpcAddr() != rt.addr {
		t.Errorf("Placement members %v, want the static runtime at %s", pl.GetMembers(), rt.addr)
	}
}
