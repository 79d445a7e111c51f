package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/usage"
	gatewayv1 "github.com/muprotocol/mu/proto/mu/gateway/v1"
)

// Deps are the gateway's collaborators.
type Deps struct {
	// Runtimes picks the runtime nodes for each request: a StaticRuntime
	// for one runtime, or any RuntimeResolver. Nil with
	// Config.Cluster.BindAddr set makes the gateway place stacks on the
	// runtimes of its member list itself (cluster mode); one of the two is
	// required, and they exclude each other.
	Runtimes RuntimeResolver
	// Usage receives the gateway's usage records (requests and traffic
	// bytes), in batches, from a background goroutine. Required; use
	// usage.Discard{} to drop usage on purpose.
	Usage usage.Sink
	// Logger receives the gateway's logs; nil discards them.
	Logger *slog.Logger
	// Registry is where the gateway registers its metrics and what the
	// admin listener's /metrics serves. Nil makes a private registry with
	// the Go and process collectors, so several gateways can live in one
	// process.
	Registry *prometheus.Registry
	// ChainIndexer is a connection to the chain indexer to follow the
	// stacks of Config.RegionID through (see Config.ChainIndexerAddr). It
	// takes precedence over ChainIndexerAddr (a region passes an
	// in-process connection here); the caller keeps ownership and closes
	// it after the Server. Nil with ChainIndexerAddr set dials it; nil
	// without it leaves the gateway to PutStack and friends.
	ChainIndexer grpc.ClientConnInterface
	// Local, in cluster mode, holds the runtimes that run in this process
	// by the gRPC address they advertise: a runtime member found there is
	// called in process through its client, and no connection is dialled
	// to it. Nil calls every member over gRPC. The caller keeps ownership
	// and may add and remove runtimes at any time. With Deps.Runtimes use
	// NewLocalStaticRuntime instead.
	Local *LocalRuntimes
}

// Server is a gateway node: the public HTTP edge of the stacks it is told
// about (PutStack), a gRPC admin API and an admin HTTP listener (metrics,
// health). It is also an http.Handler for embedding. Its methods are safe
// for concurrent use.
type Server struct {
	cfg      Config
	runtimes RuntimeResolver
	log      *slog.Logger
	stacks   *registry
	keys     *usage.Keys
	usage    *usage.Batcher
	billing  *grpc.ClientConn // dialled from BillingAddr; nil with Deps.Usage
	run      *service.Runner
	tls      *service.TLS // the gRPC links' credentials
	metrics  *metrics
	flight   service.Flight // running handlers, so Close can wait for them
	follow   *chainFollow   // nil when the gateway does not follow the chain
	cluster  *cluster       // the resolver in cluster mode (also s.runtimes); nil otherwise
	// recvLimitOpt bounds an InvokeResponse on the wire: the response
	// body and header limits plus grpcEnvelopeSlack.
	recvLimitOpt grpc.CallOption
	// retryAfter is the Retry-After value of retryable 503s: whole
	// seconds of OverloadRetryAfter, rounded up.
	retryAfter string
	// logSlots holds a token per open log stream, up to LogsMaxStreams.
	logSlots chan struct{}
	// stackLimits are the stack_limits entries by stack (parsed from
	// Config.StackLimits); other stacks get the stack_rate, stack_burst
	// and stack_concurrency defaults.
	stackLimits map[ids.StackID]StackLimit
	// now is the clock of the per-stack response counts (responseRing)
	// and token buckets (stackLimiter): time.Now, replaced by tests
	// before Start.
	now func() time.Time
}

// grpcEnvelopeSlack is what an InvokeResponse may add on the wire to the
// response body and header bytes the config allows: protobuf tags and
// lengths, fuel counters. Responses within the limits never come near it.
const grpcEnvelopeSlack = 64 << 10

// retryAfterSeconds is d as a Retry-After value: whole seconds, rounded up.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(wholeSeconds(d), 10)
}

// wholeSeconds is d in seconds, rounded up.
func wholeSeconds(d time.Duration) int64 {
	s := d / time.Second
	if d%time.Second > 0 {
		s++
	}
	return int64(s)
}

// New checks cfg and deps and returns a Server that is not yet listening.
// It starts the usage batcher, so every Server from New must be closed.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Runtimes == nil && !cfg.Cluster.Enabled():
		return nil, errors.New("gateway: no runtimes: pass Deps.Runtimes (one runtime, e.g. DialRuntime) " +
			"or set cluster_bind_addr (Config.Cluster.BindAddr) to place stacks on the runtimes of the member list")
	case deps.Runtimes != nil && cfg.Cluster.Enabled():
		return nil, errors.New("gateway: Deps.Runtimes and cluster_bind_addr (Config.Cluster.BindAddr) exclude each other: " +
			"pass one runtime resolver, or let the gateway place stacks on the member list's runtimes")
	}
	if deps.Usage == nil && cfg.BillingAddr == "" {
		return nil, errors.New("gateway: Deps.Usage or billing_addr is required (usage.Discard{} drops usage on purpose)")
	}
	if deps.ChainIndexer != nil && cfg.RegionID == "" {
		return nil, service.Invalid("gateway", []error{errors.New("region_id: is required with Deps.ChainIndexer (the base58 address of the region whose stacks this gateway serves)")})
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("service", "gateway", "node", cfg.NodeName)
	tlsc, err := service.NewTLS(cfg.Base, log)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s := &Server{
		cfg:        cfg,
		tls:        tlsc,
		runtimes:   deps.Runtimes,
		log:        log,
		stacks:     newRegistry(),
		keys:       usage.NewKeys("gateway/" + cfg.NodeName),
		retryAfter: retryAfterSeconds(cfg.OverloadRetryAfter),
		logSlots:   make(chan struct{}, cfg.LogsMaxStreams),
		stackLimits: func() map[ids.StackID]StackLimit {
			m, _ := cfg.stackLimitsOf() // checked by Validate
			return m
		}(),
		now: time.Now,
		recvLimitOpt: grpc.MaxCallRecvMsgSize(int(min(cfg.MaxResponseBytes+int64(cfg.MaxResponseHeaderBytes)+grpcEnvelopeSlack,
			1<<31-1))),
	}
	if s.runtimes == nil {
		s.cluster = newCluster(s, deps.Local)
		s.runtimes = s.cluster
	}
	s.run = service.NewRunner("gateway", cfg.Base, service.RunnerOptions{Logger: log, Registry: deps.Registry, TLS: tlsc, Rules: rules})
	m, err := newMetrics(s.run.Registry(), s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if sr, ok := s.runtimes.(*StaticRuntime); ok {
		s.runtimes = sr.counted(m)
	}
	if deps.ChainIndexer != nil || cfg.ChainIndexerAddr != "" {
		if s.follow, err = newChainFollow(s, deps.ChainIndexer); err != nil {
			return nil, err
		}
	}
	if err := registerChainMetrics(s.run.Registry(), s); err != nil {
		if s.follow != nil {
			s.follow.stop()
		}
		return nil, err
	}
	gatewayv1.RegisterGatewayServiceServer(s.run.GRPC(), &adminService{s: s})
	s.run.AddHTTPListener("http", cfg.HTTPAddr, &http.Server{
		Handler:           s,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		// net/http reads up to MaxHeaderBytes+4096 before answering 431
		// itself; ServeHTTP enforces MaxHeaderBytes exactly.
		MaxHeaderBytes: cfg.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}, s.limitConnections)
	sink := deps.Usage
	if sink == nil {
		var region []byte
		if cfg.RegionID != "" {
			pk, _ := ledger.ParsePubkey(cfg.RegionID) // checked by Validate
			region = pk[:]
		}
		var bs *usage.BillingSink
		if bs, s.billing, err = usage.DialBilling(cfg.BillingAddr, region, tlsc.DialOption(certs.RoleBilling)); err != nil {
			s.stopSetup()
			return nil, fmt.Errorf("gateway: %w", err)
		}
		sink = bs
	}
	if s.usage, err = usage.NewBatcher(sink, cfg.Usage, log); err != nil {
		s.stopSetup()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return s, nil
}

// stopSetup undoes what New started before it failed.
func (s *Server) stopSetup() {
	if s.follow != nil {
		s.follow.stop()
	}
	if s.billing != nil {
		_ = s.billing.Close()
	}
}

// Start binds the public HTTP listener (HTTPAddr), the gRPC admin listener
// (GRPCAddr) and the admin HTTP listener (AdminAddr) and serves them in the
// background; it returns once all are bound. In cluster mode it then
// starts its member (Config.Cluster: binds the gossip address and joins in
// the background; Start does not wait for peers). With a chain indexer, it
// then starts following it (in the background too; an unreachable indexer
// does not fail Start). ctx bounds only the binding; use Close to stop,
// also after a failed Start. Start may be called once, not after Close.
func (s *Server) Start(ctx context.Context) error {
	if err := s.run.Start(ctx); err != nil {
		return err
	}
	if s.cluster != nil {
		if err := s.cluster.start(); err != nil {
			return err
		}
	}
	if s.follow != nil {
		s.follow.start()
	}
	return nil
}

// Err reports a listener that stopped with an error while serving (not
// because of Close). A caller that embeds the gateway watches it beside its
// signals.
func (s *Server) Err() <-chan error { return s.run.Err() }

// Addr returns the bound address of the public HTTP listener, or "" before
// Start.
func (s *Server) Addr() string { return s.run.Addr("http") }

// GRPCAddr returns the bound address of the gRPC admin listener, or ""
// before Start.
func (s *Server) GRPCAddr() string { return s.run.GRPCAddr() }

// ClusterAddr returns the bound gossip address of the gateway's member
// (Config.Cluster), for other nodes to join through (their cluster_join),
// or "" before Start and when the gateway is not clustered.
func (s *Server) ClusterAddr() string {
	if s.cluster == nil {
		return ""
	}
	return s.cluster.addr()
}

// AdminAddr returns the bound address of the admin HTTP listener
// (/metrics, /healthz, /readyz), or "" before Start or when it is off.
func (s *Server) AdminAddr() string { return s.run.AdminAddr() }

// baseURL is the public URL of the gateway without a trailing slash.
func (s *Server) baseURL() string {
	if s.cfg.PublicURL != "" {
		return strings.TrimSuffix(s.cfg.PublicURL, "/")
	}
	return "http://" + s.Addr()
}

// FlushUsage blocks until the usage of every request answered before the
// call has been accepted by the usage sink, or ctx ends.
func (s *Server) FlushUsage(ctx context.Context) error {
	return s.usage.Flush(ctx)
}

// Close stops the gateway gracefully: in cluster mode its member leaves
// the member list first (a graceful leave, bounded by
// cluster_leave_timeout, then the gossip listeners close); readiness and
// health turn NOT_SERVING, listeners close, in-flight HTTP requests and
// RPCs get up to ShutdownTimeout to finish (then connections are cut,
// and in cluster mode the gateway's runtime connections close), and the
// remaining usage records are handed to the sink (retrying for up to
// usage_close_timeout). It blocks until done. Safe to call twice and before
// Start; later calls return the first call's result.
func (s *Server) Close() error {
	if s.cluster != nil {
		s.cluster.leave()
	}
	return s.run.Close(func() error {
		if s.follow != nil {
			s.follow.stop()
		}
		// Handlers cut by a timed-out shutdown see their context cancelled
		// and return promptly; wait for them so their usage is queued
		// before the final flush.
		wctx, wcancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer wcancel()
		n := s.flight.Count()
		select {
		case <-s.flight.Shut():
		case <-wctx.Done():
			s.log.Warn("requests still running at close", "handlers", n, "err", wctx.Err())
		}
		var errs []error
		if s.cluster != nil {
			errs = append(errs, s.cluster.close())
		}
		errs = append(errs, s.usage.Close(context.Background())) // bounded by usage_close_timeout
		if s.billing != nil {
			errs = append(errs, s.billing.Close())
		}
		return errors.Join(errs...)
	})
}
