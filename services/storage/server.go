package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/usage"
	storagev1 "github.com/muprotocol/mu/proto/mu/storage/v1"
	"github.com/muprotocol/mu/services/storage/internal/backend"
	"github.com/muprotocol/mu/services/storage/internal/layout"
	"github.com/muprotocol/mu/services/storage/internal/meter"
)

// Deps are the storage node's collaborators.
type Deps struct {
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Registry is where the node registers its metrics and what the admin
	// listener's /metrics serves. Nil makes a private registry with the Go
	// and process collectors.
	Registry *prometheus.Registry
	// Usage receives the node's usage records (STORAGE_TRAFFIC_BYTES per
	// transfer, STORAGE_STORED_BYTE_SECONDS per stack every
	// stored_report_interval) through a usage.Batcher. Nil discards usage.
	Usage usage.Sink
	// Now is the node's clock (upload signing times, signed URL expiry,
	// byte-seconds); nil means time.Now.
	Now func() time.Time
}

// Server is a storage node: mu.storage.v1.StorageService over gRPC and the
// public HTTP API (see package doc), over one Backend. Its methods are safe
// for concurrent use.
type Server struct {
	storagev1.UnimplementedStorageServiceServer

	cfg     Config
	log     *slog.Logger
	run     *service.Runner
	store   backend.Backend
	now     func() time.Time
	signKey []byte

	usage   *usage.Batcher
	billing *grpc.ClientConn // dialled from BillingAddr; nil with Deps.Usage or without BillingAddr
	keys    *usage.Keys
	stored  *meter.Stored

	boxMu sync.Mutex
	boxes map[boxRef]boxEntry

	metrics metrics

	stop     chan struct{}
	loopDone chan struct{}
	once     sync.Once
	started  bool
	startMu  sync.Mutex
}

type boxRef struct {
	stack ids.StackID
	box   string
}

type boxEntry struct {
	exists, public bool
	checked        time.Time
}

type metrics struct {
	received, sent prometheus.Counter
	stored         prometheus.GaugeFunc
}

// New checks cfg, opens the backend (the S3 bucket, creating it when
// missing, or DataDir/objects) and the URL signing key; nothing listens
// until Start.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tlsc, err := service.NewTLS(cfg.Base, deps.Logger)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("service", "storage", "node", cfg.NodeName)
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	s := &Server{
		cfg:      cfg,
		log:      log,
		now:      now,
		keys:     usage.NewKeys("storage/" + cfg.NodeName),
		stored:   meter.NewStored(),
		boxes:    make(map[boxRef]boxEntry),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	if s.signKey, err = loadSigningKey(cfg); err != nil {
		return nil, err
	}
	if s.store, err = openBackend(cfg); err != nil {
		return nil, err
	}
	s.run = service.NewRunner("storage", cfg.Base, service.RunnerOptions{Logger: log, Registry: deps.Registry, TLS: tlsc, Rules: rules})
	storagev1.RegisterStorageServiceServer(s.run.GRPC(), s)
	s.run.AddHTTP("http", cfg.HTTPAddr, &http.Server{
		Handler:           s.httpHandler(),
		ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	})
	s.registerMetrics(s.run.Registry())
	sink := deps.Usage
	if sink == nil && cfg.BillingAddr != "" {
		var bs *usage.BillingSink
		if bs, s.billing, err = usage.DialBilling(cfg.BillingAddr, nil, tlsc.DialOption(certs.RoleBilling)); err != nil {
			return nil, fmt.Errorf("storage: %w", err)
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
		return nil, fmt.Errorf("storage: %w", err)
	}
	return s, nil
}

func (s *Server) registerMetrics(reg *prometheus.Registry) {
	s.metrics.received = prometheus.NewCounter(prometheus.CounterOpts{Name: "mu_storage_received_bytes_total",
		Help: "Object bytes received by Put and signed-URL PUT."})
	s.metrics.sent = prometheus.NewCounter(prometheus.CounterOpts{Name: "mu_storage_sent_bytes_total",
		Help: "Object bytes sent by Get, public reads and signed-URL GET."})
	s.metrics.stored = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mu_storage_stored_bytes",
		Help: "Bytes stored in boxes, all stacks together, as this node counts them."},
		func() float64 { return float64(s.stored.Total()) })
	for _, c := range []prometheus.Collector{s.metrics.received, s.metrics.sent, s.metrics.stored} {
		if err := reg.Register(c); err != nil {
			s.log.Warn("storage metric not registered", "err", err)
		}
	}
}

// loadSigningKey returns the configured key, or the one in DataDir,
// generating and persisting it (mode 0600) on first start.
func loadSigningKey(cfg Config) ([]byte, error) {
	if cfg.URLSigningKey != "" {
		return hex.DecodeString(cfg.URLSigningKey)
	}
	path := filepath.Join(cfg.DataDir, "url-signing-key")
	if b, err := os.ReadFile(path); err == nil {
		k, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(k) < 32 {
			return nil, fmt.Errorf("storage: %s: not a hex key of 32+ bytes", path)
		}
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("storage: url signing key: %w", err)
	}
	k := make([]byte, 32)
	rand.Read(k)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("storage: url signing key: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("storage: url signing key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("storage: url signing key: %w", err)
	}
	return k, nil
}

func openBackend(cfg Config) (backend.Backend, error) {
	if cfg.S3Endpoint == "" {
		d, err := backend.OpenDir(filepath.Join(cfg.DataDir, "objects"))
		if err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
		return d, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	b, err := backend.OpenS3(ctx, backend.S3Config{
		Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey,
		Bucket: cfg.S3Bucket, Region: cfg.S3Region, UseSSL: cfg.S3UseSSL,
		PartSize: cfg.S3PartSize, CreateBucket: true,
	})
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return b, nil
}

// Start counts the bytes every stack stores (one listing of the bucket's
// s/ prefix), binds the gRPC, HTTP and admin listeners and serves them in
// the background; it returns once all are bound. Start may be called once,
// not after Close.
func (s *Server) Start(ctx context.Context) error {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if s.started {
		return errors.New("storage: already started")
	}
	if err := s.countStored(ctx); err != nil {
		return err
	}
	if err := s.run.Start(ctx); err != nil {
		return err
	}
	s.started = true
	go s.reportLoop()
	return nil
}

// countStored lists every object of every box and resets the per-stack
// stored totals to what it found.
func (s *Server) countStored(ctx context.Context) error {
	totals := make(map[ids.StackID]int64)
	after := ""
	for {
		page, more, err := s.store.List(ctx, layout.ObjectsRoot, after, 1000)
		if err != nil {
			return fmt.Errorf("storage: count stored bytes: %w", err)
		}
		for _, o := range page {
			if id, _, _, ok := layout.ParseObjectName(o.Name, layout.MaxKeyLimit); ok {
				totals[id] += o.Size
			}
		}
		if !more || len(page) == 0 {
			break
		}
		after = page[len(page)-1].Name
	}
	s.stored.Reset(totals, s.now())
	return nil
}

func (s *Server) reportLoop() {
	defer close(s.loopDone)
	t := time.NewTicker(s.cfg.StoredReportInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.reportStored()
		case <-s.stop:
			return
		}
	}
}

// reportStored queues the stored byte-seconds accrued since the last report.
func (s *Server) reportStored() {
	now := s.now()
	var recs []usage.Record
	for id, n := range s.stored.Collect(now) {
		recs = append(recs, usage.Record{Stack: id, Kind: usage.StorageStoredByteSeconds,
			Amount: n, Key: s.keys.Next(), Time: now})
	}
	s.usage.Add(recs...)
}

// traffic reports n object bytes moved for stack.
func (s *Server) traffic(stack ids.StackID, n int64, received bool) {
	if n <= 0 {
		return
	}
	if received {
		s.metrics.received.Add(float64(n))
	} else {
		s.metrics.sent.Add(float64(n))
	}
	s.usage.Add(usage.Record{Stack: stack, Kind: usage.StorageTrafficBytes,
		Amount: uint64(n), Key: s.keys.Next(), Time: s.now()})
}

// Addr is the bound gRPC address, or "" before Start.
func (s *Server) Addr() string { return s.run.GRPCAddr() }

// HTTPAddr is the bound address of the public HTTP API, or "" before Start.
func (s *Server) HTTPAddr() string { return s.run.Addr("http") }

// AdminAddr is the bound admin HTTP address, or "" before Start or when
// it is off.
func (s *Server) AdminAddr() string { return s.run.AdminAddr() }

// Err reports a listener that stopped with an error while serving.
func (s *Server) Err() <-chan error { return s.run.Err() }

// StoredBytes is the bytes stack's boxes hold, as this node counts them
// (recounted at Start, updated by this node's writes and deletes).
func (s *Server) StoredBytes(stack ids.StackID) int64 { return s.stored.Bytes(stack) }

// FlushUsage blocks until every usage record queued before it (traffic so
// far, and the stored byte-seconds accrued until now) has been accepted by
// the sink, or ctx ends.
func (s *Server) FlushUsage(ctx context.Context) error {
	s.reportStored()
	return s.usage.Flush(ctx)
}

// Close stops serving within ShutdownTimeout, reports the stored
// byte-seconds accrued so far and hands the last usage records to the sink
// (bounded by usage_close_timeout). Safe to call twice and before Start.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		err = s.run.Close(nil)
		s.startMu.Lock()
		started := s.started
		s.startMu.Unlock()
		close(s.stop)
		if started {
			<-s.loopDone
			s.reportStored()
		}
		err = errors.Join(err, s.usage.Close(context.Background()))
		if s.billing != nil {
			err = errors.Join(err, s.billing.Close()) // after the final flush
		}
	})
	return err
}

func (s *Server) publicURL() string {
	if s.cfg.PublicURL != "" {
		return strings.TrimSuffix(s.cfg.PublicURL, "/")
	}
	return "http://" + s.HTTPAddr()
}
