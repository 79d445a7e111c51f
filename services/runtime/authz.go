package runtime

import (
	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/service"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
)

// rules say which certificate roles may call the runtime over mTLS (see
// service.Rules). Invoke comes from gateways; Deploy and Undeploy from an
// operator (the region package, the CLI); StreamLogs from gateways, which
// check the stack owner's signature themselves (libs/reqsign), from an
// operator, and from a runtime (mu-executor's gateway streams its own
// node's logs over the node's loopback, with the node's certificate); the
// logs of every stack at once (an empty stack_id) only an operator may
// stream (StreamLogs checks it).
var rules = service.Rules{
	runtimev1.RuntimeService_Invoke_FullMethodName:     {certs.RoleGateway},
	runtimev1.RuntimeService_Deploy_FullMethodName:     {certs.RoleOperator},
	runtimev1.RuntimeService_Undeploy_FullMethodName:   {certs.RoleOperator},
	runtimev1.RuntimeService_Status_FullMethodName:     {certs.RoleGateway, certs.RoleRuntime, certs.RoleOperator},
	runtimev1.RuntimeService_StreamLogs_FullMethodName: {certs.RoleGateway, certs.RoleRuntime, certs.RoleOperator},
}
