package service

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"time"
)

// ErrInvalidConfig wraps every error a Config's Validate returns, so callers
// (Main: exit code 2) can tell bad settings from failures.
var ErrInvalidConfig = errors.New("invalid config")

// Base holds the settings every service shares. A service's Config embeds
// it, so its fields are settings of the service (node_name, grpc_addr, …).
type Base struct {
	// NodeName names this node in logs, usage idempotency keys and status
	// replies; it must be unique in the region. Default: the host name.
	NodeName string
	// GRPCAddr is the host:port of the service's gRPC listener (its API,
	// grpc.health.v1 and reflection). Port 0 picks a free port.
	GRPCAddr string
	// AdminAddr is the host:port of the admin HTTP listener: /metrics
	// (Prometheus), /healthz (liveness), /readyz (readiness) and, with
	// Pprof, /debug/pprof/. Port 0 picks a free port; empty turns the admin
	// listener off. Keep it off public networks.
	AdminAddr string
	// Pprof serves the Go profiler under /debug/pprof/ on the admin
	// listener.
	Pprof bool
	// MaxMessageBytes bounds one gRPC message received or sent, in bytes.
	MaxMessageBytes int
	// GRPCStreamWindow is the HTTP/2 flow-control window of one gRPC call,
	// in bytes, on the service's gRPC server and on a gateway's connections
	// to its runtimes (a runtime's own connections to muDB and storage
	// still size theirs by gRPC's estimator). A fixed window
	// turns off gRPC's bandwidth-delay estimator, which on loopback or a
	// LAN pings the peer for about every small call (6 allocations and 3
	// read/write syscalls of a gateway → runtime Invoke; see the gateway's
	// BenchmarkHotPath_HelloGET). The default is about what the estimator
	// would reach, so a message of max_message_bytes still streams in a few
	// round trips. A window bounds what a peer may send before it is read,
	// not what is kept (max_message_bytes does). At least 64 KiB.
	GRPCStreamWindow int
	// GRPCConnWindow is the flow-control window of one gRPC connection, all
	// its calls together, in bytes; at least GRPCStreamWindow.
	GRPCConnWindow int
	// ShutdownTimeout is how long Close lets in-flight requests and RPCs
	// finish before it cuts connections.
	ShutdownTimeout time.Duration
	// LogLevel is the least level the binary logs: debug, info, warn or
	// error.
	LogLevel string
	// LogFormat is how the binary writes its log to stderr: text or json.
	LogFormat string
	// OTLPEndpoint is the OpenTelemetry collector the service sends its
	// trace spans to, over OTLP/HTTP (protobuf; a collector's port 4318
	// by convention): host:port (spans go to /v1/traces), or a URL with
	// its path (http:// or https://). Empty, the default, turns tracing
	// off: no spans, no trace context propagated, nothing on the hot path.
	OTLPEndpoint string
	// OTLPInsecure sends spans to a host:port otlp_endpoint in plaintext
	// (http, not https); for a collector on the same host or pod. A URL's
	// scheme says it already.
	OTLPInsecure bool
	// TraceSampleRatio is the share of the traces starting at this service
	// (a request at a gateway without a sampled traceparent) that are
	// recorded, 0..1. A call that arrives with trace context follows its
	// caller's decision, so a sampled request is traced end to end.
	TraceSampleRatio float64
	// TLSCertFile is this node's certificate (PEM; intermediates may follow
	// it): its gRPC server's certificate and its client certificate on the
	// gRPC links it dials. Its URI SAN spiffe://mu/<role>/<name> is the
	// identity its peers authorize (`mu certs` issues them). Required
	// unless plaintext.
	TLSCertFile string
	// TLSKeyFile is the private key of tls_cert_file (PEM). Required unless
	// plaintext.
	TLSKeyFile string
	// TLSCAFile is the bundle of CAs (PEM) that sign the region's
	// certificates: servers and clients alike are verified against it. It
	// may hold the old and the new CA while a CA is rotated. Required
	// unless plaintext.
	TLSCAFile string
	// TLSReloadInterval is how often the three TLS files are read again; a
	// change (a Kubernetes Secret update, a rewritten file) is used by the
	// handshakes after it, connections already made keep theirs. Files that
	// do not make a valid set are refused with an error in the log and the
	// old ones stay in use.
	TLSReloadInterval time.Duration
	// Plaintext turns TLS off on the gRPC server and the links this node
	// dials, and with it caller authorization: any client may call any
	// method. Only for local regions (mu run, tests) on loopback; the
	// services of a region must all agree on it.
	Plaintext bool
}

// ServiceBase returns b; through embedding, every Config has it, which is
// how Main finds the shared settings of any service.
func (b Base) ServiceBase() Base { return b }

// The default flow-control windows (Base.GRPCStreamWindow and
// GRPCConnWindow), in bytes.
const (
	DefaultGRPCStreamWindow = 4 << 20  // per call
	DefaultGRPCConnWindow   = 16 << 20 // per connection, gRPC's own bound for its estimator
	// minGRPCWindow is the least window gRPC honours (smaller ones it ignores).
	minGRPCWindow = 64 << 10
)

// DefaultBase returns the shared defaults with the given listener
// addresses.
func DefaultBase(grpcAddr, adminAddr string) Base {
	return Base{
		NodeName:         hostName(),
		GRPCAddr:         grpcAddr,
		AdminAddr:        adminAddr,
		MaxMessageBytes:  4 << 20, // 4 MiB, gRPC's own default
		GRPCStreamWindow: DefaultGRPCStreamWindow,
		GRPCConnWindow:   DefaultGRPCConnWindow,
		ShutdownTimeout:  30 * time.Second, // drain on Close
		LogLevel:         "info",
		LogFormat:        "text",
		TraceSampleRatio: 1, // every trace, once otlp_endpoint turns tracing on
		// TLS files have no default: a node has them, or says plaintext.
		TLSReloadInterval: 5 * time.Second, // re-read the TLS files
	}
}

func hostName() string {
	name, err := os.Hostname()
	if err != nil || name == "" {
		return "mu"
	}
	return name
}

// Validate returns one error per invalid field, each naming the setting.
func (b Base) Validate() []error {
	var p Problems
	if b.NodeName == "" {
		p.Addf("node_name", "is required")
	}
	if _, _, err := net.SplitHostPort(b.GRPCAddr); err != nil {
		p.Addf("grpc_addr", "%q is not host:port: %v", b.GRPCAddr, err)
	}
	if b.AdminAddr != "" {
		if _, _, err := net.SplitHostPort(b.AdminAddr); err != nil {
			p.Addf("admin_addr", "%q is not host:port: %v", b.AdminAddr, err)
		}
	}
	if b.MaxMessageBytes < 1<<10 {
		p.Addf("max_message_bytes", "must be at least 1 KiB, got %d", b.MaxMessageBytes)
	}
	if b.GRPCStreamWindow < minGRPCWindow || b.GRPCStreamWindow > math.MaxInt32 {
		p.Addf("grpc_stream_window", "%d must be in %d..%d bytes", b.GRPCStreamWindow, minGRPCWindow, math.MaxInt32)
	}
	if b.GRPCConnWindow < b.GRPCStreamWindow || b.GRPCConnWindow > math.MaxInt32 {
		p.Addf("grpc_conn_window", "%d must be in grpc_stream_window (%d)..%d bytes", b.GRPCConnWindow, b.GRPCStreamWindow, math.MaxInt32)
	}
	p.PositiveDuration("shutdown_timeout", b.ShutdownTimeout)
	var level slog.Level
	if err := level.UnmarshalText([]byte(b.LogLevel)); err != nil {
		p.Addf("log_level", "%q: want debug, info, warn or error", b.LogLevel)
	}
	if b.LogFormat != "text" && b.LogFormat != "json" {
		p.Addf("log_format", "%q: want text or json", b.LogFormat)
	}
	b.validateTracing(&p)
	if !b.Plaintext {
		for _, f := range []struct{ name, value string }{{"tls_cert_file", b.TLSCertFile}, {"tls_key_file", b.TLSKeyFile}, {"tls_ca_file", b.TLSCAFile}} {
			if f.value == "" {
				p.Addf(f.name, "is required for mTLS on the gRPC links, or set plaintext: true (local regions only)")
			}
		}
		p.PositiveDuration("tls_reload_interval", b.TLSReloadInterval)
	}
	return p.Errs()
}

// Invalid joins a service's config errors under its name and wraps them in
// ErrInvalidConfig; nil when errs is empty.
func Invalid(service string, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return &configError{service: service, errs: errs}
}

type configError struct {
	service string
	errs    []error
}

func (e *configError) Error() string {
	s := e.service + " config:"
	if len(e.errs) == 1 {
		return s + " " + e.errs[0].Error()
	}
	for _, err := range e.errs {
		s += "\n  " + err.Error()
	}
	return s
}

func (e *configError) Unwrap() []error { return append([]error{ErrInvalidConfig}, e.errs...) }

// NewLogger makes the binary's logger from LogLevel and LogFormat, writing
// to w. Records logged with a context that holds a recording span carry
// its trace_id and span_id (TraceLogHandler).
func (b Base) NewLogger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(b.LogLevel)); err != nil {
		return nil, fmt.Errorf("log_level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch b.LogFormat {
	case "json":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("log_format %q: want text or json", b.LogFormat)
	}
	return slog.New(TraceLogHandler(h)), nil
}
