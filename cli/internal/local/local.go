// Package local is the local runtime behind `mu run`: the gateway and the
// runtime (and, as they land, the other services) started in one process on
// loopback with embedded defaults, talking to each other over real gRPC.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/usage"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	"github.com/muprotocol/mu/services/gateway"
	"github.com/muprotocol/mu/services/runtime"
)

// Options configure a local region.
type Options struct {
	// GatewayAddr is the public HTTP address (default 127.0.0.1:12080).
	GatewayAddr string
	// DataDir keeps compiled artifacts between runs; empty keeps nothing.
	DataDir string
	// Logger receives the services' own logs; nil discards them.
	Logger *slog.Logger
	// Runtime, if set, adjusts the runtime's configuration before it starts.
	Runtime func(*runtime.Config)
	// Gateway, if set, adjusts the gateway's configuration before it starts.
	Gateway func(*gateway.Config)
}

// Region is a running local region.
type Region struct {
	Runtime *runtime.Server
	Gateway *gateway.Server
	// Usage holds every usage record the services reported.
	Usage *usage.Memory

	conn   *grpc.ClientConn
	client runtimev1.RuntimeServiceClient
}

// Start starts the runtime and the gateway on loopback.
func Start(ctx context.Context, opts Options) (*Region, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Region{Usage: usage.NewMemory()}
	rcfg := runtime.DefaultConfig()
	rcfg.GRPCAddr = "127.0.0.1:0"
	rcfg.AdminAddr = "127.0.0.1:0"
	rcfg.NodeName = "local"
	if opts.DataDir != "" {
		rcfg.DataDir = filepath.Join(opts.DataDir, "runtime")
	}
	if opts.Runtime != nil {
		opts.Runtime(&rcfg)
	}
	rt, err := runtime.New(rcfg, runtime.Deps{Usage: r.Usage, Logger: logger})
	if err != nil {
		return nil, err
	}
	if err := rt.Start(ctx); err != nil {
		rt.Close()
		return nil, err
	}
	r.Runtime = rt
	r.conn, err = grpc.NewClient(rt.Addr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(rcfg.MaxMessageBytes), grpc.MaxCallRecvMsgSize(rcfg.MaxMessageBytes)))
	if err != nil {
		r.Close()
		return nil, err
	}
	r.client = runtimev1.NewRuntimeServiceClient(r.conn)

	gcfg := gateway.DefaultConfig()
	gcfg.HTTPAddr = "127.0.0.1:12080"
	if opts.GatewayAddr != "" {
		gcfg.HTTPAddr = opts.GatewayAddr
	}
	gcfg.GRPCAddr = "127.0.0.1:0"
	gcfg.AdminAddr = "127.0.0.1:0"
	gcfg.NodeName = "local"
	if opts.Gateway != nil {
		opts.Gateway(&gcfg)
	}
	gw, err := gateway.New(gcfg, gateway.Deps{
		Runtimes: gateway.NewStaticRuntime(r.conn),
		Usage:    r.Usage,
		Logger:   logger,
	})
	if err != nil {
		r.Close()
		return nil, err
	}
	if err := gw.Start(ctx); err != nil {
		r.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	r.Gateway = gw
	return r, nil
}

// Deploy installs a stack: its functions on the runtime (through the
// runtime's gRPC API, binaries inline), then its routes on the gateway.
func (r *Region) Deploy(ctx context.Context, id ids.StackID, revision uint64, m *manifest.Manifest, binaries map[string][]byte) error {
	yml, err := m.Marshal()
	if err != nil {
		return err
	}
	req := &runtimev1.DeployRequest{Stack: &runtimev1.Stack{Id: id.Bytes(), Revision: revision, Manifest: yml}}
	keys := make([]string, 0, len(binaries))
	for k := range binaries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		req.Binaries = append(req.Binaries, &runtimev1.FunctionBinary{BinaryId: k, Wasm: binaries[k]})
	}
	if _, err := r.client.Deploy(ctx, req); err != nil {
		return fmt.Errorf("deploy to runtime: %w", err)
	}
	return r.Gateway.PutStack(id, m, revision)
}

// URLs lists the endpoints of a stack, one per path and method, in the
// manifest's order (gateways as declared, endpoints by path then method).
func (r *Region) URLs(id ids.StackID, m *manifest.Manifest) []Endpoint {
	base := "http://" + r.Gateway.Addr()
	var out []Endpoint
	for _, g := range m.Gateways {
		for _, e := range g.Endpoints {
			out = append(out, Endpoint{Method: e.Method, URL: base + "/" + id.String() + "/" + g.Name + e.Path, Function: e.RouteTo})
		}
	}
	return out
}

// Endpoint is one routed method and URL of a stack.
type Endpoint struct {
	Method, URL, Function string
}

// FlushUsage blocks until every service has handed the usage of the calls
// answered so far to the usage sink, or ctx ends.
func (r *Region) FlushUsage(ctx context.Context) error {
	return errors.Join(r.Gateway.FlushUsage(ctx), r.Runtime.FlushUsage(ctx))
}

// Close stops the gateway (draining requests), then the runtime. Safe to call twice.
func (r *Region) Close() error {
	var errs []error
	if r.Gateway != nil {
		errs = append(errs, r.Gateway.Close())
	}
	if r.conn != nil {
		errs = append(errs, r.conn.Close())
		r.conn = nil
	}
	if r.Runtime != nil {
		errs = append(errs, r.Runtime.Close())
	}
	return errors.Join(errs...)
}
