// Command mu-gateway runs a mu gateway node: the public HTTP edge that
// routes /{stack_id}/{gateway}/{path} to functions on a runtime node.
// It sends every stack to one runtime (--runtime-addr), or, clustered
// (--cluster-bind-addr, --cluster-join), places each stack on the runtime
// members of its region (--region-id) and calls the stack's owner.
//
// Configuration starts from gateway.DefaultConfig; a YAML file (--config),
// MU_GATEWAY_<FIELD> environment variables and --<field> flags override it
// (--help lists every setting). Until the chain-indexer feeds stacks,
// --stacks ID=manifest.yaml[,ID=manifest.yaml] installs stacks from files.
// Exit codes: 0 after SIGINT/SIGTERM, 2 for bad settings, 1 for failures.
package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"

	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/usage"
	"github.com/muprotocol/mu/services/gateway"
)

func main() { service.Main(command()) }

// options are the gateway's Config plus this command's own settings.
type options struct {
	gateway.Config
	// RuntimeAddr is the gRPC address (host:port) of the one runtime that
	// serves every stack (static mode). Either it or cluster_bind_addr is
	// required, not both: a clustered gateway places stacks on the
	// runtime members of its member list instead.
	RuntimeAddr string
	// Stacks installs stacks from manifest files at start, each
	// BASE58_ID=PATH.
	Stacks []string
}

//go:embed main.go
var source []byte

func command() service.Command[options] {
	return service.Command[options]{
		Name:   "gateway",
		Config: options{Config: gateway.DefaultConfig()},
		Docs:   config.Merge(gateway.ConfigDocs(), config.MustParseDocs(source)),
		New:    newNode,
		Check:  checkMode,
	}
}

// node is the gateway with the runtime connection it owns in static mode
// (a clustered gateway owns its connections itself).
type node struct {
	*gateway.Server
	conns *gateway.Conns
}

func (n *node) Close() error { return errors.Join(n.Server.Close(), n.conns.Close()) }

// checkMode requires exactly one of runtime_addr and cluster_bind_addr.
func checkMode(o options) error {
	switch clustered := o.Cluster.Enabled(); {
	case o.RuntimeAddr == "" && !clustered:
		return service.Invalid("gateway", []error{errors.New("runtime_addr (--runtime-addr, MU_GATEWAY_RUNTIME_ADDR) " +
			"or cluster_bind_addr (--cluster-bind-addr, MU_GATEWAY_CLUSTER_BIND_ADDR) is required: one runtime for every stack, " +
			"or placement on the runtime members of the cluster")})
	case o.RuntimeAddr != "" && clustered:
		return service.Invalid("gateway", []error{errors.New("runtime_addr and cluster_bind_addr exclude each other: " +
			"set runtime_addr for one runtime, or cluster_bind_addr (and cluster_join) to place stacks on the cluster's runtimes")})
	}
	return nil
}

func newNode(_ context.Context, o options, log *slog.Logger) (service.Service, error) {
	if err := checkMode(o); err != nil {
		return nil, err
	}
	deps := gateway.Deps{Logger: log}
	if o.BillingAddr == "" {
		log.Warn("no billing_addr: usage is discarded, nothing is billed")
		deps.Usage = usage.Discard{}
	}
	tlsc, err := service.NewTLS(o.Base, log)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	conns := gateway.NewConns(gateway.RuntimeDialOptions(o.Base, tlsc)...)
	if o.RuntimeAddr != "" {
		rt, err := gateway.DialRuntime(conns, o.RuntimeAddr)
		if err != nil {
			conns.Close()
			return nil, err
		}
		deps.Runtimes = rt
	}
	srv, err := gateway.New(o.Config, deps)
	if err != nil {
		conns.Close()
		return nil, err
	}
	n := &node{Server: srv, conns: conns}
	for _, spec := range o.Stacks {
		if err := srv.PutStackSpec(spec); err != nil {
			n.Close()
			return nil, service.Invalid("gateway", []error{err})
		}
	}
	return n, nil
}
