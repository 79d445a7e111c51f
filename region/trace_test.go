package region

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/services/gateway"
	"github.com/muprotocol/mu/services/runtime"
	"github.com/muprotocol/mu/services/runtime/logs"
)

// spans is what an in-memory exporter holds, with lookups for the tests.
type spans []tracetest.SpanStub

// find returns the span of trace named name of kind whose parent is
// parent, or nil.
func (ss spans) find(tr trace.TraceID, name string, kind trace.SpanKind, parent trace.SpanContext) *tracetest.SpanStub {
	for i := range ss {
		s := &ss[i]
		if s.SpanContext.TraceID() == tr && s.Name == name && s.SpanKind == kind && s.Parent.SpanID() == parent.SpanID() {
			return s
		}
	}
	return nil
}

func attr(s *tracetest.SpanStub, key string) attribute.Value {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// waitSpans polls exp until ok accepts its spans or a generous deadline
// passes: a gRPC server span ends once its handler has returned, which may
// be just after its client saw the answer.
func waitSpans(t *testing.T, exp *tracetest.InMemoryExporter, ok func(spans) bool) spans {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ss := spans(exp.GetSpans())
		if ok(ss) || time.Now().After(deadline) {
			return ss
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTrace_TodoRequestIsOneTraceAcrossGatewayRuntimeMudbAndStorage sends
// one POST of examples/todo (a muDB Get, a storage Put, a muDB
// CompareAndSwap, a log line) through the region's gateway, every service
// in this process on one tracer provider with an in-memory exporter, and
// checks the request is one trace with every span where it belongs: the
// gateway route at the root, the runtime's Invoke (in process) under it,
// the instance wait and the wasm call under that, the muDB and storage
// client spans under the wasm call, their gRPC server spans (remote
// parents) under those and the services' op spans under those; the
// function's log line carries the trace id, and billing's ReportUsage is a
// trace of its own.
func TestTrace_TodoRequestIsOneTraceAcrossGatewayRuntimeMudbAndStorage(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	r := startRegion(t, Options{
		Mudb: &MudbOptions{}, Storage: &StorageOptions{}, Billing: &BillingOptions{},
		TracerProvider: tp,
	})
	id, _, _ := ids.NewStackID()
	app := deployTodo(t, r, id)
	exp.Reset()
	app.want("POST", "/", "ann", `{"title":"trip","attachments":[{"name":"map.txt","data":"bm9ydGg="}]}`, 201, "")

	var root *tracetest.SpanStub
	names := func(ss spans) bool {
		for i := range ss {
			if ss[i].Name == gateway.RouteSpan {
				root = &ss[i]
			}
		}
		if root == nil {
			return false
		}
		have := map[string]int{}
		for _, s := range ss {
			if s.SpanContext.TraceID() == root.SpanContext.TraceID() {
				have[s.Name]++
			}
		}
		// Each op's client and server span, and its own.
		return have["mu.mudb.v1.MudbService/Get"] >= 2 && have["mu.mudb.v1.MudbService/CompareAndSwap"] == 2 &&
			have["mu.storage.v1.StorageService/Put"] == 2 && have["mudb Get"] >= 1 && have["mudb CompareAndSwap"] == 1 && have["storage Put"] == 1
	}
	ss := waitSpans(t, exp, names)
	if root == nil {
		t.Fatalf("no %q span among %d", gateway.RouteSpan, len(ss))
	}
	tr := root.SpanContext.TraceID()
	if root.Parent.IsValid() || root.SpanKind != trace.SpanKindServer {
		t.Errorf("route span: parent %v kind %v, want a server root", root.Parent, root.SpanKind)
	}
	if got := attr(root, "http.response.status_code").AsInt64(); got != 201 {
		t.Errorf("route span status %d, want 201", got)
	}
	if got := attr(root, "mu.stack").AsString(); got != id.String() {
		t.Errorf("route span stack %q, want %s", got, id)
	}
	if got := attr(root, "mu.gateway").AsString(); got != "todo" {
		t.Errorf("route span gateway %q, want todo", got)
	}
	must := func(name string, kind trace.SpanKind, parent *tracetest.SpanStub) *tracetest.SpanStub {
		t.Helper()
		if parent == nil {
			t.FailNow()
		}
		s := ss.find(tr, name, kind, parent.SpanContext)
		if s == nil {
			t.Errorf("no %s span %q under %q in trace %s; the trace has:", kind, name, parent.Name, tr)
			for _, s := range ss {
				if s.SpanContext.TraceID() == tr {
					t.Logf("  %s %q (span %s, parent %s)", s.SpanKind, s.Name, s.SpanContext.SpanID(), s.Parent.SpanID())
				}
			}
			t.FailNow()
		}
		return s
	}
	invoke := must("mu.runtime.v1.RuntimeService/Invoke", trace.SpanKindServer, root)
	must(runtime.SpanInstanceWait, trace.SpanKindInternal, invoke)
	call := must(runtime.SpanWasmCall, trace.SpanKindInternal, invoke)
	if got := attr(call, "mu.outcome").AsString(); got != "ok" {
		t.Errorf("wasm call outcome %q, want ok", got)
	}
	if attr(call, "mu.fuel_used").AsInt64() <= 0 {
		t.Errorf("wasm call has no fuel_used: %v", call.Attributes)
	}
	for _, op := range []struct{ service, method, span string }{
		{"mu.mudb.v1.MudbService", "Get", "mudb Get"},
		{"mu.mudb.v1.MudbService", "CompareAndSwap", "mudb CompareAndSwap"},
		{"mu.storage.v1.StorageService", "Put", "storage Put"},
	} {
		client := must(op.service+"/"+op.method, trace.SpanKindClient, call)
		server := must(op.service+"/"+op.method, trace.SpanKindServer, client)
		if !server.Parent.IsRemote() {
			t.Errorf("%s server span: parent not remote: it crossed no gRPC connection", op.method)
		}
		inner := must(op.span, trace.SpanKindInternal, server)
		if op.service == "mu.mudb.v1.MudbService" {
			if got := attr(inner, "mu.db.table").AsString(); got != "todos" {
				t.Errorf("%s: table %q, want todos", op.span, got)
			}
			if got := attr(inner, "mu.db.keys").AsInt64(); got != 1 {
				t.Errorf("%s: keys %d, want 1", op.span, got)
			}
		} else if got := attr(inner, "mu.storage.bytes").AsInt64(); got != int64(len("north")) {
			t.Errorf("%s: bytes %d, want %d", op.span, got, len("north"))
		}
	}

	// The function's log line of that call.
	var line *logs.Entry
	for _, e := range r.Runtime().Server().Logs().Recent(logs.Filter{Stack: id}, 100) {
		if e.Source == logs.SourceLog && e.Body != "" {
			line = &e
		}
	}
	if line == nil {
		t.Fatal("the call wrote no log line")
	}
	if line.TraceID != tr.String() {
		t.Errorf("log line %q has trace id %q, want %s", line.Body, line.TraceID, tr)
	}

	// Usage reaches billing in batches of many requests: their
	// ReportUsage is a trace of its own, not a child of the request.
	if err := r.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	var report *tracetest.SpanStub
	waitSpans(t, exp, func(ss spans) bool {
		for i := range ss {
			if ss[i].Name == "mu.billing.v1.BillingService/ReportUsage" && ss[i].SpanKind == trace.SpanKindServer {
				report = &ss[i]
				return true
			}
		}
		return false
	})
	if report == nil {
		t.Fatal("no ReportUsage server span at billing")
	}
	if report.SpanContext.TraceID() == tr {
		t.Error("ReportUsage is in the request's trace")
	}
}
