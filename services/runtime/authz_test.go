package runtime

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/certs/certstest"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
)

// startTLSRuntime starts a runtime whose gRPC links use mTLS with
// certificates of p.
func startTLSRuntime(t *testing.T, p *certstest.PKI) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.GRPCAddr, cfg.AdminAddr = "127.0.0.1:0", ""
	cfg.NodeName = "rt-1"
	cfg.DataDir = t.TempDir()
	p.Secure(t, &cfg.Base, certs.RoleRuntime)
	srv, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// drainLogs reads a no-follow log stream to its end.
func drainLogs(c runtimev1.RuntimeServiceClient, req *runtimev1.StreamLogsRequest) error {
	req.NoFollow = true
	s, err := c.StreamLogs(context.Background(), req)
	if err != nil {
		return err
	}
	for {
		if _, err := s.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func TestRuntimeTLS_StreamLogsOfEveryStackIsForOperatorsOnly(t *testing.T) {
	p := certstest.New(t)
	srv := startTLSRuntime(t, p)
	gw := runtimev1.NewRuntimeServiceClient(p.Dial(t, srv.Addr(), certs.RoleRuntime, certs.RoleGateway, "gw-1"))
	op := runtimev1.NewRuntimeServiceClient(p.Dial(t, srv.Addr(), certs.RoleRuntime, certs.RoleOperator, "alice"))

	err := drainLogs(gw, &runtimev1.StreamLogsRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("gateway, every stack: %v, want PERMISSION_DENIED", err)
	}
	for _, s := range []string{"spiffe://mu/gateway/gw-1", "every stack", "allowed roles: operator"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("refusal lacks %q: %v", s, err)
		}
	}
	if err := drainLogs(op, &runtimev1.StreamLogsRequest{}); err != nil {
		t.Errorf("operator, every stack: %v", err)
	}
	stack := make([]byte, 32)
	stack[0] = 7
	if err := drainLogs(gw, &runtimev1.StreamLogsRequest{StackId: stack}); err != nil {
		t.Errorf("gateway, one stack: %v", err)
	}
}

func TestRuntimeTLS_InvokeIsForGatewaysAndDeployForOperators(t *testing.T) {
	p := certstest.New(t)
	srv := startTLSRuntime(t, p)
	op := runtimev1.NewRuntimeServiceClient(p.Dial(t, srv.Addr(), certs.RoleRuntime, certs.RoleOperator, "alice"))
	gw := runtimev1.NewRuntimeServiceClient(p.Dial(t, srv.Addr(), certs.RoleRuntime, certs.RoleGateway, "gw-1"))
	ctx := context.Background()
	if _, err := op.Invoke(ctx, &runtimev1.InvokeRequest{}); status.Code(err) != codes.PermissionDenied ||
		!strings.Contains(err.Error(), "spiffe://mu/operator/alice may not call /mu.runtime.v1.RuntimeService/Invoke: allowed roles: gateway") {
		t.Errorf("operator Invoke: %v", err)
	}
	if _, err := gw.Deploy(ctx, &runtimev1.DeployRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("gateway Deploy: %v, want PERMISSION_DENIED", err)
	}
	// Past authorization, the runtime judges the request itself.
	if _, err := gw.Invoke(ctx, &runtimev1.InvokeRequest{}); status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.Unavailable {
		t.Errorf("gateway Invoke: %v, want the runtime's own answer", err)
	}
}
