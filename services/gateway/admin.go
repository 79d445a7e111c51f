package gateway

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net/url"
	"slices"

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
	resp := &gatewayv1.StatusResponse{
		NodeName:       a.s.cfg.NodeName,
		Stacks:         uint32(stacks),
		DisabledStacks: uint32(disabled),
		InFlight:       uint32(a.s.flight.Count()),
		PublicUrl:      a.s.baseURL(),
	}
	if c := a.s.cluster; c != nil {
		members, runtimes := c.counts()
		resp.ClusterMembers, resp.ClusterRuntimes, resp.ClusterAddr = uint32(members), uint32(runtimes), c.addr()
	}
	return resp, nil
}

// Page sizes of GatewayService.Placement.
const (
	defaultPlacementPage = 100
	maxPlacementPage     = 1000
)

// Placement reports the runtime members and, one page at a time, the
// owner and candidates of the selected stacks (see the proto).
// INVALID_ARGUMENT for a stack id that is not 32 bytes or a foreign
// page_token.
func (a *adminService) Placement(_ context.Context, req *gatewayv1.PlacementRequest) (*gatewayv1.PlacementResponse, error) {
	var sel []ids.StackID
	if len(req.GetStackIds()) > 0 {
		sel = make([]ids.StackID, 0, len(req.GetStackIds()))
		for i, b := range req.GetStackIds() {
			id, err := ids.StackIDFromBytes(b)
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "stack_ids[%d]: %v", i, err)
			}
			sel = append(sel, id)
		}
		slices.SortFunc(sel, compareStacks)
		sel = slices.Compact(sel)
	} else {
		sel = a.s.stacks.ids()
	}
	if tok := req.GetPageToken(); tok != "" {
		after, err := parsePageToken(tok)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "page_token: %v", err)
		}
		i, found := slices.BinarySearchFunc(sel, after, compareStacks)
		if found {
			i++
		}
		sel = sel[i:]
	}
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = defaultPlacementPage
	case size > maxPlacementPage:
		size = maxPlacementPage
	}
	resp := &gatewayv1.PlacementResponse{}
	if len(sel) > size {
		sel = sel[:size]
		resp.NextPageToken = hex.EncodeToString(sel[len(sel)-1][:])
	}
	k := a.s.cfg.InvokeAttempts
	if c := a.s.cluster; c != nil {
		resp.Mode = gatewayv1.PlacementMode_PLACEMENT_MODE_CLUSTER
		for _, m := range c.placementMembers() {
			resp.Members = append(resp.Members, &gatewayv1.PlacementMember{
				Name:        m.node.name,
				NodeId:      m.node.id.String(),
				GrpcAddr:    m.node.addr,
				Generation:  m.node.generation,
				Suspect:     m.node.suspect,
				OwnedStacks: uint32(m.stacks),
				Share:       m.share,
			})
		}
		for _, id := range sel {
			sp := &gatewayv1.StackPlacement{StackId: id.Bytes(), Served: a.s.stacks.has(id)}
			for _, n := range c.nodeCandidates(id, k) {
				sp.Candidates = append(sp.Candidates, &gatewayv1.PlacementNode{Name: n.name, NodeId: n.id.String()})
			}
			if len(sp.Candidates) > 0 {
				sp.Owner = sp.Candidates[0]
			}
			resp.Stacks = append(resp.Stacks, sp)
		}
		return resp, nil
	}
	resp.Mode = gatewayv1.PlacementMode_PLACEMENT_MODE_STATIC
	if st, ok := a.s.runtimes.(*StaticRuntime); ok {
		n, _ := a.s.stacks.counts()
		resp.Members = []*gatewayv1.PlacementMember{{Name: StaticNode, GrpcAddr: st.target, OwnedStacks: uint32(n), Share: 1}}
	}
	var buf []Candidate
	for _, id := range sel {
		sp := &gatewayv1.StackPlacement{StackId: id.Bytes(), Served: a.s.stacks.has(id)}
		buf = a.s.runtimes.Candidates(id, k, buf[:0])
		for _, c := range buf {
			sp.Candidates = append(sp.Candidates, &gatewayv1.PlacementNode{Name: c.Node})
		}
		if len(sp.Candidates) > 0 {
			sp.Owner = sp.Candidates[0]
		}
		resp.Stacks = append(resp.Stacks, sp)
	}
	return resp, nil
}

func compareStacks(a, b ids.StackID) int { return bytes.Compare(a[:], b[:]) }

// parsePageToken reads a Placement page token: the hex of the last stack
// id of the previous page.
func parsePageToken(tok string) (ids.StackID, error) {
	var id ids.StackID
	b, err := hex.DecodeString(tok)
	if err != nil || len(b) != len(id) {
		return id, errors.New("not a token from a previous Placement response")
	}
	copy(id[:], b)
	return id, nil
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
