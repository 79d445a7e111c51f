package mudb

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/usage"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
)

// fakeBilling is a billing service on a real gRPC port that sums what it
// is given by kind, dropping known keys.
type fakeBilling struct {
	billingv1.UnimplementedBillingServiceServer
	mu     sync.Mutex
	seen   map[string]bool
	totals map[ids.StackID]map[usage.Kind]uint64
}

func (f *fakeBilling) ReportUsage(_ context.Context, req *billingv1.ReportUsageRequest) (*billingv1.ReportUsageResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &billingv1.ReportUsageResponse{}
	for _, r := range req.GetRecords() {
		if f.seen[r.GetIdempotencyKey()] {
			resp.DuplicateKeys = append(resp.DuplicateKeys, r.GetIdempotencyKey())
			continue
		}
		f.seen[r.GetIdempotencyKey()] = true
		id, _ := ids.StackIDFromBytes(r.GetStackId())
		if f.totals[id] == nil {
			f.totals[id] = map[usage.Kind]uint64{}
		}
		f.totals[id][r.GetKind()] += r.GetAmount()
		resp.AcceptedKeys = append(resp.AcceptedKeys, r.GetIdempotencyKey())
	}
	return resp, nil
}

func (f *fakeBilling) total(id ids.StackID, k usage.Kind) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.totals[id][k]
}

func TestBillingAddr_UsageGoesToBillingThroughTheSpool(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBilling{seen: map[string]bool{}, totals: map[ids.StackID]map[usage.Kind]uint64{}}
	gs := grpc.NewServer()
	billingv1.RegisterBillingServiceServer(gs, fb)
	go gs.Serve(lis)
	defer gs.Stop()

	cfg := testConfig()
	cfg.BillingAddr = lis.Addr().String()
	cfg.Usage.SpoolDir = filepath.Join(t.TempDir(), "usage-spool")
	s, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		s.Close()
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	n := &testNode{s: s, c: mudbv1.NewMudbServiceClient(conn)}
	stack := newStack(t)
	n.create(t, stack, "t")
	for _, k := range []string{"a", "b", "c"} {
		n.put(t, stack, "t", k, "v")
	}
	n.get(t, stack, "t", "a")
	if err := s.FlushUsage(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := fb.total(stack, usage.DBWrites); got != 3 {
		t.Errorf("billing got %d writes, want 3", got)
	}
	if got := fb.total(stack, usage.DBReads); got != 1 {
		t.Errorf("billing got %d reads, want 1", got)
	}
	if _, err := os.Stat(filepath.Join(cfg.Usage.SpoolDir, "LOCK")); err != nil {
		t.Errorf("no spool: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
