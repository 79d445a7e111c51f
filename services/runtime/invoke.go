package runtime

import (
	"context"
	"errors"
	"math"
	"math/bits"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/rpcerr"
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
// stack or function, bad arguments, node busy or closing).
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
	fr := toFnRequest(req.GetRequest())
	lim := wasm.Limits{Fuel: s.fuelLimit(), Timeout: s.cfg.CallTimeout}

	var (
		res *wasm.Result
		ce  *wasm.CallError
	)
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
				ce = c
				ce.Message = "instance failed to start: " + ce.Message
				break
			}
			if errors.Is(err, pool.ErrRemoved) {
				s.mu.RLock()
				reason, off := s.disabled[id]
				s.mu.RUnlock()
				if off { // disabled while the call waited for an instance
					return nil, disabledError(id, reason)
				}
			}
			return nil, poolStatus(err)
		}
		if !reserved {
			if err := s.reserveMemory(ctx, f); err != nil {
				s.pool.Put(f.poolKey, inst)
				return nil, err
			}
			reserved = true
		}
		host := d.newCall()
		res, err = inst.Call(ctx, fnName, fr, host.handle, lim)
		host.end()
		s.pool.Put(f.poolKey, inst)
		if err == nil {
			ce = nil
			break
		}
		if errors.Is(err, wasm.ErrRequestTooLarge) {
			return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.RequestTooLarge, "request: %v", err)
		}
		c, ok := wasm.AsCallError(err)
		if !ok {
			return nil, status.Errorf(codes.Internal, "invoke: %v", err)
		}
		ce = c
		if c.Kind != wasm.KindUnavailable || ctx.Err() != nil {
			break
		}
	}
	f.invocations.Add(1)

	resp := &runtimev1.InvokeResponse{}
	if ce != nil {
		resp.FuelUsed = ce.Fuel
		resp.Error = &runtimev1.InvokeError{Kind: errorKind(ce.Kind), Message: ce.Message}
		if ce.Kind != wasm.KindFunctionError {
			s.logs.Publish(logs.Entry{Stack: id, Function: req.GetFunction(), Source: logs.SourceRuntime, Level: fnproto.LogLevelError, Body: ce.Error()})
		}
		s.metrics.invocations.WithLabelValues(ce.Kind.String()).Inc()
	} else {
		resp.FuelUsed = res.Fuel
		resp.Response = toHTTPResponse(&res.Response)
		s.metrics.invocations.WithLabelValues("ok").Inc()
	}
	resp.MbInstructions = mulSat(resp.FuelUsed, f.memoryMiB)
	s.metrics.fuel.Add(float64(resp.FuelUsed))
	s.metrics.callSeconds.Observe(time.Since(start).Seconds())
	if resp.MbInstructions > 0 {
		s.usage.Add(usage.Record{Stack: id, Kind: usage.FunctionMBInstructions, Amount: resp.MbInstructions, Key: s.keys.Next(), Time: time.Now()})
	}
	return resp, nil
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

func toFnRequest(r *typesv1.HttpRequest) *fnproto.Request {
	out := &fnproto.Request{
		Method:      r.GetMethod(),
		PathParams:  r.GetPathParams(),
		QueryParams: r.GetQueryParams(),
		Body:        r.GetBody(),
	}
	if hs := r.GetHeaders(); len(hs) > 0 {
		out.Headers = make([]fnproto.Header, len(hs))
		for i, h := range hs {
			out.Headers[i] = fnproto.Header{Name: h.GetName(), Value: h.GetValue()}
		}
	}
	return out
}

func toHTTPResponse(r *fnproto.Response) *typesv1.HttpResponse {
	out := &typesv1.HttpResponse{Status: uint32(r.Status), Body: r.Body}
	if len(r.Headers) > 0 {
		out.Headers = make([]*typesv1.Header, len(r.Headers))
		for i, h := range r.Headers {
			out.Headers[i] = &typesv1.Header{Name: h.Name, Value: h.Value}
		}
	}
	return out
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
	storage *storageCall
}

func (d *deployment) newCall() *callHost {
	return &callHost{db: d.db, storage: d.storage.newCall()}
}

// handle is the call's wasm.Handler.
func (h *callHost) handle(ctx context.Context, m fnproto.Message) (fnproto.Message, error) {
	switch fnproto.ClassOf(fnproto.FromFunction, m.Kind()) {
	case fnproto.ClassDb:
		return h.db.serve(ctx, m)
	case fnproto.ClassStorage:
		return h.storage.serve(ctx, m)
	case fnproto.ClassHTTP:
		msg := "outbound HTTP is not enabled on this runtime node"
		return &fnproto.HTTPResponse{Error: &msg}, nil
	}
	return nil, errors.New("unexpected message " + fnproto.KindName(fnproto.FromFunction, m.Kind()))
}

// end aborts the call's unfinished uploads.
func (h *callHost) end() { h.storage.end() }

// StreamLogs streams function logs until the client goes away.
func (s *Server) StreamLogs(req *runtimev1.StreamLogsRequest, stream runtimev1.RuntimeService_StreamLogsServer) error {
	var f logs.Filter
	if len(req.GetStackId()) > 0 {
		id, err := ids.StackIDFromBytes(req.GetStackId())
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "stack_id: %v", err)
		}
		f.Stack = id
	}
	f.Function = req.GetFunction()
	sub := s.logs.Subscribe(f)
	defer sub.Close()
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
			if err := stream.Send(&runtimev1.StreamLogsResponse{Entry: toLogEntry(&e)}); err != nil {
				return err
			}
		}
	}
}
