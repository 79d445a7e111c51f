package chainindexer

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/muprotocol/mu/libs/service"
)

// Deps are the chain-indexer node's collaborators.
type Deps struct {
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Registry is where the node registers its metrics and what the admin
	// listener's /metrics serves. Nil makes a private registry with the Go
	// and process collectors.
	Registry *prometheus.Registry
}

// Server is a chain-indexer node. Until its API lands it serves grpc.health.v1,
// reflection and the admin port only. Its methods are safe for concurrent
// use.
type Server struct {
	cfg Config
	log *slog.Logger
	run *service.Runner
}

// New checks cfg and builds the node; nothing listens until Start.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("service", "chain-indexer", "node", cfg.NodeName)
	return &Server{
		cfg: cfg,
		log: log,
		run: service.NewRunner("chain-indexer", cfg.Base, service.RunnerOptions{Logger: log, Registry: deps.Registry}),
	}, nil
}

// Start binds the gRPC and admin listeners and serves them in the
// background; it returns once both are bound. Start may be called once,
// not after Close.
func (s *Server) Start(ctx context.Context) error { return s.run.Start(ctx) }

// Addr is the bound gRPC address, or "" before Start.
func (s *Server) Addr() string { return s.run.GRPCAddr() }

// AdminAddr is the bound admin HTTP address, or "" before Start or when
// it is off.
func (s *Server) AdminAddr() string { return s.run.AdminAddr() }

// Err reports a listener that stopped with an error while serving.
func (s *Server) Err() <-chan error { return s.run.Err() }

// Close stops serving within ShutdownTimeout. Safe to call twice and
// before Start.
func (s *Server) Close() error { return s.run.Close(nil) }
