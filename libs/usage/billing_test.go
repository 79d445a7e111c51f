package usage

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ids"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
)

// fakeBilling answers ReportUsage and ReportReceipts with what its fields
// say, and keeps the last requests.
type fakeBilling struct {
	billingv1.BillingServiceClient // calls beyond these two panic
	err                            error
	drop                           string // a key or id left out of the answer
	usageReq                       *billingv1.ReportUsageRequest
	receiptsReq                    *billingv1.ReportReceiptsRequest
}

func (f *fakeBilling) ReportUsage(_ context.Context, req *billingv1.ReportUsageRequest, _ ...grpc.CallOption) (*billingv1.ReportUsageResponse, error) {
	f.usageReq = req
	if f.err != nil {
		return nil, f.err
	}
	resp := &billingv1.ReportUsageResponse{}
	for i, r := range req.GetRecords() {
		switch {
		case r.GetIdempotencyKey() == f.drop:
		case i%2 == 0:
			resp.AcceptedKeys = append(resp.AcceptedKeys, r.GetIdempotencyKey())
		default:
			resp.DuplicateKeys = append(resp.DuplicateKeys, r.GetIdempotencyKey())
		}
	}
	return resp, nil
}

func (f *fakeBilling) ReportReceipts(_ context.Context, req *billingv1.ReportReceiptsRequest, _ ...grpc.CallOption) (*billingv1.ReportReceiptsResponse, error) {
	f.receiptsReq = req
	if f.err != nil {
		return nil, f.err
	}
	resp := &billingv1.ReportReceiptsResponse{}
	for i, r := range req.GetReceipts() {
		switch {
		case r.GetReceiptId() == f.drop:
		case i%2 == 0:
			resp.AcceptedIds = append(resp.AcceptedIds, r.GetReceiptId())
		default:
			resp.DuplicateIds = append(resp.DuplicateIds, r.GetReceiptId())
		}
	}
	return resp, nil
}

func TestBillingSink_ReportSendsEveryFieldAndNeedsEveryKeyTaken(t *testing.T) {
	region := make([]byte, 32)
	region[0] = 0xaa
	f := &fakeBilling{}
	s := NewBillingSink(f, region)
	at := time.Unix(1_800_000_000, 42)
	recs := []Record{
		{Stack: ids.StackID{1}, Kind: GatewayRequests, Amount: 1, Key: "k1", Time: at},
		{Stack: ids.StackID{2}, Kind: DBStoredByteSeconds, Amount: 1 << 40, Key: "k2"},
		{Stack: ids.StackID{3}, Kind: FunctionMBInstructions, Amount: 7, Key: "k3", Time: at},
	}
	if err := s.Report(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	got := f.usageReq.GetRecords()
	if len(got) != 3 {
		t.Fatalf("%d records sent", len(got))
	}
	for i, r := range got {
		w := recs[i]
		if string(r.GetStackId()) != string(w.Stack[:]) || r.GetKind() != w.Kind || r.GetAmount() != w.Amount ||
			r.GetIdempotencyKey() != w.Key || string(r.GetRegionId()) != string(region) {
			t.Fatalf("record %d sent as %v", i, r)
		}
		if w.Time.IsZero() != (r.GetTime() == nil) || (r.GetTime() != nil && !r.GetTime().AsTime().Equal(w.Time)) {
			t.Fatalf("record %d time sent as %v, want %v", i, r.GetTime(), w.Time)
		}
	}

	f.drop = "k2"
	if err := s.Report(context.Background(), recs...); err == nil || !strings.Contains(err.Error(), `"k2"`) {
		t.Fatalf("a key billing did not take: %v", err)
	}

	f.err = status.Error(codes.Unavailable, "billing restarting")
	err := s.Report(context.Background(), recs...)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "3 records") {
		t.Fatalf("a failed call: %v (code %v)", err, status.Code(err))
	}

	nr := NewBillingSink(&fakeBilling{}, nil)
	if err := nr.Report(context.Background(), recs[0]); err != nil {
		t.Fatal(err)
	}
	if f := nr.client.(*fakeBilling); len(f.usageReq.GetRecords()[0].GetRegionId()) != 0 {
		t.Fatal("a sink without a region sent one")
	}
}

func TestBillingSink_ReportReceipts(t *testing.T) {
	region := make([]byte, 32)
	region[1] = 0xbb
	f := &fakeBilling{}
	s := NewBillingSink(f, region)
	own := make([]byte, 32)
	own[2] = 0xcc
	rs := []*billingv1.Receipt{{ReceiptId: "r1", Fuel: 10}, {ReceiptId: "r2", RegionId: own}}
	if err := s.ReportReceipts(context.Background(), rs...); err != nil {
		t.Fatal(err)
	}
	sent := f.receiptsReq.GetReceipts()
	if string(sent[0].GetRegionId()) != string(region) || sent[0].GetFuel() != 10 || string(sent[1].GetRegionId()) != string(own) {
		t.Fatalf("receipts sent as %v", sent)
	}
	if len(rs[0].GetRegionId()) != 0 {
		t.Fatal("the caller's receipt was changed")
	}
	f.drop = "r2"
	if err := s.ReportReceipts(context.Background(), rs...); err == nil || !strings.Contains(err.Error(), `"r2"`) {
		t.Fatalf("an id billing did not take: %v", err)
	}
	f.err = status.Error(codes.InvalidArgument, "bad receipt")
	if err := s.ReportReceipts(context.Background(), rs...); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a failed call: %v", err)
	}
}

// grpcBilling is a BillingService over a real gRPC server that takes every
// record into a Memory sink.
type grpcBilling struct {
	billingv1.UnimplementedBillingServiceServer
	mem *Memory
}

func (g *grpcBilling) ReportUsage(ctx context.Context, req *billingv1.ReportUsageRequest) (*billingv1.ReportUsageResponse, error) {
	resp := &billingv1.ReportUsageResponse{}
	for _, r := range req.GetRecords() {
		stack, err := ids.StackIDFromBytes(r.GetStackId())
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		g.mem.Report(ctx, Record{Stack: stack, Kind: r.GetKind(), Amount: r.GetAmount(), Key: r.GetIdempotencyKey()})
		resp.AcceptedKeys = append(resp.AcceptedKeys, r.GetIdempotencyKey())
	}
	return resp, nil
}

func TestDialBilling_BatcherDeliversOverGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	g := &grpcBilling{mem: NewMemory()}
	billingv1.RegisterBillingServiceServer(srv, g)
	go srv.Serve(lis)
	defer srv.Stop()

	sink, conn, err := DialBilling(lis.Addr().String(), nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfg := spoolConfig(t.TempDir())
	b := mustBatcher(t, sink, cfg)
	keys := NewKeys("grpc")
	stack := ids.StackID{5}
	for i := range 10 {
		b.Add(Record{Stack: stack, Kind: DBWrites, Amount: uint64(i + 1), Key: keys.Next()})
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := g.mem.Total(stack, DBWrites); got != 55 {
		t.Fatalf("billing got %d writes, want 55", got)
	}
}
