package storage

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/muprotocol/mu/libs/service"
)

// opSpan starts the span "storage <op>" of an object call, inside the
// call's gRPC server span, with the box and, when keys >= 0, the number
// of keys it names; with tracing off it returns ctx and a nil span.
func (s *Server) opSpan(ctx context.Context, op, box string, keys int) (context.Context, trace.Span) {
	if !s.tracing {
		return ctx, nil
	}
	attrs := []attribute.KeyValue{attribute.String("mu.storage.op", op), attribute.String("mu.storage.box", box)}
	if keys >= 0 {
		attrs = append(attrs, attribute.Int("mu.storage.keys", keys))
	}
	return s.tracer.Start(ctx, "storage "+op, trace.WithAttributes(attrs...))
}

// endOp ends an object call's span with the bytes it moved, if any, and
// its error.
func (s *Server) endOp(span trace.Span, bytes int64, err error) {
	if span == nil {
		return
	}
	if bytes > 0 {
		span.SetAttributes(attribute.Int64("mu.storage.bytes", bytes))
	}
	service.EndSpan(span, err)
}
