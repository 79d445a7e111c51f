package runtime

import (
	"context"
	"errors"
	"math"
	"math/bits"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/rpcerr"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/usage"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	"github.com/muprotocol/mu/services/runtime/internal/pool"
	"github.com/muprotocol/mu/services/runtime/internal/wasm"
	"github.com/muprotocol/mu/services/runtime/logs"
)

const levelInfo = fnproto.LogLevelInfo

// Invoke runs one call of "assembly.function" of a deployed stack. Function
// failures come back in InvokeResponse.error with the fuel burnt, which is
// billed like any call; gRPC errors are about the call itself (unknown
// stack or function, bad arguments, node busy or closing). The wasm part of
// the call runs on one of the node's call workers (workers.go), whichever
// way Invoke is reached (gRPC or in process).
func (s *Server) Invoke(ctx context.Context, req *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
	start := time.Now()
	id, err := ids.StackIDFromBytes(req.GetStackId())
	if err != nil {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.InvalidRequest, "stack_id: %v", err)
	}
	assembly, fnName, ok := strings.Cut(req.GetFunction(), ".")
	if !ok || assembly == "" || fnName == "" {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.InvalidRequest, "function %q: want \"assembly.function\"", req.GetFunction())
	}
	d, f, err := s.lookup(id, assembly)
	if err != nil {
		return nil, err
	}
	if d == nil && s.follow != nil {
		// A call for a stack of the region that this node has not
		// deployed: a gateway retrying while ownership moves, or one
		// whose view of the ring differs for a moment. Serve it.
		if err := s.follow.prepare(ctx, id); err != nil {
			return nil, err
		}
		if d, f, err = s.lookup(id, assembly); err != nil {
			return nil, err
		}
	}
	if f != nil {
		defer s.leave(d)
	}
	if d == nil {
		return nil, rpcerr.Errorf(codes.NotFound, rpcerr.StackNotDeployed, "stack %s is not deployed on this node", id)
	}
	if f == nil {
		return nil, rpcerr.Errorf(codes.NotFound, rpcerr.FunctionNotFound, "stack %s has no function %q", id, assembly)
	}

	inv := invocationPool.Get().(*invocation)
	defer inv.reset()
	inv.s, inv.ctx, inv.id, inv.d, inv.f, inv.fnName = s, ctx, id, d, f, fnName
	inv.setRequest(req.GetRequest())
	inv.lim = wasm.Limits{Fuel: s.fuelLimit(), Timeout: s.cfg.CallTimeout}
	if s.receipts.sample() {
		inv.sampled = newSampledCall()
	}
	if err := s.workers.do(ctx, inv); err != nil {
		return nil, err
	}
	if inv.err != nil {
		return nil, inv.err
	}
	res, ce := inv.res, inv.ce
	f.invocations.Add(1)

	out := &invokeOut{}
	resp := &out.resp
	if ce != nil {
		resp.FuelUsed = ce.Fuel
		resp.Error = &runtimev1.InvokeError{Kind: errorKind(ce.Kind), Message: ce.Message}
		if ce.Kind != wasm.KindFunctionError {
			s.logs.Publish(logs.Entry{Stack: id, Function: req.GetFunction(), Source: logs.SourceRuntime, Level: fnproto.LogLevelError, Body: ce.Error()})
		}
		s.metrics.invocationsBy(ce.Kind).Inc()
	} else {
		resp.FuelUsed = res.Fuel
		resp.Response = out.httpResponse(&res.Response)
		s.metrics.invocationsOK.Inc()
	}
	resp.MbInstructions = mulSat(resp.FuelUsed, f.memoryMiB)
	s.metrics.fuel.Add(float64(resp.FuelUsed))
	s.metrics.callSeconds.Observe(time.Since(start).Seconds())
	if resp.MbInstructions > 0 {
		s.usage.Add(usage.Record{Stack: id, Kind: usage.FunctionMBInstructions, Amount: resp.MbInstructions, Key: s.keys.Next(), Time: time.Now()})
	}
	if inv.sampled != nil {
		if rc := s.receipts.receipt(inv, req.GetRequest(), resp.FuelUsed, resp.MbInstructions, resp.GetResponse().GetStatus(), outcomeOf(ce)); rc != nil {
			s.receipts.add(rc)
		}
	}
	return resp, nil
}

// invocation is the wasm part of one call, handed to a call worker: its
// inputs, and its outcome (res or ce, or err for the call itself). Invoke
// takes it from invocationPool and puts it back, so the request's header
// list and the completion channel are reused.
type invocation struct {
	s      *Server
	ctx    context.Context
	id     ids.StackID
	d      *deployment
	f      *function
	fnName string
	req    fnproto.Request
	lim    wasm.Limits
	worker *callWorker // the worker running it (nil: the caller's goroutine); set by do
	// sampled is set when the call gets a receipt: it runs on a fresh,
	// taped instance (runSampled).
	sampled *sampledCall

	res      *wasm.Result
	ce       *wasm.CallError
	err      error
	panicked any           // a panic of run on a worker, raised again by do
	done     chan struct{} // a worker signals the end of run (capacity 1)
}

var invocationPool = sync.Pool{New: func() any { return &invocation{done: make(chan struct{}, 1)} }}

// setRequest converts the gateway's request into the function protocol's,
// reusing the header list of an earlier call.
func (inv *invocation) setRequest(r *typesv1.HttpRequest) {
	inv.req.Method = r.GetMethod()
	inv.req.PathParams = r.GetPathParams()
	inv.req.QueryParams = r.GetQueryParams()
	inv.req.Body = r.GetBody()
	hs := r.GetHeaders()
	if len(hs) == 0 {
		inv.req.Headers = nil
		return
	}
	if cap(inv.req.Headers) < len(hs) {
		inv.req.Headers = make([]fnproto.Header, len(hs))
	}
	inv.req.Headers = inv.req.Headers[:len(hs)]
	for i, h := range hs {
		inv.req.Headers[i] = fnproto.Header{Name: h.GetName(), Value: h.GetValue()}
	}
}

// reset drops what inv refers to and returns it to the pool.
func (inv *invocation) reset() {
	hs := inv.req.Headers
	clear(hs)
	*inv = invocation{req: fnproto.Request{Headers: hs[:0]}, done: inv.done}
	invocationPool.Put(inv)
}

// runCaught is run on a worker: a panic is kept for do to raise on the
// caller's goroutine.
func (inv *invocation) runCaught() {
	defer func() {
		if p := recover(); p != nil {
			inv.panicked = p
		}
	}()
	inv.run()
}

// run is the wasm part of the call: it takes an instance (starting one if
// none is idle), reserves the node's memory for it, runs the guest with its
// host calls and puts the instance back.
func (inv *invocation) run() {
	if inv.sampled != nil {
		inv.runSampled()
		return
	}
	s, ctx, f := inv.s, inv.ctx, inv.f
	// The node's memory for running calls is reserved once the call holds
	// one of its function's instance slots (pool.Get), so calls queued
	// behind a busy function hold no memory that other stacks could use.
	reserved := false
	defer func() {
		if reserved {
			s.releaseMemory(f)
		}
	}()
	// A pooled instance may have died while idle; that call never ran, so
	// it is retried once on a fresh instance.
	for attempt := 0; attempt < 2; attempt++ {
		inst, err := s.pool.Get(ctx, f.poolKey, f.start)
		if err != nil {
			if c, ok := wasm.AsCallError(err); ok {
				inv.ce = c
				inv.ce.Message = "instance failed to start: " + inv.ce.Message
				return
			}
			if errors.Is(err, pool.ErrRemoved) {
				s.mu.RLock()
				reason, off := s.disabled[inv.id]
				s.mu.RUnlock()
				if off { // disabled while the call waited for an instance
					inv.err = disabledError(inv.id, reason)
					return
				}
			}
			inv.err = poolStatus(err)
			return
		}
		if !reserved {
			if err := s.reserveMemory(ctx, f); err != nil {
				s.pool.Put(f.poolKey, inst)
				inv.err = err
				return
			}
			reserved = true
		}
		host := inv.d.newCall()
		host.worker = inv.worker
		res, err := inst.Call(ctx, inv.fnName, &inv.req, host.handle, inv.lim)
		host.end()
		s.pool.Put(f.poolKey, inst)
		if !inv.finish(res, err) || ctx.Err() != nil {
			return
		}
	}
}

// finish keeps the outcome of the call that returned res and err, and
// reports whether it may be retried on another instance (the instance had
// died while idle: the call never ran).
func (inv *invocation) finish(res *wasm.Result, err error) (retry bool) {
	if err == nil {
		inv.res, inv.ce = res, nil
		return false
	}
	if errors.Is(err, wasm.ErrRequestTooLarge) {
		inv.err = rpcerr.Errorf(codes.InvalidArgument, rpcerr.RequestTooLarge, "request: %v", err)
		return false
	}
	c, ok := wasm.AsCallError(err)
	if !ok {
		inv.err = status.Errorf(codes.Internal, "invoke: %v", err)
		return false
	}
	inv.ce = c
	return c.Kind == wasm.KindUnavailable
}

// invokeOut holds an InvokeResponse and the messages it points to, so that
// a response of at most invokeOutHeaders headers is one allocation.
type invokeOut struct {
	resp runtimev1.InvokeResponse
	http typesv1.HttpResponse
	hdr  [invokeOutHeaders]typesv1.Header
	hdrp [invokeOutHeaders]*typesv1.Header
}

// invokeOutHeaders is how many response headers invokeOut holds inline:
// what the SDK's text and JSON responses set (content-type).
const invokeOutHeaders = 2

// httpResponse converts the function's response into out's HttpResponse.
func (out *invokeOut) httpResponse(r *fnproto.Response) *typesv1.HttpResponse {
	h := &out.http
	h.Status, h.Body = uint32(r.Status), r.Body
	if n := len(r.Headers); n > 0 {
		var hdr []typesv1.Header
		if n <= invokeOutHeaders {
			hdr, h.Headers = out.hdr[:n], out.hdrp[:n]
		} else {
			hdr, h.Headers = make([]typesv1.Header, n), make([]*typesv1.Header, n)
		}
		for i, rh := range r.Headers {
			hdr[i].Name, hdr[i].Value = rh.Name, rh.Value
			h.Headers[i] = &hdr[i]
		}
	}
	return h
}

// lookup finds the deployment of stack id and its function assembly, and
// enters the call (the caller leaves d when f is not nil). A disabled
// stack is an error; an unknown one or function is nil.
func (s *Server) lookup(id ids.StackID, assembly string) (*deployment, *function, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if reason, off := s.disabled[id]; off {
		return nil, nil, disabledError(id, reason)
	}
	d := s.stacks[id]
	if d == nil {
		return nil, nil, nil
	}
	f := d.functions[assembly]
	if f != nil {
		d.enter() // a redeploy or undeploy now waits for this call before closing d's modules
	}
	return d, f, nil
}

// reserveMemory takes f's memory_limit out of the node's budget for
// running calls, waiting up to ActiveMemoryWait for room.
func (s *Server) reserveMemory(ctx context.Context, f *function) error {
	n := int64(f.memoryLimit)
	if s.active.TryAcquire(n) {
		s.metrics.activeMemory.Add(float64(n))
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.ActiveMemoryWait)
	defer cancel()
	if err := s.active.Acquire(wctx, n); err != nil {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		s.metrics.memoryRefused.Inc()
		return rpcerr.Errorf(codes.ResourceExhausted, rpcerr.CapacityExhausted,
			"the node's memory for running calls (active_memory_budget %d bytes) stayed full for %v; retry later", s.cfg.ActiveMemoryBudget, s.cfg.ActiveMemoryWait)
	}
	s.metrics.activeMemory.Add(float64(n))
	return nil
}

func (s *Server) releaseMemory(f *function) {
	s.active.Release(int64(f.memoryLimit))
	s.metrics.activeMemory.Sub(float64(f.memoryLimit))
}

func poolStatus(err error) error {
	switch {
	case errors.Is(err, pool.ErrRemoved):
		// The call raced an undeploy or redeploy of its stack.
		return rpcerr.Errorf(codes.NotFound, rpcerr.StackNotDeployed, "the stack was undeployed from this node during the call")
	case errors.Is(err, pool.ErrClosed):
		return rpcerr.Errorf(codes.Unavailable, rpcerr.ShuttingDown, "runtime is shutting down")
	case errors.Is(err, context.DeadlineExceeded):
		return rpcerr.Errorf(codes.ResourceExhausted, rpcerr.CapacityExhausted, "%v", err)
	case errors.Is(err, context.Canceled):
		return status.Errorf(codes.Canceled, "%v", err)
	}
	return status.Errorf(codes.Internal, "%v", err)
}

// mulSat multiplies, saturating at the largest uint64 instead of wrapping.
func mulSat(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi != 0 {
		return math.MaxUint64
	}
	return lo
}

func errorKind(k wasm.ErrorKind) runtimev1.InvokeError_Kind {
	switch k {
	case wasm.KindFuelExhausted:
		return runtimev1.InvokeError_KIND_FUEL_EXHAUSTED
	case wasm.KindDeadline:
		return runtimev1.InvokeError_KIND_DEADLINE_EXCEEDED
	case wasm.KindMemoryLimit:
		return runtimev1.InvokeError_KIND_MEMORY_LIMIT
	case wasm.KindProtocol:
		return runtimev1.InvokeError_KIND_PROTOCOL
	case wasm.KindFunctionError:
		return runtimev1.InvokeError_KIND_FUNCTION_ERROR
	}
	return runtimev1.InvokeError_KIND_CRASH
}

// callHost answers the host requests of one call of a deployment's
// function: db requests go to muDB and storage requests to the storage
// service, both as that deployment's stack; outbound HTTP is not wired into
// this node yet, so it gets a clear error reply the function can handle,
// never a hang or a crash. It serves one call on the goroutine inside the
// guest and is not safe for concurrent use; end releases what the call
// left open (its unfinished uploads are aborted).
type callHost struct {
	db      *stackDB
	storage storageCall
	// worker is the call worker the call runs on (nil: its own
	// goroutine); while it is in a host call that may block, calls that
	// find no worker free do not wait (callWorkers.enterHost).
	worker *callWorker
	// sampled is the receipt material of a sampled call (nil otherwise):
	// db, storage and HTTP requests are marked as inputs from outside.
	sampled *sampledCall
}

func (d *deployment) newCall() *callHost {
	return &callHost{db: d.db, storage: storageCall{s: d.storage}}
}

// handle is the call's wasm.Handler.
func (h *callHost) handle(ctx context.Context, m fnproto.Message) (fnproto.Message, error) {
	class := fnproto.ClassOf(fnproto.FromFunction, m.Kind())
	if h.sampled != nil {
		switch class {
		case fnproto.ClassDb:
			h.sampled.note(InputDB)
		case fnproto.ClassStorage:
			h.sampled.note(InputStorage)
		case fnproto.ClassHTTP:
			h.sampled.note(InputHTTP)
		}
	}
	switch class {
	case fnproto.ClassDb:
		if h.worker != nil {
			h.worker.w.enterHost()
			defer h.worker.w.leaveHost()
		}
		return h.db.serve(ctx, m)
	case fnproto.ClassStorage:
		if h.worker != nil {
			h.worker.w.enterHost()
			defer h.worker.w.leaveHost()
		}
		return h.storage.serve(ctx, m)
	case fnproto.ClassHTTP:
		msg := "outbound HTTP is not enabled on this runtime node"
		return &fnproto.HTTPResponse{Error: &msg}, nil
	}
	return nil, errors.New("unexpected message " + fnproto.KindName(fnproto.FromFunction, m.Kind()))
}

// end aborts the call's unfinished uploads.
func (h *callHost) end() { h.storage.end() }

// StreamLogs streams function logs: up to req.tail kept lines of the
// filter first (at most LogHistoryLines), then, unless req.no_follow, new
// lines until the client goes away or the node closes (UNAVAILABLE). The
// header metadata goes out first, so a caller learns the stream was
// accepted before any line exists.
func (s *Server) StreamLogs(req *runtimev1.StreamLogsRequest, stream runtimev1.RuntimeService_StreamLogsServer) error {
	var f logs.Filter
	if len(req.GetStackId()) == 0 {
		if err := service.RequireRole(stream.Context(), "StreamLogs of every stack (an empty stack_id)", certs.RoleOperator); err != nil {
			return err
		}
	} else {
		id, err := ids.StackIDFromBytes(req.GetStackId())
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "stack_id: %v", err)
		}
		f.Stack = id
	}
	f.Function = req.GetFunction()
	tail := int(min(req.GetTail(), uint32(max(s.cfg.LogHistoryLines, 0))))
	var sub *logs.Subscription
	var recent []logs.Entry
	if req.GetNoFollow() {
		recent = s.logs.Recent(f, tail)
	} else {
		sub, recent = s.logs.SubscribeTail(f, tail)
		defer sub.Close()
	}
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	for i := range recent {
		if err := stream.Send(&runtimev1.StreamLogsResponse{Entry: s.toLogEntry(&recent[i])}); err != nil {
			return err
		}
	}
	if sub == nil {
		return nil
	}
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case <-s.run.Closing():
			return rpcerr.Errorf(codes.Unavailable, rpcerr.ShuttingDown, "runtime is shutting down")
		case e, ok := <-sub.C:
			if !ok {
				return nil
			}
			if err := stream.Send(&runtimev1.StreamLogsResponse{Entry: s.toLogEntry(&e)}); err != nil {
				return err
			}
		}
	}
}
