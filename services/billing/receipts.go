package billing

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/tikv/client-go/v2/txnkv/transaction"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/usage"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
)

// ReportReceipts validates the batch, signs every new receipt with the
// usage signer and stores the batch in one transaction.
func (s *Server) ReportReceipts(ctx context.Context, req *billingv1.ReportReceiptsRequest) (*billingv1.ReportReceiptsResponse, error) {
	n := len(req.GetReceipts())
	if n > s.cfg.MaxReceiptBatch {
		return nil, invalid("receipts: %d receipts, more than max_receipt_batch %d", n, s.cfg.MaxReceiptBatch)
	}
	type item struct {
		id    string
		stack ledger.Pubkey
		ns    int64
		rec   *billingv1.Receipt
	}
	items := make([]item, n)
	for i, r := range req.GetReceipts() {
		if err := checkKey(r.GetReceiptId()); err != nil {
			return nil, invalid("receipts[%d].receipt_id: %v", i, err)
		}
		stack, err := ledger.PubkeyFromBytes("stack_id", r.GetStackId())
		if err != nil {
			return nil, invalid("receipts[%d].%v", i, err)
		}
		region, err := s.regionOf("region_id", r.GetRegionId())
		if err != nil {
			return nil, invalid("receipts[%d].%v", i, err)
		}
		if size := proto.Size(r); size > s.cfg.MaxReceiptBytes {
			return nil, invalid("receipts[%d]: %d bytes, more than max_receipt_bytes %d", i, size, s.cfg.MaxReceiptBytes)
		}
		ns := s.now().UnixNano()
		if r.GetTime() != nil {
			if err := r.GetTime().CheckValid(); err != nil {
				return nil, invalid("receipts[%d].time: %v", i, err)
			}
			ns = max(r.GetTime().AsTime().UnixNano(), 0)
		}
		rec := r
		if len(r.GetRegionId()) == 0 && !region.IsZero() {
			rec = proto.Clone(r).(*billingv1.Receipt)
			rec.RegionId = region.Bytes()
		}
		items[i] = item{id: r.GetReceiptId(), stack: stack, ns: ns, rec: rec}
	}
	if n == 0 {
		return &billingv1.ReportReceiptsResponse{}, nil
	}
	if s.signer == nil {
		return nil, status.Error(codes.FailedPrecondition, "billing: no usage signer to sign receipts: set signer_key_file")
	}
	resp := &billingv1.ReportReceiptsResponse{}
	err := s.update(ctx, func(txn *transaction.KVTxn) error {
		resp.AcceptedIds, resp.DuplicateIds = nil, nil
		keys := make([][]byte, n)
		for i, it := range items {
			keys[i] = receiptKey(it.id)
		}
		known, err := txn.BatchGet(ctx, keys)
		if err != nil {
			return fmt.Errorf("%w: read receipts: %w", errStore, err)
		}
		seen := map[string]bool{}
		for _, it := range items {
			if _, ok := known[string(receiptKey(it.id))]; ok || seen[it.id] {
				resp.DuplicateIds = append(resp.DuplicateIds, it.id)
				continue
			}
			seen[it.id] = true
			sr, err := usage.SignReceipt(s.signer, it.rec)
			if err != nil {
				return fmt.Errorf("billing: sign receipt %q: %w", it.id, err)
			}
			b, err := proto.Marshal(sr)
			if err != nil {
				return err
			}
			if err := txn.Set(receiptKey(it.id), b); err != nil {
				return fmt.Errorf("%w: %w", errStore, err)
			}
			if err := txn.Set(receiptIdxKey(it.stack, uint64(it.ns), it.id), marker); err != nil {
				return fmt.Errorf("%w: %w", errStore, err)
			}
			resp.AcceptedIds = append(resp.AcceptedIds, it.id)
		}
		return nil
	})
	if err != nil {
		return nil, toStatus(ctx, "report receipts", err)
	}
	s.metrics.receipts.WithLabelValues("accepted").Add(float64(len(resp.AcceptedIds)))
	s.metrics.receipts.WithLabelValues("duplicate").Add(float64(len(resp.DuplicateIds)))
	return resp, nil
}

// GetReceipt returns one signed receipt.
func (s *Server) GetReceipt(ctx context.Context, req *billingv1.GetReceiptRequest) (*billingv1.GetReceiptResponse, error) {
	if err := checkKey(req.GetReceiptId()); err != nil {
		return nil, invalid("receipt_id: %v", err)
	}
	var b []byte
	err := s.view(func(txn *transaction.KVTxn) (err error) {
		b, err = get(ctx, txn, receiptKey(req.GetReceiptId()))
		return err
	})
	if err != nil {
		return nil, toStatus(ctx, "get receipt", err)
	}
	if b == nil {
		return nil, status.Errorf(codes.NotFound, "billing: no receipt %q", req.GetReceiptId())
	}
	sr := new(billingv1.SignedReceipt)
	if err := proto.Unmarshal(b, sr); err != nil {
		return nil, toStatus(ctx, "get receipt", fmt.Errorf("decode receipt: %w", err))
	}
	return &billingv1.GetReceiptResponse{Receipt: sr}, nil
}

// ListReceipts lists a stack's receipts newest first (by Receipt.time).
func (s *Server) ListReceipts(ctx context.Context, req *billingv1.ListReceiptsRequest) (*billingv1.ListReceiptsResponse, error) {
	stack, err := ledger.PubkeyFromBytes("stack_id", req.GetStackId())
	if err != nil {
		return nil, invalid("%v", err)
	}
	p := cat(prefixReceiptIdx, stack[:])
	end := prefixEnd(p)
	if tok := req.GetPageToken(); tok != "" {
		b, err := hex.DecodeString(tok)
		if err != nil || len(b) < 9 {
			return nil, invalid("page_token: %q is not a token this service gave", tok)
		}
		end = cat(p, b)
	}
	size := s.pageSize(req.GetPageSize())
	resp := &billingv1.ListReceiptsResponse{}
	err = s.view(func(txn *transaction.KVTxn) error {
		resp.Receipts, resp.NextPageToken = nil, ""
		var ids [][]byte
		var last []byte
		err := scan(txn, p, end, true, func(k, _ []byte) (bool, error) {
			if len(ids) == size {
				resp.NextPageToken = hex.EncodeToString(last)
				return false, nil
			}
			last = append([]byte(nil), k[len(p):]...)
			ids = append(ids, receiptKey(string(k[len(p)+8:])))
			return true, nil
		})
		if err != nil || len(ids) == 0 {
			return err
		}
		got, err := txn.BatchGet(ctx, ids)
		if err != nil {
			return fmt.Errorf("%w: read receipts: %w", errStore, err)
		}
		for _, k := range ids {
			sr := new(billingv1.SignedReceipt)
			if err := proto.Unmarshal(got[string(k)], sr); err != nil {
				return fmt.Errorf("decode receipt: %w", err)
			}
			resp.Receipts = append(resp.Receipts, sr)
		}
		return nil
	})
	if err != nil {
		return nil, toStatus(ctx, "list receipts", err)
	}
	return resp, nil
}
