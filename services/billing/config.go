package billing

import (
	_ "embed"
	"strings"
	"time"

	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/backend"
	"github.com/muprotocol/mu/libs/service"
)

// Config configures a billing node. DefaultConfig fills every field; a YAML
// file, MU_BILLING_<FIELD> environment variables and flags only override it.
// Sizes are in bytes, durations time.Duration values.
type Config struct {
	// Base holds the settings every service shares: node_name, grpc_addr
	// (mu.billing.v1.BillingService, grpc.health.v1, reflection),
	// admin_addr (/metrics, /healthz, /readyz), max_message_bytes (must
	// hold a ReportUsage of max_batch_records records), shutdown_timeout,
	// logging.
	service.Base

	// PDEndpoints are the host:port addresses of the production TiKV
	// cluster's placement drivers. Empty runs the embedded store instead
	// (client-go's mock TiKV, see data_dir).
	PDEndpoints []string
	// DataDir is where the embedded store keeps its data (a LevelDB
	// directory, locked while a node has it open). Empty keeps the
	// embedded store in memory only; ignored with pd_endpoints.
	DataDir string

	// RegionID is the base58 address (chain indexer Region.id) of the
	// region this node bills. Records and receipts without a region_id get
	// it; records naming another region are refused. Required to settle:
	// without it usage is persisted and queryable but never settled.
	RegionID string
	// SignerKeyFile is the Solana JSON keypair file of the region's
	// authorized usage signer: it signs every update_usage and every
	// receipt. Empty: no settlement and no receipts (unless the embedding
	// program passes a signer in Deps).
	SignerKeyFile string
	// LedgerAddr is the gRPC address of the mu.ledger.v1.LedgerService
	// that settlements are sent to (the process hosting the ledger), with
	// ledger_backend remote. Empty: no settlement (unless the embedding
	// program passes a ledger in Deps).
	LedgerAddr string
	// LedgerBackend is where settlements go: "remote" sends them to
	// ledger_addr (a chain indexer hosting the local ledger); "solana"
	// sends each update_usage as a transaction of its own to the
	// marketplace program through a Solana node (the ledger_solana_*
	// settings), signed by the usage signer, its fee paid by
	// ledger_solana_fee_payer_keypair. A write's signature covers a recent
	// blockhash that only its sender knows, so Solana writes cannot be
	// forwarded through a chain indexer.
	LedgerBackend string
	// LedgerSolana configures the Solana backend (ledger_backend solana):
	// ledger_solana_rpc_url, ledger_solana_ws_url,
	// ledger_solana_program_id, ledger_solana_fee_payer_keypair, ...
	// (the chain indexer's settings of the same names).
	LedgerSolana backend.Solana
	// ChainIndexerAddr is the gRPC address of the chain indexer billing
	// asks for stacks (owner, region), regions (rates, min_escrow_balance)
	// and escrow balances. Empty: costs, escrow status and the
	// under-minimum check are unavailable.
	ChainIndexerAddr string
	// IndexerTimeout bounds one call to the chain indexer.
	IndexerTimeout time.Duration

	// SettleInterval is the report interval: how often every stack's
	// unsettled usage is settled on the ledger.
	SettleInterval time.Duration
	// SettleTimeout bounds one update_usage call to the ledger; a call
	// that runs out stays pending and is retried with the same seed.
	SettleTimeout time.Duration

	// MaxBatchRecords is the most records one ReportUsage may carry
	// (INVALID_ARGUMENT beyond it). It must be at least the senders'
	// usage_batch_size (default 1000), or their batches are refused
	// forever.
	MaxBatchRecords int
	// MaxCommitRecords is the most records the group committer puts in
	// one TiKV transaction (concurrent ReportUsage calls are committed
	// together up to it); at least max_batch_records.
	MaxCommitRecords int
	// CommitTimeout bounds one group commit; a commit that runs out fails
	// its calls with UNAVAILABLE (the senders retry).
	CommitTimeout time.Duration
	// MaxTxnRetries is how many times a transaction is re-run after a
	// write conflict with a concurrent writer before the call fails with
	// UNAVAILABLE.
	MaxTxnRetries int
	// BucketSize is the time resolution of usage queries: usage is summed
	// per stack, kind and bucket of this length (by UsageRecord.time).
	// Buckets are stored by their start time, so changing it later keeps
	// old buckets readable.
	BucketSize time.Duration
	// KeyRetention is how long idempotency keys are remembered: a record
	// retried after this is counted again. Keep it far above the senders'
	// retry horizon.
	KeyRetention time.Duration
	// SweepInterval is how often keys older than key_retention are
	// deleted.
	SweepInterval time.Duration
	// SweepBatch is the most keys one sweep transaction deletes.
	SweepBatch int
	// BurnWindow is the window over which GetUsage measures an escrow's
	// burn rate (tokens charged per hour) to project its time left.
	BurnWindow time.Duration

	// MaxReceiptBytes bounds one receipt's protobuf encoding.
	MaxReceiptBytes int
	// MaxReceiptBatch is the most receipts one ReportReceipts may carry.
	MaxReceiptBatch int

	// DefaultPageSize is the page size of a list call whose page_size is 0.
	DefaultPageSize int
	// MaxPageSize caps the page size of list calls, whatever they ask.
	MaxPageSize int
}

// Ledger backends of ledger_backend.
const (
	// LedgerRemote settles through mu.ledger.v1.LedgerService at
	// ledger_addr.
	LedgerRemote = "remote"
	// LedgerSolana settles on the marketplace program (ledger_solana_*).
	LedgerSolana = "solana"
)

// maxRecordBytes bounds the protobuf encoding of one UsageRecord with a
// 128-byte key (framing included), so that max_message_bytes can be
// checked against max_batch_records.
const maxRecordBytes = 256

// DefaultConfig returns the defaults, each with its unit: loopback
// listeners and an in-memory embedded store.
func DefaultConfig() Config {
	base := service.DefaultBase(
		"127.0.0.1:12050", // gRPC API
		"127.0.0.1:12051", // /metrics, /healthz, /readyz
	)
	base.MaxMessageBytes = 8 << 20 // 8 MiB: holds max_batch_records records
	return Config{
		Base:             base,
		LedgerBackend:    LedgerRemote,
		LedgerSolana:     backend.DefaultSolana(),
		IndexerTimeout:   5 * time.Second,
		SettleInterval:   30 * time.Second,
		SettleTimeout:    20 * time.Second,
		MaxBatchRecords:  10_000, // records per ReportUsage
		MaxCommitRecords: 50_000, // records per group-commit transaction
		CommitTimeout:    10 * time.Second,
		MaxTxnRetries:    10,                 // conflict retries
		BucketSize:       time.Hour,          // query resolution
		KeyRetention:     7 * 24 * time.Hour, // idempotency keys kept 7 days
		SweepInterval:    time.Minute,
		SweepBatch:       10_000,    // keys per sweep transaction
		BurnWindow:       time.Hour, // burn rate window
		MaxReceiptBytes:  256 << 10, // 256 KiB per receipt
		MaxReceiptBatch:  100,       // receipts per ReportReceipts
		DefaultPageSize:  100,
		MaxPageSize:      1000,
	}
}

// Validate reports every invalid field at once, wrapped in
// service.ErrInvalidConfig.
func (c Config) Validate() error {
	var p service.Problems
	p.Add(c.Base.Validate()...)
	for i, e := range c.PDEndpoints {
		if strings.TrimSpace(e) == "" {
			p.Addf("pd_endpoints", "entry %d is empty", i)
		}
	}
	if c.RegionID != "" {
		if _, err := ledger.ParsePubkey(c.RegionID); err != nil {
			p.Addf("region_id", "%v", err)
		}
	}
	switch c.LedgerBackend {
	case LedgerRemote:
	case LedgerSolana:
		p.Add(c.LedgerSolana.Validate("ledger_solana_"))
		if c.LedgerAddr != "" {
			p.Addf("ledger_addr", "%q is set with ledger_backend solana, which settles on the program itself: leave it empty", c.LedgerAddr)
		}
	default:
		p.Addf("ledger_backend", "%q: want %q or %q", c.LedgerBackend, LedgerRemote, LedgerSolana)
	}
	p.PositiveDuration("indexer_timeout", c.IndexerTimeout)
	p.PositiveDuration("settle_interval", c.SettleInterval)
	p.PositiveDuration("settle_timeout", c.SettleTimeout)
	p.Positive("max_batch_records", int64(c.MaxBatchRecords))
	if c.MaxBatchRecords > 0 && c.MaxBatchRecords < 1000 {
		p.Addf("max_batch_records", "%d is below the senders' default usage_batch_size 1000", c.MaxBatchRecords)
	}
	if c.MaxBatchRecords > 0 && c.MaxMessageBytes > 0 && c.MaxBatchRecords*maxRecordBytes > c.MaxMessageBytes {
		p.Addf("max_batch_records", "%d records of up to %d bytes do not fit max_message_bytes %d",
			c.MaxBatchRecords, maxRecordBytes, c.MaxMessageBytes)
	}
	p.Positive("max_commit_records", int64(c.MaxCommitRecords))
	if c.MaxCommitRecords < c.MaxBatchRecords {
		p.Addf("max_commit_records", "%d is below max_batch_records %d", c.MaxCommitRecords, c.MaxBatchRecords)
	}
	p.PositiveDuration("commit_timeout", c.CommitTimeout)
	p.NotNegative("max_txn_retries", int64(c.MaxTxnRetries))
	p.PositiveDuration("bucket_size", c.BucketSize)
	p.PositiveDuration("key_retention", c.KeyRetention)
	p.PositiveDuration("sweep_interval", c.SweepInterval)
	p.Positive("sweep_batch", int64(c.SweepBatch))
	p.PositiveDuration("burn_window", c.BurnWindow)
	p.Positive("max_receipt_bytes", int64(c.MaxReceiptBytes))
	if c.MaxReceiptBytes > 0 && c.MaxMessageBytes > 0 && c.MaxReceiptBytes > c.MaxMessageBytes {
		p.Addf("max_receipt_bytes", "%d is above max_message_bytes %d", c.MaxReceiptBytes, c.MaxMessageBytes)
	}
	p.Positive("max_receipt_batch", int64(c.MaxReceiptBatch))
	p.Positive("default_page_size", int64(c.DefaultPageSize))
	p.Positive("max_page_size", int64(c.MaxPageSize))
	if c.DefaultPageSize > c.MaxPageSize {
		p.Addf("default_page_size", "%d is above max_page_size %d", c.DefaultPageSize, c.MaxPageSize)
	}
	return p.Err("billing")
}

//go:embed config.go
var configSource []byte

// ConfigDocs returns the doc comments of every setting, for --help.
func ConfigDocs() config.Docs {
	return config.Merge(service.ConfigDocs(), backend.ConfigDocs(), config.MustParseDocs(configSource))
}
