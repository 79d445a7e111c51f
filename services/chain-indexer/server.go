package chainindexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgerrpc"
	"github.com/muprotocol/mu/libs/service"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	ledgerv1 "github.com/muprotocol/mu/proto/mu/ledger/v1"
	"github.com/muprotocol/mu/services/chain-indexer/internal/index"
)

// Deps are the chain-indexer node's collaborators.
type Deps struct {
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Registry is where the node registers its metrics and what the admin
	// listener's /metrics serves. Nil makes a private registry with the Go
	// and process collectors.
	Registry *prometheus.Registry
	// Ledger is the ledger to follow, shared with its other users in the
	// process (`mu run`, the region package); it takes precedence over
	// Config.Ledger, and the node never closes it. Nil opens the backend
	// Config.Ledger names, which Close then closes.
	Ledger ledger.Ledger
	// TracerProvider records the node's spans (a server span per gRPC
	// call). The caller owns it. Nil builds one from the otlp_* settings,
	// which are off by default (see service.RunnerOptions).
	TracerProvider trace.TracerProvider
}

// Server is a chain-indexer node: it follows the ledger into its view and
// serves that view as mu.chainindexer.v1.ChainIndexerService. Create it
// with New, start it with Start, stop it with Close. Its methods are safe
// for concurrent use.
type Server struct {
	chainindexerv1.UnimplementedChainIndexerServiceServer

	cfg     Config
	log     *slog.Logger
	run     *service.Runner
	idx     *index.Index
	led     ledger.Ledger
	ownsLed bool
	fol     *follower
	m       *metrics
	now     func() time.Time
	born    time.Time

	bg     context.Context
	stopBg context.CancelFunc
	bgWG   sync.WaitGroup
	bgOnce sync.Once
}

// New checks cfg, loads the persisted view from DataDir (so the node
// serves it as soon as it starts, before the ledger answers), opens the
// ledger unless deps has one, and builds the node; nothing listens and
// the ledger is not read until Start. Every Server from New must be
// closed.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tlsc, err := service.NewTLS(cfg.Base, deps.Logger)
	if err != nil {
		return nil, fmt.Errorf("chain-indexer: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("service", "chain-indexer", "node", cfg.NodeName)
	s := &Server{cfg: cfg, log: log, now: time.Now}
	s.born = s.now()
	idx, info, err := index.Open(index.Config{Dir: cfg.DataDir, History: cfg.HistoryEvents, MaxSubscribers: cfg.MaxWatchers})
	if err != nil {
		return nil, fmt.Errorf("chain-indexer: data_dir: %w", err)
	}
	if info.Problem != "" {
		log.Warn("the persisted view was not usable; reading the ledger afresh", "problem", info.Problem)
	}
	if info.Loaded {
		pos := idx.Position()
		log.Info("serving the persisted view", "slot", pos.Slot, "sequence", pos.Seq, "clean", info.Clean)
	}
	s.idx = idx
	if deps.Ledger != nil {
		s.led = deps.Ledger
	} else {
		if s.led, err = openLedger(context.Background(), cfg.Ledger); err != nil {
			idx.Close()
			return nil, err
		}
		s.ownsLed = true
	}
	s.run = service.NewRunner("chain-indexer", cfg.Base, service.RunnerOptions{Logger: log, Registry: deps.Registry, TracerProvider: deps.TracerProvider, TLS: tlsc, Rules: rules})
	if s.m, err = newMetrics(s.run.Registry(), s); err != nil {
		s.closeParts()
		return nil, err
	}
	s.run.AddReadiness("view", func() error {
		if !s.idx.Status().Serving {
			return errors.New("no view yet: the ledger has not been read and none was persisted")
		}
		return nil
	})
	chainindexerv1.RegisterChainIndexerServiceServer(s.run.GRPC(), s)
	if s.hostsLedger(deps) {
		ledgerv1.RegisterLedgerServiceServer(s.run.GRPC(), ledgerrpc.NewServer(s.led))
	}
	s.fol = &follower{led: s.led, idx: idx, cfg: cfg, log: log, m: s.m, now: s.now}
	s.bg, s.stopBg = context.WithCancel(context.Background())
	return s, nil
}

// hostsLedger reports whether the node serves its ledger's writes: when
// serve_ledger is on and the ledger is hosted here (the local backend, or
// one given in process).
func (s *Server) hostsLedger(deps Deps) bool {
	return s.cfg.ServeLedger && (deps.Ledger != nil || s.cfg.Ledger.Backend == BackendLocal)
}

// Start binds the gRPC and admin listeners and serves them in the
// background, and starts following the ledger and persisting the view;
// it returns once both listeners are bound, without waiting for the
// ledger. Start may be called once, not after Close.
func (s *Server) Start(ctx context.Context) error {
	if err := s.run.Start(ctx); err != nil {
		return err
	}
	s.bgOnce.Do(func() {
		s.bgWG.Add(2)
		go func() {
			defer s.bgWG.Done()
			s.fol.run(s.bg)
		}()
		go func() {
			defer s.bgWG.Done()
			s.persistLoop()
		}()
	})
	return nil
}

// persistLoop writes the view every persist_interval while it changes.
func (s *Server) persistLoop() {
	t := time.NewTicker(s.cfg.PersistInterval)
	defer t.Stop()
	for {
		select {
		case <-s.bg.Done():
			return
		case <-t.C:
			if err := s.idx.Flush(); err != nil {
				s.m.persistErrors.Inc()
				s.log.Error("cannot persist the view", "err", err)
			}
		}
	}
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

// Close stops serving: Watch streams end with UNAVAILABLE and in-flight
// calls get ShutdownTimeout to finish; then the follower stops, the view
// is written a last time (so the next start continues with the next
// sequence), and a ledger the node opened itself is closed. Safe to call
// twice and before Start; later calls return the first call's result.
func (s *Server) Close() error {
	return s.run.Close(func() error {
		s.bgOnce.Do(func() {}) // never started: nothing to wait for
		return s.closeParts()
	})
}

func (s *Server) closeParts() error {
	var errs []error
	if s.stopBg != nil {
		s.stopBg()
		s.bgWG.Wait()
	}
	if err := s.idx.Close(); err != nil {
		errs = append(errs, fmt.Errorf("chain-indexer: persist the view: %w", err))
	}
	if s.ownsLed {
		if err := s.led.Close(); err != nil {
			errs = append(errs, fmt.Errorf("chain-indexer: close the ledger: %w", err))
		}
	}
	return errors.Join(errs...)
}

// staleness is how long ago the view was last found up to date (since
// the node was made, when never).
func (s *Server) staleness(synced time.Time) time.Duration {
	since := synced
	if since.IsZero() {
		since = s.born
	}
	return max(s.now().Sub(since), 0)
}
