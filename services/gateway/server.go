package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/muprotocol/mu/libs/usage"
	gatewayv1 "github.com/muprotocol/mu/proto/mu/gateway/v1"
	"github.com/muprotocol/mu/services/gateway/internal/usagebatch"
)

// Deps are the gateway's collaborators.
type Deps struct {
	// Runtimes picks the runtime node for each request. Required.
	Runtimes RuntimeResolver
	// Usage receives the gateway's usage records (requests and traffic
	// bytes), in batches, from a background goroutine. Required; use
	// usage.Discard{} to drop usage on purpose.
	Usage usage.Sink
	// Logger receives the gateway's logs; nil discards them.
	Logger *slog.Logger
	// Registry is where the gateway registers its metrics and what
	// /_mu/metrics serves. Nil makes a private registry with the Go and
	// process collectors, so several gateways can live in one process.
	Registry *prometheus.Registry
}

// Server is a gateway node: the public HTTP edge of the stacks it is told
// about (PutStack) and a gRPC admin API. It is also an http.Handler for
// embedding. Its methods are safe for concurrent use.
type Server struct {
	cfg      Config
	runtimes RuntimeResolver
	log      *slog.Logger
	stacks   *registry
	keys     *usage.Keys
	usage    *usagebatch.Batcher
	registry *prometheus.Registry
	metrics  *metrics
	// metricsHandler serves registry on MetricsPath.
	metricsHandler http.Handler
	health         *health.Server
	flight         inflight
	// recvLimit bounds an InvokeResponse on the wire: the response body
	// and header limits plus grpcEnvelopeSlack.
	recvLimit int
	closing   atomic.Bool

	mu        sync.Mutex
	started   bool
	closed    bool
	httpLn    net.Listener
	adminLn   net.Listener
	httpSrv   *http.Server
	grpcSrv   *grpc.Server
	errc      chan error
	closeOnce sync.Once
	closeErr  error
}

// grpcEnvelopeSlack is what an InvokeResponse may add on the wire to the
// response body and header bytes the config allows: protobuf tags and
// lengths, fuel counters. Responses within the limits never come near it.
const grpcEnvelopeSlack = 64 << 10

// New checks cfg and deps and returns a Server that is not yet listening.
// It starts the usage batcher, so every Server from New must be closed.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Runtimes == nil {
		return nil, errors.New("gateway: Deps.Runtimes is required")
	}
	if deps.Usage == nil {
		return nil, errors.New("gateway: Deps.Usage is required (usage.Discard{} drops usage on purpose)")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("service", "gateway", "node", cfg.NodeName)
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s := &Server{
		cfg:       cfg,
		runtimes:  deps.Runtimes,
		log:       log,
		stacks:    newRegistry(),
		keys:      usage.NewKeys("gateway/" + cfg.NodeName),
		registry:  reg,
		health:    health.NewServer(),
		recvLimit: int(min(cfg.MaxResponseBytes+int64(cfg.MaxResponseHeaderBytes)+grpcEnvelopeSlack, 1<<31-1)),
		errc:      make(chan error, 2),
	}
	m, err := newMetrics(reg, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.metricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	s.usage = usagebatch.New(deps.Usage, usagebatch.Config{
		BatchSize:     cfg.UsageBatchSize,
		QueueSize:     cfg.UsageQueueSize,
		FlushInterval: cfg.UsageFlushInterval,
		ReportTimeout: cfg.UsageReportTimeout,
		RetryMin:      cfg.UsageRetryMin,
		RetryMax:      cfg.UsageRetryMax,
	}, log)
	return s, nil
}

// Start listens on HTTPAddr and AdminAddr and serves both in the
// background; it returns once both listeners are bound. ctx bounds only the
// binding; use Close to stop. Start may be called once, not after Close.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return errors.New("gateway: Start after Close")
	case s.started:
		return errors.New("gateway: already started")
	}
	var lc net.ListenConfig
	hl, err := lc.Listen(ctx, "tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("gateway: listen http %s: %w", s.cfg.HTTPAddr, err)
	}
	al, err := lc.Listen(ctx, "tcp", s.cfg.AdminAddr)
	if err != nil {
		hl.Close()
		return fmt.Errorf("gateway: listen admin %s: %w", s.cfg.AdminAddr, err)
	}
	s.httpLn, s.adminLn = hl, al
	s.started = true

	s.httpSrv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		// net/http reads up to MaxHeaderBytes+4096 before answering 431
		// itself; ServeHTTP enforces MaxHeaderBytes exactly.
		MaxHeaderBytes: s.cfg.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.grpcSrv = grpc.NewServer()
	gatewayv1.RegisterGatewayServiceServer(s.grpcSrv, &adminService{s: s})
	healthpb.RegisterHealthServer(s.grpcSrv, s.health)
	reflection.Register(s.grpcSrv)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(gatewayv1.GatewayService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	go func() {
		if err := s.httpSrv.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.fail(fmt.Errorf("gateway: serve http: %w", err))
		}
	}()
	go func() {
		if err := s.grpcSrv.Serve(al); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.fail(fmt.Errorf("gateway: serve admin: %w", err))
		}
	}()
	s.log.Info("gateway listening", "http", hl.Addr().String(), "admin", al.Addr().String())
	return nil
}

func (s *Server) fail(err error) {
	s.log.Error("gateway stopped serving", "err", err)
	select {
	case s.errc <- err:
	default:
	}
}

// Err reports a listener that stopped with an error while serving (not
// because of Close). A caller that embeds the gateway watches it beside its
// signals.
func (s *Server) Err() <-chan error { return s.errc }

// Addr returns the bound address of the public HTTP listener, or "" before
// Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// AdminAddr returns the bound address of the gRPC admin listener, or ""
// before Start.
func (s *Server) AdminAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.adminLn == nil {
		return ""
	}
	return s.adminLn.Addr().String()
}

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

// Close stops the gateway gracefully: health turns NOT_SERVING, listeners
// close, in-flight HTTP requests and RPCs get up to ShutdownTimeout to
// finish (then connections are cut), and the remaining usage records are
// handed to the sink (retrying for up to UsageCloseTimeout). It blocks until
// done. Safe to call twice and before Start; later calls return the first
// call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Server) close() error {
	s.closing.Store(true)
	s.mu.Lock()
	s.closed = true
	started := s.started
	s.mu.Unlock()
	s.health.Shutdown()

	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if started {
		if err := s.httpSrv.Shutdown(ctx); err != nil {
			s.log.Warn("http shutdown timed out; cutting connections", "err", err)
			if err := s.httpSrv.Close(); err != nil {
				errs = append(errs, fmt.Errorf("gateway: close http: %w", err))
			}
		}
		stopped := make(chan struct{})
		go func() {
			s.grpcSrv.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-ctx.Done():
			s.log.Warn("admin gRPC graceful stop timed out; stopping")
			s.grpcSrv.Stop()
			<-stopped
		}
	}
	// Handlers cut by a timed-out shutdown see their context cancelled and
	// return promptly; wait for them so their usage is queued before the
	// final flush.
	wctx, wcancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer wcancel()
	if err := s.flight.closeAndWait(wctx); err != nil {
		s.log.Warn("requests still running at close", "err", err)
	}
	uctx, ucancel := context.WithTimeout(context.Background(), s.cfg.UsageCloseTimeout)
	defer ucancel()
	if err := s.usage.Close(uctx); err != nil {
		errs = append(errs, err)
	}
	s.log.Info("gateway closed")
	return errors.Join(errs...)
}

// inflight counts running handlers so Close can wait for them.
type inflight struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{}
}

// count is the number of handlers running now.
func (f *inflight) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *inflight) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.n++
	return true
}

func (f *inflight) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 && f.idle != nil {
		close(f.idle)
		f.idle = nil
	}
}

func (f *inflight) closeAndWait(ctx context.Context) error {
	f.mu.Lock()
	f.closed = true
	if f.n == 0 {
		f.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	f.idle = ch
	n := f.n
	f.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d handlers: %w", n, ctx.Err())
	}
}
