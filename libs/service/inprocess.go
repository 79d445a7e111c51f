package service

import (
	"context"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/muprotocol/mu/libs/rpcerr"
)

// In-process calls: a caller in the same process (a gateway and its owner
// runtime in `mu run` or mu-executor) calls a unary method of a service
// through the path a gRPC call takes, minus serialization and sockets. What
// stays the same as over gRPC:
//
//   - the Runner's unary interceptors (the grpc_server_* metrics, panic
//     recovery: a panic is INTERNAL; RunnerOptions.UnaryInterceptors);
//   - metadata: the caller's outgoing metadata is the handler's incoming
//     metadata, and the handler starts with no outgoing metadata of its own;
//   - the caller's deadline and cancellation, and after the call a caller
//     whose context ended gets DEADLINE_EXCEEDED or CANCELED, whatever the
//     handler answered;
//   - errors: a handler's error reaches the caller as a gRPC status (codes,
//     messages and details as the client of a gRPC call sees them; a plain
//     error is UNKNOWN, a context error DEADLINE_EXCEEDED or CANCELED);
//   - size limits, with grpc-go's codes and messages (RESOURCE_EXHAUSTED): a
//     request over the caller's grpc.MaxCallSendMsgSize or the server's
//     MaxMessageBytes, a response over the server's MaxMessageBytes or the
//     caller's grpc.MaxCallRecvMsgSize (gRPC's client default, 4 MiB, when
//     the call has none), measured with proto.Size;
//   - shutdown: a call that starts before Start or once Close has begun is
//     UNAVAILABLE (reason SHUTTING_DOWN), as a new RPC on a stopping server;
//     Close waits for the calls in flight with the gRPC server's graceful
//     stop, cancels those still running at ShutdownTimeout, waits for their
//     handlers to return (grpc.WaitForHandlers) and answers their callers
//     UNAVAILABLE, as a gRPC client whose connection was cut.
//
//   - traces: with tracing on, the call is a server span named as
//     otelgrpc names a gRPC one ("package.Service/Method"), child of the
//     caller's span in ctx, so a trace nests the same on both paths.
//
// What it skips: encoding, decoding and copying the messages (the handler
// gets the caller's request and the caller gets the handler's response, so
// ownership rules are the service's to document), HTTP/2 framing, the
// socket, the per-RPC goroutine, stats handlers and the peer, and
// grpc.SetHeader, SendHeader and SetTrailer, which fail without a server
// stream (no service here uses them). Other grpc.CallOptions than the size
// limits are ignored.

// defaultCallRecvMsgSize is grpc-go's client default for the largest
// response it accepts, which a gRPC call has when it sets none.
const defaultCallRecvMsgSize = 4 << 20

// Unary is one unary method of a service on a Runner, callable in process.
// Make it once per method with NewUnary (it holds the interceptor chain
// built for the method) and call it from any goroutine.
type Unary[Req, Resp proto.Message] struct {
	r    *Runner
	info grpc.UnaryServerInfo
	// chain runs the Runner's interceptors around the handler; built once,
	// so a call allocates nothing for it.
	chain grpc.UnaryHandler
	// span and spanOpts name and describe the call's server span (with
	// tracing on).
	span     string
	spanOpts []trace.SpanStartOption
}

// NewUnary makes method (the full name, "/package.Service/Method", as in
// the generated FullMethodName constants) of srv (the service's
// implementation, passed to interceptors as UnaryServerInfo.Server) callable
// in process through r, with h as its handler. Register the same service on
// r.GRPC() too, so that the method is counted in the gRPC metrics from
// Start.
func NewUnary[Req, Resp proto.Message](r *Runner, srv any, method string, h func(context.Context, Req) (Resp, error)) *Unary[Req, Resp] {
	u := &Unary[Req, Resp]{r: r, info: grpc.UnaryServerInfo{Server: srv, FullMethod: method}}
	next := grpc.UnaryHandler(func(ctx context.Context, req any) (any, error) { return h(ctx, req.(Req)) })
	for i := len(r.unary) - 1; i >= 0; i-- {
		icpt, inner := r.unary[i], next
		next = func(ctx context.Context, req any) (any, error) { return icpt(ctx, req, &u.info, inner) }
	}
	u.chain = next
	u.span = strings.TrimPrefix(method, "/")
	svc, m, _ := strings.Cut(u.span, "/")
	u.spanOpts = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("rpc.system", "grpc"), attribute.String("rpc.service", svc), attribute.String("rpc.method", m),
		attribute.Bool("mu.in_process", true))}
	return u
}

// Call serves one call of the method in process: see the package's notes
// on in-process calls for what it keeps of a gRPC call and what it skips.
// The handler runs on the caller's goroutine with ctx's deadline and
// cancellation. Errors are gRPC statuses.
func (u *Unary[Req, Resp]) Call(ctx context.Context, req Req, opts ...grpc.CallOption) (_ Resp, err error) {
	var zero Resp
	// In the order a gRPC call fails: a context already done, a server
	// that is not serving, then the request's size.
	if err := ctx.Err(); err != nil {
		return zero, status.FromContextError(err).Err()
	}
	if !u.r.calls.enter() {
		return zero, rpcerr.Errorf(codes.Unavailable, rpcerr.ShuttingDown, "%s is not serving (not started or shutting down)", u.r.name)
	}
	defer u.r.calls.leave()
	sendLimit, recvLimit := callLimits(opts)
	if n := proto.Size(req); n > sendLimit {
		return zero, status.Errorf(codes.ResourceExhausted, "trying to send message larger than max (%d vs. %d)", n, sendLimit)
	} else if n > u.r.base.MaxMessageBytes {
		return zero, status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", n, u.r.base.MaxMessageBytes)
	}

	// The handler's context: the caller's deadline and values, cancelled
	// too when Close gives up waiting, with the caller's outgoing metadata
	// as its incoming metadata.
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(u.r.calls.kill, cancel)
	defer stop()
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		hctx = metadata.NewOutgoingContext(metadata.NewIncomingContext(hctx, md), nil)
	}

	if u.r.tracing {
		var span trace.Span
		hctx, span = u.r.tracer.Start(hctx, u.span, u.spanOpts...)
		defer func() { endCallSpan(span, err) }()
	}
	out, err := u.chain(hctx, req)
	if cerr := ctx.Err(); cerr != nil {
		// The caller gave up or ran out of time: over gRPC it sees its
		// own context's end, whatever the handler answered.
		return zero, status.FromContextError(cerr).Err()
	}
	if u.r.calls.kill.Err() != nil {
		// Close cut the call at ShutdownTimeout: over gRPC its connection
		// closed under it.
		return zero, rpcerr.Errorf(codes.Unavailable, rpcerr.ShuttingDown, "%s shut down during the call", u.r.name)
	}
	if err != nil {
		return zero, toStatus(err)
	}
	resp, _ := out.(Resp)
	if n := proto.Size(resp); n > u.r.base.MaxMessageBytes {
		return zero, status.Errorf(codes.ResourceExhausted, "trying to send message larger than max (%d vs. %d)", n, u.r.base.MaxMessageBytes)
	} else if n > recvLimit {
		return zero, status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", n, recvLimit)
	}
	return resp, nil
}

// endCallSpan ends an in-process call's span with its gRPC status, as
// otelgrpc ends a server span: an error status for the server errors
// (Unknown, Internal, Unavailable, …), not for the caller's.
func endCallSpan(span trace.Span, err error) {
	st, _ := status.FromError(err)
	span.SetAttributes(attribute.Int64("rpc.grpc.status_code", int64(st.Code())))
	switch st.Code() {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
		span.SetStatus(otelcodes.Error, st.Message())
	}
	span.End()
}

// callLimits are the caller's send and receive limits of a call: the last
// grpc.MaxCallSendMsgSize and grpc.MaxCallRecvMsgSize among opts, or
// grpc-go's client defaults.
func callLimits(opts []grpc.CallOption) (send, recv int) {
	send, recv = 1<<31-1, defaultCallRecvMsgSize
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.MaxSendMsgSizeCallOption:
			send = o.MaxSendMsgSize
		case *grpc.MaxSendMsgSizeCallOption:
			send = o.MaxSendMsgSize
		case grpc.MaxRecvMsgSizeCallOption:
			recv = o.MaxRecvMsgSize
		case *grpc.MaxRecvMsgSizeCallOption:
			recv = o.MaxRecvMsgSize
		}
	}
	return send, recv
}

// toStatus is the error a gRPC client sees for a handler's error, as the
// gRPC server makes it: a status as is, a context error as its code,
// anything else UNKNOWN with its text.
func toStatus(err error) error {
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	return status.FromContextError(err).Err()
}

// Flight counts calls in flight so that a Close can refuse new ones and
// wait for those running. The zero Flight admits calls. Safe for
// concurrent use; Enter and Leave do not block.
type Flight struct {
	mu     sync.Mutex
	n      int
	closed bool          // Shut was called: no call enters again
	idle   chan struct{} // closed when n drops to 0 after Shut; nil otherwise
}

// Enter counts a call in, or reports false once Shut was called. A call
// that entered must Leave.
func (f *Flight) Enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.n++
	return true
}

// Leave counts a call out.
func (f *Flight) Leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 && f.idle != nil {
		close(f.idle)
		f.idle = nil
	}
}

// Count is the number of calls in flight now.
func (f *Flight) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// Shut refuses new calls from now on and returns a channel that is closed
// once the calls in flight have left. Calling it again is allowed.
func (f *Flight) Shut() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if f.n == 0 {
		done := make(chan struct{})
		close(done)
		return done
	}
	if f.idle == nil {
		f.idle = make(chan struct{})
	}
	return f.idle
}

// inflight counts the in-process calls running on a Runner: a Flight that
// admits calls only between Start and Close, and whose calls' contexts
// end when Close gives up waiting at ShutdownTimeout.
type inflight struct {
	Flight
	// kill is cancelled when Close stops waiting; every call's context
	// ends with it.
	kill       context.Context
	killCancel context.CancelFunc

	mu      sync.Mutex
	started bool
}

func newInflight() *inflight {
	f := &inflight{}
	f.kill, f.killCancel = context.WithCancel(context.Background())
	return f
}

// enter counts a call in, or reports false when the Runner is not serving
// (before Start, or once Close began).
func (f *inflight) enter() bool {
	f.mu.Lock()
	started := f.started
	f.mu.Unlock()
	return started && f.Enter()
}

func (f *inflight) leave() { f.Leave() }

// start lets calls in (Runner.Start); after shut they stay refused.
func (f *inflight) start() {
	f.mu.Lock()
	f.started = true
	f.mu.Unlock()
}

// shut refuses new calls and returns a channel that is closed once the
// calls in flight have ended.
func (f *inflight) shut() <-chan struct{} { return f.Shut() }

// drain waits for the calls in flight (done, from shut) as GracefulStop
// waits for RPCs: until ctx ends, then it cancels them and waits for their
// handlers to return. It reports whether it had to cancel.
func (f *inflight) drain(ctx context.Context, done <-chan struct{}) (cancelled bool) {
	defer f.killCancel()
	select {
	case <-done:
		return false
	case <-ctx.Done():
		f.killCancel()
		<-done
		return true
	}
}
