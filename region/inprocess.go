package region

import (
	"context"
	"fmt"
	"path/filepath"

	"google.golang.org/grpc"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/usage"
	"github.com/muprotocol/mu/services/gateway"
	"github.com/muprotocol/mu/services/mudb"
	"github.com/muprotocol/mu/services/runtime"
	"github.com/muprotocol/mu/services/storage"
)

// This file is where the region calls the services' constructors; the
// process mode starts their commands instead (process.go).

// nodeDir is a node's data directory under the region's, or "" for none.
func nodeDir(dataDir, name string) string {
	if dataDir == "" {
		return ""
	}
	return filepath.Join(dataDir, name)
}

// dialService connects to the gRPC API of a node of role with the region's
// credentials and room for messages as large as it accepts (deploys carry
// wasm inline; db batches are large).
func (r *Region) dialService(role certs.Role, addr string, maxMessageBytes int) (*grpc.ClientConn, error) {
	name := string(role)
	cc, err := grpc.NewClient(addr, r.tls.DialOption(role),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(maxMessageBytes), grpc.MaxCallRecvMsgSize(maxMessageBytes)))
	if err != nil {
		return nil, fmt.Errorf("region: %s %s: %w", name, addr, err)
	}
	return cc, nil
}

// mudbInProcess starts a muDB node in this process.
func (r *Region) mudbInProcess(ctx context.Context, name string, cfg mudb.Config) (*MudbNode, error) {
	db, err := mudb.New(cfg, mudb.Deps{Usage: r.usageSink(cfg.BillingAddr), Logger: r.log})
	if err != nil {
		return nil, err
	}
	if err := db.Start(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return &MudbNode{name: name, addr: db.Addr(), adminAddr: db.AdminAddr(), server: db}, nil
}

// storageInProcess starts a storage node in this process.
func (r *Region) storageInProcess(ctx context.Context, name string, cfg storage.Config) (*StorageNode, error) {
	st, err := storage.New(cfg, storage.Deps{Usage: r.usageSink(cfg.BillingAddr), Logger: r.log})
	if err != nil {
		return nil, err
	}
	if err := st.Start(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return &StorageNode{name: name, addr: st.Addr(), httpAddr: st.HTTPAddr(), adminAddr: st.AdminAddr(), server: st}, nil
}

// runtimeInProcess starts a runtime node in this process.
func (r *Region) runtimeInProcess(ctx context.Context, name string, cfg runtime.Config) (*RuntimeNode, error) {
	deps := runtime.Deps{Usage: r.usageSink(cfg.BillingAddr), Logger: r.log}
	// In plaintext the runtimes share the region's connections to muDB
	// and storage; with mTLS each dials them with its own certificate,
	// since they serve data calls to runtimes only.
	if r.mudb != nil && r.tls.Plaintext() {
		deps.Mudb = r.mudb.client
	}
	if r.storage != nil && r.tls.Plaintext() {
		deps.Storage = r.storage.client
	}
	rt, err := runtime.New(cfg, deps)
	if err != nil {
		return nil, err
	}
	if err := rt.Start(ctx); err != nil {
		rt.Close()
		return nil, err
	}
	return &RuntimeNode{name: name, addr: rt.Addr(), adminAddr: rt.AdminAddr(), clusterAddr: rt.ClusterAddr(), server: rt}, nil
}

// gatewayInProcess starts a gateway in this process that sends every stack
// to the runtime at runtimeAddr, as mu-gateway does, or, with runtimeAddr
// empty, routes each stack to its owner among the members of its cluster.
// Unless viaGRPC, it calls the region's runtimes that run in this process
// in process (the fast path): the static runtime through
// gateway.NewLocalStaticRuntime, cluster members through the gateway's
// LocalRuntimes, keyed by the gRPC address each advertises.
func (r *Region) gatewayInProcess(ctx context.Context, name string, cfg gateway.Config, runtimeAddr string, viaGRPC bool) (*GatewayNode, error) {
	deps := gateway.Deps{Usage: r.usageSink(cfg.BillingAddr), Logger: r.log}
	switch {
	case runtimeAddr != "":
		if n := r.localRuntime(runtimeAddr); n != nil && !viaGRPC {
			deps.Runtimes = gateway.NewLocalStaticRuntime(n.server.InProcessClient(), runtimeAddr)
			break
		}
		tlsc, err := service.NewTLS(cfg.Base, r.log)
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		conns := gateway.NewConns(gateway.RuntimeDialOptions(cfg.Base, tlsc)...)
		r.closers = append(r.closers, conns.Close)
		rt, err := gateway.DialRuntime(conns, runtimeAddr)
		if err != nil {
			return nil, err
		}
		deps.Runtimes = rt
	case !viaGRPC:
		local := gateway.NewLocalRuntimes()
		r.mu.Lock()
		r.local = local
		for _, n := range r.runtimes {
			if n.server != nil {
				local.Add(n.server.AdvertisedAddr(), n.server.InProcessClient())
			}
		}
		r.mu.Unlock()
		deps.Local = local
	}
	gw, err := gateway.New(cfg, deps)
	if err != nil {
		return nil, err
	}
	if err := gw.Start(ctx); err != nil {
		gw.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return &GatewayNode{name: name, addr: gw.Addr(), grpcAddr: gw.GRPCAddr(), adminAddr: gw.AdminAddr(), clusterAddr: gw.ClusterAddr(), server: gw}, nil
}

// localRuntime is the region's runtime in this process whose gRPC address
// is addr, or nil.
func (r *Region) localRuntime(addr string) *RuntimeNode {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.runtimes {
		if n.server != nil && n.addr == addr {
			return n
		}
	}
	return nil
}

// usageSink is what a service in this process reports usage to: the
// region's Usage, or nil when the service has a billing_addr (it reports
// there then, through its durable sender).
func (r *Region) usageSink(billingAddr string) usage.Sink {
	if billingAddr != "" {
		return nil
	}
	return r.Usage
}
