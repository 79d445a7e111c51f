package gateway

import (
	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/service"
	gatewayv1 "github.com/muprotocol/mu/proto/mu/gateway/v1"
)

// rules say which certificate roles may call the gateway's admin API over
// mTLS (see service.Rules): an operator (the region package, the CLI)
// changes its stacks; what it reports (routes, status, placement) other
// nodes of the region may read too.
var rules = service.Rules{
	gatewayv1.GatewayService_PutStack_FullMethodName:    {certs.RoleOperator},
	gatewayv1.GatewayService_RemoveStack_FullMethodName: {certs.RoleOperator},
	gatewayv1.GatewayService_Routes_FullMethodName:      {certs.RoleOperator, certs.RoleGateway, certs.RoleRuntime},
	gatewayv1.GatewayService_Status_FullMethodName:      {certs.RoleOperator, certs.RoleGateway, certs.RoleRuntime},
	gatewayv1.GatewayService_Placement_FullMethodName:   {certs.RoleOperator, certs.RoleGateway, certs.RoleRuntime},
}
