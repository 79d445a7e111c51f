package gateway_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/muprotocol/mu/services/gateway"
)

// tracedHarness is a harness whose gateway records its spans in the
// returned exporter.
func tracedHarness(t *testing.T) (*harness, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(t.Context()) })
	h := newHarness(t, func(_ *gateway.Config, d *gateway.Deps) { d.TracerProvider = tp })
	return h, exp
}

func spanNamed(t *testing.T, exp *tracetest.InMemoryExporter, name string, kind trace.SpanKind) tracetest.SpanStub {
	t.Helper()
	for _, s := range exp.GetSpans() {
		if s.Name == name && s.SpanKind == kind {
			return s
		}
	}
	t.Fatalf("no %s span %q among %d", kind, name, len(exp.GetSpans()))
	return tracetest.SpanStub{}
}

func attrOf(s tracetest.SpanStub, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func TestGatewayTrace_RouteSpanContinuesTheClientsTraceparentAndParentsTheRuntimeCall(t *testing.T) {
	h, exp := tracedHarness(t)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	resp, _ := h.do("GET", h.url("web/todos/7"), nil, http.Header{"Traceparent": {"00-" + traceID + "-" + parentID + "-01"}})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	route := spanNamed(t, exp, gateway.RouteSpan, trace.SpanKindServer)
	if route.SpanContext.TraceID().String() != traceID || route.Parent.SpanID().String() != parentID || !route.Parent.IsRemote() {
		t.Fatalf("route span trace %s parent %s (remote %v), want trace %s under the client's %s",
			route.SpanContext.TraceID(), route.Parent.SpanID(), route.Parent.IsRemote(), traceID, parentID)
	}
	for key, want := range map[attribute.Key]string{
		"http.request.method": "GET", "mu.stack": h.stack.String(), "mu.gateway": "web", "mu.endpoint": "/todos/{id}", "mu.function": "api.get",
	} {
		if got := attrOf(route, key).Emit(); got != want {
			t.Errorf("route span %s = %q, want %q", key, got, want)
		}
	}
	if got := attrOf(route, "http.response.status_code").AsInt64(); got != 200 {
		t.Errorf("route span status %d, want 200", got)
	}
	invoke := spanNamed(t, exp, "mu.runtime.v1.RuntimeService/Invoke", trace.SpanKindClient)
	if invoke.Parent.SpanID() != route.SpanContext.SpanID() {
		t.Errorf("Invoke client span's parent %s, want the route span %s", invoke.Parent.SpanID(), route.SpanContext.SpanID())
	}
	// The runtime is told the client span as its parent.
	want := "00-" + traceID + "-" + invoke.SpanContext.SpanID().String() + "-01"
	if got := h.rt.lastMD().Get("traceparent"); len(got) != 1 || got[0] != want {
		t.Errorf("runtime got traceparent %v, want %s", got, want)
	}
}

func TestGatewayTrace_RequestWithoutTraceparentStartsATraceAndAnErrorAnswerIsRecorded(t *testing.T) {
	h, exp := tracedHarness(t)
	resp, _ := h.do("GET", h.url("nope/x"), nil, nil)
	if resp.StatusCode != 404 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	route := spanNamed(t, exp, gateway.RouteSpan, trace.SpanKindServer)
	if route.Parent.IsValid() {
		t.Errorf("route span has parent %v without a traceparent", route.Parent)
	}
	if got := attrOf(route, "http.response.status_code").AsInt64(); got != 404 {
		t.Errorf("route span status %d, want 404", got)
	}
	if got := attrOf(route, "mu.stack").AsString(); got != h.stack.String() {
		t.Errorf("route span stack %q, want %s", got, h.stack)
	}
	if n := len(exp.GetSpans()); n != 1 {
		t.Errorf("%d spans for a request that reached no runtime, want 1", n)
	}
}

func TestLogs_LineOfATracedCallCarriesItsTraceID(t *testing.T) {
	h := newLogsHarness(t)
	traced := logEntry(h.id, "api.get", "traced")
	traced.TraceId = "4bf92f3577b34da6a3ce929d0e0e4736"
	h.logs.history = append(h.logs.history, logEntry(h.id, "api.get", "untraced"), traced)
	resp := h.open(context.Background(), h.logsURL("tail=2"), h.key, time.Now())
	wantStream(t, resp)
	lines := readLines(t, resp)
	if len(lines) != 2 || lines[0].TraceID != "" || lines[1].TraceID != traced.TraceId {
		t.Fatalf("lines %+v, want the second with trace id %s", lines, traced.TraceId)
	}
}
