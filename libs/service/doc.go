// Package service is the contract every mu service follows and the parts
// they share, so gateway, runtime, mudb, storage, chain-indexer and billing
// start, serve, report and stop the same way whether a binary, `mu run`,
// mu-executor or a test runs them.
//
// The contract, for a service package with a Server type:
//
//	New(cfg Config, deps Deps) (*Server, error) // validates, builds, binds nothing
//	(*Server).Start(ctx) error                  // binds every listener, serves in the background; once
//	(*Server).Addr() string                     // the main listener's bound address
//	(*Server).Err() <-chan error                // a listener that failed while serving
//	(*Server).Close() error                     // drains within ShutdownTimeout; safe twice, before Start too
//
// Config is plain data (YAML, env, flags, Helm values fill it; see
// libs/config) that embeds Base, the settings every service shares; it has
// DefaultConfig() and a Validate() that reports every problem at once,
// wrapped in ErrInvalidConfig. Collaborators (loggers, usage sinks, metric
// registries, clients of other services) go in Deps.
//
// Runner does the shared work of a Server: the gRPC server (health,
// reflection, panic recovery, message-size limits, gRPC Prometheus metrics),
// the admin HTTP listener (/metrics, /healthz, /readyz and, when enabled,
// /debug/pprof/; never on a public port), the start-once and close-once
// guards, the error channel and the bounded shutdown, and traces: a
// tracer provider (RunnerOptions.TracerProvider, or one built from Base's
// otlp_endpoint, off by default), otelgrpc server spans and a span per
// in-process call; TraceDialOptions is what every dial site adds, and
// TraceLogHandler (in NewLogger) puts trace_id and span_id on log lines. Main is the whole of
// a service binary's main function: config, logging, signals, exit codes.
//
// TLS is a node's mTLS on its internal gRPC links, from Base's tls_*
// settings (or none with plaintext): the Runner's server requires a client
// certificate of the region's CA and authorizes each call by the caller's
// certificate role (Rules, Caller, RequireRole), and every connection a
// service dials to another takes its credentials from TLS.DialOption(role).
package service
