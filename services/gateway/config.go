package gateway

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/muprotocol/mu/libs/chainwatch"
	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/membership"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/usage"
)

// Config configures a gateway. Start from DefaultConfig; a YAML file,
// MU_GATEWAY_<FIELD> environment variables and flags only override it.
// Sizes are in bytes, durations are time.Duration values ("30s" in YAML).
type Config struct {
	// Base holds the settings every service shares: node_name, grpc_addr
	// (mu.gateway.v1.GatewayService, grpc.health.v1, reflection),
	// admin_addr (/metrics, /healthz, /readyz), shutdown_timeout, logging.
	service.Base

	// HTTPAddr is the host:port of the public HTTP listener that serves
	// /{stack_id}/{gateway}/{path} and /_mu/health. Port 0 picks a free
	// port; Server.Addr reports it.
	HTTPAddr string
	// PublicURL is the base URL under which clients reach HTTPAddr, used
	// for the full URLs that GatewayService.Routes returns, e.g.
	// "https://gw.example.com". Empty means "http://" + the bound HTTPAddr.
	PublicURL string

	// MaxRequestBodyBytes is the largest request body accepted, in bytes;
	// a larger one gets 413. A request reaches its function as one
	// function protocol frame, so the body, the request line and headers
	// that MaxHeaderBytes and MaxQueryParams allow, and 4 KiB for the
	// endpoint's route_to and path parameter names must fit
	// RuntimeMaxFrameSize together: Validate refuses a larger body and
	// names the largest that fits. The default is that largest body for
	// the other defaults.
	MaxRequestBodyBytes int64
	// MaxHeaderBytes bounds the request line plus the request headers, in
	// bytes (counted as "Name: value\r\n" per field); more gets 431.
	MaxHeaderBytes int
	// MaxQueryParams is the most parameters a query string may have (its
	// '&'-separated settings; empty ones are not counted); more gets 400.
	MaxQueryParams int
	// RuntimeMaxFrameSize is the max_frame_size of the runtimes behind
	// this gateway, in bytes: the largest function protocol frame (kind
	// plus body) they accept. The gateway cannot ask a remote runtime, so
	// set it to the runtimes' value. A request whose ExecuteFunction frame
	// would be larger gets 413 from the gateway itself.
	RuntimeMaxFrameSize int
	// MaxResponseBytes is the largest response body a function may return,
	// in bytes; a larger one gets 502.
	MaxResponseBytes int64
	// MaxResponseHeaderBytes bounds the response headers a function may
	// return (names plus values), in bytes; more gets 502.
	MaxResponseHeaderBytes int

	// InvokeTimeout is the longest the gateway waits for Runtime.Invoke;
	// past it the request gets 504. Must be below WriteTimeout.
	InvokeTimeout time.Duration
	// InvokeAttempts is how many runtimes an idempotent request (GET,
	// HEAD, PUT, DELETE) may try, the stack's owner first and then the
	// next-closest nodes, when a runtime is unreachable or answers gRPC
	// UNAVAILABLE (it died, restarts or shuts down). All attempts share
	// the one InvokeTimeout. Other methods are never replayed: they get
	// 503 runtime_unavailable with Retry-After. 1 turns retries off.
	InvokeAttempts int
	// ReadHeaderTimeout is the time allowed to read the request line and
	// headers (slow-loris protection).
	ReadHeaderTimeout time.Duration
	// ReadTimeout is the time allowed to read a whole request, body
	// included. 0 means no limit.
	ReadTimeout time.Duration
	// WriteTimeout is the time from the end of the request headers to the
	// end of the response write. 0 means no limit.
	WriteTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request.
	IdleTimeout time.Duration

	// MaxConnections is the most client connections the public HTTP
	// listener holds at once, idle keep-alive ones included; further
	// clients wait in the kernel's accept queue (the listen backlog:
	// connected, not yet read from) until one closes, and once that
	// backlog is full the kernel does not complete further handshakes.
	// 0 means no cap.
	MaxConnections int

	// StackRate is how many requests per second each stack may make at
	// this gateway: a token bucket per stack of StackBurst requests,
	// refilled at StackRate a second (fractions allowed: 0.5 is one
	// every 2 s). A request over it gets 429 rate_limited with a
	// Retry-After of the whole seconds until a token is back (at least
	// 1), and is not billed. 0 means no rate limit. The limits are per
	// gateway: behind N gateways a stack may make up to N times this.
	StackRate float64
	// StackBurst is the size of each stack's token bucket: the requests a
	// stack may make at once after a quiet spell. At least 1 when
	// StackRate is set.
	StackBurst int
	// StackConcurrency is how many requests of one stack this gateway
	// serves at once, from the limit check to the answer written; one
	// more gets 429 too_many_requests_in_flight with Retry-After: 1, and
	// is not billed. 0 means no limit.
	StackConcurrency int
	// StackLimits overrides StackRate, StackBurst and StackConcurrency
	// for some stacks, one entry per stack:
	// "BASE58_ID rate=R burst=B concurrency=C", fields separated by
	// spaces; a key left out keeps the region's default for that stack
	// (rate=0 or concurrency=0 lifts that limit). In YAML, a list of such
	// strings; in the environment and flags, comma-separated. A stack's
	// limits are fixed when it is first installed on the gateway.
	StackLimits []string
	// OverloadRetryAfter is what the Retry-After header of a 503
	// runtime_overloaded or runtime_unavailable tells the client to wait,
	// rounded up to whole seconds.
	OverloadRetryAfter time.Duration

	// StatusTimeout bounds the RuntimeService.Status call that
	// GET /_mu/stacks/{stack_id} makes to the stack's owner runtime; past
	// it the answer's owner.error says the runtime did not answer.
	StatusTimeout time.Duration
	// ResponseHistory is how long the gateway keeps each stack's count of
	// answered requests by status class (2xx, 3xx, 4xx, 5xx), in hourly
	// buckets aligned to the hour in UTC, for the responses of
	// GET /_mu/stacks/{stack_id}: a whole number of hours, at most 168h
	// (7 days). Counts live in the gateway's memory only (a restart
	// starts them afresh), at most 40 bytes per hour and stack; a stack
	// removed from the gateway loses its counts. 0 turns counting off.
	ResponseHistory time.Duration
	// LogsMaxTail is the largest tail a GET /_mu/stacks/{stack_id}/logs may
	// ask for (more gets 400), and the tail of one that names none. The
	// owner runtime sends at most its own log_history_lines.
	LogsMaxTail int
	// LogsMaxStreams is the most log streams (/_mu/stacks/{stack_id}/logs)
	// the gateway serves at once, followed or not; one more gets 429
	// too_many_log_streams.
	LogsMaxStreams int
	// LogsMaxSkew is how far the Mu-Timestamp of a signed log request
	// (libs/reqsign) may be from the gateway's clock, either way; further
	// gets 401.
	LogsMaxSkew time.Duration
	// LogsAllowUnsigned serves the logs of stacks whose owner the gateway
	// does not know (installed through PutStack, not from the chain: a
	// gateway without chain_indexer_addr) to anyone, unsigned. Off (the
	// default), such a request gets 403. Stacks from the chain always
	// need their owner's signature.
	LogsAllowUnsigned bool
	// LogsReconnectDelay is how long a followed log stream waits before
	// it reconnects to the stack's owner after the previous one became
	// unavailable (it shut down or left, and ownership moved), and
	// between further tries.
	LogsReconnectDelay time.Duration

	// ChainIndexerAddr is host:port of the chain indexer's gRPC API; empty
	// (the default) leaves the gateway to the stacks it is given with
	// PutStack, RemoveStack and SetStackEnabled (and their GatewayService
	// RPCs). When set, the gateway follows the stacks of RegionID on the
	// marketplace: an active stack is routed at its ledger revision (its
	// manifest parsed with the gateway's own limits; one it refuses is
	// logged and not routed), a disabled one answers 402 with a reason
	// naming the escrow balance, the region's minimum and how much to add
	// (from the region and the provider's escrows, which it follows too),
	// and a deleted one answers 404. An unreachable indexer changes
	// nothing: the gateway keeps serving what it has. It dials the indexer
	// without TLS, with max_message_bytes as the message limit. A chain
	// indexer passed in-process (Deps.ChainIndexer) takes precedence.
	ChainIndexerAddr string
	// RegionID is the base58 address (32 bytes) of the marketplace region
	// this gateway serves: only its stacks are routed, and in cluster mode
	// only runtime members advertising this region get stacks. Required
	// with chain_indexer_addr.
	RegionID string
	// Cluster joins the gateway to its region's member list (gossip over
	// hashicorp/memberlist): cluster_bind_addr, cluster_advertise_addr,
	// cluster_join, cluster_join_retry, cluster_secret_key and the
	// cluster_probe_*, cluster_suspicion_*, cluster_gossip_*,
	// cluster_retransmit_mult and cluster_leave_timeout timings. With
	// cluster_bind_addr set and no runtime given to the gateway
	// (Deps.Runtimes, mu-gateway's runtime_addr), the gateway places every
	// stack on the runtime members of RegionID itself, by XOR distance
	// (design section 5), and sends each request straight to the stack's
	// owner. The gateway advertises itself with role gateway and its gRPC
	// admin address. Empty cluster_bind_addr (the default): no cluster.
	Cluster membership.Config
	// ChainRetry spaces the reconnections of the chain indexer's Watch
	// streams (chain_retry_initial, doubled per failure up to
	// chain_retry_max, with jitter).
	ChainRetry chainwatch.Backoff

	// BillingAddr is host:port of the billing service's gRPC API, where
	// the usage records go (dialled without TLS) when no sink is passed
	// in-process (Deps.Usage). Empty: usage goes to Deps.Usage only.
	BillingAddr string
	// Usage batches the gateway's usage records (requests and traffic
	// bytes) on their way to billing: usage_batch_size, usage_queue_size,
	// usage_flush_interval, usage_report_timeout, usage_retry_min,
	// usage_retry_max, usage_close_timeout, and the disk spool that keeps
	// unacknowledged records across a crash: usage_spool_dir (empty by
	// default: memory only), usage_spool_sync_interval,
	// usage_spool_segment_bytes.
	Usage usage.BatchConfig
}

// DefaultConfig returns the configuration `mu run` uses: loopback
// listeners and limits suited to a public gateway.
func DefaultConfig() Config {
	c := Config{
		Base: service.DefaultBase(
			"127.0.0.1:12081", // gRPC admin API
			"127.0.0.1:12082", // /metrics, /healthz, /readyz
		),
		HTTPAddr: "127.0.0.1:12080", // public HTTP port

		MaxHeaderBytes:         64 << 10,                    // 64 KiB
		MaxQueryParams:         10_000,                      // as net/url's own default
		RuntimeMaxFrameSize:    fnproto.DefaultMaxFrameSize, // 8 MiB, the runtime's default max_frame_size
		MaxResponseBytes:       10 << 20,                    // 10 MiB
		MaxResponseHeaderBytes: 64 << 10,                    // 64 KiB

		InvokeTimeout:     30 * time.Second,  // a function call, end to end
		InvokeAttempts:    3,                 // the owner and two more nodes, for GET, HEAD, PUT, DELETE
		ReadHeaderTimeout: 10 * time.Second,  // request line + headers
		ReadTimeout:       60 * time.Second,  // an 8 MiB body at ~140 KiB/s
		WriteTimeout:      90 * time.Second,  // InvokeTimeout plus time to send 10 MiB
		IdleTimeout:       120 * time.Second, // keep-alive between requests

		MaxConnections:     10_000,      // open client connections
		OverloadRetryAfter: time.Second, // Retry-After: 1

		StackRate:        1000, // requests per second per stack
		StackBurst:       2000, // a stack's bucket: 2 s of its rate at once
		StackConcurrency: 256,  // requests per stack in flight

		StatusTimeout:      2 * time.Second,        // the owner's Status, for /_mu/stacks/{id}
		ResponseHistory:    24 * time.Hour,         // per-stack response counts, for /_mu/stacks/{id}
		LogsMaxTail:        1000,                   // recent log lines a request may ask for
		LogsMaxStreams:     256,                    // open log streams
		LogsMaxSkew:        5 * time.Minute,        // signed log requests' clock skew
		LogsReconnectDelay: 500 * time.Millisecond, // between reconnections of a followed log stream

		ChainRetry: chainwatch.DefaultBackoff(),
		Cluster:    membership.DefaultConfig(), // off: no cluster_bind_addr

		Usage: usage.DefaultBatchConfig(),
	}
	// 8,212,549 bytes (7.83 MiB): the largest body that fits one 8 MiB
	// frame beside the largest request line and headers of 64 KiB with
	// 10,000 query parameters (see requestBounds).
	c.MaxRequestBodyBytes = c.MaxBodyForFrame()
	return c
}

// endpointNameReserve is what requestBounds sets aside in a frame for the
// names that come from the manifest rather than the request: route_to and
// the path parameter names with their 8 bytes of Borsh lengths each. An
// endpoint whose names take more is still served; its largest requests
// then get 413 from the per-request frame check instead of reaching the
// runtime.
const endpointNameReserve = 4 << 10

// minRequestHead is the least a request line and header section take
// besides the method, the query and the fields, as readHeaders
// counts them: the target's leading '/', two spaces, an 8-byte protocol
// ("HTTP/1.1"), the request line's CRLF and the empty line's.
const minRequestHead = 1 + 2 + 8 + 2 + 2

// requestBounds bounds the ExecuteFunction of any request that passes the
// limits of c, body excluded, in fnproto's terms. Every byte of the
// method, path parameter values, query keys and values and header names
// and values comes out of the MaxHeaderBytes budget of the request line
// and headers, at least as many bytes as it takes in the frame. What the
// frame adds beyond those bytes is 8 bytes of Borsh lengths per query
// parameter and per header field (Host is one). The wire spends at least
// 2 bytes on a query parameter (a one-byte key and its '&' or '?'; the one
// key that can be empty, as "=", costs as much for a byte less), 5 on a
// header field ("N:" and CRLF with a one-byte name, an empty value) and 1
// on the method. The worst case spends the budget on query parameters
// first, up to MaxQueryParams, then on header fields, and the rest on
// content. Path parameters add their 8 bytes and names from the manifest,
// which endpointNameReserve covers together with route_to.
func (c Config) requestBounds() fnproto.RequestBounds {
	avail := max(c.MaxHeaderBytes-minRequestHead, 0)
	counted := max(avail-1, 0) // less the method's byte
	queries := min(max(c.MaxQueryParams, 0), counted/2)
	fields := (counted - 2*queries) / 5
	return fnproto.RequestBounds{
		FunctionBytes: endpointNameReserve,
		QueryParams:   queries,
		Headers:       fields,
		// Where the content bytes sit does not change the frame's size.
		HeaderBytes: avail - queries - 4*fields,
	}
}

// MaxBodyForFrame is the largest MaxRequestBodyBytes that Validate accepts
// with c's other limits: the largest body whose request, with the largest
// request line and headers MaxHeaderBytes and MaxQueryParams allow and
// endpoint names within 4 KiB, fits one RuntimeMaxFrameSize frame. It is
// negative when not even an empty body fits.
func (c Config) MaxBodyForFrame() int64 {
	return fnproto.MaxExecuteFunctionBody(max(c.RuntimeMaxFrameSize, 1), c.requestBounds())
}

// Validate reports every invalid field at once, wrapped in
// service.ErrInvalidConfig.
func (c Config) Validate() error {
	var p service.Problems
	p.Add(c.Base.Validate()...)
	bad := p.Addf
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("http_addr", "%q is not host:port: %v", c.HTTPAddr, err)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		switch {
		case err != nil:
			bad("public_url", "%v", err)
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			bad("public_url", "%q must be an absolute http or https URL", c.PublicURL)
		case u.RawQuery != "" || u.Fragment != "":
			bad("public_url", "%q must not have a query or fragment", c.PublicURL)
		}
	}
	positive := p.Positive
	positive("max_request_body_bytes", c.MaxRequestBodyBytes)
	positive("max_header_bytes", int64(c.MaxHeaderBytes))
	positive("max_query_params", int64(c.MaxQueryParams))
	positive("max_response_bytes", c.MaxResponseBytes)
	positive("max_response_header_bytes", int64(c.MaxResponseHeaderBytes))
	if c.MaxConnections < 0 {
		bad("max_connections", "must not be negative (0: no cap), got %d", c.MaxConnections)
	}
	for _, msg := range c.defaultStackLimit().problems("stack_rate", "stack_burst", "stack_concurrency") {
		p.Add(errors.New(msg))
	}
	_, errs := c.stackLimitsOf()
	for _, err := range errs {
		bad("stack_limits", "%v", err)
	}
	if c.RuntimeMaxFrameSize < minRuntimeFrame {
		bad("runtime_max_frame_size", "must be at least %d bytes (as the runtime's max_frame_size), got %d", minRuntimeFrame, c.RuntimeMaxFrameSize)
	} else if c.MaxRequestBodyBytes > 0 && c.MaxHeaderBytes > 0 && c.MaxQueryParams > 0 {
		if fit := c.MaxBodyForFrame(); c.MaxRequestBodyBytes > fit {
			b := c.requestBounds()
			b.BodyBytes = c.MaxRequestBodyBytes
			msg := fmt.Sprintf("the largest body that fits is %d", fit)
			if fit < 0 {
				msg = "not even an empty body fits; lower max_header_bytes or max_query_params, or raise runtime_max_frame_size"
			}
			bad("max_request_body_bytes", "%d bytes with the largest request line and headers of max_header_bytes %d "+
				"and max_query_params %d make an ExecuteFunction frame of %d bytes, over runtime_max_frame_size %d; %s",
				c.MaxRequestBodyBytes, c.MaxHeaderBytes, c.MaxQueryParams, fnproto.ExecuteFunctionFrameLen(b),
				c.RuntimeMaxFrameSize, msg)
		}
	}
	p.PositiveDuration("invoke_timeout", c.InvokeTimeout)
	p.PositiveDuration("status_timeout", c.StatusTimeout)
	switch h := c.ResponseHistory; {
	case h < 0:
		bad("response_history", "must not be negative (0 turns counting off), got %v", h)
	case h > maxResponseHistory:
		bad("response_history", "must be at most %v, got %v", maxResponseHistory, h)
	case h%time.Hour != 0:
		bad("response_history", "must be a whole number of hours (its buckets are hours), got %v", h)
	}
	positive("logs_max_tail", int64(c.LogsMaxTail))
	positive("logs_max_streams", int64(c.LogsMaxStreams))
	p.PositiveDuration("logs_max_skew", c.LogsMaxSkew)
	p.PositiveDuration("logs_reconnect_delay", c.LogsReconnectDelay)
	if c.InvokeAttempts < 1 {
		bad("invoke_attempts", "must be at least 1 (1: no retries), got %d", c.InvokeAttempts)
	}
	p.PositiveDuration("read_header_timeout", c.ReadHeaderTimeout)
	p.PositiveDuration("idle_timeout", c.IdleTimeout)
	p.PositiveDuration("overload_retry_after", c.OverloadRetryAfter)
	p.NotNegativeDuration("read_timeout", c.ReadTimeout)
	p.NotNegativeDuration("write_timeout", c.WriteTimeout)
	if c.WriteTimeout > 0 && c.InvokeTimeout >= c.WriteTimeout {
		bad("invoke_timeout", "%v must be below write_timeout %v, or 504s could never be written", c.InvokeTimeout, c.WriteTimeout)
	}
	if c.ChainIndexerAddr != "" {
		if host, port, err := net.SplitHostPort(c.ChainIndexerAddr); err != nil || host == "" || port == "" {
			bad("chain_indexer_addr", "%q is not host:port", c.ChainIndexerAddr)
		}
		if c.RegionID == "" {
			bad("region_id", "is required with chain_indexer_addr (the base58 address of the region whose stacks this gateway serves)")
		}
	}
	if c.RegionID != "" {
		if _, err := ledger.ParsePubkey(c.RegionID); err != nil {
			bad("region_id", "%v", err)
		}
	}
	if c.BillingAddr != "" {
		if host, port, err := net.SplitHostPort(c.BillingAddr); err != nil || host == "" || port == "" {
			bad("billing_addr", "%q is not host:port", c.BillingAddr)
		}
	}
	p.Add(c.ChainRetry.Validate())
	p.Add(c.Cluster.Validate())
	p.Add(c.Usage.Validate())
	return p.Err("gateway")
}

// minRuntimeFrame is the least max_frame_size a runtime accepts.
const minRuntimeFrame = 1 << 10

//go:embed config.go
var configSource []byte

// ConfigDocs returns the doc comments of every gateway setting, for --help.
func ConfigDocs() config.Docs {
	return config.Merge(service.ConfigDocs(), usage.ConfigDocs(), chainwatch.ConfigDocs(), membership.ConfigDocs(), config.MustParseDocs(configSource))
}
