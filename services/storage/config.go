package storage

import (
	_ "embed"
	"encoding/hex"
	"net"
	"net/url"
	"time"

	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/usage"
	"github.com/muprotocol/mu/services/storage/internal/backend"
	"github.com/muprotocol/mu/services/storage/internal/layout"
)

// Config configures a storage node. DefaultConfig fills every field; a YAML
// file, MU_STORAGE_<FIELD> environment variables and flags only override it.
// Sizes are in bytes, durations time.Duration values.
type Config struct {
	// Base holds the settings every service shares: node_name, grpc_addr
	// (mu.storage.v1.StorageService, grpc.health.v1, reflection),
	// admin_addr (/metrics, /healthz, /readyz), max_message_bytes,
	// shutdown_timeout, logging.
	service.Base

	// HTTPAddr is the host:port of the public HTTP API: POST /binaries,
	// public reads GET /{stack}/{box}/{key} and signed URLs /signed/….
	// Port 0 picks a free port.
	HTTPAddr string
	// PublicURL is the base URL signed URLs start with, as clients reach
	// HTTPAddr (such as https://storage.example.com); empty means
	// http://<bound http_addr>.
	PublicURL string
	// DataDir holds the node's local state: the generated url signing key
	// (url-signing-key) and, when s3_endpoint is empty, every object
	// (objects/). Required unless s3_endpoint and url_signing_key are set.
	DataDir string

	// S3Endpoint is the host:port of the S3 service holding the bucket
	// (without scheme). Empty stores objects in DataDir/objects instead
	// (the embedded default of `mu run`).
	S3Endpoint string
	// S3AccessKey is the S3 access key id.
	S3AccessKey string
	// S3SecretKey is the S3 secret access key.
	S3SecretKey string
	// S3Bucket is the bucket holding every stack's objects and the
	// binaries; created at start when missing (if the key may).
	S3Bucket string
	// S3Region is the bucket's region; empty lets the client discover it.
	S3Region string
	// S3UseSSL talks HTTPS to S3Endpoint.
	S3UseSSL bool
	// S3PartSize is the multipart part size, at least 5MiB: an object up to
	// this size goes to S3 in one PUT, a larger one in parts of this size,
	// and one Put holds at most two parts in memory.
	S3PartSize int64

	// MaxObjectBytes is the largest object a Put or signed-URL PUT stores.
	MaxObjectBytes int64
	// MaxKeyBytes is the longest object key, at most 912 (so that
	// "s/<stack>/<box>/<key>" stays within S3's 1024 bytes).
	MaxKeyBytes int
	// MaxListPage is the most objects one List page returns (the default
	// page when a request asks for 0 is the smaller of 1000 and this).
	MaxListPage int
	// ChunkBytes is the size of the body chunks Get and GetBinary stream,
	// at most 1MiB.
	ChunkBytes int
	// BoxCacheTTL is how long a box's existence and visibility are cached
	// between checks of its marker object; 0 checks on every call.
	BoxCacheTTL time.Duration

	// MaxBinaryBytes is the largest function binary accepted (HTTP 413
	// beyond).
	MaxBinaryBytes int64
	// UploadMaxSkew is how far a binary upload's signing time may be from
	// this node's clock.
	UploadMaxSkew time.Duration

	// URLSigningKey is the HMAC-SHA256 key of signed URLs, as hex (at least
	// 32 bytes). Empty reads DataDir/url-signing-key, generating it on first
	// start. Nodes behind one public_url must share it: set it explicitly in
	// production.
	URLSigningKey string
	// DefaultSignedURLExpiry is the lifetime of a signed URL whose request
	// gives none.
	DefaultSignedURLExpiry time.Duration
	// MaxSignedURLExpiry is the longest lifetime a signed URL may ask for.
	MaxSignedURLExpiry time.Duration

	// HTTPReadHeaderTimeout bounds reading a request's headers on the HTTP
	// API.
	HTTPReadHeaderTimeout time.Duration
	// HTTPIdleTimeout closes idle keep-alive connections of the HTTP API.
	HTTPIdleTimeout time.Duration

	// StoredReportInterval is how often stored byte-seconds are reported
	// per stack.
	StoredReportInterval time.Duration
	// BillingAddr is host:port of the billing service's gRPC API, where
	// the node's usage records go (dialled without TLS) when no sink is
	// passed in-process (Deps.Usage). Empty: usage goes to Deps.Usage, or
	// is discarded without it.
	BillingAddr string
	// Usage batches the node's usage records (storage traffic bytes and
	// stored byte-seconds) to billing: usage_batch_size, usage_queue_size,
	// usage_flush_interval, …, and the disk spool that keeps unacknowledged
	// records across a crash: usage_spool_dir (empty by default: memory
	// only), usage_spool_sync_interval, usage_spool_segment_bytes.
	Usage usage.BatchConfig
}

// DefaultConfig returns the defaults: loopback listeners, objects in a
// local directory under ./mu-data/storage.
func DefaultConfig() Config {
	return Config{
		Base: service.DefaultBase(
			"127.0.0.1:12030", // gRPC API
			"127.0.0.1:12031", // /metrics, /healthz, /readyz
		),
		HTTPAddr:               "127.0.0.1:12032",  // public HTTP API
		DataDir:                "mu-data/storage",  // key and local objects
		S3Bucket:               "mu-region",        // one bucket for the region (S3 names: 3 to 63 characters)
		S3PartSize:             16 << 20,           // 16 MiB parts
		MaxObjectBytes:         5 << 30,            // 5 GiB per object
		MaxKeyBytes:            900,                // bytes per key
		MaxListPage:            1000,               // objects per List page
		ChunkBytes:             256 << 10,          // 256 KiB per streamed chunk
		BoxCacheTTL:            2 * time.Second,    // box marker checks
		MaxBinaryBytes:         64 << 20,           // 64 MiB per wasm binary
		UploadMaxSkew:          5 * time.Minute,    // upload signing clock skew
		DefaultSignedURLExpiry: time.Hour,          // signed URL default lifetime
		MaxSignedURLExpiry:     7 * 24 * time.Hour, // signed URL longest lifetime
		HTTPReadHeaderTimeout:  10 * time.Second,   // request headers
		HTTPIdleTimeout:        2 * time.Minute,    // idle keep-alive
		StoredReportInterval:   time.Minute,        // stored byte-seconds records
		Usage:                  usage.DefaultBatchConfig(),
	}
}

// maxChunk is the protocol's bound on one streamed chunk (storage.proto).
const maxChunk = 1 << 20

// Validate reports every invalid field at once, wrapped in
// service.ErrInvalidConfig.
func (c Config) Validate() error {
	var p service.Problems
	p.Add(c.Base.Validate()...)
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		p.Addf("http_addr", "%q is not host:port: %v", c.HTTPAddr, err)
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.Addf("public_url", "%q is not an http(s) URL", c.PublicURL)
		}
	}
	if c.S3Endpoint == "" && c.DataDir == "" {
		p.Addf("data_dir", "is required when s3_endpoint is empty (objects are kept there)")
	}
	if c.URLSigningKey == "" && c.DataDir == "" {
		p.Addf("url_signing_key", "is required when data_dir is empty")
	}
	if c.URLSigningKey != "" {
		if k, err := hex.DecodeString(c.URLSigningKey); err != nil || len(k) < 32 {
			p.Addf("url_signing_key", "must be at least 32 bytes as hex (64+ hex digits)")
		}
	}
	if c.S3Endpoint != "" {
		if c.S3Bucket == "" {
			p.Addf("s3_bucket", "is required with s3_endpoint")
		} else if len(c.S3Bucket) < 3 || len(c.S3Bucket) > 63 {
			p.Addf("s3_bucket", "%q must be 3..63 characters", c.S3Bucket)
		}
		if c.S3PartSize < backend.MinPartSize {
			p.Addf("s3_part_size", "%d is under S3's minimum part size %d", c.S3PartSize, backend.MinPartSize)
		}
	}
	p.Positive("max_object_bytes", c.MaxObjectBytes)
	if c.MaxKeyBytes <= 0 || c.MaxKeyBytes > layout.MaxKeyLimit {
		p.Addf("max_key_bytes", "%d must be in 1..%d", c.MaxKeyBytes, layout.MaxKeyLimit)
	}
	p.Positive("max_list_page", int64(c.MaxListPage))
	if c.ChunkBytes <= 0 || c.ChunkBytes > maxChunk {
		p.Addf("chunk_bytes", "%d must be in 1..%d", c.ChunkBytes, maxChunk)
	}
	if c.MaxMessageBytes < maxChunk+4096 {
		p.Addf("max_message_bytes", "%d is too small for the protocol's 1MiB chunks", c.MaxMessageBytes)
	}
	p.NotNegativeDuration("box_cache_ttl", c.BoxCacheTTL)
	p.Positive("max_binary_bytes", c.MaxBinaryBytes)
	p.PositiveDuration("upload_max_skew", c.UploadMaxSkew)
	p.PositiveDuration("default_signed_url_expiry", c.DefaultSignedURLExpiry)
	p.PositiveDuration("max_signed_url_expiry", c.MaxSignedURLExpiry)
	if c.DefaultSignedURLExpiry > c.MaxSignedURLExpiry {
		p.Addf("default_signed_url_expiry", "%v is over max_signed_url_expiry %v", c.DefaultSignedURLExpiry, c.MaxSignedURLExpiry)
	}
	p.PositiveDuration("http_read_header_timeout", c.HTTPReadHeaderTimeout)
	p.PositiveDuration("http_idle_timeout", c.HTTPIdleTimeout)
	p.PositiveDuration("stored_report_interval", c.StoredReportInterval)
	if c.BillingAddr != "" {
		if host, port, err := net.SplitHostPort(c.BillingAddr); err != nil || host == "" || port == "" {
			p.Addf("billing_addr", "%q is not host:port", c.BillingAddr)
		}
	}
	p.Add(c.Usage.Validate())
	return p.Err("storage")
}

//go:embed config.go
var configSource []byte

// ConfigDocs returns the doc comments of every setting, for --help.
func ConfigDocs() config.Docs {
	return config.Merge(service.ConfigDocs(), usage.ConfigDocs(), config.MustParseDocs(configSource))
}
