package service

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpExporter sends spans to an OpenTelemetry collector over OTLP/HTTP
// with protobuf bodies (ExportTraceServiceRequest POSTed to the traces
// path), one request per batch the SDK's batch span processor hands it.
//
// Why not otel's otlptracehttp or otlptracegrpc exporters: both import
// grpc-go's gzip codec (their shared config code does), and a registered
// codec makes every gRPC client of the process advertise
// grpc-accept-encoding on every call, traced or not: one header more at
// both ends, 4 allocations and about 1.2 KB per call on the gateway →
// runtime hop (BenchmarkHotPath_HelloGET/handler/grpc: 195 → 199
// allocs/op). Tracing off must cost nothing, so the wire format comes from
// the OTLP protobuf package and the transport is net/http.
//
// Safe for concurrent use, as the SDK requires.
type otlpExporter struct {
	url    string
	client *http.Client
}

// otlpTracesPath is where a collector's OTLP/HTTP receiver takes traces.
const otlpTracesPath = "/v1/traces"

// otlpExportTimeout bounds one export, as the otel exporters' default.
const otlpExportTimeout = 10 * time.Second

// newOTLPExporter is the exporter to endpoint: a URL as given (its path,
// or /v1/traces when it has none), or host:port at /v1/traces over http
// when insecure, https otherwise.
func newOTLPExporter(endpoint string, insecure bool) *otlpExporter {
	url := endpoint
	if !strings.Contains(endpoint, "://") {
		scheme := "https://"
		if insecure {
			scheme = "http://"
		}
		url = scheme + endpoint + otlpTracesPath
	} else if rest := endpoint[strings.Index(endpoint, "://")+3:]; !strings.Contains(rest, "/") {
		url = endpoint + otlpTracesPath
	}
	return &otlpExporter{url: url, client: &http.Client{Timeout: otlpExportTimeout}}
}

// ExportSpans sends spans in one request; an error names the collector and
// what it answered. The SDK drops the batch on error.
func (e *otlpExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	body, err := proto.Marshal(otlpRequest(spans))
	if err != nil {
		return fmt.Errorf("otlp: encode %d spans: %w", len(spans), err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("otlp: %s: %w", e.url, err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("otlp: export %d spans: %w", len(spans), err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("otlp: export %d spans to %s: %s: %s", len(spans), e.url, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// Shutdown closes idle connections; the SDK flushes before it.
func (e *otlpExporter) Shutdown(context.Context) error {
	e.client.CloseIdleConnections()
	return nil
}

// otlpRequest groups spans by resource and instrumentation scope, as OTLP
// carries them.
func otlpRequest(spans []sdktrace.ReadOnlySpan) *coltracepb.ExportTraceServiceRequest {
	req := &coltracepb.ExportTraceServiceRequest{}
	type scopeKey struct{ name, version, schema string }
	resources := map[string]*tracepb.ResourceSpans{}
	scopes := map[*tracepb.ResourceSpans]map[scopeKey]*tracepb.ScopeSpans{}
	for _, s := range spans {
		res := s.Resource()
		rkey := res.Encoded(attribute.DefaultEncoder()) + "|" + res.SchemaURL()
		rs := resources[rkey]
		if rs == nil {
			rs = &tracepb.ResourceSpans{Resource: &resourcepb.Resource{Attributes: otlpAttributes(res.Attributes())}, SchemaUrl: res.SchemaURL()}
			resources[rkey] = rs
			scopes[rs] = map[scopeKey]*tracepb.ScopeSpans{}
			req.ResourceSpans = append(req.ResourceSpans, rs)
		}
		sc := s.InstrumentationScope()
		skey := scopeKey{sc.Name, sc.Version, sc.SchemaURL}
		ss := scopes[rs][skey]
		if ss == nil {
			ss = &tracepb.ScopeSpans{Scope: &commonpb.InstrumentationScope{Name: sc.Name, Version: sc.Version}, SchemaUrl: sc.SchemaURL}
			scopes[rs][skey] = ss
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		ss.Spans = append(ss.Spans, otlpSpan(s))
	}
	return req
}

func otlpSpan(s sdktrace.ReadOnlySpan) *tracepb.Span {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	out := &tracepb.Span{
		TraceId:                tid[:],
		SpanId:                 sid[:],
		TraceState:             sc.TraceState().String(),
		Flags:                  uint32(sc.TraceFlags()),
		Name:                   s.Name(),
		Kind:                   tracepb.Span_SpanKind(s.SpanKind()), // same numbering: internal 1, server 2, client 3, producer 4, consumer 5
		StartTimeUnixNano:      unixNano(s.StartTime()),
		EndTimeUnixNano:        unixNano(s.EndTime()),
		Attributes:             otlpAttributes(s.Attributes()),
		DroppedAttributesCount: uint32(s.DroppedAttributes()),
		DroppedEventsCount:     uint32(s.DroppedEvents()),
		DroppedLinksCount:      uint32(s.DroppedLinks()),
		Status:                 &tracepb.Status{Message: s.Status().Description},
	}
	if s.SpanKind() == trace.SpanKindUnspecified {
		out.Kind = tracepb.Span_SPAN_KIND_INTERNAL
	}
	if p := s.Parent(); p.IsValid() {
		pid := p.SpanID()
		out.ParentSpanId = pid[:]
	}
	switch s.Status().Code {
	case otelcodes.Ok:
		out.Status.Code = tracepb.Status_STATUS_CODE_OK
	case otelcodes.Error:
		out.Status.Code = tracepb.Status_STATUS_CODE_ERROR
	}
	for _, ev := range s.Events() {
		out.Events = append(out.Events, &tracepb.Span_Event{Name: ev.Name, TimeUnixNano: unixNano(ev.Time),
			Attributes: otlpAttributes(ev.Attributes), DroppedAttributesCount: uint32(ev.DroppedAttributeCount)})
	}
	for _, l := range s.Links() {
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		out.Links = append(out.Links, &tracepb.Span_Link{TraceId: ltid[:], SpanId: lsid[:], TraceState: l.SpanContext.TraceState().String(),
			Attributes: otlpAttributes(l.Attributes), DroppedAttributesCount: uint32(l.DroppedAttributeCount)})
	}
	return out
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

func otlpAttributes(attrs []attribute.KeyValue) []*commonpb.KeyValue {
	if len(attrs) == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, 0, len(attrs))
	for _, kv := range attrs {
		out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: otlpValue(kv.Value)})
	}
	return out
}

func otlpValue(v attribute.Value) *commonpb.AnyValue {
	switch v.Type() {
	case attribute.BOOL:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}}
	case attribute.INT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}}
	case attribute.FLOAT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}}
	case attribute.STRING:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.AsString()}}
	case attribute.BOOLSLICE:
		return otlpArray(v.AsBoolSlice(), func(b bool) *commonpb.AnyValue { return otlpValue(attribute.BoolValue(b)) })
	case attribute.INT64SLICE:
		return otlpArray(v.AsInt64Slice(), func(i int64) *commonpb.AnyValue { return otlpValue(attribute.Int64Value(i)) })
	case attribute.FLOAT64SLICE:
		return otlpArray(v.AsFloat64Slice(), func(f float64) *commonpb.AnyValue { return otlpValue(attribute.Float64Value(f)) })
	case attribute.STRINGSLICE:
		return otlpArray(v.AsStringSlice(), func(s string) *commonpb.AnyValue { return otlpValue(attribute.StringValue(s)) })
	}
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.Emit()}}
}

func otlpArray[T any](vs []T, conv func(T) *commonpb.AnyValue) *commonpb.AnyValue {
	arr := &commonpb.ArrayValue{Values: make([]*commonpb.AnyValue, 0, len(vs))}
	for _, v := range vs {
		arr.Values = append(arr.Values, conv(v))
	}
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: arr}}
}
