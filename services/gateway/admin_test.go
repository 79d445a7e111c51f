package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ids"
	gatewayv1 "github.com/muprotocol/mu/proto/mu/gateway/v1"
	"github.com/muprotocol/mu/services/gateway"
)

func adminConn(t *testing.T, h *harness) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(h.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func TestAdmin_RoutesListsFullURLs(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := gatewayv1.NewGatewayServiceClient(adminConn(t, h))
	resp, err := c.Routes(ctx, &gatewayv1.RoutesRequest{StackId: h.stack.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRevision() != 1 || !resp.GetEnabled() || resp.GetDisabledReason() != "" {
		t.Fatalf("revision %d enabled %v reason %q, want 1 true \"\"", resp.GetRevision(), resp.GetEnabled(), resp.GetDisabledReason())
	}
	h.srv.SetStackEnabled(h.stack, false, "escrow is short")
	off, err := c.Routes(ctx, &gatewayv1.RoutesRequest{StackId: h.stack.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	if off.GetEnabled() || off.GetDisabledReason() != "escrow is short" {
		t.Fatalf("disabled stack: enabled %v reason %q", off.GetEnabled(), off.GetDisabledReason())
	}
	h.srv.SetStackEnabled(h.stack, true, "")
	var got []string
	for _, r := range resp.GetRoutes() {
		got = append(got, r.GetGateway()+" "+r.GetMethod()+" "+r.GetPath()+" "+r.GetFunction()+" "+r.GetUrl())
	}
	base := h.base + "/" + h.stack.String()
	want := []string{
		"admin GET /stats api.stats " + base + "/admin/stats",
		"web GET / api.root " + base + "/web/",
		"web GET /echo api.echo " + base + "/web/echo",
		"web POST /echo api.echo " + base + "/web/echo",
		"web PUT /echo api.echo " + base + "/web/echo",
		"web GET /files/{name} api.file " + base + "/web/files/{name}",
		"web HEAD /only-head api.head " + base + "/web/only-head",
		"web GET /todos api.list " + base + "/web/todos",
		"web POST /todos api.create " + base + "/web/todos",
		"web GET /todos/ api.list_slash " + base + "/web/todos/",
		"web GET /todos/new api.new_form " + base + "/web/todos/new",
		"web DELETE /todos/{id} api.remove " + base + "/web/todos/{id}",
		"web GET /todos/{id} api.get " + base + "/web/todos/{id}",
		"web GET /{a}/b/{c} api.ab " + base + "/web/{a}/b/{c}",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A listed URL works.
	if r, _ := h.do("GET", base+"/web/todos/new", nil, nil); r.StatusCode != 200 {
		t.Fatalf("listed URL answered %d", r.StatusCode)
	}

	other, _, _ := ids.NewStackID()
	if _, err := c.Routes(ctx, &gatewayv1.RoutesRequest{StackId: other.Bytes()}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown stack: %v", err)
	}
	if _, err := c.Routes(ctx, &gatewayv1.RoutesRequest{StackId: []byte{1, 2}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("short stack id: %v", err)
	}
	h.srv.SetStackEnabled(other, false, "escrow") // unknown stacks are not counted
	st, err := c.Status(ctx, &gatewayv1.StatusRequest{})
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.GetStacks() != 1 || st.GetDisabledStacks() != 0 || st.GetInFlight() != 0 || !strings.HasPrefix(st.GetPublicUrl(), "http://127.0.0.1:") {
		t.Errorf("Status = %v", st)
	}
}

func TestAdmin_RoutesUsePublicURL(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config, _ *gateway.Deps) { c.PublicURL = "https://gw.example.com/" })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := gatewayv1.NewGatewayServiceClient(adminConn(t, h)).Routes(ctx, &gatewayv1.RoutesRequest{StackId: h.stack.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	want := "https://gw.example.com/" + h.stack.String() + "/admin/stats"
	if got := resp.GetRoutes()[0].GetUrl(); got != want {
		t.Fatalf("url = %q, want %q", got, want)
	}
}

func TestAdmin_HealthAndReflection(t *testing.T) {
	h := newHarness(t)
	cc := adminConn(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, svc := range []string{"", "mu.gateway.v1.GatewayService"} {
		r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q: %v %v", svc, r.GetStatus(), err)
		}
	}
	stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	r, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range r.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"mu.gateway.v1.GatewayService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
	stream.CloseSend()
}

func TestGateway_HealthReportsShutdown(t *testing.T) {
	h := newHarness(t)
	// Closing flips /_mu/health before the listener goes; observe it through
	// the handler directly since the listener closes right after.
	if err := h.srv.Close(); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req, _ := http.NewRequest("GET", gateway.HealthPath, nil)
	h.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("health after Close: %d", rec.Code)
	}
	// Stack requests handed to a closed Server get 503 too.
	rec = httptest.NewRecorder()
	req, _ = http.NewRequest("GET", "/"+h.stack.String()+"/web/todos", nil)
	h.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), gateway.KindShuttingDown) {
		t.Fatalf("request after Close: %d %s", rec.Code, rec.Body.String())
	}
}
