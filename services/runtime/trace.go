package runtime

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/muprotocol/mu/services/runtime/internal/wasm"
)

// The spans a call gets at the runtime, under the Invoke server span
// (gRPC or in process), with tracing on.
const (
	// SpanInstanceWait is getting an instance for the call: a warm one
	// from the pool, or one started for it, and the node's memory for it.
	SpanInstanceWait = "instance wait"
	// SpanWasmCall is the call itself, the function's db and storage
	// requests (client spans of the muDB and storage calls) inside it.
	SpanWasmCall = "wasm call"
)

// waitSpan starts the instance wait span of inv under ctx when tracing is
// on; otherwise it returns ctx and a nil span, which the end functions
// accept, so an untraced call allocates nothing for its spans.
func (s *Server) waitSpan(ctx context.Context, inv *invocation) (context.Context, trace.Span) {
	if !s.tracing {
		return ctx, nil
	}
	return s.tracer.Start(ctx, SpanInstanceWait, trace.WithAttributes(attribute.Bool("mu.receipt", inv.sampled != nil)))
}

// callSpan starts the wasm call span of inv under ctx when tracing is on,
// as waitSpan does.
func (s *Server) callSpan(ctx context.Context, inv *invocation) (context.Context, trace.Span) {
	if !s.tracing {
		return ctx, nil
	}
	return s.tracer.Start(ctx, SpanWasmCall, trace.WithAttributes(attribute.String("mu.function", inv.f.assembly+"."+inv.fnName),
		attribute.Bool("mu.receipt", inv.sampled != nil)))
}

// endWait ends an instance wait span; fresh says the call got a new
// instance (started for it, or found idle before it served a call).
func endWait(span trace.Span, inst *wasm.Instance, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	} else {
		span.SetAttributes(attribute.Bool("mu.instance.fresh", inst.Calls() == 0))
	}
	span.End()
}

// endWasmCall ends a wasm call span with the call's fuel and outcome
// (ok, error, out_of_fuel, deadline, trap, exit, protocol_error, as in
// receipts).
func endWasmCall(span trace.Span, res *wasm.Result, err error) {
	if span == nil {
		return
	}
	var ce *wasm.CallError
	switch {
	case err == nil:
		span.SetAttributes(attribute.Int64("mu.fuel_used", int64(res.Fuel)), attribute.String("mu.outcome", "ok"))
	case errors.As(err, &ce):
		span.SetAttributes(attribute.Int64("mu.fuel_used", int64(ce.Fuel)), attribute.String("mu.outcome", outcomeOf(ce)))
		span.SetStatus(codes.Error, ce.Message)
	default:
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
