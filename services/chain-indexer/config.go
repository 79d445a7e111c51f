package chainindexer

import (
	_ "embed"
	"strings"
	"time"

	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/ledger/backend"
	"github.com/muprotocol/mu/libs/service"
)

// Config configures a chain-indexer node. DefaultConfig fills every field; a YAML
// file, MU_CHAIN_INDEXER_<FIELD> environment variables and flags only override it.
// Durations are time.Duration values.
type Config struct {
	// Base holds the settings every service shares: node_name, grpc_addr
	// (mu.chainindexer.v1.ChainIndexerService, mu.ledger.v1.LedgerService
	// when serve_ledger is on, grpc.health.v1, reflection), admin_addr (/metrics, /healthz, /readyz),
	// max_message_bytes (bounds a List response and a Watch event),
	// shutdown_timeout, logging.
	service.Base

	// Ledger is the ledger the indexer follows: ledger_backend,
	// ledger_pd_endpoints, ledger_data_dir (local), ledger_solana_*
	// (solana). A ledger given in Deps takes precedence over it.
	Ledger LedgerConfig
	// ServeLedger also serves the hosted local ledger's writes on
	// grpc_addr as mu.ledger.v1.LedgerService: every write (update_usage,
	// which billing sends when it runs in another process, and the
	// marketplace writes the mu CLI sends) plus the state and wallet
	// balances. Every write is signature-checked as a chain checks a
	// transaction: the caller sends the public key and ed25519 signature
	// of the key the ledger rules require (the authority, the provider's
	// or stack's owner, the region's usage signer), the node holds no
	// key, and a forged, altered or replayed write is refused. Applies
	// when the node hosts the ledger (ledger_backend local, or a ledger
	// given in process); not with ledger_backend solana, whose writes are
	// transactions their senders sign and send to the Solana node
	// themselves.
	ServeLedger bool

	// DataDir is where the indexer keeps its view (the file view.bin:
	// every object, the ledger slot it reflects and the retained events)
	// and its sequence reservation (the file sequence), so a restarted
	// indexer serves at once and keeps its sequences. Empty keeps the view
	// in memory only: every start then reads the ledger afresh and numbers
	// from the wall clock, and watchers cannot resume across restarts.
	DataDir string
	// HistoryEvents is how many of the latest events the indexer keeps
	// (in memory and in the view file) for resuming watches: a Watch from
	// a sequence older than them fails with OUT_OF_RANGE.
	HistoryEvents int
	// PersistInterval is how often a changed view is written to data_dir;
	// a burst of changes in between costs one write. Close writes it last.
	PersistInterval time.Duration

	// PollInterval is the longest the indexer waits on the ledger for a
	// change before asking again (the local ledger wakes it at once for
	// writes in the same process). It bounds the staleness reported while
	// the ledger is idle.
	PollInterval time.Duration
	// ChangesBatch is the most ledger changes read per call.
	ChangesBatch int
	// LedgerTimeout bounds one ledger call (a wait gets poll_interval on
	// top); a call that takes longer counts as an error.
	LedgerTimeout time.Duration
	// RetryMin is the wait after the first failed ledger call; it doubles
	// with every further failure up to retry_max, and resets after a call
	// succeeds.
	RetryMin time.Duration
	// RetryMax caps the wait between retries of a failing ledger.
	RetryMax time.Duration

	// WatchBuffer is how many events one Watch stream may have queued
	// (not yet sent to its client); a stream that falls further behind is
	// closed with RESOURCE_EXHAUSTED, and its client resumes.
	WatchBuffer int
	// MaxWatchers bounds the Watch streams open at once; more fail with
	// RESOURCE_EXHAUSTED.
	MaxWatchers int
	// BookmarkInterval is how often a Watch stream that sent nothing else
	// gets a BOOKMARK event with its current sequence.
	BookmarkInterval time.Duration
	// MaxFilterIDs bounds the stack_ids of one ListStacks or WatchStacks
	// request.
	MaxFilterIDs int
}

// Ledger backends.
const (
	// BackendLocal is the local ledger (package libs/ledger/local): the
	// marketplace rules in Go, persisted in a TiKV store.
	BackendLocal = "local"
	// BackendSolana is the marketplace program on a Solana cluster
	// (package libs/ledger/solana), settings ledger_solana_*.
	BackendSolana = "solana"
)

// LedgerConfig selects and configures the ledger backend.
type LedgerConfig struct {
	// Backend is the ledger backend: "local" (the marketplace rules in Go
	// over a TiKV store: pd_endpoints or the embedded store in data_dir)
	// or "solana" (the marketplace program through a Solana node: the
	// ledger_solana_* settings; the indexer follows its accounts with
	// websocket subscriptions and a periodic full read).
	Backend string
	// PDEndpoints are the placement drivers of the TiKV cluster holding
	// the local ledger (backend local). Empty uses the embedded store.
	PDEndpoints []string
	// DataDir is where the embedded store keeps the local ledger (backend
	// local, without pd_endpoints); empty keeps it in memory, which only
	// makes sense for tests. Another process holding it open fails the
	// start.
	DataDir string
	// Solana configures the Solana backend (backend solana): rpc_url,
	// ws_url, program_id, fee_payer_keypair, commitment, timeouts and
	// retries, resync_interval, each as ledger_solana_<name>.
	Solana backend.Solana
}

// DefaultConfig returns the defaults, each with its unit: loopback
// listeners, the local ledger in memory and the view in memory.
func DefaultConfig() Config {
	return Config{
		Base: service.DefaultBase(
			"127.0.0.1:12040", // gRPC API
			"127.0.0.1:12041", // /metrics, /healthz, /readyz
		),
		Ledger:           LedgerConfig{Backend: BackendLocal, Solana: backend.DefaultSolana()},
		ServeLedger:      true,   // LedgerService on grpc_addr
		HistoryEvents:    10_000, // events kept for resuming watches
		PersistInterval:  time.Second,
		PollInterval:     time.Second,
		ChangesBatch:     1000, // ledger changes per read
		LedgerTimeout:    10 * time.Second,
		RetryMin:         100 * time.Millisecond,
		RetryMax:         10 * time.Second,
		WatchBuffer:      1024,   // events queued per Watch stream
		MaxWatchers:      10_000, // open Watch streams
		BookmarkInterval: 10 * time.Second,
		MaxFilterIDs:     1000, // stack_ids per request
	}
}

// Validate reports every invalid field at once, wrapped in
// service.ErrInvalidConfig.
func (c Config) Validate() error {
	var p service.Problems
	p.Add(c.Base.Validate()...)
	switch c.Ledger.Backend {
	case BackendLocal:
		for i, e := range c.Ledger.PDEndpoints {
			if strings.TrimSpace(e) == "" {
				p.Addf("ledger_pd_endpoints", "entry %d is empty", i)
			}
		}
	case BackendSolana:
		p.Add(c.Ledger.Solana.Validate("ledger_solana_"))
	default:
		p.Addf("ledger_backend", "%q: want %q or %q", c.Ledger.Backend, BackendLocal, BackendSolana)
	}
	p.Positive("history_events", int64(c.HistoryEvents))
	p.PositiveDuration("persist_interval", c.PersistInterval)
	p.PositiveDuration("poll_interval", c.PollInterval)
	p.Positive("changes_batch", int64(c.ChangesBatch))
	p.PositiveDuration("ledger_timeout", c.LedgerTimeout)
	p.PositiveDuration("retry_min", c.RetryMin)
	p.PositiveDuration("retry_max", c.RetryMax)
	if c.RetryMin > 0 && c.RetryMax > 0 && c.RetryMax < c.RetryMin {
		p.Addf("retry_max", "%v is below retry_min %v", c.RetryMax, c.RetryMin)
	}
	p.Positive("watch_buffer", int64(c.WatchBuffer))
	p.Positive("max_watchers", int64(c.MaxWatchers))
	p.PositiveDuration("bookmark_interval", c.BookmarkInterval)
	p.Positive("max_filter_ids", int64(c.MaxFilterIDs))
	return p.Err("chain-indexer")
}

//go:embed config.go
var configSource []byte

// ConfigDocs returns the doc comments of every setting, for --help.
func ConfigDocs() config.Docs {
	return config.Merge(service.ConfigDocs(), backend.ConfigDocs(), config.MustParseDocs(configSource))
}
