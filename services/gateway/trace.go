package gateway

import (
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/muprotocol/mu/libs/service"
)

// RouteSpan is the name of the span of one stack request at the gateway,
// the root of a request's trace unless the client sent a traceparent.
const RouteSpan = "gateway route"

// startRouteSpan starts x's gateway route span (tracing is on), as the
// child of the request's W3C traceparent when it has one, and gives its
// context to the request, which the runtime call inherits.
func (s *Server) startRouteSpan(x *exchange) {
	ctx := service.Propagator.Extract(x.r.Context(), propagation.HeaderCarrier(x.r.Header))
	ctx, x.span = s.tracer.Start(ctx, RouteSpan, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", x.r.Method), attribute.String("mu.gateway.node", s.cfg.NodeName)))
	x.r = x.r.WithContext(ctx)
}

// endRouteSpan ends x's span with what the request came to: the stack,
// gateway, endpoint and function it was routed to (as far as it got) and
// the HTTP status; a 5xx is an error.
func endRouteSpan(x *exchange) {
	attrs := make([]attribute.KeyValue, 0, 5)
	if x.stack != nil {
		attrs = append(attrs, attribute.String("mu.stack", x.stack.id.String()))
	}
	if x.gateway != "" {
		attrs = append(attrs, attribute.String("mu.gateway", x.gateway), attribute.String("mu.endpoint", x.endpoint),
			attribute.String("mu.function", x.function))
	}
	attrs = append(attrs, attribute.Int("http.response.status_code", x.status))
	x.span.SetAttributes(attrs...)
	if x.status >= http.StatusInternalServerError {
		x.span.SetStatus(codes.Error, strconv.Itoa(x.status))
	}
	x.span.End()
}
