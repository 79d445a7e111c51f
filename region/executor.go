package region

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/membership"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/services/gateway"
	"github.com/muprotocol/mu/services/mudb"
	"github.com/muprotocol/mu/services/runtime"
	"github.com/muprotocol/mu/services/storage"
)

// ExecutorConfig configures mu-executor: one process that runs a node's
// services together (design section 2) — a gateway, a runtime, and, unless
// they are elsewhere, muDB and storage — through this package's in-process
// mode, so the gateway calls its own runtime in process and the runtimes
// of other executors over gRPC. Each service has its section with its own
// Config (gateway:, runtime:, mudb:, storage:); the settings the executor
// derives for its parts (node names, the chain-indexer, the cluster, the
// muDB and storage a runtime uses) are set once at the top and must be
// left out of the sections.
type ExecutorConfig struct {
	// Base holds the executor's own settings: node_name (its parts are
	// <node_name>-gateway, -runtime, -mudb and -storage), grpc_addr
	// (grpc.health.v1, SERVING while every part serves; reflection),
	// admin_addr (/healthz, /readyz, /metrics of the executor; each part
	// keeps its own admin_addr), shutdown_timeout, and log_level and
	// log_format for every part. Its tls_* files are the executor's own
	// listener's and its connections' to its parts; each part has its own
	// in its section (a certificate of the part's role). plaintext: true
	// here turns TLS off for every part too.
	service.Base

	// ChainIndexerAddr is host:port of the chain-indexer's gRPC API; the
	// gateway and the runtime follow the stacks of RegionID through it.
	// Empty leaves them to their admin APIs (PutStack, Deploy).
	ChainIndexerAddr string
	// RegionID is the base58 address of the marketplace region this
	// executor serves (required with chain_indexer_addr).
	RegionID string
	// MudbAddr, if set, is host:port of a muDB elsewhere that the runtime
	// uses; the executor then runs no muDB of its own and the mudb section
	// must be left out. Empty runs muDB in process (against the TiKV
	// cluster of mudb_pd_endpoints).
	MudbAddr string
	// StorageAddr, if set, is host:port of a storage service elsewhere
	// (its gRPC API) that the runtime uses; the executor then runs no
	// storage of its own and the storage section must be left out. Empty
	// runs storage in process (against the S3 bucket of the storage
	// section).
	StorageAddr string
	// BillingAddr, if set, is host:port of the region's billing service;
	// every part reports its usage there (each through its own durable
	// sender, spooled in its section's usage_spool_dir). Empty discards
	// usage.
	BillingAddr string

	// Cluster makes the runtime and the gateway members of the region's
	// member list; off (no cluster_bind_addr), the gateway sends every
	// stack to this executor's runtime.
	Cluster ExecutorCluster

	// Gateway is the gateway's section.
	Gateway gateway.Config
	// Runtime is the runtime's section.
	Runtime runtime.Config
	// Mudb is muDB's section (unused with mudb_addr).
	Mudb mudb.Config
	// Storage is the storage service's section (unused with storage_addr).
	Storage storage.Config
}

// ExecutorCluster is the member list settings an executor's two members
// share. BindAddr and AdvertiseAddr are the runtime member's; the gateway
// member has its own gossip address beside it.
type ExecutorCluster struct {
	membership.Config
	// GatewayBindAddr is the gateway member's gossip address (TCP and
	// UDP), host:port. Empty: cluster_bind_addr's host, any free port
	// (other members learn it through gossip; the gateway joins through
	// its own runtime).
	GatewayBindAddr string
	// GatewayAdvertiseAddr is the gossip address other nodes reach the
	// gateway member at. Empty: cluster_advertise_addr's host with the
	// bound port, when cluster_advertise_addr is set.
	GatewayAdvertiseAddr string
}

// DefaultExecutorConfig returns each part's defaults, the executor's own
// listeners on 127.0.0.1:12060 (gRPC health) and :12061 (admin), and no
// cluster: a lone node.
func DefaultExecutorConfig() ExecutorConfig {
	return ExecutorConfig{
		Base: service.DefaultBase(
			"127.0.0.1:12060", // grpc.health.v1 of the whole executor
			"127.0.0.1:12061", // /metrics, /healthz, /readyz
		),
		Cluster: ExecutorCluster{Config: membership.DefaultConfig()},
		Gateway: gateway.DefaultConfig(),
		Runtime: runtime.DefaultConfig(),
		Mudb:    mudb.DefaultConfig(),
		Storage: storage.DefaultConfig(),
	}
}

//go:embed executor.go
var executorSource []byte

// ExecutorConfigDocs returns the doc comments of every setting, for
// --help.
func ExecutorConfigDocs() config.Docs {
	return config.Merge(storage.ConfigDocs(), mudb.ConfigDocs(), runtime.ConfigDocs(), gateway.ConfigDocs(),
		service.ConfigDocs(), membership.ConfigDocs(), config.MustParseDocs(executorSource))
}

// runsMudb and runsStorage say whether the executor runs that part itself.
func (c ExecutorConfig) runsMudb() bool    { return c.MudbAddr == "" }
func (c ExecutorConfig) runsStorage() bool { return c.StorageAddr == "" }

// gatewayCluster is the gateway member's membership settings.
func (c ExecutorConfig) gatewayCluster() membership.Config {
	m := c.Cluster.Config
	if !m.Enabled() {
		return membership.DefaultConfig()
	}
	m.BindAddr = c.Cluster.GatewayBindAddr
	if m.BindAddr == "" {
		host, _, _ := net.SplitHostPort(c.Cluster.BindAddr)
		m.BindAddr = net.JoinHostPort(host, "0")
	}
	m.AdvertiseAddr = c.Cluster.GatewayAdvertiseAddr
	if m.AdvertiseAddr == "" && c.Cluster.AdvertiseAddr != "" {
		host, _, _ := net.SplitHostPort(c.Cluster.AdvertiseAddr)
		m.AdvertiseAddr = net.JoinHostPort(host, "0")
	}
	return m
}

// partBase is a part's Base with the settings the executor sets for it.
func (c ExecutorConfig) partBase(b service.Base, part string) service.Base {
	b.NodeName = c.NodeName + "-" + part
	b.LogLevel, b.LogFormat = c.LogLevel, c.LogFormat
	if c.Plaintext {
		b.Plaintext = true
	}
	return b
}

// parts returns the configuration each part runs with: its section plus
// what the executor sets.
func (c ExecutorConfig) parts() (gateway.Config, runtime.Config, mudb.Config, storage.Config) {
	gw, rt, db, st := c.Gateway, c.Runtime, c.Mudb, c.Storage
	gw.Base = c.partBase(gw.Base, "gateway")
	rt.Base = c.partBase(rt.Base, "runtime")
	db.Base = c.partBase(db.Base, "mudb")
	st.Base = c.partBase(st.Base, "storage")
	gw.ChainIndexerAddr, gw.RegionID = c.ChainIndexerAddr, c.RegionID
	rt.ChainIndexerAddr, rt.RegionID = c.ChainIndexerAddr, c.RegionID
	rt.MudbAddr, rt.StorageAddr = c.MudbAddr, c.StorageAddr
	gw.BillingAddr, rt.BillingAddr, db.BillingAddr, st.BillingAddr = c.BillingAddr, c.BillingAddr, c.BillingAddr, c.BillingAddr
	rt.Cluster = c.Cluster.Config
	gw.Cluster = c.gatewayCluster()
	return gw, rt, db, st
}

// executorSets names the settings of a section that the executor sets
// itself, with the top-level setting to use instead.
var executorSets = []struct {
	section, field, instead string
	get                     func(ExecutorConfig) any
	def                     func(ExecutorConfig) any
}{
	{"gateway", "node_name", "node_name", func(c ExecutorConfig) any { return c.Gateway.NodeName }, func(d ExecutorConfig) any { return d.Gateway.NodeName }},
	{"runtime", "node_name", "node_name", func(c ExecutorConfig) any { return c.Runtime.NodeName }, func(d ExecutorConfig) any { return d.Runtime.NodeName }},
	{"mudb", "node_name", "node_name", func(c ExecutorConfig) any { return c.Mudb.NodeName }, func(d ExecutorConfig) any { return d.Mudb.NodeName }},
	{"storage", "node_name", "node_name", func(c ExecutorConfig) any { return c.Storage.NodeName }, func(d ExecutorConfig) any { return d.Storage.NodeName }},
	{"gateway", "log_level", "log_level", func(c ExecutorConfig) any { return c.Gateway.LogLevel }, func(d ExecutorConfig) any { return d.Gateway.LogLevel }},
	{"runtime", "log_level", "log_level", func(c ExecutorConfig) any { return c.Runtime.LogLevel }, func(d ExecutorConfig) any { return d.Runtime.LogLevel }},
	{"mudb", "log_level", "log_level", func(c ExecutorConfig) any { return c.Mudb.LogLevel }, func(d ExecutorConfig) any { return d.Mudb.LogLevel }},
	{"storage", "log_level", "log_level", func(c ExecutorConfig) any { return c.Storage.LogLevel }, func(d ExecutorConfig) any { return d.Storage.LogLevel }},
	{"gateway", "log_format", "log_format", func(c ExecutorConfig) any { return c.Gateway.LogFormat }, func(d ExecutorConfig) any { return d.Gateway.LogFormat }},
	{"runtime", "log_format", "log_format", func(c ExecutorConfig) any { return c.Runtime.LogFormat }, func(d ExecutorConfig) any { return d.Runtime.LogFormat }},
	{"mudb", "log_format", "log_format", func(c ExecutorConfig) any { return c.Mudb.LogFormat }, func(d ExecutorConfig) any { return d.Mudb.LogFormat }},
	{"storage", "log_format", "log_format", func(c ExecutorConfig) any { return c.Storage.LogFormat }, func(d ExecutorConfig) any { return d.Storage.LogFormat }},
	{"gateway", "chain_indexer_addr", "chain_indexer_addr", func(c ExecutorConfig) any { return c.Gateway.ChainIndexerAddr }, func(d ExecutorConfig) any { return d.Gateway.ChainIndexerAddr }},
	{"runtime", "chain_indexer_addr", "chain_indexer_addr", func(c ExecutorConfig) any { return c.Runtime.ChainIndexerAddr }, func(d ExecutorConfig) any { return d.Runtime.ChainIndexerAddr }},
	{"gateway", "region_id", "region_id", func(c ExecutorConfig) any { return c.Gateway.RegionID }, func(d ExecutorConfig) any { return d.Gateway.RegionID }},
	{"runtime", "region_id", "region_id", func(c ExecutorConfig) any { return c.Runtime.RegionID }, func(d ExecutorConfig) any { return d.Runtime.RegionID }},
	{"runtime", "mudb_addr", "mudb_addr", func(c ExecutorConfig) any { return c.Runtime.MudbAddr }, func(d ExecutorConfig) any { return d.Runtime.MudbAddr }},
	{"runtime", "storage_addr", "storage_addr", func(c ExecutorConfig) any { return c.Runtime.StorageAddr }, func(d ExecutorConfig) any { return d.Runtime.StorageAddr }},
	{"gateway", "billing_addr", "billing_addr", func(c ExecutorConfig) any { return c.Gateway.BillingAddr }, func(d ExecutorConfig) any { return d.Gateway.BillingAddr }},
	{"runtime", "billing_addr", "billing_addr", func(c ExecutorConfig) any { return c.Runtime.BillingAddr }, func(d ExecutorConfig) any { return d.Runtime.BillingAddr }},
	{"mudb", "billing_addr", "billing_addr", func(c ExecutorConfig) any { return c.Mudb.BillingAddr }, func(d ExecutorConfig) any { return d.Mudb.BillingAddr }},
	{"storage", "billing_addr", "billing_addr", func(c ExecutorConfig) any { return c.Storage.BillingAddr }, func(d ExecutorConfig) any { return d.Storage.BillingAddr }},
	{"gateway", "cluster", "cluster", func(c ExecutorConfig) any { return c.Gateway.Cluster }, func(d ExecutorConfig) any { return d.Gateway.Cluster }},
	{"runtime", "cluster", "cluster", func(c ExecutorConfig) any { return c.Runtime.Cluster }, func(d ExecutorConfig) any { return d.Runtime.Cluster }},
}

// Validate reports every problem at once, wrapped in
// service.ErrInvalidConfig, each naming the setting as the executor's file,
// environment and flags spell it (runtime_max_fuel_per_call, cluster_join):
// the executor's own settings, each part's section as that part would
// validate it, settings a section must leave to the executor, and sections
// given for a part that runs elsewhere (mudb with mudb_addr, storage with
// storage_addr).
func (c ExecutorConfig) Validate() error {
	var p service.Problems
	p.Add(c.Base.Validate()...)
	d := DefaultExecutorConfig()
	for _, s := range executorSets {
		if !reflect.DeepEqual(s.get(c), s.def(d)) {
			p.Addf(s.section+"_"+s.field, "is set by the executor; set %s instead (shared by its parts)", s.instead)
		}
	}
	for _, a := range []struct{ name, addr string }{{"mudb_addr", c.MudbAddr}, {"storage_addr", c.StorageAddr}, {"chain_indexer_addr", c.ChainIndexerAddr}, {"billing_addr", c.BillingAddr}} {
		if a.addr == "" {
			continue
		}
		if host, port, err := net.SplitHostPort(a.addr); err != nil || host == "" || port == "" {
			p.Addf(a.name, "%q is not host:port", a.addr)
		}
	}
	if c.ChainIndexerAddr != "" && c.RegionID == "" {
		p.Addf("region_id", "is required with chain_indexer_addr (the base58 address of the region this executor serves)")
	}
	if c.RegionID != "" {
		if _, err := ledger.ParsePubkey(c.RegionID); err != nil {
			p.Addf("region_id", "%v", err)
		}
	}
	if !c.runsMudb() {
		for _, f := range changed(&c.Mudb, &d.Mudb, "node_name", "log_level", "log_format") {
			p.Addf("mudb_"+f, "is set, but mudb_addr %s means this executor runs no muDB: drop the mudb section or mudb_addr", c.MudbAddr)
		}
	}
	if !c.runsStorage() {
		for _, f := range changed(&c.Storage, &d.Storage, "node_name", "log_level", "log_format") {
			p.Addf("storage_"+f, "is set, but storage_addr %s means this executor runs no storage: drop the storage section or storage_addr", c.StorageAddr)
		}
	}
	p.Add(c.Cluster.Config.Validate())
	if c.Cluster.Enabled() {
		for _, a := range []struct{ name, addr string }{{"cluster_gateway_bind_addr", c.Cluster.GatewayBindAddr}, {"cluster_gateway_advertise_addr", c.Cluster.GatewayAdvertiseAddr}} {
			if a.addr == "" {
				continue
			}
			if host, _, err := net.SplitHostPort(a.addr); err != nil || net.ParseIP(host) == nil && host != "" {
				p.Addf(a.name, "%q is not ip:port", a.addr)
			}
		}
	} else if c.Cluster.GatewayBindAddr != "" || c.Cluster.GatewayAdvertiseAddr != "" {
		p.Addf("cluster_gateway_bind_addr", "needs cluster_bind_addr (the runtime member's gossip address): the gateway only gossips in a cluster")
	}

	// Each part as it would run, its errors named as this file spells
	// them; what the executor sets was checked above, once.
	gw, rt, db, st := c.parts()
	sections := []struct {
		name string
		err  error
	}{{"gateway", gw.Validate()}, {"runtime", rt.Validate()}}
	if c.runsMudb() {
		sections = append(sections, struct {
			name string
			err  error
		}{"mudb", db.Validate()})
	}
	if c.runsStorage() {
		sections = append(sections, struct {
			name string
			err  error
		}{"storage", st.Validate()})
	}
	for _, s := range sections {
		for _, err := range problems(s.err) {
			field, _, _ := strings.Cut(err.Error(), ":")
			if derived(field) {
				continue
			}
			p.Add(fmt.Errorf("%s_%w", s.name, err))
		}
	}
	return p.Err("executor")
}

// derived reports whether a part's setting comes from the executor's own
// (checked there).
func derived(field string) bool {
	switch field {
	case "node_name", "log_level", "log_format", "chain_indexer_addr", "region_id", "mudb_addr", "storage_addr":
		return true
	}
	return strings.HasPrefix(field, "cluster_")
}

// problems lists the single problems inside a Validate error (which joins
// them and wraps service.ErrInvalidConfig).
func problems(err error) []error {
	if err == nil || err == service.ErrInvalidConfig {
		return nil
	}
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range u.Unwrap() {
			out = append(out, problems(e)...)
		}
		return out
	}
	return []error{err}
}

// changed names the settings of a and b (pointers to the same Config type)
// whose values differ, skipping the names in ignore.
func changed(a, b any, ignore ...string) []string {
	x, errX := config.Args(a)
	y, errY := config.Args(b)
	if errX != nil || errY != nil || len(x) != len(y) {
		return []string{"section"}
	}
	var out []string
	for i := range x {
		if x[i] == y[i] {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(x[i], "--"), "=")
		name = strings.ReplaceAll(name, "-", "_")
		skip := false
		for _, ig := range ignore {
			skip = skip || name == ig
		}
		if !skip {
			out = append(out, name)
		}
	}
	return out
}

// ExecutorDeps are what an Executor needs beyond its Config.
type ExecutorDeps struct {
	// Logger receives the executor's and its parts' logs; nil discards
	// them.
	Logger *slog.Logger
	// Registry is what the executor's admin /metrics serves (each part
	// keeps its own registry and admin listener); nil makes a private one
	// with the Go and process collectors.
	Registry *prometheus.Registry
}

// Executor is a running mu-executor: its parts, started through Start in
// this process, and its own gRPC health and admin listeners. It follows
// the service contract (New, Start, Addr, Err, Close). Its methods are safe
// for concurrent use.
type Executor struct {
	cfg ExecutorConfig
	log *slog.Logger
	run *service.Runner
	tls *service.TLS // the executor's own listener's and connections'

	mu      sync.Mutex
	started bool
	region  *Region
	errc    chan error
}

// NewExecutor checks cfg and builds an executor; nothing runs until Start.
func NewExecutor(cfg ExecutorConfig, deps ExecutorDeps) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tlsc, err := service.NewTLS(cfg.Base, log)
	if err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	return &Executor{
		cfg: cfg,
		log: log,
		tls: tlsc,
		// Its listener serves health and reflection only, open to any
		// verified certificate.
		run:  service.NewRunner("executor", cfg.Base, service.RunnerOptions{Logger: log, Registry: deps.Registry, TLS: tlsc, Rules: service.Rules{}}),
		errc: make(chan error, 1),
	}, nil
}

// options are the region options that start the executor's parts.
func (e *Executor) options() Options {
	gw, rt, db, st := e.cfg.parts()
	o := Options{
		Mode:      InProcess,
		Logger:    e.log,
		ClientTLS: e.tls,
		Runtime:   &RuntimeOptions{Name: func(int) string { return rt.NodeName }, Config: func(_ int, c *runtime.Config) { *c = rt }},
		Gateway: &GatewayOptions{HTTPAddr: gw.HTTPAddr, Config: func(c *gateway.Config) {
			local := c.Cluster.Join // the members started before it in this process: its runtime
			*c = gw
			if c.Cluster.Enabled() {
				c.Cluster.Join = append(local, gw.Cluster.Join...)
			}
		}},
	}
	if e.cfg.runsMudb() {
		o.Mudb = &MudbOptions{Config: func(c *mudb.Config) { *c = db }}
	}
	if e.cfg.runsStorage() {
		o.Storage = &StorageOptions{Config: func(c *storage.Config) { *c = st }}
	}
	if e.cfg.Cluster.Enabled() {
		o.Cluster = &ClusterOptions{}
	}
	return o
}

// Start starts the parts — muDB and storage (unless they are elsewhere),
// the runtime (which joins the cluster), then the gateway — and then the
// executor's own listeners, so its gRPC health answers SERVING only once
// every part serves. ctx bounds the start only. Start may be called once.
func (e *Executor) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return errors.New("executor: already started")
	}
	e.started = true
	if e.cfg.BillingAddr == "" {
		e.log.Warn("no billing_addr: usage records are only counted in memory and are not billed")
	}
	r, err := Start(ctx, e.options())
	if err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	e.region = r
	if err := e.run.Start(ctx); err != nil {
		r.Close()
		e.region = nil
		return err
	}
	go e.watch(r)
	mudbAddr, storageAddr := e.cfg.MudbAddr, e.cfg.StorageAddr
	if n := r.Mudb(); n != nil {
		mudbAddr = n.Addr()
	}
	if n := r.Storage(); n != nil {
		storageAddr = n.Addr()
	}
	e.log.Info("executor serving", "node", e.cfg.NodeName, "http", r.Gateway().Addr(), "runtime", r.Runtime().Addr(),
		"mudb", mudbAddr, "storage", storageAddr, "gossip", r.Runtime().ClusterAddr())
	return nil
}

// watch forwards the first error a part or the executor's own listeners
// report while serving to Err.
func (e *Executor) watch(r *Region) {
	chans := []<-chan error{e.run.Err(), r.Gateway().Server().Err(), r.Runtime().Server().Err()}
	if n := r.Mudb(); n != nil {
		chans = append(chans, n.Server().Err())
	}
	if n := r.Storage(); n != nil {
		chans = append(chans, n.Server().Err())
	}
	cases := make([]reflect.SelectCase, 0, len(chans)+1)
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(e.run.Closing())})
	for _, ch := range chans {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	i, v, ok := reflect.Select(cases)
	if i == 0 || !ok {
		return
	}
	select {
	case e.errc <- v.Interface().(error):
	default:
	}
}

// Addr is the executor's gRPC address (health, reflection), or "" before
// Start.
func (e *Executor) Addr() string { return e.run.GRPCAddr() }

// AdminAddr is the executor's admin HTTP address (/metrics, /healthz,
// /readyz), or "" before Start or when it is off.
func (e *Executor) AdminAddr() string { return e.run.AdminAddr() }

// Err reports the first part or listener that stopped with an error while
// serving (not because of Close).
func (e *Executor) Err() <-chan error { return e.errc }

// Parts is the region of the executor's parts (its Gateway, Runtime, Mudb
// and Storage nodes), or nil before Start.
func (e *Executor) Parts() *Region {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.region
}

// Close stops the executor gracefully: its health turns NOT_SERVING and
// /readyz 503, then the gateway drains its requests and leaves the
// cluster, the runtime leaves the cluster, keeps serving other gateways
// for its leave_drain and drains its calls, then muDB and storage close;
// the admin listener closes last. Safe to call twice and before Start.
func (e *Executor) Close() error {
	return e.run.Close(func() error {
		e.mu.Lock()
		r := e.region
		e.mu.Unlock()
		if r == nil {
			return nil
		}
		return r.Close()
	})
}
