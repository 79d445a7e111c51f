package region

import (
	"context"
	"fmt"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/muprotocol/mu/services/gateway"
	"github.com/muprotocol/mu/services/mudb"
	"github.com/muprotocol/mu/services/runtime"
	"github.com/muprotocol/mu/services/storage"
)

// This file is where the region calls the services' constructors; the
// process mode starts their commands instead (process.go).

// plaintext is the transport between the region's nodes: loopback only.
var plaintext = grpc.WithTransportCredentials(insecure.NewCredentials())

// nodeDir is a node's data directory under the region's, or "" for none.
func nodeDir(dataDir, name string) string {
	if dataDir == "" {
		return ""
	}
	return filepath.Join(dataDir, name)
}

// dialService connects to a node's gRPC API with room for messages as
// large as it accepts (deploys carry wasm inline; db batches are large).
func dialService(name, addr string, maxMessageBytes int) (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient(addr, plaintext,
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(maxMessageBytes), grpc.MaxCallRecvMsgSize(maxMessageBytes)))
	if err != nil {
		return nil, fmt.Errorf("region: %s %s: %w", name, addr, err)
	}
	return cc, nil
}

// mudbInProcess starts a muDB node in this process.
func (r *Region) mudbInProcess(ctx context.Context, name string, cfg mudb.Config) (*MudbNode, error) {
	db, err := mudb.New(cfg, mudb.Deps{Usage: r.Usage, Logger: r.log})
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
	st, err := storage.New(cfg, storage.Deps{Usage: r.Usage, Logger: r.log})
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
	deps := runtime.Deps{Usage: r.Usage, Logger: r.log}
	if r.mudb != nil {
		deps.Mudb = r.mudb.client
	}
	if r.storage != nil {
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
func (r *Region) gatewayInProcess(ctx context.Context, name string, cfg gateway.Config, runtimeAddr string) (*GatewayNode, error) {
	deps := gateway.Deps{Usage: r.Usage, Logger: r.log}
	if runtimeAddr != "" {
		conns := gateway.NewConns()
		r.closers = append(r.closers, conns.Close)
		rt, err := gateway.DialRuntime(conns, runtimeAddr)
		if err != nil {
			return nil, err
		}
		deps.Runtimes = rt
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
