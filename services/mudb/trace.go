package mudb

import (
	"context"
	"path"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/muprotocol/mu/libs/service"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
)

// traceOps is the unary interceptor, installed with tracing on only
// (RunnerOptions.TraceInterceptors), that gives every data call of
// MudbService (gRPC or in process) a span "mudb <Op>" inside the call's
// server span, with the table (mu.db.table, for calls on one table), the
// number of keys it named or returned (mu.db.keys) and the metered reads
// and writes.
func (s *Server) traceOps(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if !strings.HasPrefix(info.FullMethod, "/"+mudbv1.MudbService_ServiceDesc.ServiceName+"/") {
		return h(ctx, req)
	}
	op := path.Base(info.FullMethod)
	ctx, span := s.tracer.Start(ctx, "mudb "+op, trace.WithAttributes(attribute.String("mu.db.op", op)))
	resp, err := h(ctx, req)
	attrs := make([]attribute.KeyValue, 0, 4)
	if t, ok := req.(interface{ GetTable() string }); ok {
		attrs = append(attrs, attribute.String("mu.db.table", t.GetTable()))
	}
	if n, ok := keysOf(req, resp); ok {
		attrs = append(attrs, attribute.Int("mu.db.keys", n))
	}
	if m, ok := resp.(interface{ GetOps() *mudbv1.MeteredOps }); ok && err == nil {
		attrs = append(attrs, attribute.Int64("mu.db.reads", int64(m.GetOps().GetReads())), attribute.Int64("mu.db.writes", int64(m.GetOps().GetWrites())))
	}
	span.SetAttributes(attrs...)
	service.EndSpan(span, err)
	return resp, err
}

// keysOf is how many keys a call named (single-key calls, batches) or, for
// scans and prefix deletes, found.
func keysOf(req, resp any) (int, bool) {
	switch r := req.(type) {
	case *mudbv1.PutRequest, *mudbv1.GetRequest, *mudbv1.DeleteRequest, *mudbv1.CompareAndSwapRequest:
		return 1, true
	case *mudbv1.BatchPutRequest:
		return len(r.GetItems()), true
	case *mudbv1.BatchGetRequest:
		return len(r.GetKeys()), true
	case *mudbv1.BatchDeleteRequest:
		return len(r.GetKeys()), true
	}
	switch r := resp.(type) {
	case *mudbv1.ScanResponse:
		return len(r.GetItems()), true
	case *mudbv1.ScanKeysResponse:
		return len(r.GetKeys()), true
	case *mudbv1.DeleteByPrefixResponse:
		return int(r.GetKeysDeleted()), true
	}
	return 0, false
}
