package region

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"google.golang.org/grpc"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/service"
	gatewayv1 "github.com/muprotocol/mu/proto/mu/gateway/v1"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
)

// ExecutorOptions ask process mode for executors: mu-executor children,
// each running a gateway and a runtime in one process (and muDB and
// storage, unless the region has its own nodes of those, which the
// executors then use through mudb_addr and storage_addr). They are named
// executor-1, executor-2, …; the runtime part of executor-1 is the region
// runtime node executor-1-runtime (Runtimes lists it), its gateway
// executor-1-gateway (Gateways lists it). With Options.Cluster both parts
// of every executor are members of the region's member list.
type ExecutorOptions struct {
	// Nodes is how many executors to start; 0 means 1.
	Nodes int
	// Config, if set, adjusts executor i's configuration before it
	// starts. The region has set every listener to a free loopback port,
	// the node name, the data directories under DataDir/<name>, the
	// chain-indexer, region id, mudb_addr and storage_addr it has, and
	// the cluster's bind addresses and join list. The settings become the
	// child's flags (libs/config.Args).
	Config func(i int, c *ExecutorConfig)
}

// ExecutorNode is one mu-executor child of a region.
type ExecutorNode struct {
	name      string
	addr      string
	adminAddr string
	process   *Process
	runtime   *RuntimeNode
	gateway   *GatewayNode
}

// Name is the executor's node name: executor-1, executor-2, …
func (n *ExecutorNode) Name() string { return n.name }

// Addr is the executor's own gRPC address (grpc.health.v1: SERVING while
// every part serves).
func (n *ExecutorNode) Addr() string { return n.addr }

// AdminAddr is the executor's admin HTTP address (/metrics, /healthz,
// /readyz).
func (n *ExecutorNode) AdminAddr() string { return n.adminAddr }

// Process is the executor's child process; its runtime and gateway parts
// share it, so killing one kills both.
func (n *ExecutorNode) Process() *Process { return n.process }

// Runtime is the executor's runtime part.
func (n *ExecutorNode) Runtime() *RuntimeNode { return n.runtime }

// Gateway is the executor's gateway part.
func (n *ExecutorNode) Gateway() *GatewayNode { return n.gateway }

// Executors lists the region's executors in start order.
func (r *Region) Executors() []*ExecutorNode {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*ExecutorNode(nil), r.executors...)
}

// Gateways lists the region's gateways: its own (Options.Gateway), then
// each executor's.
func (r *Region) Gateways() []*GatewayNode {
	var out []*GatewayNode
	if r.gateway != nil {
		out = append(out, r.gateway)
	}
	for _, e := range r.Executors() {
		out = append(out, e.gateway)
	}
	return out
}

// exited reports whether p has exited.
func exited(p *Process) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

func executorName(i int) string { return fmt.Sprintf("executor-%d", i+1) }

// startExecutors starts Options.Executors' executors.
func (r *Region) startExecutors(ctx context.Context) error {
	if r.procs == nil {
		return errors.New("region: Options.Executors needs process mode (an executor is a mu-executor process; in this process use NewExecutor)")
	}
	for i := range max(r.opts.Executors.Nodes, 1) {
		if _, err := r.startExecutor(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// AddExecutor starts one more executor, configured as Options.Executors
// says for the next index; with Options.Cluster its runtime joins the
// region's member list and takes over the stacks now closest to it.
func (r *Region) AddExecutor(ctx context.Context) (*ExecutorNode, error) {
	if r.opts.Executors == nil {
		return nil, errors.New("region: AddExecutor needs Options.Executors")
	}
	r.addMu.Lock()
	defer r.addMu.Unlock()
	r.mu.Lock()
	i := len(r.executors)
	r.mu.Unlock()
	return r.startExecutor(ctx, i)
}

// startExecutor starts executor i as a child process and adds its parts
// to the region.
func (r *Region) startExecutor(ctx context.Context, i int) (*ExecutorNode, error) {
	name := executorName(i)
	cfg := DefaultExecutorConfig()
	localGatewayLimits(&cfg.Gateway)
	cfg.NodeName = name
	// The executor's own listener and connections carry a runtime's
	// certificate (it is a runtime node that also serves HTTP); each
	// part gets one of its role.
	for _, p := range []struct {
		b    *service.Base
		role certs.Role
		name string
	}{{&cfg.Base, certs.RoleRuntime, name}, {&cfg.Gateway.Base, certs.RoleGateway, name + "-gateway"},
		{&cfg.Runtime.Base, certs.RoleRuntime, name + "-runtime"}, {&cfg.Mudb.Base, certs.RoleMudb, name + "-mudb"},
		{&cfg.Storage.Base, certs.RoleStorage, name + "-storage"}} {
		// muDB and storage elsewhere (the region's) leave their sections out.
		if (p.role == certs.RoleMudb && r.mudb != nil) || (p.role == certs.RoleStorage && r.storage != nil) {
			continue
		}
		if err := r.secure(p.b, p.role, p.name); err != nil {
			return nil, err
		}
	}
	cfg.GRPCAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Gateway.HTTPAddr, cfg.Gateway.GRPCAddr, cfg.Gateway.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Runtime.GRPCAddr, cfg.Runtime.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	dir := nodeDir(r.opts.DataDir, name)
	if dir != "" {
		cfg.Runtime.DataDir = filepath.Join(dir, "runtime")
	}
	if r.mudb != nil {
		cfg.MudbAddr = r.mudb.addr
	} else {
		cfg.Mudb.GRPCAddr, cfg.Mudb.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.Mudb.DataDir = nodeDir(dir, "mudb")
	}
	if r.storage != nil {
		cfg.StorageAddr = r.storage.addr
	} else {
		if dir == "" {
			return nil, errors.New("region: an executor without the region's storage node (Options.Storage) runs storage itself and needs Options.DataDir")
		}
		cfg.Storage.GRPCAddr, cfg.Storage.HTTPAddr, cfg.Storage.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.Storage.DataDir = filepath.Join(dir, "storage")
	}
	cfg.BillingAddr = r.billingAddr
	if dir != "" && r.billingAddr != "" {
		cfg.Gateway.Usage.SpoolDir = filepath.Join(dir, "gateway", "usage-spool")
		cfg.Runtime.Usage.SpoolDir = filepath.Join(dir, "runtime", "usage-spool")
		if r.mudb == nil {
			cfg.Mudb.Usage.SpoolDir = filepath.Join(dir, "mudb", "usage-spool")
		}
		if r.storage == nil {
			cfg.Storage.Usage.SpoolDir = filepath.Join(dir, "storage", "usage-spool")
		}
	}
	if r.indexer != nil {
		cfg.ChainIndexerAddr = r.indexer.addr
		cfg.RegionID = r.market.Region.ID.String()
	}
	if r.opts.Cluster != nil {
		if err := r.clusterConfig(&cfg.Cluster.Config); err != nil {
			return nil, err
		}
		addr, err := freeGossipPort()
		if err != nil {
			return nil, err
		}
		cfg.Cluster.GatewayBindAddr = addr
	}
	if eo := r.opts.Executors; eo.Config != nil {
		eo.Config(i, &cfg)
	}
	n, err := r.procs.executor(ctx, name, cfg)
	if n != nil {
		r.mu.Lock()
		r.executors = append(r.executors, n)
		r.runtimes = append(r.runtimes, n.runtime)
		r.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	r.joined(n.runtime.clusterAddr)
	r.joined(n.gateway.clusterAddr)
	rc, err := r.dialService(certs.RoleRuntime, n.runtime.addr, cfg.Runtime.MaxMessageBytes)
	if err != nil {
		return nil, err
	}
	gc, err := grpc.NewClient(n.gateway.grpcAddr, r.tls.DialOption(certs.RoleGateway))
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("region: gateway admin %s: %w", n.gateway.grpcAddr, err)
	}
	r.mu.Lock()
	r.closers = append(r.closers, rc.Close, gc.Close)
	r.mu.Unlock()
	n.runtime.client = runtimev1.NewRuntimeServiceClient(rc)
	n.gateway.client = gatewayv1.NewGatewayServiceClient(gc)
	return n, nil
}

// executor starts mu-executor as a child process and waits until its own
// health answers SERVING, which it does once every part serves.
func (s *processStarter) executor(ctx context.Context, name string, cfg ExecutorConfig) (*ExecutorNode, error) {
	ports := []*string{&cfg.GRPCAddr, &cfg.Gateway.HTTPAddr, &cfg.Gateway.GRPCAddr, &cfg.Runtime.GRPCAddr}
	optional := []*string{&cfg.AdminAddr, &cfg.Gateway.AdminAddr, &cfg.Runtime.AdminAddr}
	if cfg.runsMudb() {
		ports = append(ports, &cfg.Mudb.GRPCAddr)
		optional = append(optional, &cfg.Mudb.AdminAddr)
	}
	if cfg.runsStorage() {
		ports = append(ports, &cfg.Storage.GRPCAddr, &cfg.Storage.HTTPAddr)
		optional = append(optional, &cfg.Storage.AdminAddr)
	}
	p, err := s.startChild(ctx, name, "executor", &cfg, &cfg.GRPCAddr, ports, optional)
	if p == nil {
		return nil, err
	}
	gw, rt, _, _ := cfg.parts()
	return &ExecutorNode{
		name: name, addr: cfg.GRPCAddr, adminAddr: cfg.AdminAddr, process: p,
		runtime: &RuntimeNode{name: rt.NodeName, addr: rt.GRPCAddr, adminAddr: rt.AdminAddr, clusterAddr: rt.Cluster.BindAddr, process: p},
		gateway: &GatewayNode{name: gw.NodeName, addr: gw.HTTPAddr, grpcAddr: gw.GRPCAddr, adminAddr: gw.AdminAddr, clusterAddr: gw.Cluster.BindAddr, process: p},
	}, err
}

// stopExecutors stops every executor at once (each stops its gateway
// first, then its runtime leaves and drains) and waits for them.
func (r *Region) stopExecutors() error {
	execs := r.Executors()
	errs := make([]error, len(execs))
	var wg sync.WaitGroup
	for i, n := range execs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.process.Stop()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
