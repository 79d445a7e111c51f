package cmd

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/muprotocol/mu/services/gateway"
)

// durations matches the durations the tree prints, which vary run to run.
var durations = regexp.MustCompile(`\b[0-9][0-9.]*(ns|µs|ms|s)\b`)

func TestSpanTree_PrintsARequestsTreeWhenItsRouteSpanEnds(t *testing.T) {
	var out lockedBuffer
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(newSpanTree(&out)))
	defer tp.Shutdown(context.Background())
	tr := tp.Tracer("test")
	ctx, root := tr.Start(context.Background(), gateway.RouteSpan, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", "POST"), attribute.String("mu.endpoint", "/")))
	ictx, invoke := tr.Start(ctx, "mu.runtime.v1.RuntimeService/Invoke", trace.WithSpanKind(trace.SpanKindServer))
	_, wait := tr.Start(ictx, "instance wait", trace.WithAttributes(attribute.Bool("mu.instance.fresh", true)))
	wait.End()
	cctx, call := tr.Start(ictx, "wasm call", trace.WithAttributes(attribute.Int64("mu.fuel_used", 1234), attribute.String("mu.outcome", "ok")))
	gctx, client := tr.Start(cctx, "mu.mudb.v1.MudbService/Get", trace.WithSpanKind(trace.SpanKindClient))
	_, op := tr.Start(gctx, "mudb Get", trace.WithAttributes(attribute.String("mu.db.table", "todos"), attribute.Int("mu.db.keys", 1)))
	op.End()
	client.End()
	_, put := tr.Start(cctx, "storage Put", trace.WithAttributes(attribute.String("mu.storage.box", "files")))
	put.SetStatus(codes.Error, "box full")
	put.End()
	call.End()
	invoke.End()
	if out.String() != "" {
		t.Fatalf("printed before the route span ended:\n%s", out.String())
	}
	root.SetAttributes(attribute.Int("http.response.status_code", 201))
	root.End()

	got := durations.ReplaceAllString(out.String(), "D")
	want := "trace " + root.SpanContext().TraceID().String() + "\n" +
		"  gateway route D  method=POST endpoint=/ status=201\n" +
		"    mu.runtime.v1.RuntimeService/Invoke (server) D\n" +
		"      instance wait D  fresh=true\n" +
		"      wasm call D  fuel=1234 outcome=ok\n" +
		"        mu.mudb.v1.MudbService/Get (client) D\n" +
		"          mudb Get D  table=todos keys=1\n" +
		"        storage Put D  box=files  error: box full\n"
	if got != want {
		t.Fatalf("tree:\n%s\nwant:\n%s", got, want)
	}
}

func TestSpanTree_ForgetsTracesThatAreNotRequests(t *testing.T) {
	var out lockedBuffer
	p := newSpanTree(&out)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(p))
	defer tp.Shutdown(context.Background())
	tr := tp.Tracer("test")
	ctx, report := tr.Start(context.Background(), "mu.billing.v1.BillingService/ReportUsage", trace.WithSpanKind(trace.SpanKindClient))
	_, inner := tr.Start(ctx, "inner")
	inner.End()
	report.End()
	if out.String() != "" {
		t.Fatalf("printed a trace without a gateway route:\n%s", out.String())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.traces) != 0 {
		t.Fatalf("kept %d traces after their root ended", len(p.traces))
	}
}

// TestRunTrace_PrintsTheSpanTreeOfEachRequest serves examples/todo with
// mu run --trace and adds a todo: stderr shows the request's tree, the
// gateway route over the runtime's Invoke over the wasm call over a muDB
// op, each indented under the one before.
func TestRunTrace_PrintsTheSpanTreeOfEachRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wasm")
	}
	url, _, stop := startRun(t, todoProject(t), t.TempDir(), "--trace")
	if code, body := todoDo(t, "POST", url, `{"title": "milk"}`); code != 201 {
		t.Fatalf("POST: %d %s", code, body)
	}
	out := stop()
	var tree []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "  "+gateway.RouteSpan+" ") && strings.Contains(l, "status=201") {
			tree = []string{l}
			continue
		}
		if tree != nil {
			if !strings.HasPrefix(l, "    ") {
				break
			}
			tree = append(tree, l)
		}
	}
	if tree == nil {
		t.Fatalf("no tree of the POST on stderr:\n%s", out)
	}
	t.Log("\n" + strings.Join(tree, "\n"))
	indent := func(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }
	// Each of these, in turn, deeper than the one before.
	want := []string{"mu.runtime.v1.RuntimeService/Invoke", "wasm call", "mudb "}
	depth, i := indent(tree[0]), 0
	for _, l := range tree[1:] {
		if i < len(want) && strings.HasPrefix(strings.TrimLeft(l, " "), want[i]) && indent(l) > depth {
			depth = indent(l)
			i++
		}
	}
	if i < len(want) {
		t.Fatalf("the tree has no %q under the spans before it:\n%s", want[i], strings.Join(tree, "\n"))
	}
}

func TestWriteLogLine_ShowsTheShortTraceIDOfATracedCall(t *testing.T) {
	var b strings.Builder
	writeLogLine(&b, "10:00:00.000", "info", "todo.add", "4bf92f3577b34da6a3ce929d0e0e4736", "todo added")
	writeLogLine(&b, "10:00:00.001", "warn", "runtime", "", "deployed")
	want := "10:00:00.000 INFO  todo.add [trace 4bf92f35]: todo added\n10:00:00.001 WARN  runtime: deployed\n"
	if b.String() != want {
		t.Fatalf("lines:\n%s\nwant:\n%s", b.String(), want)
	}
}
