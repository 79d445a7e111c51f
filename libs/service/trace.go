package service

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
)

// Traces: every service takes a trace.TracerProvider in its Deps (tests
// and `mu run` give one, shared by all the services of the process), or,
// without one, builds its own from Base's otlp_* settings when
// otlp_endpoint is set (Runner does). Nothing here touches otel's global
// state: the provider and the W3C propagator are handed to the gRPC stats
// handlers and to the spans explicitly, so several services in one process
// (mu-executor, tests) each keep theirs. With tracing off (no provider, a
// no-op one, or no otlp_endpoint) no stats handler is installed and every
// span call is a no-op.

// Propagator is how trace context crosses process boundaries: W3C Trace
// Context (the traceparent and tracestate headers, in gRPC metadata and at
// the gateway's public HTTP port).
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// validateTracing adds the problems of the otlp_* and trace_* settings.
func (b Base) validateTracing(p *Problems) {
	if b.TraceSampleRatio < 0 || b.TraceSampleRatio > 1 || b.TraceSampleRatio != b.TraceSampleRatio {
		p.Addf("trace_sample_ratio", "%v must be in 0..1", b.TraceSampleRatio)
	}
	if b.OTLPEndpoint == "" {
		return
	}
	if strings.Contains(b.OTLPEndpoint, "://") {
		u, err := url.Parse(b.OTLPEndpoint)
		switch {
		case err != nil:
			p.Addf("otlp_endpoint", "%q is not a URL: %v", b.OTLPEndpoint, err)
		case u.Scheme != "http" && u.Scheme != "https":
			p.Addf("otlp_endpoint", "%q: the scheme must be http or https", b.OTLPEndpoint)
		case u.Host == "":
			p.Addf("otlp_endpoint", "%q has no host", b.OTLPEndpoint)
		}
		return
	}
	if _, _, err := net.SplitHostPort(b.OTLPEndpoint); err != nil {
		p.Addf("otlp_endpoint", "%q is neither host:port nor a URL: %v", b.OTLPEndpoint, err)
	}
}

// NewTracerProvider builds the tracer provider that Base's settings ask
// for: nil (tracing off) without otlp_endpoint; otherwise an SDK provider
// that batches spans to the collector at otlp_endpoint over OTLP/HTTP
// (protobuf), samples trace_sample_ratio of the traces that start here
// and follows the caller's decision for the others (parent-based), and
// names the process service (service.name) and NodeName
// (service.instance.id). The exporter connects lazily: an unreachable
// collector loses spans, it does not fail this. The caller shuts the
// provider down, which flushes what is buffered.
func (b Base) NewTracerProvider(service string) (*sdktrace.TracerProvider, error) {
	if b.OTLPEndpoint == "" {
		return nil, nil
	}
	var p Problems
	b.validateTracing(&p)
	if err := p.Err(service); err != nil {
		return nil, err
	}
	exp := newOTLPExporter(b.OTLPEndpoint, b.OTLPInsecure)
	res := resource.NewSchemaless(
		attribute.String("service.name", "mu-"+service),
		attribute.String("service.instance.id", b.NodeName),
	)
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(b.TraceSampleRatio))),
	), nil
}

// Tracing reports whether tp records anything: false for nil and for
// otel's no-op provider, the two ways tracing is off.
func Tracing(tp trace.TracerProvider) bool {
	switch tp.(type) {
	case nil, noop.TracerProvider, *noop.TracerProvider:
		return false
	}
	return true
}

// OrNoop is tp, or otel's no-op provider when tp is nil, so callers can
// start spans without checking.
func OrNoop(tp trace.TracerProvider) trace.TracerProvider {
	if tp == nil {
		return noop.NewTracerProvider()
	}
	return tp
}

// TracerName is the instrumentation scope of the spans mu's services
// start themselves, under which each service names its tracer
// (TracerName+"/runtime", …).
const TracerName = "github.com/muprotocol/mu"

// grpcTraceOptions are the otelgrpc options of both sides: tp and the W3C
// propagator explicitly (no globals), no metrics (the services have their
// own Prometheus ones), and no spans for health checks and reflection.
func grpcTraceOptions(tp trace.TracerProvider) []otelgrpc.Option {
	return []otelgrpc.Option{
		otelgrpc.WithTracerProvider(tp),
		otelgrpc.WithPropagators(Propagator),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithFilter(filters.Not(filters.Any(filters.HealthCheck(), filters.ServicePrefix("grpc.reflection.")))),
	}
}

// TraceDialOptions are the dial options that propagate trace context on a
// gRPC client connection and give each call a client span: none when
// tracing is off (see Tracing), so an untraced client pays nothing. Every
// dial site of a service adds them.
func TraceDialOptions(tp trace.TracerProvider) []grpc.DialOption {
	if !Tracing(tp) {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(grpcTraceOptions(tp)...))}
}

// traceServerOptions are the server options that pick trace context up
// from incoming calls and give each a server span; none when off.
func traceServerOptions(tp trace.TracerProvider) []grpc.ServerOption {
	if !Tracing(tp) {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(grpcTraceOptions(tp)...))}
}

// TraceLogHandler wraps h so that a record logged with a context holding a
// recording span (log.InfoContext(ctx, …)) carries that span's trace_id
// and span_id, in hex, as a trace backend links them. Records without one
// pass through unchanged.
func TraceLogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(traceLogHandler); ok {
		return h
	}
	return traceLogHandler{h}
}

type traceLogHandler struct{ slog.Handler }

func (h traceLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			sc := span.SpanContext()
			r = r.Clone()
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceLogHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceLogHandler) WithGroup(name string) slog.Handler {
	return traceLogHandler{h.Handler.WithGroup(name)}
}

// TraceID is the hex trace id of ctx's span when it is recording, "" when
// there is none or tracing is off: what function log records carry.
func TraceID(ctx context.Context) string {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return ""
	}
	return span.SpanContext().TraceID().String()
}

// EndSpan ends span, a nil span (tracing off) being a no-op, with err as
// its error status when err is not nil.
func EndSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(otelcodes.Error, err.Error())
	}
	span.End()
}
