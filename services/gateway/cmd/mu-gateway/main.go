// Command mu-gateway runs a mu gateway node: the public HTTP edge that
// routes /{stack_id}/{gateway}/{path} to functions on a runtime node.
// It sends every stack to one runtime (--runtime-addr), or, clustered
// (--cluster-bind-addr, --cluster-join), places each stack on the runtime
// members of its region (--region-id) and calls the stack's owner.
//
// Configuration starts from gateway.DefaultNodeConfig; a YAML file
// (--config), MU_GATEWAY_<FIELD> environment variables and --<field> flags
// override it (--help lists every setting). Until the chain-indexer feeds
// stacks, --stacks ID=manifest.yaml[,ID=manifest.yaml] installs stacks from
// files. Exit codes: 0 after SIGINT/SIGTERM, 2 for bad settings, 1 for
// failures.
package main

import (
	"context"
	"log/slog"

	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/services/gateway"
)

func main() { service.Main(command()) }

func command() service.Command[gateway.NodeConfig] {
	return service.Command[gateway.NodeConfig]{
		Name:   "gateway",
		Config: gateway.DefaultNodeConfig(),
		Docs:   gateway.NodeConfigDocs(),
		New: func(_ context.Context, c gateway.NodeConfig, log *slog.Logger) (service.Service, error) {
			n, err := gateway.NewNode(c, log)
			if err != nil {
				return nil, err
			}
			return n, nil
		},
		Check: gateway.CheckNode,
	}
}
