package gateway

import (
	_ "embed"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/muprotocol/mu/libs/config"
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
	// a larger one gets 413.
	MaxRequestBodyBytes int64
	// MaxHeaderBytes bounds the request line plus the request headers, in
	// bytes (counted as "Name: value\r\n" per field); more gets 431.
	MaxHeaderBytes int
	// MaxResponseBytes is the largest response body a function may return,
	// in bytes; a larger one gets 502.
	MaxResponseBytes int64
	// MaxResponseHeaderBytes bounds the response headers a function may
	// return (names plus values), in bytes; more gets 502.
	MaxResponseHeaderBytes int

	// InvokeTimeout is the longest the gateway waits for Runtime.Invoke;
	// past it the request gets 504. Must be below WriteTimeout.
	InvokeTimeout time.Duration
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

	// Usage batches the gateway's usage records (requests and traffic
	// bytes) on their way to billing: usage_batch_size, usage_queue_size,
	// usage_flush_interval, usage_report_timeout, usage_retry_min,
	// usage_retry_max, usage_close_timeout.
	Usage usage.BatchConfig
}

// DefaultConfig returns the configuration `mu run` uses: loopback
// listeners and limits suited to a public gateway.
func DefaultConfig() Config {
	return Config{
		Base: service.DefaultBase(
			"127.0.0.1:12081", // gRPC admin API
			"127.0.0.1:12082", // /metrics, /healthz, /readyz
		),
		HTTPAddr: "127.0.0.1:12080", // public HTTP port

		MaxRequestBodyBytes:    10 << 20, // 10 MiB
		MaxHeaderBytes:         64 << 10, // 64 KiB
		MaxResponseBytes:       10 << 20, // 10 MiB
		MaxResponseHeaderBytes: 64 << 10, // 64 KiB

		InvokeTimeout:     30 * time.Second,  // a function call, end to end
		ReadHeaderTimeout: 10 * time.Second,  // request line + headers
		ReadTimeout:       60 * time.Second,  // a 10 MiB body at ~170 KiB/s
		WriteTimeout:      90 * time.Second,  // InvokeTimeout plus time to send 10 MiB
		IdleTimeout:       120 * time.Second, // keep-alive between requests

		Usage: usage.DefaultBatchConfig(),
	}
}

// Validate reports every invalid field at once, wrapped in
// service.ErrInvalidConfig.
func (c Config) Validate() error {
	errs := c.Base.Validate()
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
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
	positive := func(field string, v int64) {
		if v <= 0 {
			bad(field, "must be positive, got %d", v)
		}
	}
	positive("max_request_body_bytes", c.MaxRequestBodyBytes)
	positive("max_header_bytes", int64(c.MaxHeaderBytes))
	positive("max_response_bytes", c.MaxResponseBytes)
	positive("max_response_header_bytes", int64(c.MaxResponseHeaderBytes))
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"invoke_timeout", c.InvokeTimeout},
		{"read_header_timeout", c.ReadHeaderTimeout},
		{"idle_timeout", c.IdleTimeout},
	} {
		if d.v <= 0 {
			bad(d.field, "must be positive, got %v", d.v)
		}
	}
	if c.ReadTimeout < 0 {
		bad("read_timeout", "must not be negative, got %v", c.ReadTimeout)
	}
	if c.WriteTimeout < 0 {
		bad("write_timeout", "must not be negative, got %v", c.WriteTimeout)
	}
	if c.WriteTimeout > 0 && c.InvokeTimeout >= c.WriteTimeout {
		bad("invoke_timeout", "%v must be below write_timeout %v, or 504s could never be written", c.InvokeTimeout, c.WriteTimeout)
	}
	if err := c.Usage.Validate(); err != nil {
		errs = append(errs, err)
	}
	return service.Invalid("gateway", errs)
}

//go:embed config.go
var configSource []byte

// ConfigDocs returns the doc comments of every gateway setting, for --help.
func ConfigDocs() config.Docs {
	d, err := config.ParseDocs(configSource)
	if err != nil {
		panic("gateway: config.go does not parse: " + err.Error()) // compiled from this very source
	}
	return config.Merge(service.ConfigDocs(), usage.ConfigDocs(), d)
}
