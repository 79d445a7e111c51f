package service

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is an OTLP/HTTP traces receiver that keeps what it is sent.
type collector struct {
	mu     sync.Mutex
	paths  []string
	reqs   []*coltracepb.ExportTraceServiceRequest
	status int // answered; 0 is 200
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paths = append(c.paths, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(body, req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.reqs = append(c.reqs, req)
	if c.status != 0 {
		http.Error(w, "collector says no", c.status)
	}
}

func (c *collector) spans() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tracepb.Span
	for _, r := range c.reqs {
		for _, rs := range r.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				out = append(out, ss.GetSpans()...)
			}
		}
	}
	return out
}

// TestOTLP_ServiceSpansReachTheCollectorAsOTLPHTTP builds the provider
// from Base with otlp_endpoint at a test collector and checks what a
// shutdown flushes there: one POST of protobuf at /v1/traces with the
// service's resource, and each span's ids, parent, kind, times,
// attributes and status as recorded.
func TestOTLP_ServiceSpansReachTheCollectorAsOTLPHTTP(t *testing.T) {
	c := &collector{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	b := DefaultBase("127.0.0.1:0", "")
	b.NodeName = "node-1"
	b.OTLPEndpoint, b.OTLPInsecure = strings.TrimPrefix(srv.URL, "http://"), true
	tp, err := b.NewTracerProvider("svc")
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent", trace.WithSpanKind(trace.SpanKindServer))
	_, child := tp.Tracer("test").Start(ctx, "child", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("s", "v"), attribute.Int64("i", 7), attribute.Bool("b", true), attribute.Float64("f", 0.5),
			attribute.StringSlice("ss", []string{"x", "y"})))
	child.AddEvent("retry", trace.WithAttributes(attribute.Int("attempt", 2)))
	child.SetStatus(otelcodes.Error, "boom")
	child.End()
	parent.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	if len(c.paths) != 1 || c.paths[0] != "POST /v1/traces application/x-protobuf" {
		t.Fatalf("requests %v, want one protobuf POST at /v1/traces", c.paths)
	}
	res := c.reqs[0].GetResourceSpans()[0].GetResource()
	got := map[string]string{}
	for _, kv := range res.GetAttributes() {
		got[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	if got["service.name"] != "mu-svc" || got["service.instance.id"] != "node-1" {
		t.Errorf("resource %v", got)
	}
	byName := map[string]*tracepb.Span{}
	for _, s := range c.spans() {
		byName[s.GetName()] = s
	}
	p, ch := byName["parent"], byName["child"]
	if p == nil || ch == nil {
		t.Fatalf("spans %v", byName)
	}
	pid, tid := parent.SpanContext().SpanID(), parent.SpanContext().TraceID()
	if string(ch.GetTraceId()) != string(tid[:]) || string(ch.GetParentSpanId()) != string(pid[:]) || len(p.GetParentSpanId()) != 0 {
		t.Errorf("ids: child trace %x parent %x, parent's parent %x; want trace %s under %s", ch.GetTraceId(), ch.GetParentSpanId(), p.GetParentSpanId(), tid, pid)
	}
	if p.GetKind() != tracepb.Span_SPAN_KIND_SERVER || ch.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("kinds %v %v", p.GetKind(), ch.GetKind())
	}
	if ch.GetStartTimeUnixNano() == 0 || ch.GetEndTimeUnixNano() < ch.GetStartTimeUnixNano() {
		t.Errorf("times %d..%d", ch.GetStartTimeUnixNano(), ch.GetEndTimeUnixNano())
	}
	if st := ch.GetStatus(); st.GetCode() != tracepb.Status_STATUS_CODE_ERROR || st.GetMessage() != "boom" {
		t.Errorf("status %v", st)
	}
	attrs := map[string]string{}
	for _, kv := range ch.GetAttributes() {
		attrs[kv.GetKey()] = kv.GetValue().String()
	}
	for k, want := range map[string]string{"s": `string_value:"v"`, "i": "int_value:7", "b": "bool_value:true", "f": "double_value:0.5"} {
		if g := strings.ReplaceAll(attrs[k], " ", ""); g != strings.ReplaceAll(want, " ", "") {
			t.Errorf("attribute %s = %s, want %s", k, attrs[k], want)
		}
	}
	if !strings.Contains(attrs["ss"], `"x"`) || !strings.Contains(attrs["ss"], `"y"`) {
		t.Errorf("attribute ss = %s", attrs["ss"])
	}
	if len(ch.GetEvents()) != 1 || ch.GetEvents()[0].GetName() != "retry" {
		t.Errorf("events %v", ch.GetEvents())
	}
}

func TestOTLP_ExportErrorNamesTheCollectorsAnswer(t *testing.T) {
	c := &collector{status: http.StatusServiceUnavailable}
	srv := httptest.NewServer(c)
	defer srv.Close()
	exp := newOTLPExporter(srv.URL, false)
	if exp.url != srv.URL+"/v1/traces" {
		t.Errorf("a URL without a path exports to %s, want %s/v1/traces", exp.url, srv.URL)
	}
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())
	_, span := tp.Tracer("test").Start(context.Background(), "x")
	span.End()
	err := exp.ExportSpans(context.Background(), sr.Ended())
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "collector says no") {
		t.Fatalf("export to a refusing collector: %v", err)
	}
	if got := newOTLPExporter("collector:4318", false).url; got != "https://collector:4318/v1/traces" {
		t.Errorf("host:port exports to %s, want https://collector:4318/v1/traces", got)
	}
	if got := newOTLPExporter("http://collector:4318/custom", false).url; got != "http://collector:4318/custom" {
		t.Errorf("a URL with a path exports to %s", got)
	}
}
