// Package region starts a mu region on loopback: any set of the services,
// each from its own constructor, either all in this process or each as a
// child process built from the repository's service commands. Either way
// the services listen on 127.0.0.1 and talk to each other over real gRPC,
// as they would between machines, except that a gateway in this process
// calls the runtimes in this process in process, through the same
// RuntimeService interface (GatewayOptions.ViaGRPC turns that off).
//
// `mu run` starts a runtime and a gateway in its own process; the
// benchmarks and the end-to-end tests start whichever set they measure or
// test. Region only wires services together: libraries and services never
// import it.
package region

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/backend"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/usage"
	gatewayv1 "github.com/muprotocol/mu/proto/mu/gateway/v1"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	storagev1 "github.com/muprotocol/mu/proto/mu/storage/v1"
	"github.com/muprotocol/mu/services/gateway"
	"github.com/muprotocol/mu/services/mudb"
	"github.com/muprotocol/mu/services/runtime"
	"github.com/muprotocol/mu/services/storage"
	"github.com/muprotocol/mu/services/storage/upload"
)

// Mode says where a region's services run.
type Mode int

const (
	// InProcess runs every service in this process, each on its own
	// loopback listeners. It is the default.
	InProcess Mode = iota
	// Processes runs every service as a child process: the service's own
	// command, built from the repository (see ProcessOptions).
	Processes
)

func (m Mode) String() string {
	switch m {
	case InProcess:
		return "in-process"
	case Processes:
		return "processes"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Options say which services a region runs and how. Each service has its
// own section, and a nil section starts none of that service, so a region
// can be a lone runtime, several runtimes, a gateway in front of a runtime
// started elsewhere, or all of them. Sections for chain-indexer and billing
// join these as those services land.
type Options struct {
	// Mode is where the services run (default InProcess).
	Mode Mode
	// DataDir keeps each node's data, in DataDir/<node name> (compiled
	// artifacts, for a runtime); empty keeps nothing on disk.
	DataDir string
	// Logger receives the services' own logs (in process mode, the lines
	// of child processes that have no LogDir); nil discards them.
	Logger *slog.Logger

	// Mudb, if not nil, starts a muDB node; the region's runtimes then
	// serve their functions' db requests from it.
	Mudb *MudbOptions
	// Storage, if not nil, starts a storage node; the region's runtimes
	// then serve their functions' storage requests from it and load
	// function binaries from it, and Deploy uploads binaries to it.
	Storage *StorageOptions
	// UploaderKey signs the binaries Deploy uploads to the storage node
	// (the developer's key; mu run uses the stack's). Nil makes a key for
	// the region's lifetime.
	UploaderKey ed25519.PrivateKey
	// Runtime, if not nil, starts runtime nodes.
	Runtime *RuntimeOptions
	// Gateway, if not nil, starts a gateway.
	Gateway *GatewayOptions
	// Executors, if not nil, starts mu-executor children in process mode
	// (each a gateway and a runtime in one process; see ExecutorOptions),
	// after the runtimes and before the gateway.
	Executors *ExecutorOptions
	// Ledger, if set, starts a marketplace ledger with a dev market and a
	// chain-indexer; runtimes and the gateway follow the indexer.
	Ledger *LedgerOptions

	// Billing, if set, starts a billing node; every service of the region
	// reports its usage to it instead of to Region.Usage, and with Ledger
	// it settles on the ledger.
	Billing *BillingOptions

	// Cluster, if set, makes the runtimes and the gateway members of one
	// gossip list (hashicorp/memberlist on loopback): each runtime owns
	// the stacks closest to it (design section 5), the gateway routes to
	// the owner and retries elsewhere, and runtimes can be added
	// (AddRuntime), killed and stopped under load. Without it the gateway
	// sends every stack to the first runtime.
	Cluster *ClusterOptions

	// TracerProvider, if set, records the spans of every service the
	// region starts in this process, and the region's connections to
	// them and between them carry trace context; the caller owns it (and
	// flushes it after Close). Nil leaves each service to its own otlp_*
	// settings, off by default. Child processes trace by their own
	// otlp_* settings (set them with each section's Config).
	TracerProvider trace.TracerProvider

	// Process configures process mode; InProcess ignores it.
	Process ProcessOptions

	// TLS, if set, runs every gRPC link of the region with mTLS, from
	// certificates the region issues (see TLSOptions). Without it and
	// without ClientTLS, every node is set to plaintext.
	TLS *TLSOptions
	// ClientTLS, if set, is what the region's own connections to its
	// nodes use, for nodes whose Config hooks set their TLS files (the
	// region then sets neither certificates nor plaintext): mu-executor's
	// parts. Exclusive with TLS.
	ClientTLS *service.TLS
}

// RuntimeOptions configure the region's runtime nodes. They are named
// runtime, runtime-1, runtime-2, … (the name is also the node id).
type RuntimeOptions struct {
	// Nodes is how many runtime nodes to start; 0 means 1.
	Nodes int
	// Name, if set, names node i (default runtime, runtime-1, …).
	Name func(i int) string
	// Config, if set, adjusts node i's configuration before it starts. The
	// region has set GRPCAddr and AdminAddr to free loopback ports,
	// NodeName and DataDir; in this process the node reports usage to the
	// region's Usage and logs to its Logger. In process mode the settings
	// become the child's flags (libs/config.Args): a child discards its
	// usage and logs to its stderr.
	Config func(i int, c *runtime.Config)
}

// MudbOptions configure the region's muDB node, named mudb. It keeps its
// tables in the embedded TiKV store under DataDir/mudb (in memory when the
// region has no DataDir) unless Config points it at PD endpoints.
type MudbOptions struct {
	// Config, if set, adjusts the node's configuration before it starts;
	// GRPCAddr and AdminAddr (free loopback ports), NodeName and DataDir
	// are set. In this process the node reports usage to the region's
	// Usage; in process mode the settings become the child's flags.
	Config func(c *mudb.Config)
}

// StorageOptions configure the region's storage node, named storage. It
// keeps boxes and binaries in a local directory under DataDir/storage (a
// temporary one when the region has no DataDir) unless Config points it
// at an S3 endpoint.
type StorageOptions struct {
	// Config, if set, adjusts the node's configuration before it starts;
	// GRPCAddr, HTTPAddr and AdminAddr (free loopback ports), NodeName and
	// DataDir are set. In this process the node reports usage to the
	// region's Usage; in process mode the settings become the child's flags.
	Config func(c *storage.Config)
}

// GatewayOptions configure the region's gateway, named gateway.
type GatewayOptions struct {
	// HTTPAddr is the public HTTP address; empty picks a free port on
	// 127.0.0.1.
	HTTPAddr string
	// RuntimeAddr is the gRPC address of the runtime that serves every
	// stack; empty means the region's first runtime node.
	RuntimeAddr string
	// ViaGRPC makes a gateway in this process call runtimes in this process
	// over loopback gRPC, as it calls runtimes elsewhere, instead of in
	// process through the same RuntimeService interface (the default in
	// InProcess mode, static and cluster alike: runtime.Server's
	// InProcessClient, registered in the gateway's LocalRuntimes under the
	// gRPC address the runtime advertises, runtimes added later with
	// AddRuntime included). For benchmarks and for the remote half of the
	// suites that run against both paths; process mode ignores it.
	ViaGRPC bool
	// Config, if set, adjusts the gateway's configuration before it
	// starts; HTTPAddr, GRPCAddr and AdminAddr (free loopback ports) are set. In
	// process mode the settings become the child's flags.
	Config func(c *gateway.Config)
}

// Region is a running region. Its methods are safe for concurrent use,
// except that Close must not race with Start's callers still deploying.
type Region struct {
	// Usage holds every usage record the services in this process
	// reported. Child processes do not report to it.
	Usage *usage.Memory

	mode     Mode
	log      *slog.Logger
	mudb     *MudbNode
	storage  *StorageNode
	uploader ed25519.PrivateKey
	runtimes []*RuntimeNode
	gateway  *GatewayNode
	// local holds the in-process runtimes the in-process gateway calls in
	// process, in cluster mode; nil otherwise (guarded by mu).
	local   *gateway.LocalRuntimes
	ledger  ledger.Ledger
	solana  *backend.Solana // the Solana backend's settings as opened (LedgerOptions.Solana), or nil
	market  *Market
	indexer *ChainIndexerNode
	billing *BillingNode
	// billingAddr is the billing node's gRPC address, chosen at Start
	// before any sender starts; "" without Options.Billing.
	billingAddr string
	// billingHold keeps billingAddr's port bound from the time it is
	// chosen until the billing node binds it (startBilling), so that no
	// other listener started meanwhile, here or elsewhere, can take it.
	billingHold net.Listener
	// closers run in reverse order on Close, after the nodes have stopped.
	closers []func() error

	// executors are the mu-executor children; their runtime parts are in
	// runtimes too.
	executors []*ExecutorNode

	opts  Options
	procs *processStarter // nil in process
	// tls is what the region's own connections use; pki is the region's
	// CA with Options.TLS, else nil.
	tls *service.TLS
	pki *regionPKI
	// mu guards runtimes, executors, closers and gossip after Start; addMu
	// serialises AddRuntime and AddExecutor.
	mu    sync.Mutex
	addMu sync.Mutex
	// gossip lists the bound gossip addresses of the members started so
	// far; later members join through them.
	gossip []string

	closeOnce sync.Once
	closeErr  error
}

// RuntimeNode is one runtime of a region.
type RuntimeNode struct {
	name        string
	clusterAddr string
	addr        string
	adminAddr   string
	server      *runtime.Server
	process     *Process
	client      runtimev1.RuntimeServiceClient
}

// Name is the node's name and node id: runtime, runtime-1, …
func (n *RuntimeNode) Name() string { return n.name }

// Addr is the node's gRPC address (RuntimeService).
func (n *RuntimeNode) Addr() string { return n.addr }

// AdminAddr is the node's admin HTTP address (/metrics, /healthz, /readyz).
func (n *RuntimeNode) AdminAddr() string { return n.adminAddr }

// Client is a RuntimeService client on the region's connection to the node,
// which allows messages as large as the node's MaxMessageBytes.
func (n *RuntimeNode) Client() runtimev1.RuntimeServiceClient { return n.client }

// Server is the runtime when it runs in this process, nil in process mode.
func (n *RuntimeNode) Server() *runtime.Server { return n.server }

// Process is the node's child process in process mode, nil in this process.
func (n *RuntimeNode) Process() *Process { return n.process }

// MudbNode is the muDB node of a region.
type MudbNode struct {
	name      string
	addr      string
	adminAddr string
	server    *mudb.Server
	process   *Process
	client    mudbv1.MudbServiceClient
}

// Name is the node's name, mudb.
func (n *MudbNode) Name() string { return n.name }

// Addr is the node's gRPC address (MudbService).
func (n *MudbNode) Addr() string { return n.addr }

// AdminAddr is the node's admin HTTP address (/metrics, /healthz, /readyz).
func (n *MudbNode) AdminAddr() string { return n.adminAddr }

// Client is a MudbService client on the region's connection to the node;
// the region's in-process runtimes share it.
func (n *MudbNode) Client() mudbv1.MudbServiceClient { return n.client }

// Server is the node when it runs in this process, nil in process mode.
func (n *MudbNode) Server() *mudb.Server { return n.server }

// Process is the node's child process in process mode, nil in this process.
func (n *MudbNode) Process() *Process { return n.process }

// StorageNode is the storage node of a region.
type StorageNode struct {
	name      string
	addr      string
	httpAddr  string
	adminAddr string
	server    *storage.Server
	process   *Process
	client    storagev1.StorageServiceClient
}

// Name is the node's name, storage.
func (n *StorageNode) Name() string { return n.name }

// Addr is the node's gRPC address (StorageService).
func (n *StorageNode) Addr() string { return n.addr }

// HTTPAddr is the node's HTTP API: binary uploads, public and signed reads.
func (n *StorageNode) HTTPAddr() string { return n.httpAddr }

// URL is the base URL of the node's HTTP API, such as http://127.0.0.1:12032.
func (n *StorageNode) URL() string { return "http://" + n.httpAddr }

// AdminAddr is the node's admin HTTP address (/metrics, /healthz, /readyz).
func (n *StorageNode) AdminAddr() string { return n.adminAddr }

// Client is a StorageService client on the region's connection to the
// node; the region's in-process runtimes share it.
func (n *StorageNode) Client() storagev1.StorageServiceClient { return n.client }

// Server is the node when it runs in this process, nil in process mode.
func (n *StorageNode) Server() *storage.Server { return n.server }

// Process is the node's child process in process mode, nil in this process.
func (n *StorageNode) Process() *Process { return n.process }

// GatewayNode is the gateway of a region.
type GatewayNode struct {
	name        string
	clusterAddr string
	addr        string
	grpcAddr    string
	adminAddr   string
	server      *gateway.Server
	process     *Process
	client      gatewayv1.GatewayServiceClient
}

// Name is the node's name, gateway.
func (g *GatewayNode) Name() string { return g.name }

// Addr is the public HTTP address.
func (g *GatewayNode) Addr() string { return g.addr }

// GRPCAddr is the gRPC admin address (GatewayService, health).
func (g *GatewayNode) GRPCAddr() string { return g.grpcAddr }

// AdminAddr is the admin HTTP address (/metrics, /healthz, /readyz).
func (g *GatewayNode) AdminAddr() string { return g.adminAddr }

// Client is a GatewayService client on the region's connection to the
// gateway's gRPC port.
func (g *GatewayNode) Client() gatewayv1.GatewayServiceClient { return g.client }

// Server is the gateway when it runs in this process, nil in process mode.
func (g *GatewayNode) Server() *gateway.Server { return g.server }

// Process is the gateway's child process in process mode, nil in this process.
func (g *GatewayNode) Process() *Process { return g.process }

// Start starts the services opts asks for: runtimes first, then the gateway
// in front of them. It returns once every service is serving (in process
// mode: its gRPC health answers SERVING). ctx bounds only the start-up
// (building binaries included); the services run until Close. On error
// whatever was started is stopped again.
func Start(ctx context.Context, opts Options) (_ *Region, err error) {
	if opts.Mudb == nil && opts.Storage == nil && opts.Runtime == nil && opts.Gateway == nil && opts.Ledger == nil && opts.Executors == nil && opts.Billing == nil {
		return nil, errors.New("region: nothing to start: set Options.Mudb, Options.Storage, Options.Ledger, Options.Runtime, Options.Executors or Options.Gateway")
	}
	if opts.Mode != InProcess && opts.Mode != Processes {
		return nil, fmt.Errorf("region: unknown mode %v", opts.Mode)
	}
	if opts.TLS != nil && opts.ClientTLS != nil {
		return nil, errors.New("region: Options.TLS and Options.ClientTLS exclude each other")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Region{Usage: usage.NewMemory(), mode: opts.Mode, log: log, uploader: opts.UploaderKey, opts: opts}
	if r.uploader == nil {
		if _, r.uploader, err = ed25519.GenerateKey(nil); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if err := r.startTLS(); err != nil {
		return nil, err
	}
	if opts.Billing != nil {
		// Senders are told billing's address before it starts (it needs
		// the ledger, which may need storage); they spool and retry.
		addr := opts.Billing.Addr
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		if r.billingHold, err = net.Listen("tcp", addr); err != nil {
			return nil, fmt.Errorf("region: billing address %s: %w", addr, err)
		}
		r.billingAddr = r.billingHold.Addr().String()
		r.closers = append(r.closers, r.releaseBillingPort)
	}
	var procs *processStarter
	if opts.Mode == Processes {
		if procs, err = newProcessStarter(ctx, opts, log); err != nil {
			return nil, err
		}
		procs.tls = r.tls
		r.procs = procs
	}

	if mo := opts.Mudb; mo != nil {
		cfg := mudb.DefaultConfig()
		cfg.GRPCAddr = "127.0.0.1:0"
		cfg.AdminAddr = "127.0.0.1:0"
		cfg.NodeName = "mudb"
		if err := r.secure(&cfg.Base, certs.RoleMudb, cfg.NodeName); err != nil {
			return nil, err
		}
		cfg.DataDir = nodeDir(opts.DataDir, "mudb")
		cfg.BillingAddr, cfg.Usage.SpoolDir = r.billingAddr, r.spoolDir("mudb")
		if mo.Config != nil {
			mo.Config(&cfg)
		}
		var n *MudbNode
		if procs != nil {
			n, err = procs.mudb(ctx, "mudb", cfg)
		} else {
			n, err = r.mudbInProcess(ctx, "mudb", cfg)
		}
		if n != nil {
			r.mudb = n
		}
		if err != nil {
			return nil, err
		}
		cc, err := r.dialService(certs.RoleMudb, n.addr, cfg.MaxMessageBytes)
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, cc.Close)
		n.client = mudbv1.NewMudbServiceClient(cc)
	}

	if so := opts.Storage; so != nil {
		cfg := storage.DefaultConfig()
		cfg.GRPCAddr = "127.0.0.1:0"
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.AdminAddr = "127.0.0.1:0"
		cfg.NodeName = "storage"
		if err := r.secure(&cfg.Base, certs.RoleStorage, cfg.NodeName); err != nil {
			return nil, err
		}
		cfg.DataDir = nodeDir(opts.DataDir, "storage")
		cfg.BillingAddr, cfg.Usage.SpoolDir = r.billingAddr, r.spoolDir("storage")
		if cfg.DataDir == "" {
			dir, err := os.MkdirTemp("", "mu-region-storage-")
			if err != nil {
				return nil, err
			}
			r.closers = append(r.closers, func() error { return os.RemoveAll(dir) })
			cfg.DataDir = dir
		}
		if so.Config != nil {
			so.Config(&cfg)
		}
		var n *StorageNode
		if procs != nil {
			n, err = procs.storage(ctx, "storage", cfg)
		} else {
			n, err = r.storageInProcess(ctx, "storage", cfg)
		}
		if n != nil {
			r.storage = n
		}
		if err != nil {
			return nil, err
		}
		cc, err := r.dialService(certs.RoleStorage, n.addr, cfg.MaxMessageBytes)
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, cc.Close)
		n.client = storagev1.NewStorageServiceClient(cc)
	}

	if opts.Ledger != nil {
		if err := r.startLedger(ctx, opts); err != nil {
			return nil, err
		}
	}

	if opts.Billing != nil {
		if err := r.startBilling(ctx); err != nil {
			return nil, err
		}
	}

	if ro := opts.Runtime; ro != nil {
		for i := range max(ro.Nodes, 1) {
			if _, err := r.startRuntime(ctx, i); err != nil {
				return nil, err
			}
		}
	}

	if opts.Executors != nil {
		if err := r.startExecutors(ctx); err != nil {
			return nil, err
		}
	}

	if gopts := opts.Gateway; gopts != nil {
		runtimeAddr := gopts.RuntimeAddr
		if runtimeAddr == "" && opts.Cluster == nil {
			if len(r.runtimes) == 0 {
				return nil, errors.New("region: the gateway needs a runtime: set Options.Runtime, Options.Cluster or GatewayOptions.RuntimeAddr")
			}
			runtimeAddr = r.runtimes[0].addr
		}
		cfg := gateway.DefaultConfig()
		localGatewayLimits(&cfg)
		cfg.HTTPAddr = "127.0.0.1:0"
		if gopts.HTTPAddr != "" {
			cfg.HTTPAddr = gopts.HTTPAddr
		}
		cfg.GRPCAddr = "127.0.0.1:0"
		cfg.AdminAddr = "127.0.0.1:0"
		cfg.NodeName = "gateway"
		if err := r.secure(&cfg.Base, certs.RoleGateway, cfg.NodeName); err != nil {
			return nil, err
		}
		cfg.BillingAddr, cfg.Usage.SpoolDir = r.billingAddr, r.spoolDir("gateway")
		if r.indexer != nil {
			cfg.ChainIndexerAddr = r.indexer.addr
			cfg.RegionID = r.market.Region.ID.String()
		}
		if runtimeAddr == "" {
			if err := r.clusterConfig(&cfg.Cluster); err != nil {
				return nil, err
			}
		}
		if gopts.Config != nil {
			gopts.Config(&cfg)
		}
		var g *GatewayNode
		if procs != nil {
			g, err = procs.gateway(ctx, "gateway", cfg, runtimeAddr)
		} else {
			g, err = r.gatewayInProcess(ctx, "gateway", cfg, runtimeAddr, gopts.ViaGRPC)
		}
		if g != nil {
			r.gateway = g
		}
		if err != nil {
			return nil, err
		}
		r.joined(g.clusterAddr)
		cc, err := grpc.NewClient(g.grpcAddr, r.tls.DialOption(certs.RoleGateway))
		if err != nil {
			return nil, fmt.Errorf("region: gateway admin %s: %w", g.grpcAddr, err)
		}
		r.closers = append(r.closers, cc.Close)
		g.client = gatewayv1.NewGatewayServiceClient(cc)
	}
	return r, nil
}

// startRuntime starts runtime node i of the region and adds it to
// r.runtimes.
func (r *Region) startRuntime(ctx context.Context, i int) (*RuntimeNode, error) {
	ro := r.opts.Runtime
	name := runtimeName(i)
	if ro.Name != nil {
		name = ro.Name(i)
	}
	cfg := runtime.DefaultConfig()
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.NodeName = name
	if err := r.secure(&cfg.Base, certs.RoleRuntime, name); err != nil {
		return nil, err
	}
	cfg.DataDir = nodeDir(r.opts.DataDir, name)
	cfg.BillingAddr, cfg.Usage.SpoolDir = r.billingAddr, r.spoolDir(name)
	if r.mudb != nil {
		cfg.MudbAddr = r.mudb.addr
	}
	if r.storage != nil {
		cfg.StorageAddr = r.storage.addr
	}
	if r.indexer != nil {
		cfg.ChainIndexerAddr = r.indexer.addr
		cfg.RegionID = r.market.Region.ID.String()
	}
	if err := r.clusterConfig(&cfg.Cluster); err != nil {
		return nil, err
	}
	if ro.Config != nil {
		ro.Config(i, &cfg)
	}
	var n *RuntimeNode
	var err error
	if r.procs != nil {
		n, err = r.procs.runtime(ctx, name, cfg)
	} else {
		n, err = r.runtimeInProcess(ctx, name, cfg)
	}
	if n != nil {
		r.mu.Lock()
		r.runtimes = append(r.runtimes, n)
		if r.local != nil && n.server != nil && err == nil {
			// A runtime added to a running cluster: the gateway may have
			// seen it join already; it switches to the in-process client.
			r.local.Add(n.server.AdvertisedAddr(), n.server.InProcessClient())
		}
		r.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	r.joined(n.clusterAddr)
	cc, err := r.dialService(certs.RoleRuntime, n.addr, cfg.MaxMessageBytes)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.closers = append(r.closers, cc.Close)
	r.mu.Unlock()
	n.client = runtimev1.NewRuntimeServiceClient(cc)
	return n, nil
}

// AddRuntime starts one more runtime node, configured as Options.Runtime
// says for the next index; with Options.Cluster it joins the region's
// member list and takes over the stacks now closest to it.
func (r *Region) AddRuntime(ctx context.Context) (*RuntimeNode, error) {
	if r.opts.Runtime == nil {
		return nil, errors.New("region: AddRuntime needs Options.Runtime")
	}
	r.addMu.Lock() // one at a time, so each gets its own index, name and data dir
	defer r.addMu.Unlock()
	r.mu.Lock()
	i := len(r.runtimes)
	r.mu.Unlock()
	return r.startRuntime(ctx, i)
}

func runtimeName(i int) string {
	if i == 0 {
		return "runtime"
	}
	return fmt.Sprintf("runtime-%d", i)
}

// Mode is where the region's services run.
func (r *Region) Mode() Mode { return r.mode }

// Runtimes lists the region's runtime nodes in start order.
func (r *Region) Runtimes() []*RuntimeNode {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*RuntimeNode(nil), r.runtimes...)
}

// Runtime is the first runtime node, or nil if the region has none.
func (r *Region) Runtime() *RuntimeNode {
	if len(r.runtimes) == 0 {
		return nil
	}
	return r.runtimes[0]
}

// Mudb is the region's muDB node, or nil if it has none.
func (r *Region) Mudb() *MudbNode { return r.mudb }

// Storage is the region's storage node, or nil if it has none.
func (r *Region) Storage() *StorageNode { return r.storage }

// Gateway is the region's gateway; without one (Options.Gateway), the
// first executor's; nil if it has neither.
func (r *Region) Gateway() *GatewayNode {
	if r.gateway == nil && len(r.executors) > 0 {
		return r.Executors()[0].gateway
	}
	return r.gateway
}

// Processes lists the region's child processes: executors, runtimes, the
// gateway, muDB, storage, then the chain-indexer (none in InProcess
// mode), each once.
func (r *Region) Processes() []*Process {
	var out []*Process
	for _, e := range r.Executors() {
		out = append(out, e.process)
	}
	for _, n := range r.Runtimes() {
		if n.process != nil && !slices.Contains(out, n.process) {
			out = append(out, n.process)
		}
	}
	if r.gateway != nil && r.gateway.process != nil {
		out = append(out, r.gateway.process)
	}
	if r.mudb != nil && r.mudb.process != nil {
		out = append(out, r.mudb.process)
	}
	if r.storage != nil && r.storage.process != nil {
		out = append(out, r.storage.process)
	}
	if r.indexer != nil && r.indexer.process != nil {
		out = append(out, r.indexer.process)
	}
	if r.billing != nil && r.billing.process != nil {
		out = append(out, r.billing.process)
	}
	return out
}

// Deploy installs a stack: its functions on every runtime node (through
// RuntimeService.Deploy), then its routes on the gateway
// (GatewayService.PutStack). binaries maps binary ids to wasm. With a
// storage node, Deploy first uploads the binaries through its signed HTTP
// API (as `mu deploy` does, with UploaderKey) and the runtimes fetch them
// from storage by id; without one they travel inline in the deploy.
func (r *Region) Deploy(ctx context.Context, id ids.StackID, revision uint64, m *manifest.Manifest, binaries map[string][]byte) error {
	yml, err := m.Marshal()
	if err != nil {
		return err
	}
	req := &runtimev1.DeployRequest{Stack: &runtimev1.Stack{Id: id.Bytes(), Revision: revision, Manifest: yml}}
	keys := make([]string, 0, len(binaries))
	for k := range binaries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if r.storage == nil {
			req.Binaries = append(req.Binaries, &runtimev1.FunctionBinary{BinaryId: k, Wasm: binaries[k]})
			continue
		}
		if err := r.Upload(ctx, k, binaries[k]); err != nil {
			return err
		}
	}
	for _, n := range r.Runtimes() {
		if _, err := n.client.Deploy(ctx, req); err != nil {
			return fmt.Errorf("deploy to %s: %w", n.name, err)
		}
	}
	for _, g := range r.Gateways() {
		if _, err := g.client.PutStack(ctx, &gatewayv1.PutStackRequest{StackId: id.Bytes(), Revision: revision, ManifestYaml: yml}); err != nil {
			return fmt.Errorf("deploy to %s: %w", g.name, err)
		}
	}
	return nil
}

// Upload stores one function binary on the region's storage node through
// its signed HTTP API, signed with UploaderKey, and checks that storage
// gives it the content id the manifest uses.
func (r *Region) Upload(ctx context.Context, binaryID string, wasm []byte) error {
	return r.uploadAs(ctx, r.uploader, binaryID, wasm)
}

// uploadAs is Upload signed with key.
func (r *Region) uploadAs(ctx context.Context, key ed25519.PrivateKey, binaryID string, wasm []byte) error {
	if r.storage == nil {
		return errors.New("region: no storage node to upload to")
	}
	c := upload.Client{BaseURL: r.storage.URL()}
	res, err := c.Upload(ctx, key, wasm)
	if err != nil {
		return fmt.Errorf("upload binary %s to %s: %w", binaryID, r.storage.name, err)
	}
	if res.BinaryID != binaryID {
		return fmt.Errorf("upload binary %s to %s: storage gave it the content id %s", binaryID, r.storage.name, res.BinaryID)
	}
	return nil
}

// Remove takes a stack off the gateway (its URLs answer 404) and then off
// every runtime node.
func (r *Region) Remove(ctx context.Context, id ids.StackID) error {
	for _, g := range r.Gateways() {
		if _, err := g.client.RemoveStack(ctx, &gatewayv1.RemoveStackRequest{StackId: id.Bytes()}); err != nil {
			return fmt.Errorf("remove from %s: %w", g.name, err)
		}
	}
	for _, n := range r.Runtimes() {
		if _, err := n.client.Undeploy(ctx, &runtimev1.UndeployRequest{StackId: id.Bytes()}); err != nil {
			return fmt.Errorf("remove from %s: %w", n.name, err)
		}
	}
	return nil
}

// DeleteStack removes a stack as the ledger's delete does: off the
// gateway and the runtimes (Remove), then its data: every table in muDB
// and every box in storage. It is idempotent.
func (r *Region) DeleteStack(ctx context.Context, id ids.StackID) error {
	if err := r.Remove(ctx, id); err != nil {
		return err
	}
	if n := r.mudb; n != nil {
		if _, err := n.client.DeleteStackData(ctx, &mudbv1.DeleteStackDataRequest{StackId: id.Bytes()}); err != nil {
			return fmt.Errorf("delete the data of stack %s from %s: %w", id, n.name, err)
		}
	}
	if n := r.storage; n != nil {
		if _, err := n.client.DeleteStackData(ctx, &storagev1.DeleteStackDataRequest{StackId: id.Bytes()}); err != nil {
			return fmt.Errorf("delete the data of stack %s from %s: %w", id, n.name, err)
		}
	}
	return nil
}

// Endpoint is one routed method and URL of a stack.
type Endpoint struct {
	Method, URL, Function string
}

// URLs lists the endpoints of a stack on the region's gateway (Gateway),
// one per path and method, in the manifest's order (gateways as declared,
// endpoints by path then method). Without a gateway there are none.
func (r *Region) URLs(id ids.StackID, m *manifest.Manifest) []Endpoint {
	g := r.Gateway()
	if g == nil {
		return nil
	}
	return StackEndpoints("http://"+g.addr, id, m)
}

// StackEndpoints lists the endpoints of stack id with manifest m on the
// gateway at base (its public URL), one per path and method, in the
// manifest's order.
func StackEndpoints(base string, id ids.StackID, m *manifest.Manifest) []Endpoint {
	base = strings.TrimSuffix(base, "/")
	var out []Endpoint
	for _, g := range m.Gateways {
		for _, e := range g.Endpoints {
			out = append(out, Endpoint{Method: e.Method, URL: base + "/" + id.String() + "/" + g.Name + e.Path, Function: e.RouteTo})
		}
	}
	return out
}

// FlushUsage blocks until every service running in this process has
// handed the usage of the calls answered so far to Usage, or ctx ends.
// Child processes report nothing to Usage.
func (r *Region) FlushUsage(ctx context.Context) error {
	var errs []error
	for _, n := range r.Runtimes() {
		if n.server != nil {
			errs = append(errs, n.server.FlushUsage(ctx))
		}
	}
	if r.gateway != nil && r.gateway.server != nil {
		errs = append(errs, r.gateway.server.FlushUsage(ctx))
	}
	if r.mudb != nil && r.mudb.server != nil {
		errs = append(errs, r.mudb.server.FlushUsage(ctx))
	}
	if r.storage != nil && r.storage.server != nil {
		errs = append(errs, r.storage.server.FlushUsage(ctx))
	}
	return errors.Join(errs...)
}

// Release lets go of a region whose children were started detached
// (ProcessOptions.Detach): it closes this process's connections and
// in-process services and leaves the children running.
func (r *Region) Release() error {
	var errs []error
	r.closeOnce.Do(func() {
		if n := r.indexer; n != nil && n.server != nil {
			errs = append(errs, n.server.Close())
		}
		for i := len(r.closers) - 1; i >= 0; i-- {
			errs = append(errs, r.closers[i]())
		}
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}

// Close stops the executors (all at once; each stops its gateway first),
// then the gateway (draining requests), then the runtimes, newest
// first, then the chain-indexer, muDB and storage, then the ledger; child processes get SIGTERM and, after ProcessOptions.StopTimeout,
// SIGKILL, and Close waits for each to exit. A node already stopped or
// killed through its Process is skipped. Safe to call twice; later calls
// return the first call's result.
func (r *Region) Close() error {
	r.closeOnce.Do(func() { r.closeErr = r.close() })
	return r.closeErr
}

func (r *Region) close() error {
	var errs []error
	errs = append(errs, r.stopExecutors())
	if g := r.gateway; g != nil {
		switch {
		case g.server != nil:
			errs = append(errs, g.server.Close())
		case g.process != nil:
			errs = append(errs, g.process.Stop())
		}
	}
	runtimes := r.Runtimes()
	for i := len(runtimes) - 1; i >= 0; i-- {
		n := runtimes[i]
		switch {
		case n.server != nil:
			errs = append(errs, n.server.Close())
		case n.process != nil:
			errs = append(errs, n.process.Stop())
		}
	}
	if n := r.indexer; n != nil {
		switch {
		case n.server != nil:
			errs = append(errs, n.server.Close())
		case n.process != nil:
			errs = append(errs, n.process.Stop())
		}
	}
	if n := r.mudb; n != nil {
		switch {
		case n.server != nil:
			errs = append(errs, n.server.Close())
		case n.process != nil:
			errs = append(errs, n.process.Stop())
		}
	}
	if n := r.storage; n != nil {
		switch {
		case n.server != nil:
			errs = append(errs, n.server.Close())
		case n.process != nil:
			errs = append(errs, n.process.Stop())
		}
	}
	// Billing stops last of the services: every sender above has handed it
	// its final records on the way down.
	if n := r.billing; n != nil {
		switch {
		case n.server != nil:
			errs = append(errs, n.server.Close())
		case n.process != nil:
			errs = append(errs, n.process.Stop())
		}
	}
	for i := len(r.closers) - 1; i >= 0; i-- {
		errs = append(errs, r.closers[i]())
	}
	return errors.Join(errs...)
}

// The defaults of ProcessOptions.
const (
	defaultStopTimeout  = 10 * time.Second // SIGTERM to SIGKILL
	defaultReadyTimeout = 60 * time.Second // process start to SERVING
)

// localGatewayLimits turns off a gateway's per-stack rate and concurrency
// limits in the regions this package starts (mu run, make cluster, the
// tests and the benchmarks): their load tests drive one stack at several
// thousand requests a second, and the gateway's own tests cover the
// limits. The binaries and the chart keep the gateway's defaults.
func localGatewayLimits(c *gateway.Config) {
	c.StackRate, c.StackConcurrency = 0, 0
}
