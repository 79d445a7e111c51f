package mudb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tikv/client-go/v2/txnkv"
	"google.golang.org/grpc"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/kvstore"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/usage"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
)

// Deps are the muDB node's collaborators.
type Deps struct {
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Registry is where the node registers its metrics and what the admin
	// listener's /metrics serves. Nil makes a private registry with the Go
	// and process collectors.
	Registry *prometheus.Registry
	// Usage receives a DB_READS and a DB_WRITES record per metered call
	// (amounts as in the reply's MeteredOps), in batches, from a
	// background goroutine. Nil discards usage.
	Usage usage.Sink
	// Now is the node's clock for stored byte-seconds; nil means
	// time.Now.
	Now func() time.Time
}

// keyLockStripes is how many queues keyLocks hashes keys onto.
const keyLockStripes = 1024

// Server is a muDB node: MudbService over one TiKV store. Create it with
// New, start it with Start, stop it with Close. Its methods are safe for
// concurrent use.
type Server struct {
	mudbv1.UnimplementedMudbServiceServer

	cfg     Config
	log     *slog.Logger
	kv      *txnkv.Client
	run     *service.Runner
	usage   *usage.Batcher
	billing *grpc.ClientConn // dialled from BillingAddr; nil with Deps.Usage or without BillingAddr
	keys    *usage.Keys
	metrics *metrics
	// keyLocks queues atomic writes of the same keys on this node.
	keyLocks *keyLocks

	sweepCtx    context.Context
	sweepCancel context.CancelFunc
	sweepOnce   sync.Once
	sweepDone   chan struct{}

	now        func() time.Time
	stored     *storedMeter
	storedDone chan struct{} // closed when storedLoop ends; nil when it never ran
}

// New checks cfg, opens the store (the TiKV cluster of PDEndpoints, or the
// embedded store in DataDir or memory) and builds the node; nothing listens
// until Start. A DataDir that another node holds open fails here. Every
// Server from New must be closed.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tlsc, err := service.NewTLS(cfg.Base, deps.Logger)
	if err != nil {
		return nil, fmt.Errorf("mudb: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("service", "mudb", "node", cfg.NodeName)
	kv, err := kvstore.Open(cfg.PDEndpoints, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("mudb: %w", err)
	}
	s := &Server{
		cfg:       cfg,
		log:       log,
		kv:        kv,
		keys:      usage.NewKeys("mudb/" + cfg.NodeName),
		sweepDone: make(chan struct{}),
		keyLocks:  newKeyLocks(keyLockStripes),
		now:       deps.Now,
		stored:    newStoredMeter(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.sweepCtx, s.sweepCancel = context.WithCancel(context.Background())
	s.run = service.NewRunner("mudb", cfg.Base, service.RunnerOptions{
		Logger:      log,
		Registry:    deps.Registry,
		TLS:         tlsc,
		Rules:       rules,
		GRPCOptions: []grpc.ServerOption{grpc.ChainUnaryInterceptor(s.countOps)},
	})
	if s.metrics, err = newMetrics(s.run.Registry()); err != nil {
		kv.Close()
		return nil, err
	}
	mudbv1.RegisterMudbServiceServer(s.run.GRPC(), s)
	sink := deps.Usage
	if sink == nil && cfg.BillingAddr != "" {
		var bs *usage.BillingSink
		if bs, s.billing, err = usage.DialBilling(cfg.BillingAddr, nil, tlsc.DialOption(certs.RoleBilling)); err != nil {
			kv.Close()
			return nil, fmt.Errorf("mudb: %w", err)
		}
		sink = bs
	}
	if sink == nil {
		sink = usage.Discard{}
	}
	if s.usage, err = usage.NewBatcher(sink, cfg.Usage, log); err != nil {
		if s.billing != nil {
			_ = s.billing.Close()
		}
		kv.Close()
		return nil, fmt.Errorf("mudb: %w", err)
	}
	return s, nil
}

// Start binds the gRPC and admin listeners and serves them in the
// background, and starts the TTL sweeper; it returns once both listeners
// are bound. Start may be called once, not after Close.
func (s *Server) Start(ctx context.Context) error {
	if err := s.run.Start(ctx); err != nil {
		return err
	}
	s.sweepOnce.Do(func() {
		go s.sweepLoop()
		if s.cfg.StoredSampleInterval > 0 {
			s.storedDone = make(chan struct{})
			go s.storedLoop()
		}
	})
	return nil
}

// Addr is the bound gRPC address, or "" before Start.
func (s *Server) Addr() string { return s.run.GRPCAddr() }

// AdminAddr is the bound admin HTTP address, or "" before Start or when
// it is off.
func (s *Server) AdminAddr() string { return s.run.AdminAddr() }

// Err reports a listener that stopped with an error while serving.
func (s *Server) Err() <-chan error { return s.run.Err() }

// Registry returns the node's Prometheus registry (what /metrics serves).
func (s *Server) Registry() *prometheus.Registry { return s.run.Registry() }

// FlushUsage blocks until the usage of every call answered before it has
// been accepted by the usage sink, or ctx ends.
func (s *Server) FlushUsage(ctx context.Context) error { return s.usage.Flush(ctx) }

// Close stops serving: health turns NOT_SERVING and in-flight RPCs get
// ShutdownTimeout to finish; then the TTL sweeper stops, the remaining
// usage is handed to the sink (retrying for up to usage_close_timeout) and
// the store is closed (the embedded store releases DataDir). Safe to call
// twice and before Start; later calls return the first call's result.
func (s *Server) Close() error {
	return s.run.Close(func() error {
		s.sweepCancel()
		s.sweepOnce.Do(func() { close(s.sweepDone) }) // never started: nothing to wait for
		<-s.sweepDone
		if s.storedDone != nil {
			<-s.storedDone
			s.reportStored() // the byte-seconds accrued since the last report
		}
		var errs []error
		if err := s.usage.Close(context.Background()); err != nil { // bounded by usage_close_timeout
			errs = append(errs, err)
		}
		if s.billing != nil {
			errs = append(errs, s.billing.Close()) // after the final flush
		}
		if err := s.kv.Close(); err != nil {
			errs = append(errs, fmt.Errorf("mudb: close store: %w", err))
		}
		return errors.Join(errs...)
	})
}
