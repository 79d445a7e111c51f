package billing

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tikv/client-go/v2/txnkv/transaction"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgerpb"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
)

// pageSize resolves a request's page_size.
func (s *Server) pageSize(n uint32) int {
	if n == 0 {
		return s.cfg.DefaultPageSize
	}
	return min(int(min(n, math.MaxInt32)), s.cfg.MaxPageSize)
}

// timeRange reads an optional [start, end) in unix ns.
func timeRange(start, end *timestamppb.Timestamp) (lo, hi int64, err error) {
	lo, hi = 0, math.MaxInt64
	if start != nil {
		if err := start.CheckValid(); err != nil {
			return 0, 0, invalid("start_time: %v", err)
		}
		lo = max(start.AsTime().UnixNano(), 0)
	}
	if end != nil {
		if err := end.CheckValid(); err != nil {
			return 0, 0, invalid("end_time: %v", err)
		}
		hi = max(end.AsTime().UnixNano(), 0)
	}
	return lo, hi, nil
}

// GetUsage sums a stack's usage buckets whose start lies in
// [start_time rounded down to bucket_size, end_time), adds its unsettled
// usage (all of it, whatever the period), prices both at the region's
// rates and reports the owner's escrow.
func (s *Server) GetUsage(ctx context.Context, req *billingv1.GetUsageRequest) (*billingv1.GetUsageResponse, error) {
	stack, err := ledger.PubkeyFromBytes("stack_id", req.GetStackId())
	if err != nil {
		return nil, invalid("%v", err)
	}
	lo, hi, err := timeRange(req.GetStartTime(), req.GetEndTime())
	if err != nil {
		return nil, err
	}
	lo -= lo % s.cfg.BucketSize.Nanoseconds()
	var sum, unsettled amounts
	var rec *stackRec
	err = s.view(func(txn *transaction.KVTxn) error {
		sum, unsettled, rec = amounts{}, amounts{}, nil
		start := cat(prefixBucket, stack[:], be64(uint64(lo)))
		end := cat(prefixBucket, stack[:], be64(uint64(hi)))
		err := scan(txn, start, end, false, func(k, v []byte) (bool, error) {
			x, err := decodeU128(v)
			if err != nil {
				return false, err
			}
			var add amounts
			u := ledger.Unit(k[len(k)-1])
			if u < 0 || u >= ledger.NumUnits {
				return false, fmt.Errorf("billing: bucket key of unknown unit %d", u)
			}
			add[u] = x
			return true, sum.add(add)
		})
		if err != nil {
			return err
		}
		b, err := get(ctx, txn, stackKey(stack))
		if err != nil || b == nil {
			return err
		}
		if rec, err = decodeStack(b); err != nil {
			return err
		}
		unsettled = rec.Unsettled
		if rec.Pending != nil {
			return unsettled.add(rec.Pending.Usage)
		}
		return nil
	})
	if err != nil {
		return nil, toStatus(ctx, "get usage", err)
	}
	resp := &billingv1.GetUsageResponse{}
	if rec != nil && !rec.Region.IsZero() {
		resp.RegionId = rec.Region.Bytes()
	}
	var rates *ledger.Rates
	m, err := s.lookup(ctx, stack)
	switch {
	case err == nil:
		r := ledgerpb.ParseRates(m.region.GetRates())
		rates = &r
		resp.RegionId = m.region.GetId()
		resp.Rates = m.region.GetRates()
		if resp.Escrow, err = s.escrowStatus(ctx, m); err != nil {
			return nil, toStatus(ctx, "get usage", err)
		}
	case errors.Is(err, errNoIndexer):
	default:
		s.log.Debug("get usage: no market data", "stack", stack, "err", err)
	}
	resp.Totals = totals(sum, rates)
	resp.Unsettled = totals(unsettled, rates)
	return resp, nil
}

// escrowStatus reports m's escrow and its burn over BurnWindow (the
// charges of the settlements billing recorded for the escrow).
func (s *Server) escrowStatus(ctx context.Context, m *market) (*billingv1.EscrowStatus, error) {
	es := &billingv1.EscrowStatus{
		Balance:          m.escrow.GetBalance(),
		MinEscrowBalance: m.region.GetMinEscrowBalance(),
		Enabled:          m.stack.GetEnabled(),
		BurnWindow:       durationpb.New(s.cfg.BurnWindow),
	}
	now := s.now()
	from := uint64(max(now.Add(-s.cfg.BurnWindow).UnixNano(), 0))
	p := burnPrefix(m.owner(), m.provider())
	var burned uint64
	err := s.view(func(txn *transaction.KVTxn) error {
		burned = 0
		return scan(txn, cat(p, be64(from)), prefixEnd(p), false, func(_, v []byte) (bool, error) {
			if len(v) == 8 {
				burned += binary.BigEndian.Uint64(v)
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	es.BurnPerHour = uint64(float64(burned) * float64(time.Hour) / float64(s.cfg.BurnWindow))
	switch {
	case es.Balance < es.MinEscrowBalance:
		es.TimeLeft = durationpb.New(0)
	case es.BurnPerHour > 0:
		hours := float64(es.Balance-es.MinEscrowBalance) / float64(es.BurnPerHour)
		es.TimeLeft = durationpb.New(time.Duration(min(hours*float64(time.Hour), float64(math.MaxInt64))))
	}
	return es, nil
}

// ListUnsettled lists the stacks with usage not yet settled (unsettled or
// in a pending settlement), ordered by stack id.
func (s *Server) ListUnsettled(ctx context.Context, req *billingv1.ListUnsettledRequest) (*billingv1.ListUnsettledResponse, error) {
	var region ledger.Pubkey
	if len(req.GetRegionId()) > 0 {
		var err error
		if region, err = ledger.PubkeyFromBytes("region_id", req.GetRegionId()); err != nil {
			return nil, invalid("%v", err)
		}
	}
	start := prefixStack
	if tok := req.GetPageToken(); tok != "" {
		b, err := hex.DecodeString(tok)
		if err != nil || len(b) != 32 {
			return nil, invalid("page_token: %q is not a token this service gave", tok)
		}
		start = cat(prefixStack, b, []byte{0})
	}
	size := s.pageSize(req.GetPageSize())
	resp := &billingv1.ListUnsettledResponse{}
	err := s.view(func(txn *transaction.KVTxn) error {
		resp.Stacks, resp.NextPageToken = nil, ""
		return scan(txn, start, prefixEnd(prefixStack), false, func(k, v []byte) (bool, error) {
			rec, err := decodeStack(v)
			if err != nil {
				return false, err
			}
			if !rec.hasUsage() || (!region.IsZero() && rec.Region != region) {
				return true, nil
			}
			stack := k[len(prefixStack):]
			if len(resp.Stacks) == size {
				resp.NextPageToken = hex.EncodeToString(resp.Stacks[size-1].StackId)
				return false, nil
			}
			a, oldest := rec.Unsettled, rec.Oldest
			if rec.Pending != nil {
				if err := a.add(rec.Pending.Usage); err != nil {
					return false, err
				}
				if oldest == 0 || (rec.Pending.Oldest != 0 && rec.Pending.Oldest < oldest) {
					oldest = rec.Pending.Oldest
				}
			}
			u := &billingv1.UnsettledUsage{StackId: append([]byte(nil), stack...), RegionId: rec.Region.Bytes(), Totals: totals(a, nil)}
			if oldest != 0 {
				u.Oldest = timestamppb.New(time.Unix(0, oldest))
			}
			resp.Stacks = append(resp.Stacks, u)
			return true, nil
		})
	})
	if err != nil {
		return nil, toStatus(ctx, "list unsettled", err)
	}
	return resp, nil
}

// ListSettlements lists a stack's settlements newest first (by seed, which
// grows with every settlement of the stack).
func (s *Server) ListSettlements(ctx context.Context, req *billingv1.ListSettlementsRequest) (*billingv1.ListSettlementsResponse, error) {
	stack, err := ledger.PubkeyFromBytes("stack_id", req.GetStackId())
	if err != nil {
		return nil, invalid("%v", err)
	}
	lo, hi, err := timeRange(req.GetStartTime(), req.GetEndTime())
	if err != nil {
		return nil, err
	}
	p := cat(prefixSettlement, stack[:])
	end := prefixEnd(p)
	if tok := req.GetPageToken(); tok != "" {
		b, err := hex.DecodeString(tok)
		if err != nil || len(b) != 8 {
			return nil, invalid("page_token: %q is not a token this service gave", tok)
		}
		end = cat(p, b) // exclusive: the last seed of the previous page
	}
	size := s.pageSize(req.GetPageSize())
	resp := &billingv1.ListSettlementsResponse{}
	err = s.view(func(txn *transaction.KVTxn) error {
		resp.Settlements, resp.NextPageToken = nil, ""
		var last []byte
		return scan(txn, p, end, true, func(k, v []byte) (bool, error) {
			if len(resp.Settlements) == size {
				resp.NextPageToken = hex.EncodeToString(last)
				return false, nil
			}
			set := new(billingv1.Settlement)
			if err := proto.Unmarshal(v, set); err != nil {
				return false, fmt.Errorf("billing: decode settlement: %w", err)
			}
			last = append(last[:0], k[len(p):]...)
			if t := set.GetTime().AsTime().UnixNano(); t < lo || t >= hi {
				return true, nil
			}
			resp.Settlements = append(resp.Settlements, set)
			return true, nil
		})
	})
	if err != nil {
		return nil, toStatus(ctx, "list settlements", err)
	}
	return resp, nil
}
