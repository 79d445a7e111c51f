package mudb

import (
	"context"
	"path"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/usage"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
)

// meter counts a successful call's reads and writes (design section 6):
// it reports them to the usage batcher as DB_READS and DB_WRITES records of
// stack, each with its own idempotency key, adds them to the metrics and
// returns them for the reply. Call it only once the call has succeeded:
// failed calls are not metered.
func (s *Server) meter(stack ids.StackID, reads, writes uint64) *mudbv1.MeteredOps {
	now := time.Now()
	var recs []usage.Record
	if reads > 0 {
		recs = append(recs, usage.Record{Stack: stack, Kind: usage.DBReads, Amount: reads, Key: s.keys.Next(), Time: now})
		s.metrics.reads.Add(float64(reads))
	}
	if writes > 0 {
		recs = append(recs, usage.Record{Stack: stack, Kind: usage.DBWrites, Amount: writes, Key: s.keys.Next(), Time: now})
		s.metrics.writes.Add(float64(writes))
	}
	s.usage.Add(recs...)
	return &mudbv1.MeteredOps{Reads: reads, Writes: writes}
}

// readOps is the read count of a call that returned n keys: 1 per key,
// at least 1.
func readOps(n int) uint64 { return uint64(max(n, 1)) }

// writeOps is the write count of n keys: 1 each, 2 when atomic.
func writeOps(n int, atomic bool) uint64 {
	if atomic {
		return 2 * uint64(n)
	}
	return uint64(n)
}

// countOps is a unary interceptor counting MudbService calls by rpc and
// outcome (ok or the gRPC code).
func (s *Server) countOps(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if !strings.HasPrefix(info.FullMethod, "/"+mudbv1.MudbService_ServiceDesc.ServiceName+"/") {
		return resp, err
	}
	outcome := "ok"
	if err != nil {
		outcome = status.Code(err).String()
	}
	s.metrics.ops.WithLabelValues(path.Base(info.FullMethod), outcome).Inc()
	return resp, err
}
