package billing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tikv/client-go/v2/txnkv"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/chainwatch"
	"github.com/muprotocol/mu/libs/kvstore"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/backend"
	"github.com/muprotocol/mu/libs/service"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
)

// Deps are the billing node's collaborators. Each one given takes
// precedence over the setting that would make it.
type Deps struct {
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Registry is where the node registers its metrics and what the admin
	// listener's /metrics serves. Nil makes a private registry with the Go
	// and process collectors.
	Registry *prometheus.Registry
	// Ledger receives the settlements (update_usage); it takes precedence
	// over ledger_backend and ledger_addr.
	Ledger ledger.UsageUpdater
	// Signer is the region's usage signer; it takes precedence over
	// signer_key_file.
	Signer ledger.Signer
	// Indexer is the chain indexer billing asks about stacks, regions and
	// escrows; it takes precedence over chain_indexer_addr.
	Indexer chainindexerv1.ChainIndexerServiceClient
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
	// TracerProvider records the node's spans (a server span per gRPC
	// call: each ReportUsage batch is its own trace). The caller owns it.
	// Nil builds one from the otlp_* settings, which are off by default
	// (see service.RunnerOptions).
	TracerProvider trace.TracerProvider
}

// Server is a billing node: BillingService over one TiKV store, settling
// on one ledger. Create it with New, start it with Start, stop it with
// Close. Its methods are safe for concurrent use.
type Server struct {
	billingv1.UnimplementedBillingServiceServer

	cfg       Config
	log       *slog.Logger
	kv        *txnkv.Client
	run       *service.Runner
	metrics   *metrics
	now       func() time.Time
	region    ledger.Pubkey
	hasRegion bool
	signer    ledger.Signer
	ledger    ledger.UsageUpdater
	indexer   chainindexerv1.ChainIndexerServiceClient
	closers   []io.Closer

	commitCh      chan *commitReq
	quit          chan struct{} // closed by Close: the committer stops
	committerDone chan struct{}

	loopCtx    context.Context
	loopCancel context.CancelFunc
	startOnce  sync.Once
	started    bool
	settleDone chan struct{}
	sweepDone  chan struct{}

	settleMu sync.Mutex // one settlement round at a time
	underMu  sync.Mutex
	under    map[ledger.Pubkey]bool
}

// New checks cfg, loads the signer, connects the ledger and the chain
// indexer (lazily: nothing is dialled until used), opens the store (the
// TiKV cluster of PDEndpoints, or the embedded store in DataDir or memory)
// and builds the node; nothing listens until Start. A DataDir that another
// node holds open fails here. Every Server from New must be closed.
func New(cfg Config, deps Deps) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tlsc, err := service.NewTLS(cfg.Base, deps.Logger)
	if err != nil {
		return nil, fmt.Errorf("billing: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("service", "billing", "node", cfg.NodeName)
	s := &Server{
		cfg: cfg, log: log, now: deps.Now,
		signer: deps.Signer, ledger: deps.Ledger, indexer: deps.Indexer,
		commitCh:      make(chan *commitReq, 1024),
		quit:          make(chan struct{}),
		committerDone: make(chan struct{}),
		settleDone:    make(chan struct{}),
		sweepDone:     make(chan struct{}),
		under:         map[ledger.Pubkey]bool{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	defer func() {
		if err != nil {
			s.closeClients()
		}
	}()
	if cfg.RegionID != "" {
		s.region, _ = ledger.ParsePubkey(cfg.RegionID) // checked by Validate
		s.hasRegion = true
	}
	if s.signer == nil && cfg.SignerKeyFile != "" {
		k, err := ledger.LoadKeypair(cfg.SignerKeyFile)
		if err != nil {
			return nil, fmt.Errorf("billing: signer_key_file: %w", err)
		}
		s.signer = k
	}
	s.run = service.NewRunner("billing", cfg.Base, service.RunnerOptions{Logger: log, Registry: deps.Registry, TracerProvider: deps.TracerProvider, TLS: tlsc, Rules: rules})
	traced := service.TraceDialOptions(s.run.TracerProvider())
	if s.ledger == nil && cfg.LedgerBackend == LedgerSolana {
		l, err := backend.OpenSolana(context.Background(), cfg.LedgerSolana)
		if err != nil {
			return nil, fmt.Errorf("billing: %w", err)
		}
		s.ledger = l
		s.closers = append(s.closers, l)
	}
	if s.ledger == nil && cfg.LedgerAddr != "" {
		l, c, err := dialLedger(cfg.LedgerAddr, cfg.Base, tlsc, traced...)
		if err != nil {
			return nil, fmt.Errorf("billing: %w", err)
		}
		s.ledger = l
		s.closers = append(s.closers, c)
	}
	if s.indexer == nil && cfg.ChainIndexerAddr != "" {
		cc, err := chainwatch.Dial(cfg.ChainIndexerAddr, chainwatch.DefaultBackoff(), append([]grpc.DialOption{tlsc.DialOption(certs.RoleChainIndexer)}, traced...)...)
		if err != nil {
			return nil, fmt.Errorf("billing: chain_indexer_addr: %w", err)
		}
		s.indexer = chainindexerv1.NewChainIndexerServiceClient(cc)
		s.closers = append(s.closers, cc)
	}
	if s.kv, err = kvstore.Open(cfg.PDEndpoints, cfg.DataDir); err != nil {
		return nil, fmt.Errorf("billing: %w", err)
	}
	s.closers = append(s.closers, kvCloser{s.kv})
	if s.metrics, err = newMetrics(s.run.Registry()); err != nil {
		return nil, err
	}
	billingv1.RegisterBillingServiceServer(s.run.GRPC(), s)
	s.loopCtx, s.loopCancel = context.WithCancel(context.Background())
	return s, nil
}

type kvCloser struct{ kv *txnkv.Client }

func (c kvCloser) Close() error { return c.kv.Close() }

func (s *Server) closeClients() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.closers = nil
	return errors.Join(errs...)
}

// Start binds the gRPC and admin listeners and serves them in the
// background, and starts the group committer, the settlement loop (which
// first resumes the settlements left pending by an earlier run) and the
// key sweeper; it returns once both listeners are bound. Start may be
// called once, not after Close.
func (s *Server) Start(ctx context.Context) error {
	if err := s.run.Start(ctx); err != nil {
		return err
	}
	s.startOnce.Do(func() {
		s.started = true
		go s.committer()
		go s.settleLoop()
		go s.sweepLoop()
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

// Close stops serving: health turns NOT_SERVING and in-flight RPCs get
// ShutdownTimeout to finish; then the committer answers what is queued
// (UNAVAILABLE), the settlement loop and the sweeper stop (a settlement
// loop's ledger call in flight is cancelled: it stays pending and is
// resumed with its seed at the next Start), and the store and the clients
// are closed. Safe to call twice and before Start; later
// calls return the first call's result.
func (s *Server) Close() error {
	return s.run.Close(func() error {
		s.startOnce.Do(func() {}) // no Start after Close
		s.loopCancel()
		close(s.quit)
		if s.started {
			<-s.committerDone
			<-s.settleDone
			<-s.sweepDone
		}
		return s.closeClients()
	})
}
