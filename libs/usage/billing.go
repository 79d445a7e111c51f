package usage

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
)

// BillingSink sends usage records and receipts to the billing service over
// gRPC. It is a Sink and a ReceiptSink; safe for concurrent use.
type BillingSink struct {
	client billingv1.BillingServiceClient
	region []byte
}

// NewBillingSink returns a sink that reports through client. regionID,
// when not empty, is the 32-byte Region.id set on every record (and on
// receipts that carry none); empty leaves it for billing to fill.
func NewBillingSink(client billingv1.BillingServiceClient, regionID []byte) *BillingSink {
	return &BillingSink{client: client, region: regionID}
}

// Report implements Sink with one ReportUsage call. It returns nil only
// when billing named every record's key as accepted or duplicate; an error
// from the call wraps its gRPC status (status.FromError finds it).
func (s *BillingSink) Report(ctx context.Context, records ...Record) error {
	if len(records) == 0 {
		return nil
	}
	req := &billingv1.ReportUsageRequest{Records: make([]*billingv1.UsageRecord, len(records))}
	for i, r := range records {
		ur := &billingv1.UsageRecord{
			StackId:        r.Stack[:],
			Kind:           r.Kind,
			Amount:         r.Amount,
			IdempotencyKey: r.Key,
			RegionId:       s.region,
		}
		if !r.Time.IsZero() {
			ur.Time = timestamppb.New(r.Time)
		}
		req.Records[i] = ur
	}
	resp, err := s.client.ReportUsage(ctx, req)
	if err != nil {
		return fmt.Errorf("usage: report %d records to billing: %w", len(records), err)
	}
	taken := make(map[string]struct{}, len(records))
	for _, k := range resp.GetAcceptedKeys() {
		taken[k] = struct{}{}
	}
	for _, k := range resp.GetDuplicateKeys() {
		taken[k] = struct{}{}
	}
	for _, r := range records {
		if _, ok := taken[r.Key]; !ok {
			return fmt.Errorf("usage: billing answered ReportUsage for %d records without taking key %q (%d accepted, %d duplicate)",
				len(records), r.Key, len(resp.GetAcceptedKeys()), len(resp.GetDuplicateKeys()))
		}
	}
	return nil
}

// ReportReceipts implements ReceiptSink with one ReportReceipts call. It
// returns nil only when billing named every receipt's id as accepted or
// duplicate. Receipts without a region_id get the sink's (on a copy: the
// caller's receipts are not changed).
func (s *BillingSink) ReportReceipts(ctx context.Context, receipts ...*billingv1.Receipt) error {
	if len(receipts) == 0 {
		return nil
	}
	req := &billingv1.ReportReceiptsRequest{Receipts: make([]*billingv1.Receipt, len(receipts))}
	for i, r := range receipts {
		if len(s.region) > 0 && len(r.GetRegionId()) == 0 {
			r = proto.CloneOf(r)
			r.RegionId = s.region
		}
		req.Receipts[i] = r
	}
	resp, err := s.client.ReportReceipts(ctx, req)
	if err != nil {
		return fmt.Errorf("usage: report %d receipts to billing: %w", len(receipts), err)
	}
	taken := make(map[string]struct{}, len(receipts))
	for _, id := range resp.GetAcceptedIds() {
		taken[id] = struct{}{}
	}
	for _, id := range resp.GetDuplicateIds() {
		taken[id] = struct{}{}
	}
	for _, r := range receipts {
		if _, ok := taken[r.GetReceiptId()]; !ok {
			return fmt.Errorf("usage: billing answered ReportReceipts for %d receipts without taking id %q (%d accepted, %d duplicate)",
				len(receipts), r.GetReceiptId(), len(resp.GetAcceptedIds()), len(resp.GetDuplicateIds()))
		}
	}
	return nil
}

// DialBilling connects lazily to the billing service at addr (host:port; an
// unreachable billing fails the reports, which the Batcher retries, not
// DialBilling) and returns a BillingSink on the connection. opts must give
// the transport credentials (a service's TLS.DialOption(certs.RoleBilling)).
// The caller closes the connection after the Batcher using the sink is
// closed.
func DialBilling(addr string, regionID []byte, opts ...grpc.DialOption) (*BillingSink, *grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("usage: billing_addr %q: %w", addr, err)
	}
	return NewBillingSink(billingv1.NewBillingServiceClient(conn), regionID), conn, nil
}
