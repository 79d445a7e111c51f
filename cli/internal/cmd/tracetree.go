package cmd

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/muprotocol/mu/services/gateway"
)

// spanTree is the span processor of `mu run --trace`: it keeps the spans
// that end, by trace, and when a request's root span (the gateway route)
// ends it writes that trace's span tree to w and forgets it. In `mu run`
// every service shares the provider, so a request's other spans have ended
// by then; one that ends later (a gRPC server span finishing just after
// its client) is left out. Traces without a gateway route (usage reports,
// deploys) are dropped when their root ends. Safe for concurrent use.
type spanTree struct {
	w io.Writer

	mu     sync.Mutex
	traces map[trace.TraceID][]sdktrace.ReadOnlySpan
}

// maxPendingTraces bounds the traces a spanTree keeps waiting for their
// root: past it, the oldest are forgotten (their root never came, or ends
// after hours, as a log stream's).
const maxPendingTraces = 1024

func newSpanTree(w io.Writer) *spanTree {
	return &spanTree{w: w, traces: map[trace.TraceID][]sdktrace.ReadOnlySpan{}}
}

func (p *spanTree) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (p *spanTree) OnEnd(s sdktrace.ReadOnlySpan) {
	tr := s.SpanContext().TraceID()
	isRoute := s.Name() == gateway.RouteSpan
	p.mu.Lock()
	all := append(p.traces[tr], s)
	switch {
	case isRoute:
		delete(p.traces, tr)
	case !s.Parent().IsValid():
		delete(p.traces, tr) // a root that is not a request's
		all = nil
	default:
		if _, ok := p.traces[tr]; !ok && len(p.traces) >= maxPendingTraces {
			clear(p.traces)
		}
		p.traces[tr] = all
		all = nil
	}
	p.mu.Unlock()
	if all != nil {
		var b strings.Builder
		writeSpanTree(&b, all)
		io.WriteString(p.w, b.String())
	}
}

func (p *spanTree) Shutdown(context.Context) error   { return nil }
func (p *spanTree) ForceFlush(context.Context) error { return nil }

// writeSpanTree writes the spans of one trace as a tree: the trace id,
// then each span indented under its parent (siblings by start time) with
// its duration, its kind when it is a gRPC client or server span, the
// attributes that say what it did (shortAttrs) and its error. Spans whose
// parent is not among them are roots.
func writeSpanTree(w io.Writer, spans []sdktrace.ReadOnlySpan) {
	if len(spans) == 0 {
		return
	}
	byID := make(map[trace.SpanID]bool, len(spans))
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = true
	}
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if pid := s.Parent().SpanID(); s.Parent().IsValid() && byID[pid] {
			children[pid] = append(children[pid], s)
		} else {
			roots = append(roots, s)
		}
	}
	byStart := func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) }
	slices.SortFunc(roots, byStart)
	fmt.Fprintf(w, "trace %s\n", spans[0].SpanContext().TraceID())
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		line := strings.Repeat("  ", depth+1) + s.Name()
		switch s.SpanKind() {
		case trace.SpanKindClient:
			line += " (client)"
		case trace.SpanKindServer:
			if s.Name() != gateway.RouteSpan {
				line += " (server)"
			}
		}
		line += " " + roundDuration(s.EndTime().Sub(s.StartTime())).String()
		if a := shortAttrs(s.Attributes()); a != "" {
			line += "  " + a
		}
		if st := s.Status(); st.Code == codes.Error {
			line += "  error: " + st.Description
		}
		fmt.Fprintln(w, line)
		kids := children[s.SpanContext().SpanID()]
		slices.SortFunc(kids, byStart)
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
}

// roundDuration keeps three significant digits or so: 1.23ms, 45.6µs.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= time.Microsecond:
		return d.Round(100 * time.Nanosecond)
	}
	return d
}

// treeAttrs are the attributes the tree shows, and under which names.
var treeAttrs = []struct{ key, label string }{
	{"http.request.method", "method"},
	{"mu.endpoint", "endpoint"},
	{"mu.function", "function"},
	{"http.response.status_code", "status"},
	{"mu.instance.fresh", "fresh"},
	{"mu.fuel_used", "fuel"},
	{"mu.outcome", "outcome"},
	{"mu.db.table", "table"},
	{"mu.db.keys", "keys"},
	{"mu.storage.box", "box"},
	{"mu.storage.keys", "keys"},
	{"mu.storage.bytes", "bytes"},
	{"rpc.grpc.status_code", "code"},
}

// shortAttrs formats the attributes of treeAttrs that attrs has, as
// label=value in treeAttrs' order; a gRPC code is shown only when not OK.
func shortAttrs(attrs []attribute.KeyValue) string {
	var b strings.Builder
	for _, ta := range treeAttrs {
		for _, kv := range attrs {
			if string(kv.Key) != ta.key {
				continue
			}
			if ta.key == "rpc.grpc.status_code" && kv.Value.AsInt64() == 0 {
				break
			}
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s=%s", ta.label, kv.Value.Emit())
			break
		}
	}
	return b.String()
}
