package service

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestBase_TracingSettingsAreCheckedAndNamed(t *testing.T) {
	for _, c := range []struct {
		name    string
		set     func(*Base)
		problem string // "" for valid
	}{
		{"off by default", func(*Base) {}, ""},
		{"host:port", func(b *Base) { b.OTLPEndpoint = "collector:4317" }, ""},
		{"http URL", func(b *Base) { b.OTLPEndpoint = "http://collector:4318/v1/traces" }, ""},
		{"no port", func(b *Base) { b.OTLPEndpoint = "collector" }, `otlp_endpoint: "collector" is neither host:port nor a URL`},
		{"other scheme", func(b *Base) { b.OTLPEndpoint = "grpc://collector:4317" }, "otlp_endpoint: \"grpc://collector:4317\": the scheme must be http or https"},
		{"URL without host", func(b *Base) { b.OTLPEndpoint = "http:///v1/traces" }, "otlp_endpoint: \"http:///v1/traces\" has no host"},
		{"ratio over 1", func(b *Base) { b.TraceSampleRatio = 1.5 }, "trace_sample_ratio: 1.5 must be in 0..1"},
		{"negative ratio", func(b *Base) { b.TraceSampleRatio = -0.1 }, "trace_sample_ratio: -0.1 must be in 0..1"},
	} {
		b := DefaultBase("127.0.0.1:0", "")
		b.Plaintext = true // the TLS settings are checked elsewhere
		c.set(&b)
		err := Invalid("svc", b.Validate())
		switch {
		case c.problem == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.problem != "" && (err == nil || !strings.Contains(err.Error(), c.problem)):
			t.Errorf("%s: got %v, want %q", c.name, err, c.problem)
		}
	}
	if b := DefaultBase("127.0.0.1:0", ""); b.OTLPEndpoint != "" || b.TraceSampleRatio != 1 {
		t.Errorf("defaults: endpoint %q ratio %v; want off, 1", b.OTLPEndpoint, b.TraceSampleRatio)
	}
}

func TestBase_NewTracerProviderIsNilWithoutEndpointAndBuildsOneWithIt(t *testing.T) {
	b := DefaultBase("127.0.0.1:0", "")
	if tp, err := b.NewTracerProvider("svc"); tp != nil || err != nil {
		t.Fatalf("without otlp_endpoint: %v, %v; want nil, nil", tp, err)
	}
	for _, ep := range []string{"127.0.0.1:1", "http://127.0.0.1:1/v1/traces"} {
		b.OTLPEndpoint, b.OTLPInsecure = ep, true
		tp, err := b.NewTracerProvider("svc")
		if err != nil || tp == nil {
			t.Fatalf("%s: %v, %v", ep, tp, err)
		}
		// Nothing listens at the endpoint: spans are lost, Shutdown is
		// bounded by its context, nothing fails the service.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = tp.Shutdown(ctx)
	}
	b.OTLPEndpoint = "nope"
	if _, err := b.NewTracerProvider("svc"); err == nil || !strings.Contains(err.Error(), "otlp_endpoint") {
		t.Fatalf("bad endpoint: %v", err)
	}
}

func TestTracing_OffForNilAndNoopProviders(t *testing.T) {
	for _, tp := range []trace.TracerProvider{nil, noop.NewTracerProvider()} {
		if Tracing(tp) {
			t.Errorf("Tracing(%T) = true", tp)
		}
		if opts := TraceDialOptions(tp); opts != nil {
			t.Errorf("TraceDialOptions(%T) = %d options, want none", tp, len(opts))
		}
		if opts := traceServerOptions(tp); opts != nil {
			t.Errorf("traceServerOptions(%T) = %d options, want none", tp, len(opts))
		}
	}
	r := NewRunner("svc", testBase(), RunnerOptions{})
	defer r.Close(nil)
	if Tracing(r.TracerProvider()) || r.TracerProvider() == nil {
		t.Errorf("a Runner without provider or otlp_endpoint traces: %T", r.TracerProvider())
	}
}

// TestTrace_GRPCAndInProcessCallsAreChildrenOfTheCallersSpan calls the
// echo service of a traced Runner over gRPC (a connection with
// TraceDialOptions) and in process, each under a caller's span: the
// server span of each is in the caller's trace, under its client span
// (gRPC, a remote parent) or the caller's span (in process), and the
// handler's context holds it.
func TestTrace_GRPCAndInProcessCallsAreChildrenOfTheCallersSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	er := startEcho(t, testBase(), RunnerOptions{TracerProvider: tp})
	var handlerTrace []string
	er.e.fn = func(ctx context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
		handlerTrace = append(handlerTrace, TraceID(ctx))
		return in, nil
	}
	conn, err := grpc.NewClient(er.r.GRPCAddr(), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, TraceDialOptions(tp)...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	ctx, caller := tp.Tracer("test").Start(context.Background(), "caller")
	if err := conn.Invoke(ctx, echoMethod, wrapperspb.Bytes(nil), new(wrapperspb.BytesValue)); err != nil {
		t.Fatal(err)
	}
	if _, err := er.u.Call(ctx, wrapperspb.Bytes(nil)); err != nil {
		t.Fatal(err)
	}
	caller.End()
	tr := caller.SpanContext().TraceID()
	if len(handlerTrace) != 2 || handlerTrace[0] != tr.String() || handlerTrace[1] != tr.String() {
		t.Fatalf("handlers saw trace ids %v, want %s twice", handlerTrace, tr)
	}
	var client, grpcServer, inProcess *tracetest.SpanStub
	spans := exp.GetSpans()
	for i := range spans {
		s := &spans[i]
		if s.Name != "test.Echo/Echo" {
			continue
		}
		switch {
		case s.SpanKind == trace.SpanKindClient:
			client = s
		case s.SpanKind == trace.SpanKindServer && s.Parent.IsRemote():
			grpcServer = s
		case s.SpanKind == trace.SpanKindServer:
			inProcess = s
		}
	}
	if client == nil || grpcServer == nil || inProcess == nil {
		t.Fatalf("want a client, a gRPC server and an in-process server span of test.Echo/Echo; got %d spans: %+v", len(spans), spans)
	}
	if client.Parent.SpanID() != caller.SpanContext().SpanID() || grpcServer.Parent.SpanID() != client.SpanContext.SpanID() {
		t.Errorf("gRPC: client span under %s, server under %s; want under the caller %s and the client %s",
			client.Parent.SpanID(), grpcServer.Parent.SpanID(), caller.SpanContext().SpanID(), client.SpanContext.SpanID())
	}
	if inProcess.Parent.SpanID() != caller.SpanContext().SpanID() || inProcess.SpanContext.TraceID() != tr {
		t.Errorf("in process: server span under %s, want the caller %s", inProcess.Parent.SpanID(), caller.SpanContext().SpanID())
	}
}

func TestTrace_UntracedCallCarriesNoTraceContext(t *testing.T) {
	er := startEcho(t, testBase(), RunnerOptions{})
	var md metadata.MD
	er.e.fn = func(ctx context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
		md, _ = metadata.FromIncomingContext(ctx)
		return in, nil
	}
	conn, err := grpc.NewClient(er.r.GRPCAddr(), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, TraceDialOptions(nil)...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A recording span of another provider in the caller's context: an
	// untraced connection does not hand it on.
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	ctx, span := tp.Tracer("test").Start(context.Background(), "caller")
	defer span.End()
	if err := conn.Invoke(ctx, echoMethod, wrapperspb.Bytes(nil), new(wrapperspb.BytesValue)); err != nil {
		t.Fatal(err)
	}
	if got := md.Get("traceparent"); len(got) != 0 {
		t.Errorf("untraced call sent traceparent %v", got)
	}
}

func TestTraceLogHandler_AddsTraceAndSpanIDsOfARecordingSpan(t *testing.T) {
	var buf bytes.Buffer
	b := DefaultBase("127.0.0.1:0", "")
	b.LogFormat = "json"
	log, err := b.NewLogger(&buf)
	if err != nil {
		t.Fatal(err)
	}
	log = log.With("service", "svc")
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	log.InfoContext(ctx, "traced")
	span.End()
	log.InfoContext(context.Background(), "untraced")
	log.Info("no context")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	sc := span.SpanContext()
	if !strings.Contains(lines[0], `"trace_id":"`+sc.TraceID().String()+`"`) || !strings.Contains(lines[0], `"span_id":"`+sc.SpanID().String()+`"`) {
		t.Errorf("traced line lacks the ids: %s", lines[0])
	}
	for _, l := range lines[1:] {
		if strings.Contains(l, "trace_id") {
			t.Errorf("untraced line has a trace id: %s", l)
		}
	}
	if h := TraceLogHandler(TraceLogHandler(slog.DiscardHandler)); h != TraceLogHandler(slog.DiscardHandler) {
		t.Error("TraceLogHandler wraps twice")
	}
}
