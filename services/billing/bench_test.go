package billing

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ledger"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
)

// BenchmarkReportUsage sends batches of 1000 records from parallel
// senders (GOMAXPROCS × 4 goroutines) over gRPC to a node on the embedded
// store persisted in a temp dir, and reports the records persisted per
// second. Each batch spreads over 16 stacks and 3 kinds, as a gateway's
// and a runtime's reports do.
func BenchmarkReportUsage(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = b.TempDir()
	cfg.SettleInterval = time.Hour
	n := startNode(b, cfg, Deps{})
	ctx := b.Context()
	var stacks [16]ledger.Pubkey
	for i := range stacks {
		stacks[i] = testKey(fmt.Sprint("bench", i)).Pubkey()
	}
	kinds := []ledger.Unit{ledger.UnitFunctionMBInstructions, ledger.UnitGatewayRequests, ledger.UnitGatewayTrafficBytes}
	const batch = 1000
	var next atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		recs := make([]*billingv1.UsageRecord, batch)
		for pb.Next() {
			base := next.Add(batch) - batch
			for i := range recs {
				k := base + int64(i)
				recs[i] = rec(stacks[k%16], kinds[k%3].Kind(), uint64(k%1000+1), fmt.Sprintf("bench/node-1/%012d", k))
			}
			resp, err := n.c.ReportUsage(ctx, &billingv1.ReportUsageRequest{Records: recs})
			if err != nil {
				b.Error(err)
				return
			}
			if len(resp.AcceptedKeys) != batch {
				b.Errorf("accepted %d of %d", len(resp.AcceptedKeys), batch)
				return
			}
		}
	})
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(next.Load())/el.Seconds(), "records/s")
	b.ReportMetric(0, "ns/op")
}
