package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// Runner runs the listeners of one service: its gRPC server, its admin HTTP
// listener and any other HTTP listener the service adds (the gateway's
// public port). A service's Server builds one in New, registers its gRPC
// services and HTTP listeners on it, and forwards Start, Err and Close to
// it. Its methods are safe for concurrent use.
type Runner struct {
	name     string
	base     Base
	log      *slog.Logger
	registry *prometheus.Registry
	grpc     *grpc.Server
	health   *health.Server
	metrics  *grpcprom.ServerMetrics
	admin    *http.ServeMux
	// unary are the unary interceptors, outermost first, of gRPC and
	// in-process calls (NewUnary) alike; calls counts the in-process ones.
	unary []grpc.UnaryServerInterceptor
	calls *inflight
	tls   *TLS
	rules Rules
	// setupErr is what NewRunner could not do (load the TLS files); Start
	// returns it.
	setupErr error

	mu        sync.Mutex
	started   bool
	closed    bool
	listeners []*listener // in Start order; the gRPC one first
	ready     []readyCheck
	closing   chan struct{}
	isClosing atomic.Bool
	errc      chan error
	closeOnce sync.Once
	closeErr  error
}

type listener struct {
	name string
	addr string
	http *http.Server // nil for the gRPC listener
	wrap func(net.Listener) net.Listener
	ln   net.Listener
}

type readyCheck struct {
	name  string
	check func() error
}

// RunnerOptions are what a Runner needs beyond Base.
type RunnerOptions struct {
	// Logger receives the runner's logs; nil discards them.
	Logger *slog.Logger
	// Registry is where the gRPC metrics go and what /metrics serves; nil
	// makes a private registry with the Go and process collectors, so
	// several services can share a process.
	Registry *prometheus.Registry
	// GRPCOptions are added to the server's own (size limits,
	// interceptors). Interceptors given here apply to gRPC calls only; put
	// unary ones in UnaryInterceptors to have in-process calls (NewUnary)
	// pass through them too.
	GRPCOptions []grpc.ServerOption
	// UnaryInterceptors run inside the Runner's own (metrics, recovery)
	// on every unary call, over gRPC and in process alike.
	UnaryInterceptors []grpc.UnaryServerInterceptor
	// TLS is the node's transport security, shared with the connections
	// the service dials (TLS.DialOption); nil makes it from Base (Start
	// fails if the files do not load).
	TLS *TLS
	// Rules say which certificate roles may call each of the service's
	// gRPC methods (see Rules); every method registered must have one.
	Rules Rules
}

// NewRunner builds the gRPC server and the admin handler of service name
// (used in logs and errors). Nothing listens until Start.
func NewRunner(name string, base Base, opts RunnerOptions) *Runner {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registry
	if reg == nil {
		reg = NewRegistry()
	}
	r := &Runner{
		name:     name,
		base:     base,
		log:      log,
		registry: reg,
		health:   health.NewServer(),
		metrics:  grpcprom.NewServerMetrics(),
		admin:    http.NewServeMux(),
		closing:  make(chan struct{}),
		errc:     make(chan error, 4),
		calls:    newInflight(),
	}
	if err := reg.Register(r.metrics); err != nil {
		// Several services may share a caller's registry (mu-executor):
		// the first one's gRPC collector counts for all of them.
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			r.metrics = are.ExistingCollector.(*grpcprom.ServerMetrics)
		} else {
			log.Warn("grpc metrics not registered", "err", err)
		}
	}
	r.tls, r.rules = opts.TLS, opts.Rules
	if r.tls == nil {
		if r.tls, r.setupErr = NewTLS(base, log); r.setupErr != nil {
			r.setupErr = fmt.Errorf("%s: %w", name, r.setupErr)
			r.tls = &TLS{} // never serves: Start fails
		}
	}
	recover := recovery.WithRecoveryHandler(r.recovered)
	r.unary = append([]grpc.UnaryServerInterceptor{r.metrics.UnaryServerInterceptor(), recovery.UnaryServerInterceptor(recover)},
		opts.UnaryInterceptors...)
	// gRPC calls pass the authorizer after recovery; in-process ones
	// (r.unary) never crossed a network and skip it.
	unary := append([]grpc.UnaryServerInterceptor{}, r.unary[:2]...)
	stream := []grpc.StreamServerInterceptor{r.metrics.StreamServerInterceptor(), recovery.StreamServerInterceptor(recover)}
	if !r.tls.Plaintext() {
		a := &authorizer{name: name, rules: opts.Rules}
		unary = append(unary, a.unary)
		stream = append(stream, a.stream)
	}
	unary = append(unary, opts.UnaryInterceptors...)
	sopts := append([]grpc.ServerOption{
		grpc.Creds(r.tls.serverCredentials()),
		// A Close that outlasts ShutdownTimeout cancels the RPCs still
		// running and waits for their handlers, so a service's drain never
		// frees what a handler still uses.
		grpc.WaitForHandlers(true),
		grpc.MaxRecvMsgSize(base.MaxMessageBytes),
		grpc.MaxSendMsgSize(base.MaxMessageBytes),
		// Fixed windows: no BDP ping and ack per call (see Base.GRPCStreamWindow).
		grpc.InitialWindowSize(int32(base.GRPCStreamWindow)),
		grpc.InitialConnWindowSize(int32(base.GRPCConnWindow)),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	}, opts.GRPCOptions...)
	r.grpc = grpc.NewServer(sopts...)
	healthpb.RegisterHealthServer(r.grpc, readyHealth{Server: r.health, r: r})
	reflection.Register(r.grpc)
	r.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)

	r.admin.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	r.admin.HandleFunc("/healthz", r.serveHealthz)
	r.admin.HandleFunc("/readyz", r.serveReadyz)
	if base.Pprof {
		r.admin.HandleFunc("/debug/pprof/", pprof.Index)
		r.admin.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		r.admin.HandleFunc("/debug/pprof/profile", pprof.Profile)
		r.admin.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		r.admin.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return r
}

// NewRegistry returns a Prometheus registry with the Go and process
// collectors, as every service binary exposes.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func (r *Runner) recovered(p any) error {
	r.log.Error("panic in a gRPC handler", "panic", p, "stack", string(debug.Stack()))
	return status.Errorf(codes.Internal, "%s: internal error", r.name)
}

// TLS is the node's transport security: dial other services with
// TLS().DialOption(role).
func (r *Runner) TLS() *TLS { return r.tls }

// GRPC is the gRPC server; register the service's APIs on it before Start.
func (r *Runner) GRPC() *grpc.Server { return r.grpc }

// Registry is where the service registers its metrics.
func (r *Runner) Registry() *prometheus.Registry { return r.registry }

// Admin is the admin HTTP mux (/metrics, /healthz, /readyz, pprof); a
// service may add its own admin pages before Start.
func (r *Runner) Admin() *http.ServeMux { return r.admin }

// AddHTTP adds an HTTP listener that Start binds on addr and Close shuts
// down gracefully with the gRPC server. Call it before Start.
func (r *Runner) AddHTTP(name, addr string, srv *http.Server) {
	r.AddHTTPListener(name, addr, srv, nil)
}

// AddHTTPListener is AddHTTP with wrap applied to the listener once it is
// bound (a connection cap, for instance); nil wraps nothing. Closing the
// wrapped listener must close the bound one.
func (r *Runner) AddHTTPListener(name, addr string, srv *http.Server, wrap func(net.Listener) net.Listener) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.listeners = append(r.listeners, &listener{name: name, addr: addr, http: srv, wrap: wrap})
}

// AddReadiness adds a check that /readyz and the gRPC health check of ""
// run: the service is ready when it is started, not closing, and every
// check returns nil. Checks must be
// quick and safe for concurrent use.
func (r *Runner) AddReadiness(name string, check func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready = append(r.ready, readyCheck{name, check})
}

// Start binds the gRPC listener, the HTTP listeners added with AddHTTP and
// the admin listener, serves them all in the background and marks the
// service SERVING in grpc.health.v1. It returns once every listener is
// bound; if one fails to bind, the others are closed. ctx bounds only the
// binding. Start may be called once, and not after Close.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return fmt.Errorf("%s: Start after Close", r.name)
	case r.started:
		return fmt.Errorf("%s: already started", r.name)
	case r.setupErr != nil:
		return r.setupErr
	}
	if missing := r.rules.missing(r.grpc); len(missing) > 0 {
		return fmt.Errorf("%s: no authorization rule (RunnerOptions.Rules) for %s", r.name, strings.Join(missing, ", "))
	}
	all := append([]*listener{{name: "grpc", addr: r.base.GRPCAddr}}, r.listeners...)
	if r.base.AdminAddr != "" {
		all = append(all, &listener{name: "admin", addr: r.base.AdminAddr, http: &http.Server{
			Handler:           r.admin,
			ReadHeaderTimeout: r.base.ShutdownTimeout,
			ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
		}})
	}
	var lc net.ListenConfig
	for i, l := range all {
		ln, err := lc.Listen(ctx, "tcp", l.addr)
		if err != nil {
			for _, done := range all[:i] {
				done.ln.Close()
			}
			return fmt.Errorf("%s: listen %s %s: %w", r.name, l.name, l.addr, err)
		}
		if l.wrap != nil {
			ln = l.wrap(ln)
		}
		l.ln = ln
	}
	r.listeners = all
	r.started = true
	r.metrics.InitializeMetrics(r.grpc)
	r.calls.start()
	for _, l := range all {
		go r.serve(l)
	}
	if rl := r.tls.Reloader(); rl != nil {
		go rl.Watch(r.closing)
	}
	r.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	r.health.SetServingStatus(LivenessService, healthpb.HealthCheckResponse_SERVING)
	for name := range r.grpc.GetServiceInfo() {
		r.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	attrs := []any{"node", r.base.NodeName}
	for _, l := range all {
		attrs = append(attrs, l.name, l.ln.Addr().String())
	}
	r.log.Info(r.name+" listening", attrs...)
	return nil
}

func (r *Runner) serve(l *listener) {
	var err error
	if l.http == nil {
		err = r.grpc.Serve(l.ln)
		if errors.Is(err, grpc.ErrServerStopped) {
			err = nil
		}
	} else {
		err = l.http.Serve(l.ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	if err != nil && !r.isClosing.Load() {
		err = fmt.Errorf("%s: serve %s: %w", r.name, l.name, err)
		r.log.Error(r.name+" stopped serving", "listener", l.name, "err", err)
		select {
		case r.errc <- err:
		default:
		}
	}
}

// Err reports a listener that stopped with an error while serving (not
// because of Close).
func (r *Runner) Err() <-chan error { return r.errc }

// Addr returns the bound address of the named listener ("grpc", "admin" or
// a name given to AddHTTP), or "" before Start or for an unknown name.
func (r *Runner) Addr(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.listeners {
		if l.name == name && l.ln != nil {
			return l.ln.Addr().String()
		}
	}
	return ""
}

// GRPCAddr is Addr("grpc").
func (r *Runner) GRPCAddr() string { return r.Addr("grpc") }

// AdminAddr is Addr("admin").
func (r *Runner) AdminAddr() string { return r.Addr("admin") }

// Closing is closed when Close begins, so long-lived handlers (log
// streams, watches) can end and let the graceful stop finish.
func (r *Runner) Closing() <-chan struct{} { return r.closing }

// IsClosing reports whether Close has begun.
func (r *Runner) IsClosing() bool { return r.isClosing.Load() }

// Close stops the service in order: /readyz turns 503 and grpc.health.v1
// NOT_SERVING, Closing is closed; the gRPC and HTTP listeners stop
// accepting and in-process calls (NewUnary) are refused, and in-flight
// RPCs, in-process calls and requests get ShutdownTimeout to finish, then
// their connections are cut and the calls cancelled (Close waits for their
// handlers); drain (the service's own: flush usage,
// close pools; may be nil) runs; last the admin listener closes, so
// /metrics stays readable while the service drains. It blocks until done.
// Safe to call twice and before Start; later calls return the first call's
// result.
func (r *Runner) Close(drain func() error) error {
	r.closeOnce.Do(func() { r.closeErr = r.close(drain) })
	return r.closeErr
}

func (r *Runner) close(drain func() error) error {
	r.isClosing.Store(true)
	calls := r.calls.shut() // in-process calls from now on are refused
	close(r.closing)
	r.mu.Lock()
	r.closed = true
	started := r.started
	listeners := r.listeners
	r.mu.Unlock()
	r.health.Shutdown()

	var errs []error
	var admin *listener
	if started {
		ctx, cancel := context.WithTimeout(context.Background(), r.base.ShutdownTimeout)
		var wg sync.WaitGroup
		var emu sync.Mutex
		for _, l := range listeners {
			if l.name == "admin" {
				admin = l
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.stop(ctx, l); err != nil {
					emu.Lock()
					errs = append(errs, err)
					emu.Unlock()
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r.calls.drain(ctx, calls) {
				r.log.Warn("in-process calls outlasted the shutdown timeout; cancelled them")
			}
		}()
		wg.Wait()
		cancel()
	} else {
		r.grpc.Stop()
		r.calls.drain(context.Background(), calls) // none ever entered
	}
	if drain != nil {
		if err := drain(); err != nil {
			errs = append(errs, err)
		}
	}
	if admin != nil {
		if err := admin.http.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: close admin: %w", r.name, err))
		}
	}
	r.log.Info(r.name + " closed")
	return errors.Join(errs...)
}

// stop shuts one listener down gracefully within ctx, then forcibly.
func (r *Runner) stop(ctx context.Context, l *listener) error {
	if l.http != nil {
		if err := l.http.Shutdown(ctx); err != nil {
			r.log.Warn(l.name+" shutdown timed out; cutting connections", "err", err)
			if err := l.http.Close(); err != nil {
				return fmt.Errorf("%s: close %s: %w", r.name, l.name, err)
			}
		}
		return nil
	}
	stopped := make(chan struct{})
	go func() {
		r.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		r.log.Warn("gRPC graceful stop timed out; stopping")
		r.grpc.Stop()
		<-stopped
	}
	return nil
}

func (r *Runner) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// LivenessService is the grpc.health.v1 service name that is SERVING from
// Start until Close whatever the readiness checks say: the liveness probe
// (a Kubernetes grpc probe with service mu.liveness), where "" is the
// readiness probe.
const LivenessService = "mu.liveness"

// readyHealth is grpc.health.v1 whose overall status ("") also runs the
// readiness checks of AddReadiness, so a gRPC health probe (Kubernetes'
// native grpc probe) agrees with /readyz. Named services keep their
// static status, as does Watch.
type readyHealth struct {
	*health.Server
	r *Runner
}

// Check answers NOT_SERVING for "" while a readiness check fails.
func (h readyHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	resp, err := h.Server.Check(ctx, req)
	if err != nil || req.GetService() != "" || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return resp, err
	}
	for _, c := range h.r.readyChecks() {
		if c.check() != nil {
			return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
		}
	}
	return resp, nil
}

// readyChecks is a copy of the AddReadiness checks, to run without the lock.
func (r *Runner) readyChecks() []readyCheck {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]readyCheck(nil), r.ready...)
}

func (r *Runner) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	checks := r.readyChecks()
	var problems []string
	switch {
	case r.isClosing.Load():
		problems = append(problems, "closing")
	case !started:
		problems = append(problems, "not started")
	}
	for _, c := range checks {
		if err := c.check(); err != nil {
			problems = append(problems, c.name+": "+err.Error())
		}
	}
	sort.Strings(problems)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(strings.Join(problems, "\n") + "\n"))
		return
	}
	w.Write([]byte("ready\n"))
}
