package gateway

import (
	"net/http"

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

// routeSpanRouted records on a route span where the request was routed:
// the gateway, the endpoint (its path template) and the function.
func routeSpanRouted(span trace.Span, gw, endpoint, function string) {
	span.SetAttributes(attribute.String("mu.gateway", gw), attribute.String("mu.endpoint", endpoint), attribute.String("mu.function", function))
}

// routeSpanAnswered records the answer's HTTP status; a 5xx is an error.
func routeSpanAnswered(span trace.Span, status int) {
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= http.StatusInternalServerError {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
}

// endRouteSpan ends x's span with the stack the request was for, when its
// URL named one.
func endRouteSpan(x *exchange) {
	if x.stack != nil {
		x.span.SetAttributes(attribute.String("mu.stack", x.stack.id.String()))
	}
	x.span.End()
}
