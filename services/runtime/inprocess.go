package runtime

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/rpcerr"
	"github.com/muprotocol/mu/libs/service"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
)

// InProcessClient returns a RuntimeService client that calls this node in
// process: the unary methods (Invoke, Deploy, Undeploy, Status) run on the
// caller's goroutine through the node's gRPC interceptors (metrics, panic
// recovery), deadlines, message-size limits and graceful close, as a gRPC
// call does, without encoding the messages or crossing a socket (see
// libs/service's in-process calls). StreamLogs, the one streaming method,
// goes over a loopback gRPC connection to the node's own listener, dialled
// on its first use and closed with the node. The same client is returned
// every time; it needs no closing of its own and fails with UNAVAILABLE
// before Start and once Close has begun.
//
// Ownership, since nothing is copied: the node reads a request only while
// the call runs and keeps no reference to it, or to anything in it (the
// HTTP body, headers, parameter maps), once the method has returned, so
// the caller may reuse or pool request messages after each call; it must
// not change one during the call. A response belongs to the caller: the
// node shares none of it with anything it keeps and never touches it once
// the method has returned. Callers treat responses as read-only all the
// same (the gateway does), so that the rule can hold on both paths.
func (s *Server) InProcessClient() runtimev1.RuntimeServiceClient {
	return s.inproc
}

// AdvertisedAddr is the gRPC address the node advertises to its region's
// member list, which gateways dial and place stacks on (the bound gRPC
// address when the node is not clustered), or "" before Start.
func (s *Server) AdvertisedAddr() string {
	s.cluster.mu.Lock()
	defer s.cluster.mu.Unlock()
	return s.cluster.self.Addr
}

// inProcessClient is the RuntimeServiceClient of InProcessClient.
type inProcessClient struct {
	s        *Server
	invoke   *service.Unary[*runtimev1.InvokeRequest, *runtimev1.InvokeResponse]
	deploy   *service.Unary[*runtimev1.DeployRequest, *runtimev1.DeployResponse]
	undeploy *service.Unary[*runtimev1.UndeployRequest, *runtimev1.UndeployResponse]
	status   *service.Unary[*runtimev1.StatusRequest, *runtimev1.StatusResponse]

	mu     sync.Mutex
	conn   *grpc.ClientConn // for StreamLogs; nil until its first use
	closed bool
}

func newInProcessClient(s *Server) *inProcessClient {
	return &inProcessClient{
		s:        s,
		invoke:   service.NewUnary(s.run, s, runtimev1.RuntimeService_Invoke_FullMethodName, s.Invoke),
		deploy:   service.NewUnary(s.run, s, runtimev1.RuntimeService_Deploy_FullMethodName, s.Deploy),
		undeploy: service.NewUnary(s.run, s, runtimev1.RuntimeService_Undeploy_FullMethodName, s.Undeploy),
		status:   service.NewUnary(s.run, s, runtimev1.RuntimeService_Status_FullMethodName, s.Status),
	}
}

func (c *inProcessClient) Invoke(ctx context.Context, in *runtimev1.InvokeRequest, opts ...grpc.CallOption) (*runtimev1.InvokeResponse, error) {
	return c.invoke.Call(ctx, in, opts...)
}

func (c *inProcessClient) Deploy(ctx context.Context, in *runtimev1.DeployRequest, opts ...grpc.CallOption) (*runtimev1.DeployResponse, error) {
	return c.deploy.Call(ctx, in, opts...)
}

func (c *inProcessClient) Undeploy(ctx context.Context, in *runtimev1.UndeployRequest, opts ...grpc.CallOption) (*runtimev1.UndeployResponse, error) {
	return c.undeploy.Call(ctx, in, opts...)
}

func (c *inProcessClient) Status(ctx context.Context, in *runtimev1.StatusRequest, opts ...grpc.CallOption) (*runtimev1.StatusResponse, error) {
	return c.status.Call(ctx, in, opts...)
}

// StreamLogs streams over the loopback connection to the node's own gRPC
// listener: a stream's messages are few and long-lived, and a gRPC stream
// keeps its flow control and cancellation.
func (c *inProcessClient) StreamLogs(ctx context.Context, in *runtimev1.StreamLogsRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[runtimev1.StreamLogsResponse], error) {
	cc, err := c.loopback()
	if err != nil {
		return nil, err
	}
	return runtimev1.NewRuntimeServiceClient(cc).StreamLogs(ctx, in, opts...)
}

// loopback is the connection to the node's gRPC listener, dialled once.
func (c *inProcessClient) loopback() (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		return c.conn, nil
	}
	addr := c.s.Addr()
	if c.closed || addr == "" {
		return nil, rpcerr.Errorf(codes.Unavailable, rpcerr.ShuttingDown, "runtime: in-process StreamLogs: the node is not serving (before Start or after Close)")
	}
	cc, err := grpc.NewClient(addr, c.s.run.TLS().DialOption(certs.RoleRuntime),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(c.s.cfg.MaxMessageBytes), grpc.MaxCallSendMsgSize(c.s.cfg.MaxMessageBytes)))
	if err != nil {
		return nil, fmt.Errorf("runtime: in-process StreamLogs: %w", err)
	}
	c.conn = cc
	return cc, nil
}

// close closes the loopback connection, if it was dialled; StreamLogs
// fails afterwards. Called by Server.Close.
func (c *inProcessClient) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}
