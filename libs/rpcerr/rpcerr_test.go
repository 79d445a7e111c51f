package rpcerr_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/rpcerr"
)

type busy struct {
	healthpb.UnimplementedHealthServer
}

func (busy) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	return nil, rpcerr.Errorf(codes.ResourceExhausted, rpcerr.CapacityExhausted, "function %s: all %d slots busy", "f", 64)
}

// The reason survives the wire, and gRPC's own errors carry none.
func TestReasonOf_SurvivesTheWireAndGRPCErrorsHaveNone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(64))
	healthpb.RegisterHealthServer(srv, busy{})
	go srv.Serve(ln)
	defer srv.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := healthpb.NewHealthClient(conn)

	_, err = c.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.ResourceExhausted || rpcerr.ReasonOf(err) != rpcerr.CapacityExhausted {
		t.Fatalf("got %v, reason %q", err, rpcerr.ReasonOf(err))
	}
	if !strings.Contains(status.Convert(err).Message(), "all 64 slots busy") {
		t.Errorf("message lost: %v", err)
	}
	_, err = c.Check(context.Background(), &healthpb.HealthCheckRequest{Service: strings.Repeat("x", 100)})
	if status.Code(err) != codes.ResourceExhausted || rpcerr.ReasonOf(err) != "" {
		t.Fatalf("message over the limit: got %v, reason %q", err, rpcerr.ReasonOf(err))
	}
}

func TestReasonOf_WrappedAndPlainErrors(t *testing.T) {
	err := fmt.Errorf("invoke: %w", rpcerr.Errorf(codes.NotFound, rpcerr.StackNotDeployed, "no stack"))
	if rpcerr.ReasonOf(err) != rpcerr.StackNotDeployed {
		t.Errorf("wrapped: %q", rpcerr.ReasonOf(err))
	}
	if rpcerr.ReasonOf(errors.New("plain")) != "" || rpcerr.ReasonOf(nil) != "" {
		t.Error("reason from a plain error")
	}
	if rpcerr.ReasonOf(status.Error(codes.NotFound, "x")) != "" {
		t.Error("reason from a status without details")
	}
}
