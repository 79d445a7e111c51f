package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/rpcerr"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
)

// Error kinds: the "kind" of the JSON error body
// {"error": {"kind": ..., "message": ...}} that every response the gateway
// makes itself carries. They are a stable part of the HTTP API.
const (
	KindNotFound           = "not_found"                   // 404: the URL is not /{stack_id}/{gateway}/...
	KindStackNotFound      = "stack_not_found"             // 404: no such stack on this gateway
	KindGatewayNotFound    = "gateway_not_found"           // 404: the stack has no gateway of that name
	KindRouteNotFound      = "route_not_found"             // 404: no endpoint path matches
	KindMethodNotAllowed   = "method_not_allowed"          // 405: paths match, the method does not (Allow header)
	KindStackDisabled      = "stack_disabled"              // 402: escrow below the region minimum
	KindBadRequest         = "bad_request"                 // 400: malformed path encoding or query, invalid UTF-8, broken body
	KindBodyTooLarge       = "body_too_large"              // 413: body over MaxRequestBodyBytes, or request over the runtime's frame
	KindHeadersTooLarge    = "headers_too_large"           // 431: request line + headers over MaxHeaderBytes
	KindFunctionNotFound   = "function_not_found"          // 404: the runtime does not know the stack or function
	KindRuntimeUnavailable = "runtime_unavailable"         // 503: no runtime reachable for the stack
	KindRuntimeOverloaded  = "runtime_overloaded"          // 503: the runtime is out of capacity
	KindRuntimeError       = "runtime_error"               // 502: the runtime failed the call otherwise
	KindMessageTooLarge    = "message_too_large"           // 502: a gRPC message exceeded a size limit
	KindInvalidResponse    = "invalid_response"            // 502: the function's response is not valid HTTP
	KindResponseTooLarge   = "response_too_large"          // 502: response body/headers over the limits
	KindClientClosed       = "client_closed"               // 499 (logged only): the client went away
	KindShuttingDown       = "shutting_down"               // 503: the gateway is closing
	KindUnauthorized       = "unauthorized"                // 401: a signed endpoint's signature is missing, malformed, wrong or stale
	KindForbidden          = "forbidden"                   // 403: signed by a key that may not, or the owner is unknown
	KindTooManyLogStreams  = "too_many_log_streams"        // 429: Config.LogsMaxStreams log streams are open
	KindRateLimited        = "rate_limited"                // 429: the stack is over its request rate (Retry-After)
	KindTooManyInFlight    = "too_many_requests_in_flight" // 429: the stack has its limit of requests in flight (Retry-After: 1)

	// The InvokeError kinds of mu.runtime.v1, lower-cased.
	KindFuelExhausted    = "fuel_exhausted"    // 500
	KindDeadlineExceeded = "deadline_exceeded" // 504 (also the gateway's InvokeTimeout)
	KindMemoryLimit      = "memory_limit"      // 502
	KindCrash            = "crash"             // 502
	KindProtocol         = "protocol"          // 502
	KindFunctionError    = "function_error"    // 500
	KindFunctionFailed   = "function_failed"   // 502: an InvokeError of unknown kind
)

// StatusClientClosedRequest is recorded (metrics, logs) for requests whose
// client disconnected before the answer; nginx's convention. The client
// never sees it.
const StatusClientClosedRequest = 499

// httpError is a response the gateway makes itself.
type httpError struct {
	status int
	kind   string
	msg    string
	allow  []string // for 405
	retry  bool     // a 503 the client may retry: Retry-After is set
	// retryAfter, when set, is the Retry-After value to send (a 429 of
	// the stack's limits), instead of OverloadRetryAfter's.
	retryAfter string
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.kind, e.msg) }

func errorf(status int, kind, format string, args ...any) *httpError {
	return &httpError{status: status, kind: kind, msg: fmt.Sprintf(format, args...)}
}

// invokeErrorStatus maps a function failure reported by the runtime.
//
// 500 when the function ran and failed on its own terms: it reported a
// FatalError, or it spent its whole fuel budget (a property of the code and
// the request; retrying the same request fails the same way). 502 when the
// instance broke instead of answering: trap or exit, memory limit (which
// surfaces as a failed allocation and a crash), or a stdio protocol
// violation. 504 when the wall-clock limit ran out.
func invokeErrorStatus(e *runtimev1.InvokeError) *httpError {
	msg := e.GetMessage()
	switch e.GetKind() {
	case runtimev1.InvokeError_KIND_FUNCTION_ERROR:
		return errorf(http.StatusInternalServerError, KindFunctionError, "the function failed: %s", msg)
	case runtimev1.InvokeError_KIND_FUEL_EXHAUSTED:
		return errorf(http.StatusInternalServerError, KindFuelExhausted, "the function ran out of fuel: %s", msg)
	case runtimev1.InvokeError_KIND_DEADLINE_EXCEEDED:
		return errorf(http.StatusGatewayTimeout, KindDeadlineExceeded, "the function ran out of time: %s", msg)
	case runtimev1.InvokeError_KIND_MEMORY_LIMIT:
		return errorf(http.StatusBadGateway, KindMemoryLimit, "the function exceeded its memory limit: %s", msg)
	case runtimev1.InvokeError_KIND_CRASH:
		return errorf(http.StatusBadGateway, KindCrash, "the function crashed: %s", msg)
	case runtimev1.InvokeError_KIND_PROTOCOL:
		return errorf(http.StatusBadGateway, KindProtocol, "the function broke the runtime protocol: %s", msg)
	default:
		return errorf(http.StatusBadGateway, KindFunctionFailed, "the function failed (%s): %s", e.GetKind(), msg)
	}
}

// rpcErrorStatus maps a failed Runtime.Invoke call of function fn. reqCtx
// is the HTTP request's context, to tell a departed client from a runtime
// failure. Transport-level details (internal addresses, dial errors) stay in
// the logs; the public message says what happened without them.
func rpcErrorStatus(reqCtx context.Context, err error, fn string) *httpError {
	if reqCtx.Err() != nil && !errors.Is(reqCtx.Err(), context.DeadlineExceeded) {
		return errorf(StatusClientClosedRequest, KindClientClosed, "the client closed the request")
	}
	st, _ := status.FromError(err)
	msg := st.Message()
	switch st.Code() {
	case codes.NotFound:
		return errorf(http.StatusNotFound, KindFunctionNotFound, "the runtime does not serve function %s of this stack", fn)
	case codes.Unavailable:
		e := errorf(http.StatusServiceUnavailable, KindRuntimeUnavailable, "the runtime serving this stack is unavailable; try again later")
		e.retry = true
		return e
	case codes.DeadlineExceeded:
		return errorf(http.StatusGatewayTimeout, KindDeadlineExceeded, "function %s did not answer in time", fn)
	case codes.ResourceExhausted:
		// The runtime marks a busy node; gRPC's own size limits carry no
		// reason.
		if rpcerr.ReasonOf(err) == rpcerr.CapacityExhausted {
			e := errorf(http.StatusServiceUnavailable, KindRuntimeOverloaded, "the runtime is out of capacity; try again later")
			e.retry = true
			return e
		}
		return errorf(http.StatusBadGateway, KindMessageTooLarge, "a message to or from the runtime is too large: %s", msg)
	case codes.FailedPrecondition:
		// The runtime learnt that the stack is disabled before this
		// gateway did.
		if rpcerr.ReasonOf(err) == rpcerr.StackDisabled {
			return errorf(http.StatusPaymentRequired, KindStackDisabled, "%s", msg)
		}
		return errorf(http.StatusBadGateway, KindRuntimeError, "the runtime failed the call (%s)", st.Code())
	case codes.InvalidArgument:
		if rpcerr.ReasonOf(err) == rpcerr.RequestTooLarge {
			return errorf(http.StatusRequestEntityTooLarge, KindBodyTooLarge, "the request is too large for the runtime: %s", msg)
		}
		return errorf(http.StatusBadRequest, KindBadRequest, "the runtime rejected the request: %s", msg)
	default:
		return errorf(http.StatusBadGateway, KindRuntimeError, "the runtime failed the call (%s)", st.Code())
	}
}
