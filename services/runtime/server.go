// Package runtime is the runtime node: it runs stacks' WebAssembly functions
// on wasmtime (internal/wasm), keeps warm instances (internal/pool), and
// serves RuntimeService over gRPC: Deploy and Undeploy stacks, Invoke a
// function, Status, and StreamLogs.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/usage"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	"github.com/muprotocol/mu/services/runtime/internal/pool"
	"github.com/muprotocol/mu/services/runtime/internal/wasm"
	"github.com/muprotocol/mu/services/runtime/logs"
)

// Server is a runtime node. Create it with New, start it with Start, stop it
// with Close.
type Server struct {
	runtimev1.UnimplementedRuntimeServiceServer

	cfg     Config
	log     *slog.Logger
	usage   usage.Sink
	keys    *usage.Keys
	engine  *wasm.Engine
	pool    *pool.Pool
	logs    *logs.Hub
	metrics *metrics
	host    wasm.Handler // answers functions' db, storage and HTTP requests

	mu        sync.RWMutex
	stacks    map[[32]byte]*deployment
	modules   map[string]*moduleRef // binary id → compiled module shared by deployments
	deploySeq atomic.Uint64

	grpc      *grpc.Server
	health    *health.Server
	lis       net.Listener
	serveErr  chan error
	closing   chan struct{} // closed when Close starts: ends log streams so GracefulStop can finish
	closeOnce sync.Once
}

// New builds a runtime node: the wasm engine (with its artifact cache under
// DataDir), the instance pool and the gRPC server. Nothing listens until Start.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		usage:    cfg.Usage,
		keys:     usage.NewKeys(cfg.NodeID),
		logs:     logs.NewHub(cfg.LogBuffer),
		stacks:   make(map[[32]byte]*deployment),
		modules:  make(map[string]*moduleRef),
		serveErr: make(chan error, 1),
		closing:  make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("service", "runtime", "node", cfg.NodeID)
	if s.usage == nil {
		s.usage = usage.Discard{}
	}
	var err error
	s.engine, err = wasm.NewEngine(wasm.Config{
		CacheDir:       cfg.artifactDir(),
		CacheMaxBytes:  cfg.ArtifactCacheBytes,
		EpochTick:      cfg.EpochTick,
		MaxFrameSize:   cfg.MaxFrameSize,
		StartupFuel:    cfg.StartupFuel,
		StartupTimeout: cfg.StartupTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("runtime: engine: %w", err)
	}
	s.pool, err = pool.New(pool.Config{
		MaxIdlePerFunction:   cfg.MaxIdlePerFunction,
		MaxActivePerFunction: cfg.MaxActivePerFunction,
		IdleMemoryBudget:     cfg.IdleMemoryBudget,
		IdleTimeout:          cfg.IdleTimeout,
	})
	if err != nil {
		s.engine.Close()
		return nil, fmt.Errorf("runtime: pool: %w", err)
	}
	s.metrics = newMetrics()
	s.host = s.hostHandler()
	s.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.MaxSendMsgSize(cfg.MaxMessageBytes),
		grpc.ChainUnaryInterceptor(recovery.UnaryServerInterceptor(recovery.WithRecoveryHandler(s.recovered))),
		grpc.ChainStreamInterceptor(recovery.StreamServerInterceptor(recovery.WithRecoveryHandler(s.recovered))),
	)
	runtimev1.RegisterRuntimeServiceServer(s.grpc, s)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	return s, nil
}

func (s *Server) recovered(p any) error {
	s.log.Error("panic in a gRPC handler", "panic", p)
	return status.Errorf(codes.Internal, "runtime: internal error")
}

// Start listens on GRPCAddr and serves in the background.
func (s *Server) Start() error {
	lis, err := net.Listen("tcp", s.cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("runtime: listen %s: %w", s.cfg.GRPCAddr, err)
	}
	s.lis = lis
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(runtimev1.RuntimeService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	go func() { s.serveErr <- s.grpc.Serve(lis) }()
	s.log.Info("runtime listening", "grpc", lis.Addr().String())
	return nil
}

// Serve starts the server and blocks until ctx ends or serving fails, then closes it.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.serveErr:
	}
	s.Close()
	if errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	return err
}

// Addr is the bound gRPC address (after Start).
func (s *Server) Addr() string {
	if s.lis == nil {
		return ""
	}
	return s.lis.Addr().String()
}

// Registry returns the node's Prometheus metrics.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// Logs returns the hub of function logs, for in-process consumers such as `mu run`.
func (s *Server) Logs() *logs.Hub { return s.logs }

// Close stops serving (draining in-flight calls), then closes every instance
// and the engine. Safe to call twice.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.health.Shutdown()
		s.grpc.GracefulStop()
		s.pool.Close()
		s.mu.Lock()
		for _, m := range s.modules {
			m.mod.Close()
		}
		s.modules = map[string]*moduleRef{}
		s.stacks = map[[32]byte]*deployment{}
		s.mu.Unlock()
		s.engine.Close()
	})
}
