package gateway

import (
	"context"
	"net/url"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	gatewayv1 "github.com/muprotocol/mu/proto/mu/gateway/v1"
)

// adminService implements mu.gateway.v1.GatewayService.
type adminService struct {
	gatewayv1.UnimplementedGatewayServiceServer
	s *Server
}

// Routes lists a stack's routes with their public URLs. INVALID_ARGUMENT
// for a stack id that is not 32 bytes, NOT_FOUND for a stack this gateway
// does not serve.
func (a *adminService) Routes(_ context.Context, req *gatewayv1.RoutesRequest) (*gatewayv1.RoutesResponse, error) {
	id, err := ids.StackIDFromBytes(req.GetStackId())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	st, disabled, reason := a.s.stacks.lookup(id)
	if st == nil {
		return nil, status.Errorf(codes.NotFound, "stack %s is not served by this gateway", id)
	}
	base := a.s.baseURL() + "/" + id.String() + "/"
	var out []*gatewayv1.Route
	for _, r := range st.routes() {
		out = append(out, &gatewayv1.Route{
			Gateway:  r.gateway,
			Method:   r.Method,
			Path:     r.Path,
			Function: r.Function,
			Url:      base + url.PathEscape(r.gateway) + r.Path,
		})
	}
	return &gatewayv1.RoutesResponse{Routes: out, Revision: st.revision, Enabled: !disabled, DisabledReason: reason}, nil
}

// Status reports the gateway's state: its stacks and the requests it is
// serving. Liveness is the grpc.health.v1 service, /_mu/health on the public port
// and /healthz on the admin port.
func (a *adminService) Status(context.Context, *gatewayv1.StatusRequest) (*gatewayv1.StatusResponse, error) {
	if a.s.run.IsClosing() {
		return nil, status.Error(codes.Unavailable, "the gateway is shutting down")
	}
	stacks, disabled := a.s.stacks.counts()
	return &gatewayv1.StatusResponse{
		NodeName:       a.s.cfg.NodeName,
		Stacks:         uint32(stacks),
		DisabledStacks: uint32(disabled),
		InFlight:       uint32(a.s.flight.count()),
		PublicUrl:      a.s.baseURL(),
	}, nil
}

// PutStack installs or replaces a stack's routes (Server.PutStack) from its
// YAML manifest. INVALID_ARGUMENT names the field: stack_id that is not 32
// bytes, manifest_yaml that does not parse, validate or compile into routes
// (the installed revision is kept then).
func (a *adminService) PutStack(_ context.Context, req *gatewayv1.PutStackRequest) (*gatewayv1.PutStackResponse, error) {
	id, err := ids.StackIDFromBytes(req.GetStackId())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "stack_id: %v", err)
	}
	m, err := manifest.Parse(req.GetManifestYaml())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "manifest_yaml: %v", err)
	}
	if err := a.s.PutStack(id, m, req.GetRevision()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "manifest_yaml: %v", err)
	}
	return &gatewayv1.PutStackResponse{}, nil
}

// RemoveStack stops serving a stack (Server.RemoveStack). INVALID_ARGUMENT
// for a stack_id that is not 32 bytes; an unknown stack is not an error.
func (a *adminService) RemoveStack(_ context.Context, req *gatewayv1.RemoveStackRequest) (*gatewayv1.RemoveStackResponse, error) {
	id, err := ids.StackIDFromBytes(req.GetStackId())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "stack_id: %v", err)
	}
	a.s.RemoveStack(id)
	return &gatewayv1.RemoveStackResponse{}, nil
}
