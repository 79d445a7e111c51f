// Command mu-gateway runs a mu gateway node: the public HTTP edge that
// routes /{stack_id}/{gateway}/{path} to functions on a runtime node.
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
	// RuntimeAddr is the gRPC address (host:port) of the runtime that
	// serves every stack, until cluster placement lands. Required.
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
	}
}

// node is the gateway with the runtime connections it owns.
type node struct {
	*gateway.Server
	conns *gateway.Conns
}

func (n *node) Close() error { return errors.Join(n.Server.Close(), n.conns.Close()) }

func newNode(_ context.Context, o options, log *slog.Logger) (service.Service, error) {
	if o.RuntimeAddr == "" {
		return nil, service.Invalid("gateway", []error{errors.New("runtime_addr (--runtime-addr, MU_GATEWAY_RUNTIME_ADDR) is required")})
	}
	conns := gateway.NewConns()
	rt, err := gateway.DialRuntime(conns, o.RuntimeAddr)
	if err != nil {
		conns.Close()
		return nil, err
	}
	log.Warn("no billing service configured yet: usage records are discarded")
	srv, err := gateway.New(o.Config, gateway.Deps{Runtimes: rt, Usage: usage.Discard{}, Logger: log})
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
