package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"
)

// Config configures a gateway. Start from DefaultConfig; a YAML file,
// MU_GATEWAY_<FIELD> environment variables and flags only override it.
// Sizes are in bytes, durations are time.Duration values ("30s" in YAML).
type Config struct {
	// HTTPAddr is the host:port of the public HTTP listener that serves
	// /{stack_id}/{gateway}/{path}, /_mu/health and /_mu/metrics. Port 0
	// picks a free port; Server.Addr reports it.
	HTTPAddr string `yaml:"http_addr"`
	// AdminAddr is the host:port of the gRPC admin listener
	// (mu.gateway.v1.GatewayService, grpc.health.v1, reflection). Port 0
	// picks a free port; Server.AdminAddr reports it.
	AdminAddr string `yaml:"admin_addr"`
	// PublicURL is the base URL under which clients reach HTTPAddr, used
	// for the full URLs that GatewayService.Routes returns, e.g.
	// "https://gw.example.com". Empty means "http://" + the bound HTTPAddr.
	PublicURL string `yaml:"public_url"`
	// NodeName names this gateway in usage idempotency keys and logs; it
	// must be unique in the region. Default: the host name.
	NodeName string `yaml:"node_name"`

	// MaxRequestBodyBytes is the largest request body accepted, in bytes;
	// a larger one gets 413.
	MaxRequestBodyBytes int64 `yaml:"max_request_body_bytes"`
	// MaxHeaderBytes bounds the request line plus the request headers, in
	// bytes (counted as "Name: value\r\n" per field); more gets 431.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxResponseBytes is the largest response body a function may return,
	// in bytes; a larger one gets 502.
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	// MaxResponseHeaderBytes bounds the response headers a function may
	// return (names plus values), in bytes; more gets 502.
	MaxResponseHeaderBytes int `yaml:"max_response_header_bytes"`

	// InvokeTimeout is the longest the gateway waits for Runtime.Invoke;
	// past it the request gets 504. Must be below WriteTimeout.
	InvokeTimeout time.Duration `yaml:"invoke_timeout"`
	// ReadHeaderTimeout is the time allowed to read the request line and
	// headers (slow-loris protection).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout is the time allowed to read a whole request, body
	// included. 0 means no limit.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout is the time from the end of the request headers to the
	// end of the response write. 0 means no limit.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ShutdownTimeout is how long Close waits for in-flight requests and
	// RPCs to finish before cutting connections.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	// UsageBatchSize is the most usage records sent in one Sink.Report.
	UsageBatchSize int `yaml:"usage_batch_size"`
	// UsageQueueSize is how many usage records may wait for the sink
	// before requests block until it catches up (never dropped).
	UsageQueueSize int `yaml:"usage_queue_size"`
	// UsageFlushInterval is the longest a usage record waits before it is
	// sent.
	UsageFlushInterval time.Duration `yaml:"usage_flush_interval"`
	// UsageReportTimeout is the deadline of one Sink.Report call.
	UsageReportTimeout time.Duration `yaml:"usage_report_timeout"`
	// UsageRetryMin is the wait after a failed report, doubled per failure
	// up to UsageRetryMax.
	UsageRetryMin time.Duration `yaml:"usage_retry_min"`
	// UsageRetryMax is the longest wait between report retries.
	UsageRetryMax time.Duration `yaml:"usage_retry_max"`
	// UsageCloseTimeout is how long Close keeps retrying to hand the last
	// usage records to the sink; records still unsent then are logged as
	// lost.
	UsageCloseTimeout time.Duration `yaml:"usage_close_timeout"`
}

// DefaultConfig returns the configuration `mu run` uses: loopback
// listeners and limits suited to a public gateway.
func DefaultConfig() Config {
	name, err := os.Hostname()
	if err != nil || name == "" {
		name = "gateway"
	}
	return Config{
		HTTPAddr:  "127.0.0.1:12080", // public HTTP port
		AdminAddr: "127.0.0.1:0",     // gRPC admin: any free port
		NodeName:  name,

		MaxRequestBodyBytes:    10 << 20, // 10 MiB
		MaxHeaderBytes:         64 << 10, // 64 KiB
		MaxResponseBytes:       10 << 20, // 10 MiB
		MaxResponseHeaderBytes: 64 << 10, // 64 KiB

		InvokeTimeout:     30 * time.Second,  // a function call, end to end
		ReadHeaderTimeout: 10 * time.Second,  // request line + headers
		ReadTimeout:       60 * time.Second,  // a 10 MiB body at ~170 KiB/s
		WriteTimeout:      90 * time.Second,  // InvokeTimeout plus time to send 10 MiB
		IdleTimeout:       120 * time.Second, // keep-alive between requests
		ShutdownTimeout:   30 * time.Second,  // drain on Close

		UsageBatchSize:     1000,                   // records per report
		UsageQueueSize:     100000,                 // ~10 MB of queued records at most
		UsageFlushInterval: time.Second,            // a record waits at most 1s
		UsageReportTimeout: 10 * time.Second,       // one report call
		UsageRetryMin:      100 * time.Millisecond, // first retry
		UsageRetryMax:      10 * time.Second,       // retry ceiling
		UsageCloseTimeout:  30 * time.Second,       // final flush on Close
	}
}

// Validate reports every invalid field, joined.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("gateway config: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	for _, a := range []struct{ field, addr string }{{"http_addr", c.HTTPAddr}, {"admin_addr", c.AdminAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			bad(a.field, "%q is not host:port: %v", a.addr, err)
		}
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
	if c.NodeName == "" {
		bad("node_name", "is required")
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
	positive("usage_batch_size", int64(c.UsageBatchSize))
	positive("usage_queue_size", int64(c.UsageQueueSize))
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"invoke_timeout", c.InvokeTimeout},
		{"read_header_timeout", c.ReadHeaderTimeout},
		{"idle_timeout", c.IdleTimeout},
		{"shutdown_timeout", c.ShutdownTimeout},
		{"usage_flush_interval", c.UsageFlushInterval},
		{"usage_report_timeout", c.UsageReportTimeout},
		{"usage_retry_min", c.UsageRetryMin},
		{"usage_retry_max", c.UsageRetryMax},
		{"usage_close_timeout", c.UsageCloseTimeout},
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
	if c.UsageRetryMax < c.UsageRetryMin {
		bad("usage_retry_max", "%v is below usage_retry_min %v", c.UsageRetryMax, c.UsageRetryMin)
	}
	return errors.Join(errs...)
}
