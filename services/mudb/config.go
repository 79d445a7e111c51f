package mudb

import (
	_ "embed"
	"net"
	"strings"
	"time"

	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/usage"
	"github.com/muprotocol/mu/services/mudb/internal/keyspace"
)

// Config configures a muDB node. DefaultConfig fills every field; a YAML
// file, MU_MUDB_<FIELD> environment variables and flags only override it.
// Sizes are in bytes, durations time.Duration values.
type Config struct {
	// Base holds the settings every service shares: node_name, grpc_addr
	// (mu.mudb.v1.MudbService, grpc.health.v1, reflection), admin_addr
	// (/metrics, /healthz, /readyz), max_message_bytes (bounds requests
	// such as a BatchPut; must exceed max_response_bytes),
	// shutdown_timeout, logging.
	service.Base

	// PDEndpoints are the host:port addresses of the production TiKV
	// cluster's placement drivers. Empty runs the embedded store instead
	// (client-go's mock TiKV, see data_dir).
	PDEndpoints []string
	// DataDir is where the embedded store keeps its data (a LevelDB
	// directory, locked while a node has it open). Empty keeps the
	// embedded store in memory only; ignored with pd_endpoints.
	DataDir string

	// MaxKeyBytes bounds a key and a key_prefix, in bytes.
	MaxKeyBytes int
	// MaxValueBytes bounds a value, in bytes.
	MaxValueBytes int
	// MaxBatchEntries bounds the items of a BatchPut, the keys of a
	// BatchGet or BatchDelete and the scans of a BatchScan or
	// BatchScanKeys.
	MaxBatchEntries int
	// MaxScanPage caps the entries of one scan page, whatever limit a
	// request asks for.
	MaxScanPage int
	// DefaultScanPage is the page size of a scan whose limit is 0.
	DefaultScanPage int
	// MaxResponseBytes bounds the keys and values of one reply, in bytes
	// (an upper bound of the encoded reply): a scan page ends early, with
	// a cursor, before the entry that would pass it; a BatchGet or Get
	// whose reply would pass it fails with RESOURCE_EXHAUSTED. It must be
	// below max_message_bytes and hold one entry of max_key_bytes and
	// max_value_bytes.
	MaxResponseBytes int
	// MaxTableNameBytes bounds a table name, in bytes (at most 255: the
	// key layout stores its length in one byte).
	MaxTableNameBytes int
	// MaxDeletePrefixKeys is the most keys one DeleteByPrefix may remove:
	// it is one transaction, so a prefix holding more fails with
	// RESOURCE_EXHAUSTED and deletes nothing.
	MaxDeletePrefixKeys int
	// MaxTxnRetries is how many times a plain (not is_atomic) write is
	// retried after a write conflict with a concurrent writer before the
	// call fails with ABORTED; atomic writes wait for locks instead.
	MaxTxnRetries int
	// MaxTxnDuration is the longest a write transaction may take from
	// its start to its commit; one that takes longer fails with ABORTED.
	// DeleteTable waits this long after hiding a table, so that no write
	// that began before can land after its keys are removed.
	MaxTxnDuration time.Duration
	// TTLSweepInterval is how often the TTL sweeper deletes keys whose
	// time to live has passed (they are invisible from their expiry on;
	// the sweeper reclaims their space).
	TTLSweepInterval time.Duration
	// TTLSweepBatch is the most expired keys the sweeper deletes in one
	// transaction.
	TTLSweepBatch int

	// StoredSampleInterval is how often the node scans every stack's keys
	// to count the bytes it stores (user keys plus values of live
	// entries), billed as DB_STORED_BYTE_SECONDS: the bytes of the last
	// sample times the seconds since. A scan reads the whole store, in
	// pages of max_scan_page keys. 0 turns the sampling and its reports
	// off: in a region where several muDB nodes share one TiKV cluster,
	// leave it on in exactly one of them, or each would bill the same
	// bytes.
	StoredSampleInterval time.Duration
	// StoredReportInterval is how often the stored byte-seconds accrued
	// since the last report are sent, one record per stack.
	StoredReportInterval time.Duration

	// BillingAddr is host:port of the billing service's gRPC API, where
	// the node's usage records go (dialled without TLS) when no sink is
	// passed in-process (Deps.Usage). Empty: usage goes to Deps.Usage, or
	// is discarded without it.
	BillingAddr string
	// Usage batches the node's usage records (DB_READS and DB_WRITES per
	// call) on their way to billing: usage_batch_size, usage_queue_size,
	// usage_flush_interval, usage_report_timeout, usage_retry_min,
	// usage_retry_max, usage_close_timeout, and the disk spool that keeps
	// unacknowledged records across a crash: usage_spool_dir (empty by
	// default: memory only), usage_spool_sync_interval,
	// usage_spool_segment_bytes.
	Usage usage.BatchConfig
}

// DefaultConfig returns the defaults, each with its unit: loopback
// listeners and an in-memory embedded store.
func DefaultConfig() Config {
	base := service.DefaultBase(
		"127.0.0.1:12020", // gRPC API
		"127.0.0.1:12021", // /metrics, /healthz, /readyz
	)
	base.MaxMessageBytes = 8 << 20 // 8 MiB per gRPC message: above max_response_bytes
	return Config{
		Base:                base,
		MaxKeyBytes:         4 << 10, // 4 KiB
		MaxValueBytes:       1 << 20, // 1 MiB
		MaxBatchEntries:     1000,    // items, keys or scans per batch
		MaxScanPage:         1000,    // entries per scan page
		DefaultScanPage:     100,     // entries per page for limit 0
		MaxResponseBytes:    4 << 20, // 4 MiB of keys and values per reply
		MaxTableNameBytes:   keyspace.MaxTableName,
		MaxDeletePrefixKeys: 100_000, // keys per DeleteByPrefix transaction
		MaxTxnRetries:       10,      // conflict retries of a plain write
		MaxTxnDuration:      5 * time.Second,
		TTLSweepInterval:    time.Second,
		TTLSweepBatch:       1000, // expired keys per sweep transaction
		// Stored bytes: a full scan every 5 minutes, reports every minute.
		StoredSampleInterval: 5 * time.Minute,
		StoredReportInterval: time.Minute,
		Usage:                usage.DefaultBatchConfig(),
	}
}

// entryOverhead is an upper bound of the bytes the protobuf encoding adds
// to one entry of a reply beyond its key, value and table name (tags and
// varint lengths).
const entryOverhead = 32

// replyOverhead bounds the rest of a reply (metered ops, a cursor's
// header and binding, a BatchScan result's framing) beyond its entries
// and cursor keys.
const replyOverhead = 256

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
	p.Positive("max_key_bytes", int64(c.MaxKeyBytes))
	p.Positive("max_value_bytes", int64(c.MaxValueBytes))
	p.Positive("max_batch_entries", int64(c.MaxBatchEntries))
	p.Positive("max_scan_page", int64(c.MaxScanPage))
	p.Positive("default_scan_page", int64(c.DefaultScanPage))
	if c.DefaultScanPage > c.MaxScanPage {
		p.Addf("default_scan_page", "%d is above max_scan_page %d", c.DefaultScanPage, c.MaxScanPage)
	}
	p.Positive("max_response_bytes", int64(c.MaxResponseBytes))
	if c.MaxResponseBytes > 0 && c.MaxKeyBytes > 0 && c.MaxValueBytes > 0 {
		// A scan page charges an entry its key twice (entry and cursor)
		// after reserving the cursor it was given (see scan.go).
		if one := 3*c.MaxKeyBytes + c.MaxValueBytes + keyspace.MaxTableName + entryOverhead + replyOverhead; c.MaxResponseBytes < one {
			p.Addf("max_response_bytes", "%d cannot hold one entry of max_key_bytes %d and max_value_bytes %d with its cursor (needs %d)",
				c.MaxResponseBytes, c.MaxKeyBytes, c.MaxValueBytes, one)
		}
		// A page holds at most max_response_bytes of entries, plus its
		// cursor (a key) and framing.
		if need := c.MaxResponseBytes + c.MaxKeyBytes + replyOverhead; need > c.MaxMessageBytes {
			p.Addf("max_response_bytes", "%d plus a cursor of max_key_bytes %d and %d bytes of framing is above max_message_bytes %d",
				c.MaxResponseBytes, c.MaxKeyBytes, replyOverhead, c.MaxMessageBytes)
		}
	}
	if c.MaxTableNameBytes <= 0 || c.MaxTableNameBytes > keyspace.MaxTableName {
		p.Addf("max_table_name_bytes", "must be 1..%d, got %d", keyspace.MaxTableName, c.MaxTableNameBytes)
	}
	p.Positive("max_delete_prefix_keys", int64(c.MaxDeletePrefixKeys))
	p.NotNegative("max_txn_retries", int64(c.MaxTxnRetries))
	p.PositiveDuration("max_txn_duration", c.MaxTxnDuration)
	p.PositiveDuration("ttl_sweep_interval", c.TTLSweepInterval)
	p.Positive("ttl_sweep_batch", int64(c.TTLSweepBatch))
	p.NotNegativeDuration("stored_sample_interval", c.StoredSampleInterval)
	if c.StoredSampleInterval > 0 {
		p.PositiveDuration("stored_report_interval", c.StoredReportInterval)
	}
	if c.BillingAddr != "" {
		if host, port, err := net.SplitHostPort(c.BillingAddr); err != nil || host == "" || port == "" {
			p.Addf("billing_addr", "%q is not host:port", c.BillingAddr)
		}
	}
	p.Add(c.Usage.Validate())
	return p.Err("mudb")
}

//go:embed config.go
var configSource []byte

// ConfigDocs returns the doc comments of every setting, for --help.
func ConfigDocs() config.Docs {
	return config.Merge(service.ConfigDocs(), usage.ConfigDocs(), config.MustParseDocs(configSource))
}
