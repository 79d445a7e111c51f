package runtime

import (
	_ "embed"
	"net"
	"path/filepath"
	goruntime "runtime"
	"time"

	"github.com/muprotocol/mu/libs/chainwatch"
	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/membership"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/usage"
	"github.com/muprotocol/mu/services/runtime/internal/wasm"
)

// Config is the runtime node's configuration. DefaultConfig fills every
// field; a YAML file, MU_RUNTIME_<FIELD> environment variables and flags
// only override it. Sizes are in bytes, durations time.Duration values.
type Config struct {
	// Base holds the settings every service shares: node_name, grpc_addr
	// (mu.runtime.v1.RuntimeService, grpc.health.v1, reflection),
	// admin_addr (/metrics, /healthz, /readyz), max_message_bytes (deploys
	// carry wasm inline), shutdown_timeout, logging.
	service.Base

	// DataDir holds the node's persistent state: compiled artifacts under
	// DataDir/artifacts. Empty keeps nothing on disk.
	DataDir string

	// MaxFuelPerCall is the fuel budget of one call (about one unit per
	// wasm instruction); a region's max_giga_instructions_per_call lowers
	// it.
	MaxFuelPerCall uint64
	// CallTimeout is the wall-clock budget of one call.
	CallTimeout time.Duration
	// EpochTick is the resolution of CallTimeout: how often the engine's
	// epoch advances.
	EpochTick time.Duration
	// MaxFrameSize bounds one function protocol frame, in bytes.
	MaxFrameSize int
	// StartupFuel is the fuel budget of an instance's own start-up (the
	// guest runtime's initialisation), billed to its first call.
	StartupFuel uint64
	// StartupTimeout is the wall-clock budget of an instance's start-up.
	StartupTimeout time.Duration
	// ArtifactCacheBytes is the disk budget for compiled artifacts, in
	// bytes.
	ArtifactCacheBytes int64
	// BulkBytesPerFuel is the price of bulk memory work: one unit of fuel
	// per this many bytes filled, copied or grown by memory.fill/copy/init
	// and memory.grow, or moved by the host through stdin and stdout (a
	// power of two up to 65536). Table elements cost one fuel each.
	BulkBytesPerFuel int
	// RandomBytesPerFuel is the price of random_get: one unit of fuel per
	// this many random bytes.
	RandomBytesPerFuel int
	// MaxTables is the most tables a module may declare; Compile refuses
	// more.
	MaxTables int
	// MaxTableElements caps the elements of each table of an instance;
	// each element counts 8 bytes against the function's memory_limit.
	MaxTableElements uint64
	// MaxTrapFrames is how many wasm backtrace frames a trap's message
	// keeps.
	MaxTrapFrames int

	// MaxIdlePerFunction is the least number of idle warm instances one
	// function may keep. It keeps more when it had more calls running at
	// once within the last IdleTimeout (one to two IdleTimeouts), up to
	// MaxActivePerFunction, so a steady load finds an idle instance for
	// every call and starts none; IdleMemoryBudget still bounds them all.
	MaxIdlePerFunction int
	// MaxActivePerFunction is how many calls of one function may run at
	// once; more wait for a free slot.
	MaxActivePerFunction int
	// IdleMemoryBudget bounds the memory all idle instances of the node
	// hold, in bytes; past it the least valuable are closed. An idle
	// instance counts what it holds of its own: the pages of linear
	// memory it has written and its tables, read from the page tables
	// once the budget is near, not its declared memory (an instance
	// started from a snapshot shares the snapshot's pages it only reads
	// with every other instance, and pages it never touched hold nothing).
	// memory_limit still bounds each instance's memory.
	IdleMemoryBudget int64
	// IdleTimeout is how long an idle instance is kept.
	IdleTimeout time.Duration
	// ActiveMemoryBudget bounds the memory of the instances running calls
	// on this node, in bytes: each call reserves its function's whole
	// memory_limit (the most its instance can hold) until it ends. Calls
	// over the budget wait up to ActiveMemoryWait, then fail with
	// RESOURCE_EXHAUSTED (the gateway answers 503 with Retry-After). The
	// node's instance memory stays under ActiveMemoryBudget +
	// IdleMemoryBudget.
	ActiveMemoryBudget int64
	// ActiveMemoryWait is how long a call waits for room in
	// ActiveMemoryBudget before it is refused.
	ActiveMemoryWait time.Duration
	// CallWorkers is how many long-lived goroutines run the wasm part of
	// calls (taking an instance, the guest with its host calls, putting
	// the instance back), so that calls find a grown stack and warm caches
	// instead of starting on a fresh goroutine; the most recently idle one
	// takes the next call. Default: 2 × GOMAXPROCS.
	CallWorkers int
	// CallWorkerWait protects calls from long calls of others: a call
	// that finds every call worker busy waits for one, in order, but once
	// it has waited this long while every worker has been in its current
	// call for longer (functions spinning until their deadline, say), it
	// runs on its own goroutine instead. Calls that only queue behind short ones
	// under load keep waiting (their deadline bounds it). While a worker is
	// inside a db or storage call (which may block for long), calls that
	// find no worker free run on their own goroutines at once. 0: never
	// wait.
	CallWorkerWait time.Duration
	// PrewarmInstances is how many instances of each function are started
	// at deploy, ahead of the first request.
	PrewarmInstances int
	// SnapshotStart starts the instances of each reactor function from a
	// snapshot of its start-up, built once per deploy in the background
	// after the deploy completes (or loaded from the artifact cache):
	// instances started once it is ready skip the Go runtime's
	// initialisation and are billed the start-up fuel the snapshot build
	// burnt; those started before start normally. A function whose
	// start-up cannot be snapshotted (it reads the realtime clock, writes
	// logs, changes a table...) starts normally; the stack's logs say why.
	SnapshotStart bool
	// SnapshotBuildConcurrency is how many deployed stacks have their
	// snapshots built (or loaded from the artifact cache) at a time, in
	// the background; the others queue, in deploy order. A stack
	// undeployed or redeployed before its turn skips its build.
	SnapshotBuildConcurrency int

	// MinMemory is the least memory_limit a function may declare, in
	// bytes.
	MinMemory uint64
	// MaxMemory is the largest memory_limit a function may declare, in
	// bytes.
	MaxMemory uint64
	// LogBuffer is how many log lines a slow StreamLogs subscriber may lag
	// before lines are dropped for it.
	LogBuffer int
	// LogHistoryLines is how many recent log lines the node keeps per
	// stack for StreamLogs' tail (the gateway's /_mu/stacks/{id}/logs,
	// `mu logs`), oldest evicted first; a stack's lines are dropped when it
	// leaves the node. Each kept body is cut to 16 KiB, the limit of a
	// stderr line (the engine's max stderr line). 0 keeps no history.
	LogHistoryLines int
	// LogHistoryBytes bounds the kept lines of all stacks together, in
	// bytes (bodies and function names plus 128 bytes a line): past it
	// the oldest line of any stack goes, so stacks that log a lot cannot
	// grow the node's memory. 200 lines of 16 KiB are 3.2 MiB a stack.
	LogHistoryBytes int64

	// BillingAddr is host:port of the billing service's gRPC API, where
	// the node's usage records and sampled receipts go (dialled without
	// TLS) when no sink is passed in-process (Deps.Usage, Deps.Receipts).
	// Empty: usage goes to Deps.Usage only.
	BillingAddr string

	// MudbAddr is host:port of the muDB service's gRPC API; empty:
	// functions' db requests get a DbError saying muDB is not configured
	// (stacks that declare tables still deploy). The node dials it without
	// TLS, with max_message_bytes as the message limit both ways. A muDB
	// passed in-process (Deps.Mudb) takes precedence.
	MudbAddr string

	// StorageAddr is host:port of the storage service's gRPC API; empty:
	// functions' storage requests get a StorageError saying storage is not
	// configured (stacks that declare boxes still deploy), and binaries
	// must come inline with the deploy or from the artifact cache. The node
	// dials it without TLS, with max_message_bytes as the message limit
	// both ways. A storage service passed in-process (Deps.Storage) takes
	// precedence.
	StorageAddr string
	// MaxUploadsPerCall is how many chunked uploads (StoragePutBegin) one
	// call may have open at once; each holds a stream to the storage
	// service until it ends or the call does.
	MaxUploadsPerCall int
	// MaxListPage caps the objects of one StorageListPage reply (the
	// storage service's own page limit is 1000).
	MaxListPage int

	// ChainIndexerAddr is host:port of the chain indexer's gRPC API; empty
	// (the default) leaves the node to the stacks it is given with Deploy
	// and Undeploy. When set, the node follows the stacks of RegionID on
	// the marketplace: an active, enabled stack is deployed at its ledger
	// revision (binaries fetched from storage), a disabled one has its
	// instances dropped and its calls refused (FAILED_PRECONDITION,
	// STACK_DISABLED) until it is enabled again, a deleted one is
	// undeployed and its tables and boxes deleted; the region's
	// max_giga_instructions_per_call caps the fuel of a call and its
	// memory_limit bounds apply to every deploy. An unreachable indexer
	// changes nothing: the node keeps serving what it has. The node dials
	// it without TLS, with max_message_bytes as the message limit. A chain
	// indexer passed in-process (Deps.ChainIndexer) takes precedence.
	ChainIndexerAddr string
	// RegionID is the base58 address (32 bytes) of the marketplace region
	// this node serves: only its stacks are deployed, and its limits apply.
	// Required with chain_indexer_addr.
	RegionID string
	// ChainRetry spaces the node's retries towards the chain: reconnecting
	// a Watch stream, redeploying a stack whose deploy failed, deleting the
	// data of a deleted stack again (chain_retry_initial, doubled per
	// failure up to chain_retry_max, with jitter).
	ChainRetry chainwatch.Backoff
	// ChainDeployWorkers is how many stacks from the chain the node
	// deploys, undeploys or deletes at once; the others wait their turn,
	// so one failing or slow stack never holds up the rest.
	ChainDeployWorkers int
	// ChainDeployTimeout bounds one deploy from the chain (fetching the
	// binaries, compiling, prewarming) and one deletion of a stack's data;
	// a deploy that runs out of it is retried.
	ChainDeployTimeout time.Duration

	// Cluster makes the node a member of its region's gossip list
	// (hashicorp/memberlist), so that it owns the stacks closest to it by
	// XOR distance (design section 5) and gateways route them to it:
	// cluster_bind_addr (empty: a node alone, owning every stack),
	// cluster_advertise_addr, cluster_join, cluster_secret_key and the
	// probe and gossip timings.
	Cluster membership.Config
	// ReleaseGrace is how long the node keeps serving a stack it no longer
	// owns (after a node joined closer to it, or after serving calls for
	// it while ownership moved) before it drops the stack's instances and
	// modules. Calls that reach it meanwhile are served.
	ReleaseGrace time.Duration
	// ChainSyncWait is how long a call for a stack the node has not
	// deployed waits for the node to catch up with the chain (its first
	// snapshots of the region and its stacks) before it is refused with
	// UNAVAILABLE, which gateways retry on another node.
	ChainSyncWait time.Duration
	// OnDemandDeploys bounds the deploys that calls start at once (calls
	// for stacks the node serves without having deployed them, while
	// ownership moves); others wait their turn.
	OnDemandDeploys int
	// StandbyCompile compiles, into the artifact cache (under data_dir),
	// the binaries of the stacks for which the node is the next candidate
	// after their owner, so that taking them over when the owner dies
	// loads artifacts instead of compiling. Off without a data_dir.
	StandbyCompile bool
	// LeaveDrain is how long a node that is shutting down keeps serving
	// after it has left the gossip list, so that gateways learn it is gone
	// before its listeners close; in-flight calls then get
	// shutdown_timeout to finish. Used only with cluster_bind_addr.
	LeaveDrain time.Duration

	// Usage batches the node's usage records (megabyte-instructions per
	// call) on their way to billing: usage_batch_size, usage_queue_size,
	// usage_flush_interval, usage_report_timeout, usage_retry_min,
	// usage_retry_max, usage_close_timeout, and the disk spool that keeps
	// unacknowledged records across a crash: usage_spool_dir (empty by
	// default: memory only), usage_spool_sync_interval,
	// usage_spool_segment_bytes.
	Usage usage.BatchConfig

	// Receipts: checkable bills (receipts.go, `mu audit`).

	// ReceiptSampleRate is the share of calls, 0..1, that run on a fresh
	// instance with their clock and random reads recorded and produce a
	// receipt (sent to billing, which signs and keeps it) that anyone can
	// re-run with `mu audit`; 0 keeps no receipts, 1 makes one per call.
	// Needs a receipt sink (billing).
	ReceiptSampleRate float64
	// ReceiptMaxRequestBytes is the largest request, in bytes (protobuf
	// encoding), a receipt carries; a larger one is hashed but not kept
	// (the receipt says "request_not_kept" and cannot be re-run).
	ReceiptMaxRequestBytes int
	// ReceiptQueueSize is how many receipts wait for the background sender
	// at most; receipts beyond it are dropped and counted
	// (mu_runtime_receipts_total{result="dropped"}).
	ReceiptQueueSize int
	// ReceiptBatchSize is the most receipts sent to billing in one call.
	ReceiptBatchSize int
	// ReceiptSendTimeout bounds one send of receipts to billing; a batch
	// that fails is dropped and counted (receipts are evidence, not money).
	ReceiptSendTimeout time.Duration
}

// wasmDefaults are the engine's own defaults (internal/wasm documents each).
var wasmDefaults = wasm.DefaultConfig()

// DefaultConfig returns the defaults, each with its unit.
func DefaultConfig() Config {
	lim := manifest.DefaultLimits()
	base := service.DefaultBase(
		"127.0.0.1:12010", // RuntimeService
		"127.0.0.1:12011", // /metrics, /healthz, /readyz
	)
	base.MaxMessageBytes = 64 << 20 // 64 MiB per gRPC message: deploys carry wasm inline
	return Config{
		Base:                     base,
		MaxFuelPerCall:           5_000_000_000,    // 5 G instructions per call
		CallTimeout:              10 * time.Second, // wall clock per call
		EpochTick:                5 * time.Millisecond,
		MaxFrameSize:             fnproto.DefaultMaxFrameSize, // 8 MiB per protocol frame, as the gateway assumes
		StartupFuel:              500_000_000,                 // 0.5 G instructions of guest start-up
		StartupTimeout:           10 * time.Second,
		ArtifactCacheBytes:       2 << 30, // 2 GiB of compiled artifacts
		BulkBytesPerFuel:         wasmDefaults.BulkBytesPerFuel,
		RandomBytesPerFuel:       wasmDefaults.RandomBytesPerFuel,
		MaxTables:                wasmDefaults.MaxTables,
		MaxTableElements:         wasmDefaults.MaxTableElements,
		MaxTrapFrames:            wasmDefaults.MaxTrapFrames,
		MaxIdlePerFunction:       4,
		MaxActivePerFunction:     64,
		IdleMemoryBudget:         1 << 30, // 1 GiB held by idle instances (pages written, tables)
		IdleTimeout:              5 * time.Minute,
		ActiveMemoryBudget:       8 << 30,                     // 8 GiB reserved by running calls: 128 calls of 64 MiB
		ActiveMemoryWait:         500 * time.Millisecond,      // then 503 with Retry-After
		CallWorkers:              2 * goruntime.GOMAXPROCS(0), // hot goroutines running calls
		CallWorkerWait:           5 * time.Millisecond,        // one epoch tick; then a call runs on its own goroutine
		PrewarmInstances:         1,
		SnapshotStart:            true,
		SnapshotBuildConcurrency: 1, // one background snapshot build at a time: deploys and calls keep the other cores
		MinMemory:                lim.MinMemory,
		MaxMemory:                lim.MaxMemory,
		LogBuffer:                1024,     // lines per log subscriber
		LogHistoryLines:          200,      // recent lines kept per stack
		LogHistoryBytes:          64 << 20, // 64 MiB of recent lines on the node
		MaxUploadsPerCall:        4,        // open uploads per call
		MaxListPage:              1000,     // objects per StorageListPage
		ChainRetry:               chainwatch.DefaultBackoff(),
		ChainDeployWorkers:       2,               // stacks deployed at once
		ChainDeployTimeout:       2 * time.Minute, // fetch, compile and prewarm one stack
		Cluster:                  membership.DefaultConfig(),
		ReleaseGrace:             30 * time.Second, // a stack stays after its ownership moved
		StandbyCompile:           true,
		ChainSyncWait:            2 * time.Second, // a call waits this long for a node that is still catching up
		OnDemandDeploys:          4,               // deploys started by calls at once
		LeaveDrain:               2 * time.Second, // serving after leaving the ring, before the listeners close
		Usage:                    usage.DefaultBatchConfig(),

		ReceiptSampleRate:      0.01,     // one call in a hundred gets a receipt
		ReceiptMaxRequestBytes: 64 << 10, // 64 KiB of request kept in a receipt
		ReceiptQueueSize:       1024,     // receipts waiting for the sender
		ReceiptBatchSize:       100,      // receipts per ReportReceipts
		ReceiptSendTimeout:     5 * time.Second,
	}
}

// Validate reports every invalid field at once, wrapped in
// service.ErrInvalidConfig.
func (c Config) Validate() error {
	var p service.Problems
	p.Add(c.Base.Validate()...)
	if c.MaxFuelPerCall == 0 {
		p.Addf("max_fuel_per_call", "must be positive")
	}
	if c.StartupFuel == 0 {
		p.Addf("startup_fuel", "must be positive")
	}
	p.PositiveDuration("call_timeout", c.CallTimeout)
	p.PositiveDuration("epoch_tick", c.EpochTick)
	p.PositiveDuration("startup_timeout", c.StartupTimeout)
	p.PositiveDuration("idle_timeout", c.IdleTimeout)
	if c.EpochTick > 0 && c.CallTimeout > 0 && c.EpochTick > c.CallTimeout {
		p.Addf("epoch_tick", "%v is longer than call_timeout %v", c.EpochTick, c.CallTimeout)
	}
	if c.MaxFrameSize < 1<<10 {
		p.Addf("max_frame_size", "must be at least 1 KiB, got %d", c.MaxFrameSize)
	}
	if c.MaxMessageBytes < 1<<20 {
		p.Addf("max_message_bytes", "must be at least 1 MiB, got %d", c.MaxMessageBytes)
	}
	p.NotNegative("artifact_cache_bytes", c.ArtifactCacheBytes)
	p.NotNegative("max_idle_per_function", int64(c.MaxIdlePerFunction))
	p.Positive("max_active_per_function", int64(c.MaxActivePerFunction))
	p.NotNegative("idle_memory_budget", c.IdleMemoryBudget)
	p.NotNegativeDuration("active_memory_wait", c.ActiveMemoryWait)
	if c.ActiveMemoryBudget <= 0 || uint64(c.ActiveMemoryBudget) < c.MaxMemory {
		p.Addf("active_memory_budget", "%d must hold at least one call of the largest memory_limit, max_memory %d", c.ActiveMemoryBudget, c.MaxMemory)
	}
	p.Positive("call_workers", int64(c.CallWorkers))
	p.NotNegativeDuration("call_worker_wait", c.CallWorkerWait)
	p.NotNegative("prewarm_instances", int64(c.PrewarmInstances))
	p.Positive("snapshot_build_concurrency", int64(c.SnapshotBuildConcurrency))
	if c.MinMemory == 0 || c.MaxMemory < c.MinMemory {
		p.Addf("min_memory", "[%d, %d] (min_memory, max_memory) is not a range", c.MinMemory, c.MaxMemory)
	}
	p.Positive("log_buffer", int64(c.LogBuffer))
	p.NotNegative("log_history_lines", int64(c.LogHistoryLines))
	p.Positive("log_history_bytes", c.LogHistoryBytes)
	if c.BillingAddr != "" {
		if host, port, err := net.SplitHostPort(c.BillingAddr); err != nil || host == "" || port == "" {
			p.Addf("billing_addr", "%q is not host:port", c.BillingAddr)
		}
	}
	if c.MudbAddr != "" {
		if host, port, err := net.SplitHostPort(c.MudbAddr); err != nil || host == "" || port == "" {
			p.Addf("mudb_addr", "%q is not host:port", c.MudbAddr)
		}
	}
	if c.StorageAddr != "" {
		if host, port, err := net.SplitHostPort(c.StorageAddr); err != nil || host == "" || port == "" {
			p.Addf("storage_addr", "%q is not host:port", c.StorageAddr)
		}
	}
	if c.ChainIndexerAddr != "" {
		if host, port, err := net.SplitHostPort(c.ChainIndexerAddr); err != nil || host == "" || port == "" {
			p.Addf("chain_indexer_addr", "%q is not host:port", c.ChainIndexerAddr)
		}
		if c.RegionID == "" {
			p.Addf("region_id", "is required with chain_indexer_addr (the base58 address of the region whose stacks this node runs)")
		}
	}
	if c.RegionID != "" {
		if _, err := ledger.ParsePubkey(c.RegionID); err != nil {
			p.Addf("region_id", "%v", err)
		}
	}
	p.Add(c.ChainRetry.Validate())
	p.Positive("chain_deploy_workers", int64(c.ChainDeployWorkers))
	p.PositiveDuration("chain_deploy_timeout", c.ChainDeployTimeout)
	p.Add(c.Cluster.Validate())
	p.NotNegativeDuration("release_grace", c.ReleaseGrace)
	p.NotNegativeDuration("leave_drain", c.LeaveDrain)
	p.NotNegativeDuration("chain_sync_wait", c.ChainSyncWait)
	p.Positive("on_demand_deploys", int64(c.OnDemandDeploys))
	p.Positive("max_uploads_per_call", int64(c.MaxUploadsPerCall))
	if c.MaxListPage < 1 || c.MaxListPage > 1000 {
		p.Addf("max_list_page", "must be 1..1000, got %d", c.MaxListPage)
	}
	p.Add(c.engineConfig().Validate(), c.Usage.Validate())
	c.validateReceipts(&p)
	return p.Err("runtime")
}

// engineConfig is the wasm engine's share of the settings.
func (c Config) engineConfig() wasm.Config {
	w := wasm.DefaultConfig()
	w.CacheDir = c.artifactDir()
	w.CacheMaxBytes = c.ArtifactCacheBytes
	w.EpochTick = c.EpochTick
	w.MaxFrameSize = c.MaxFrameSize
	w.StartupFuel = c.StartupFuel
	w.StartupTimeout = c.StartupTimeout
	w.BulkBytesPerFuel = c.BulkBytesPerFuel
	w.RandomBytesPerFuel = c.RandomBytesPerFuel
	w.MaxTables = c.MaxTables
	w.MaxTableElements = c.MaxTableElements
	w.MaxTrapFrames = c.MaxTrapFrames
	return w
}

func (c Config) artifactDir() string {
	if c.DataDir == "" {
		return ""
	}
	return filepath.Join(c.DataDir, "artifacts")
}

//go:embed config.go
var configSource []byte

// ConfigDocs returns the doc comments of every runtime setting, for --help.
func ConfigDocs() config.Docs {
	return config.Merge(service.ConfigDocs(), usage.ConfigDocs(), chainwatch.ConfigDocs(), membership.ConfigDocs(), config.MustParseDocs(configSource))
}
