package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/usage"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	storagev1 "github.com/muprotocol/mu/proto/mu/storage/v1"
	"github.com/muprotocol/mu/services/runtime/internal/pool"
	"github.com/muprotocol/mu/services/runtime/internal/wasm"
	"github.com/muprotocol/mu/services/runtime/logs"
)

// Deps are the runtime node's collaborators.
type Deps struct {
	// Usage receives a FUNCTION_MB_INSTRUCTIONS record per call, in
	// batches, from a background goroutine. Nil discards usage.
	Usage usage.Sink
	// Receipts receives the signed-receipt material of sampled calls
	// (Config.ReceiptSampleRate), best effort. Nil without
	// Config.BillingAddr keeps no receipts.
	Receipts usage.ReceiptSink
	// Logger receives the node's own logs; nil discards them.
	Logger *slog.Logger
	// Registry is where the node registers its metrics and what the admin
	// listener's /metrics serves. Nil makes a private registry with the Go
	// and process collectors, so several nodes can share a process.
	Registry *prometheus.Registry
	// Mudb answers functions' db requests and the CreateTable of every
	// declared table at deploy. It takes precedence over Config.MudbAddr
	// (a region passes its in-process muDB here); the caller keeps
	// ownership and closes it after the Server. Nil with MudbAddr set
	// dials MudbAddr; nil without it leaves the node without muDB.
	Mudb mudbv1.MudbServiceClient
	// Storage answers functions' storage requests, the CreateBox of every
	// declared box at deploy, and the GetBinary of binaries a deploy does
	// not carry inline. It takes precedence over Config.StorageAddr (a
	// region passes its in-process storage service here); the caller keeps
	// ownership and closes it after the Server. Nil with StorageAddr set
	// dials StorageAddr; nil without it leaves the node without storage.
	Storage storagev1.StorageServiceClient
	// ChainIndexer is a connection to the chain indexer to follow the
	// stacks of Config.RegionID through (see Config.ChainIndexerAddr). It
	// takes precedence over ChainIndexerAddr (a region passes an
	// in-process connection here); the caller keeps ownership and closes
	// it after the Server. Nil with ChainIndexerAddr set dials it; nil
	// without it leaves the node to Deploy and Undeploy calls.
	ChainIndexer grpc.ClientConnInterface
	// TracerProvider records the node's spans (its gRPC server's, an
	// instance wait and a wasm call per call, its muDB and storage
	// calls'), and its context goes to muDB and storage. The caller owns
	// it. Nil builds one from the otlp_* settings, which are off by
	// default (see service.RunnerOptions). Clients in Deps.Mudb and
	// Deps.Storage are the caller's: dial them with
	// service.TraceDialOptions of the same provider.
	TracerProvider trace.TracerProvider
}

// Server is a runtime node. Create it with New, start it with Start, stop it
// with Close. Its methods are safe for concurrent use.
type Server struct {
	runtimev1.UnimplementedRuntimeServiceServer

	cfg     Config
	log     *slog.Logger
	usage   *usage.Batcher
	keys    *usage.Keys
	engine  *wasm.Engine
	pool    *pool.Pool
	workers *callWorkers // run the wasm part of calls (workers.go)
	logs    *logs.Hub
	metrics *metrics
	db      *dbBridge        // functions' db requests, per deployment (deployment.host)
	mudb    *grpc.ClientConn // dialled from MudbAddr; nil when Deps.Mudb is used or none is configured
	storage *storageBridge   // functions' storage requests, per call (callHost); boxes and binaries at deploy
	stconn  *grpc.ClientConn // dialled from StorageAddr; nil when Deps.Storage is used or none is configured
	run     *service.Runner
	inproc  *inProcessClient // InProcessClient
	// tracing says whether calls get spans, from tracer.
	tracing bool
	tracer  trace.Tracer

	// billing is dialled from BillingAddr; nil when Deps.Usage and
	// Deps.Receipts are used or none is configured.
	billing *grpc.ClientConn
	// receiptSink is Deps.Receipts, or the billing sink of BillingAddr;
	// nil keeps no receipts.
	receiptSink usage.ReceiptSink

	// active reserves each running call's memory_limit in
	// ActiveMemoryBudget bytes.
	active *semaphore.Weighted

	// receipts samples calls and sends their receipts (receipts.go).
	receipts *receipts

	// cluster places the region's stacks on its runtime nodes.
	cluster *cluster
	// bg ends when the node closes; it bounds background work (warmLater),
	// which warming counts.
	bg       context.Context
	bgCancel context.CancelFunc
	warming  sync.WaitGroup
	// follow follows the chain indexer; nil when the node does not.
	follow *chainFollow
	// region holds the limits of the node's region from the chain; nil
	// until they are known, and when the node does not follow the chain.
	region atomic.Pointer[regionLimits]

	mu        sync.RWMutex
	stacks    map[[32]byte]*deployment
	disabled  map[ids.StackID]string // reason; see SetStackEnabled
	modules   map[string]*moduleRef  // binary id → compiled module shared by deployments
	snapshots map[string]*moduleRef  // snapshot key → pre-initialized module shared by functions (snapshot.go)
	loading   singleflight.Group     // one load per binary id at a time (acquireModule)
	deploySeq atomic.Uint64

	// snapBuilds bounds the background snapshot builds
	// (snapshot_build_concurrency); building counts their goroutines, so
	// Close waits for them (queueSnapshots).
	snapBuilds *semaphore.Weighted
	building   sync.WaitGroup
	// snapPending counts the functions whose snapshot is queued or being
	// built; snapIdle is closed while it is 0 (WaitSnapshots).
	snapMu      sync.Mutex
	snapPending int
	snapIdle    chan struct{}
}

// New builds a runtime node: the wasm engine (with its artifact cache under
// DataDir), the instance pool, the usage batcher and the gRPC server.
// Nothing listens until Start; every Server from New must be closed.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.ChainIndexer != nil && cfg.RegionID == "" {
		return nil, service.Invalid("runtime", []error{fmt.Errorf("region_id: is required with Deps.ChainIndexer (the base58 address of the region whose stacks this node runs)")})
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hub := logs.NewHub(cfg.LogBuffer, logs.History{
		Lines:      cfg.LogHistoryLines,
		LineBytes:  wasmDefaults.MaxStderrLine, // the limit of a stderr line, for Log messages too
		TotalBytes: cfg.LogHistoryBytes,
	})
	s := &Server{
		cfg:        cfg,
		log:        log.With("service", "runtime", "node", cfg.NodeName),
		keys:       usage.NewKeys("runtime/" + cfg.NodeName),
		logs:       hub,
		stacks:     make(map[[32]byte]*deployment),
		disabled:   make(map[ids.StackID]string),
		modules:    make(map[string]*moduleRef),
		snapshots:  make(map[string]*moduleRef),
		active:     semaphore.NewWeighted(cfg.ActiveMemoryBudget),
		snapBuilds: semaphore.NewWeighted(int64(cfg.SnapshotBuildConcurrency)),
		snapIdle:   make(chan struct{}),
	}
	close(s.snapIdle) // no build pending
	s.cluster = newCluster(s)
	s.bg, s.bgCancel = context.WithCancel(context.Background())
	var err error
	s.engine, err = wasm.NewEngine(cfg.engineConfig())
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
	tlsc, err := service.NewTLS(cfg.Base, s.log)
	if err != nil {
		s.pool.Close()
		s.engine.Close()
		return nil, fmt.Errorf("runtime: %w", err)
	}
	s.run = service.NewRunner("runtime", cfg.Base, service.RunnerOptions{Logger: s.log, Registry: deps.Registry, TracerProvider: deps.TracerProvider, TLS: tlsc, Rules: rules})
	s.tracing = service.Tracing(s.run.TracerProvider())
	s.tracer = s.run.TracerProvider().Tracer(service.TracerName + "/runtime")
	if s.metrics, err = newMetrics(s.run.Registry()); err != nil {
		s.pool.Close()
		s.engine.Close()
		return nil, err
	}
	if err := s.run.Registry().Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mu_runtime_idle_instance_bytes",
		Help: "Memory counted for idle instances against idle_memory_budget: what each holds (linear memory pages written, tables) once measured, else its memory size.",
	}, func() float64 { return float64(s.pool.IdleBytes()) })); err != nil {
		s.pool.Close()
		s.engine.Close()
		return nil, fmt.Errorf("runtime: metrics: %w", err)
	}
	s.db = &dbBridge{client: deps.Mudb, maxFrame: cfg.MaxFrameSize, requests: s.metrics.dbRequests}
	if s.db.client == nil && cfg.MudbAddr != "" {
		// grpc.NewClient connects lazily: an unreachable muDB fails the
		// requests (Unavailable), not New.
		s.mudb, err = grpc.NewClient(cfg.MudbAddr, append([]grpc.DialOption{
			tlsc.DialOption(certs.RoleMudb),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxMessageBytes), grpc.MaxCallSendMsgSize(cfg.MaxMessageBytes))},
			service.TraceDialOptions(s.run.TracerProvider())...)...)
		if err != nil {
			s.pool.Close()
			s.engine.Close()
			return nil, fmt.Errorf("runtime: mudb_addr %q: %w", cfg.MudbAddr, err)
		}
		s.db.client = mudbv1.NewMudbServiceClient(s.mudb)
	}
	s.storage = &storageBridge{client: deps.Storage, maxFrame: cfg.MaxFrameSize, maxUploads: cfg.MaxUploadsPerCall,
		maxListed: uint32(cfg.MaxListPage), requests: s.metrics.storageRequests, abandoned: s.metrics.uploadsAbandoned}
	if s.storage.client == nil && cfg.StorageAddr != "" {
		// Lazy too: an unreachable storage service fails deploys that
		// declare boxes (Unavailable) and the requests, not New.
		s.stconn, err = grpc.NewClient(cfg.StorageAddr, append([]grpc.DialOption{
			tlsc.DialOption(certs.RoleStorage),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxMessageBytes), grpc.MaxCallSendMsgSize(cfg.MaxMessageBytes))},
			service.TraceDialOptions(s.run.TracerProvider())...)...)
		if err != nil {
			if s.mudb != nil {
				_ = s.mudb.Close()
			}
			s.pool.Close()
			s.engine.Close()
			return nil, fmt.Errorf("runtime: storage_addr %q: %w", cfg.StorageAddr, err)
		}
		s.storage.client = storagev1.NewStorageServiceClient(s.stconn)
	}
	if deps.ChainIndexer != nil || cfg.ChainIndexerAddr != "" {
		if s.follow, err = newChainFollow(s, deps.ChainIndexer); err != nil {
			s.closeClients()
			s.pool.Close()
			s.engine.Close()
			return nil, err
		}
	}
	if err := registerChainMetrics(s.run.Registry(), s); err != nil {
		if s.follow != nil {
			s.follow.stop()
		}
		s.closeClients()
		s.pool.Close()
		s.engine.Close()
		return nil, err
	}
	runtimev1.RegisterRuntimeServiceServer(s.run.GRPC(), s)
	s.inproc = newInProcessClient(s)
	if err := s.openUsage(cfg, deps); err != nil {
		if s.follow != nil {
			s.follow.stop()
		}
		s.inproc.close()
		s.closeClients()
		s.pool.Close()
		s.engine.Close()
		return nil, err
	}
	// Receipts of sampled calls (receipts.go), sent where usage goes.
	if s.receipts, err = newReceipts(cfg, s.receiptSink, s.engine, s.run.Registry(), s.log); err != nil {
		if s.follow != nil {
			s.follow.stop()
		}
		s.inproc.close()
		_ = s.usage.Close(context.Background())
		if s.billing != nil {
			_ = s.billing.Close()
		}
		s.closeClients()
		s.pool.Close()
		s.engine.Close()
		return nil, err
	}
	s.workers = newCallWorkers(cfg.CallWorkers, cfg.CallWorkerWait, s.metrics.workers)
	return s, nil
}

// openUsage starts the usage batcher on Deps.Usage, else on the billing
// service at BillingAddr (which then takes the receipts too unless
// Deps.Receipts is set), else discarding usage.
func (s *Server) openUsage(cfg Config, deps Deps) error {
	sink := deps.Usage
	s.receiptSink = deps.Receipts
	if (sink == nil || s.receiptSink == nil) && cfg.BillingAddr != "" {
		var region []byte
		if cfg.RegionID != "" {
			pk, _ := ledger.ParsePubkey(cfg.RegionID) // checked by Validate
			region = pk[:]
		}
		bs, conn, err := usage.DialBilling(cfg.BillingAddr, region, append([]grpc.DialOption{
			s.run.TLS().DialOption(certs.RoleBilling),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxMessageBytes), grpc.MaxCallSendMsgSize(cfg.MaxMessageBytes))},
			service.TraceDialOptions(s.run.TracerProvider())...)...)
		if err != nil {
			return fmt.Errorf("runtime: %w", err)
		}
		s.billing = conn
		if sink == nil {
			sink = bs
		}
		if s.receiptSink == nil {
			s.receiptSink = bs
		}
	}
	if sink == nil {
		sink = usage.Discard{}
	}
	var err error
	if s.usage, err = usage.NewBatcher(sink, cfg.Usage, s.log); err != nil {
		if s.billing != nil {
			_ = s.billing.Close()
		}
		return fmt.Errorf("runtime: %w", err)
	}
	return nil
}

// closeClients closes the connections New dialled to muDB and storage.
func (s *Server) closeClients() {
	if s.mudb != nil {
		_ = s.mudb.Close()
	}
	if s.stconn != nil {
		_ = s.stconn.Close()
	}
}

// Start binds the gRPC listener (GRPCAddr) and the admin HTTP listener
// (AdminAddr) and serves them in the background; it returns once both are
// bound. With a chain indexer, it then starts following it (in the
// background too; an unreachable indexer does not fail Start). ctx bounds
// only the binding. Start may be called once, not after Close.
func (s *Server) Start(ctx context.Context) error {
	if err := s.run.Start(ctx); err != nil {
		return err
	}
	if err := s.cluster.start(); err != nil {
		s.Close()
		return err
	}
	if s.follow != nil {
		s.follow.start()
	}
	return nil
}

// ClusterAddr is the bound gossip address, or "" without
// cluster_bind_addr (and before Start).
func (s *Server) ClusterAddr() string { return s.cluster.gossipAddr() }

// Generation is the node's generation: the time New ran, in nanoseconds
// since the Unix epoch (part of its placement id).
func (s *Server) Generation() int64 { return s.cluster.gen }

// Err reports a listener that stopped with an error while serving (not
// because of Close).
func (s *Server) Err() <-chan error { return s.run.Err() }

// Addr is the bound gRPC address, or "" before Start.
func (s *Server) Addr() string { return s.run.GRPCAddr() }

// AdminAddr is the bound address of the admin HTTP listener (/metrics,
// /healthz, /readyz), or "" before Start or when it is off.
func (s *Server) AdminAddr() string { return s.run.AdminAddr() }

// Registry returns the node's Prometheus registry (what /metrics serves).
func (s *Server) Registry() *prometheus.Registry { return s.run.Registry() }

// Logs returns the hub of function logs, for in-process consumers such as `mu run`.
func (s *Server) Logs() *logs.Hub { return s.logs }

// FlushUsage blocks until the usage of every call answered before it has
// been accepted by the usage sink, or ctx ends.
func (s *Server) FlushUsage(ctx context.Context) error { return s.usage.Flush(ctx) }

// Close stops serving. A member of a gossip list first leaves it and keeps
// serving for LeaveDrain; then readiness and health turn NOT_SERVING, log
// streams end, in-flight calls get ShutdownTimeout to finish; then every instance
// and the engine are closed and the remaining usage is handed to the sink
// (retrying for up to usage_close_timeout). Safe to call twice and before
// Start; later calls return the first call's result.
func (s *Server) Close() error {
	// A member leaves the ring first and keeps serving for LeaveDrain, so
	// that gateways stop routing to it before its listeners close.
	s.cluster.leave()
	return s.run.Close(func() error {
		s.cluster.close()
		if s.follow != nil {
			s.follow.stop() // no deploy starts or runs past here
		}
		s.bgCancel()
		s.warming.Wait()
		s.building.Wait()  // the queued snapshot builds gave up; the running one ended
		s.workers.stop()   // the calls have drained; a straggler runs on its own goroutine
		s.receipts.close() // sends what sampled calls left queued
		s.pool.Close()
		s.mu.Lock()
		for _, m := range s.modules {
			m.mod.Close()
		}
		s.modules = map[string]*moduleRef{}
		for _, m := range s.snapshots {
			m.mod.Close()
		}
		s.snapshots = map[string]*moduleRef{}
		s.stacks = map[[32]byte]*deployment{}
		s.mu.Unlock()
		s.engine.Close()
		s.closeClients() // the calls that used them have ended
		s.inproc.close()
		err := s.usage.Close(context.Background()) // bounded by usage_close_timeout
		if s.billing != nil {
			err = errors.Join(err, s.billing.Close()) // after the final flush
		}
		return err
	})
}
