package service

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/muprotocol/mu/libs/rpcerr"
)

// echo is a one-method test service: test.Echo/Echo takes and returns a
// BytesValue, doing whatever fn says.
type echo struct {
	fn func(context.Context, *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error)
}

func (e *echo) Echo(ctx context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	return e.fn(ctx, in)
}

const echoMethod = "/test.Echo/Echo"

// echoRules let any role call the echo service.
var echoRules = Rules{"/test.Echo/*": AnyRole}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "test.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			e := srv.(*echo)
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: echoMethod}
			return icpt(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return e.Echo(ctx, req.(*wrapperspb.BytesValue))
			})
		},
	}},
}

// echoRunner is a started Runner serving e over gRPC and in process, with a
// client connection to its gRPC listener.
type echoRunner struct {
	r    *Runner
	e    *echo
	u    *Unary[*wrapperspb.BytesValue, *wrapperspb.BytesValue]
	conn *grpc.ClientConn
}

func startEcho(t *testing.T, b Base, opts RunnerOptions) *echoRunner {
	t.Helper()
	b.AdminAddr = ""
	if opts.Rules == nil {
		opts.Rules = echoRules
	}
	r := NewRunner("svc", b, opts)
	e := &echo{fn: func(_ context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) { return in, nil }}
	r.GRPC().RegisterService(&echoDesc, e)
	u := NewUnary(r, e, echoMethod, e.Echo)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(nil) })
	conn, err := grpc.NewClient(r.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &echoRunner{r: r, e: e, u: u, conn: conn}
}

func (er *echoRunner) viaGRPC(ctx context.Context, in *wrapperspb.BytesValue, opts ...grpc.CallOption) (*wrapperspb.BytesValue, error) {
	out := new(wrapperspb.BytesValue)
	if err := er.conn.Invoke(ctx, echoMethod, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

func TestUnary_EndsEveryCallAsGRPCDoes(t *testing.T) {
	b := testBase()
	b.MaxMessageBytes = 4 << 10
	er := startEcho(t, b, RunnerOptions{})
	big := make([]byte, 8<<10)
	cases := []struct {
		name string
		fn   func(context.Context, *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error)
		req  []byte
		opts []grpc.CallOption
		code codes.Code
	}{
		{name: "ok", req: []byte("hi"), code: codes.OK},
		{name: "status error", code: codes.NotFound,
			fn: func(context.Context, *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
				return nil, rpcerr.Errorf(codes.NotFound, rpcerr.StackNotDeployed, "no such stack")
			}},
		{name: "plain error is unknown", code: codes.Unknown,
			fn: func(context.Context, *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
				return nil, errors.New("plain")
			}},
		{name: "context error keeps its code", code: codes.DeadlineExceeded,
			fn: func(context.Context, *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
				return nil, context.DeadlineExceeded
			}},
		{name: "panic is internal", code: codes.Internal,
			fn: func(context.Context, *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) { panic("boom") }},
		{name: "request over the server's limit", req: big, code: codes.ResourceExhausted},
		{name: "request over the caller's send limit", req: []byte("0123456789"),
			opts: []grpc.CallOption{grpc.MaxCallSendMsgSize(4)}, code: codes.ResourceExhausted},
		{name: "response over the server's limit", req: []byte("x"), code: codes.ResourceExhausted,
			fn: func(context.Context, *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
				return wrapperspb.Bytes(big), nil
			}},
		{name: "response over the caller's receive limit", req: []byte("0123456789"),
			opts: []grpc.CallOption{grpc.MaxCallRecvMsgSize(4)}, code: codes.ResourceExhausted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			er.e.fn = tc.fn
			if er.e.fn == nil {
				er.e.fn = func(_ context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) { return in, nil }
			}
			in := wrapperspb.Bytes(tc.req)
			gout, gerr := er.viaGRPC(context.Background(), in, tc.opts...)
			pout, perr := er.u.Call(context.Background(), in, tc.opts...)
			gs, ps := status.Convert(gerr), status.Convert(perr)
			if gs.Code() != tc.code || ps.Code() != tc.code {
				t.Fatalf("codes: gRPC %v (%v), in process %v (%v); want %v", gs.Code(), gerr, ps.Code(), perr, tc.code)
			}
			if gs.Message() != ps.Message() {
				t.Errorf("messages differ:\n  gRPC:       %q\n  in process: %q", gs.Message(), ps.Message())
			}
			if rpcerr.ReasonOf(gerr) != rpcerr.ReasonOf(perr) {
				t.Errorf("reasons differ: gRPC %q, in process %q", rpcerr.ReasonOf(gerr), rpcerr.ReasonOf(perr))
			}
			if tc.code == codes.OK && (string(gout.GetValue()) != string(tc.req) || string(pout.GetValue()) != string(tc.req)) {
				t.Errorf("answers: gRPC %q, in process %q; want %q", gout.GetValue(), pout.GetValue(), tc.req)
			}
		})
	}
}

func TestUnary_CountsInTheGRPCMetrics(t *testing.T) {
	er := startEcho(t, testBase(), RunnerOptions{})
	if _, err := er.u.Call(context.Background(), wrapperspb.Bytes([]byte("a"))); err != nil {
		t.Fatal(err)
	}
	er.e.fn = func(context.Context, *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) { panic("boom") }
	if _, err := er.u.Call(context.Background(), wrapperspb.Bytes(nil)); status.Code(err) != codes.Internal {
		t.Fatalf("panic: %v", err)
	}
	families, err := er.r.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "grpc_server_handled_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["grpc_method"] == "Echo" && labels["grpc_service"] == "test.Echo" {
				got[labels["grpc_code"]] = m.GetCounter().GetValue()
			}
		}
	}
	if got["OK"] != 1 || got["Internal"] != 1 {
		t.Errorf("grpc_server_handled_total of test.Echo/Echo by code = %v, want OK 1 and Internal 1", got)
	}
}

func TestUnary_RunsTheRunnersOwnInterceptors(t *testing.T) {
	var seen []string
	icpt := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		seen = append(seen, info.FullMethod)
		return h(ctx, req)
	}
	er := startEcho(t, testBase(), RunnerOptions{UnaryInterceptors: []grpc.UnaryServerInterceptor{icpt}})
	if _, err := er.u.Call(context.Background(), wrapperspb.Bytes(nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := er.viaGRPC(context.Background(), wrapperspb.Bytes(nil)); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0] != echoMethod || seen[1] != echoMethod {
		t.Errorf("interceptor saw %v, want %s twice", seen, echoMethod)
	}
}

func TestUnary_OutgoingMetadataArrivesAsIncoming(t *testing.T) {
	er := startEcho(t, testBase(), RunnerOptions{})
	er.e.fn = func(ctx context.Context, _ *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
		in, _ := metadata.FromIncomingContext(ctx)
		out, _ := metadata.FromOutgoingContext(ctx)
		return wrapperspb.Bytes([]byte(strings.Join(in.Get("traceparent"), ",") + "|" + strings.Join(out.Get("traceparent"), ","))), nil
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-abc-def-01")
	for name, call := range map[string]func(context.Context, *wrapperspb.BytesValue, ...grpc.CallOption) (*wrapperspb.BytesValue, error){
		"grpc": er.viaGRPC, "in_process": er.u.Call,
	} {
		out, err := call(ctx, wrapperspb.Bytes(nil))
		if err != nil {
			t.Fatal(err)
		}
		if got := string(out.GetValue()); got != "00-abc-def-01|" {
			t.Errorf("%s: incoming|outgoing traceparent = %q, want %q", name, got, "00-abc-def-01|")
		}
	}
}

func TestUnary_CallerDeadlineAndCancellation(t *testing.T) {
	er := startEcho(t, testBase(), RunnerOptions{})
	deadline := time.Now().Add(time.Hour)
	er.e.fn = func(ctx context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
		if d, ok := ctx.Deadline(); !ok || !d.Equal(deadline) {
			return nil, status.Errorf(codes.FailedPrecondition, "deadline %v %v", d, ok)
		}
		return in, nil
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if _, err := er.u.Call(ctx, wrapperspb.Bytes(nil)); err != nil {
		t.Fatalf("with a deadline: %v", err)
	}

	// A caller that gives up mid-call gets CANCELED, whatever the handler
	// answers afterwards.
	inside := make(chan struct{})
	er.e.fn = func(ctx context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
		close(inside)
		<-ctx.Done()
		return in, nil
	}
	cctx, ccancel := context.WithCancel(context.Background())
	go func() { <-inside; ccancel() }()
	if _, err := er.u.Call(cctx, wrapperspb.Bytes(nil)); status.Code(err) != codes.Canceled {
		t.Errorf("cancelled mid-call: %v, want CANCELED", err)
	}
	// One whose context is over already is not served.
	if _, err := er.u.Call(cctx, wrapperspb.Bytes(nil)); status.Code(err) != codes.Canceled {
		t.Errorf("cancelled before: %v, want CANCELED", err)
	}
	past, pcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer pcancel()
	if _, err := er.u.Call(past, wrapperspb.Bytes(nil)); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("past deadline: %v, want DEADLINE_EXCEEDED", err)
	}
}

func TestUnary_UnavailableBeforeStartAndOnceClosing(t *testing.T) {
	b := testBase()
	b.AdminAddr = ""
	r := NewRunner("svc", b, RunnerOptions{})
	e := &echo{}
	u := NewUnary(r, e, echoMethod, e.Echo)
	_, err := u.Call(context.Background(), wrapperspb.Bytes(nil))
	if status.Code(err) != codes.Unavailable || rpcerr.ReasonOf(err) != rpcerr.ShuttingDown {
		t.Errorf("before Start: %v, want UNAVAILABLE SHUTTING_DOWN", err)
	}

	er := startEcho(t, testBase(), RunnerOptions{})
	inside, release := make(chan struct{}), make(chan struct{})
	er.e.fn = func(_ context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
		close(inside)
		<-release
		return in, nil
	}
	first := make(chan error, 1)
	go func() {
		_, err := er.u.Call(context.Background(), wrapperspb.Bytes([]byte("first")))
		first <- err
	}()
	<-inside
	closed := make(chan error, 1)
	go func() { closed <- er.r.Close(nil) }()
	<-er.r.Closing()
	_, err = er.u.Call(context.Background(), wrapperspb.Bytes(nil))
	if status.Code(err) != codes.Unavailable || rpcerr.ReasonOf(err) != rpcerr.ShuttingDown {
		t.Errorf("once closing: %v, want UNAVAILABLE SHUTTING_DOWN", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while an in-process call was in flight", err)
	default:
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("the call in flight at Close: %v, want it to finish", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

func TestUnary_CloseCancelsCallsAtShutdownTimeout(t *testing.T) {
	b := testBase()
	b.ShutdownTimeout = 50 * time.Millisecond
	er := startEcho(t, b, RunnerOptions{})
	inside := make(chan struct{})
	returned := make(chan struct{})
	er.e.fn = func(ctx context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
		defer close(returned)
		close(inside)
		<-ctx.Done()
		return in, nil
	}
	res := make(chan error, 1)
	go func() {
		_, err := er.u.Call(context.Background(), wrapperspb.Bytes(nil))
		res <- err
	}()
	<-inside
	if err := er.r.Close(nil); err != nil {
		t.Fatal(err)
	}
	// Close returns only after the handler did (grpc.WaitForHandlers).
	select {
	case <-returned:
	default:
		t.Fatal("Close returned before the cancelled handler did")
	}
	if err := <-res; status.Code(err) != codes.Unavailable {
		t.Errorf("call cut at shutdown: %v, want UNAVAILABLE", err)
	}
}

func BenchmarkUnary_InProcess(b *testing.B) {
	base := testBase()
	base.AdminAddr = ""
	r := NewRunner("svc", base, RunnerOptions{Rules: echoRules})
	e := &echo{fn: func(_ context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) { return in, nil }}
	r.GRPC().RegisterService(&echoDesc, e)
	u := NewUnary(r, e, echoMethod, e.Echo)
	if err := r.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer r.Close(nil)
	in := wrapperspb.Bytes([]byte("hello"))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := u.Call(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}
