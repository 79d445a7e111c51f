package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tikv/client-go/v2/txnkv/transaction"
	"google.golang.org/grpc/codes"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/rpcerr"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
)

// errClosing: the node is shutting down (UNAVAILABLE: retry elsewhere or
// later).
var errClosing = errors.New("billing: shutting down")

// record is one validated usage record.
type record struct {
	key    string
	stack  ledger.Pubkey
	region ledger.Pubkey
	unit   ledger.Unit
	amount uint64
	ns     int64 // UsageRecord.time, unix ns
}

// commitReq is one ReportUsage call waiting for the group committer.
type commitReq struct {
	recs []record
	done chan commitResult
}

type commitResult struct {
	accepted, duplicate []string
	err                 error
}

// maxKeyBytes bounds an idempotency key and a receipt id (proto contract).
const maxKeyBytes = 128

// checkKey reports what is wrong with an idempotency key or receipt id:
// 1..128 bytes of printable ASCII.
func checkKey(k string) error {
	if len(k) == 0 || len(k) > maxKeyBytes {
		return fmt.Errorf("is %d bytes, want 1..%d", len(k), maxKeyBytes)
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("byte %d is 0x%02x, not printable ASCII", i, c)
		}
	}
	return nil
}

func invalid(format string, args ...any) error {
	return rpcerr.Errorf(codes.InvalidArgument, rpcerr.InvalidRequest, format, args...)
}

// regionOf resolves a record's or receipt's region_id: empty takes the
// node's region; another region than the node's is refused.
func (s *Server) regionOf(field string, b []byte) (ledger.Pubkey, error) {
	if len(b) == 0 {
		return s.region, nil
	}
	r, err := ledger.PubkeyFromBytes(field, b)
	if err != nil {
		return r, err
	}
	if s.hasRegion && r != s.region {
		return r, fmt.Errorf("%s %s is not this node's region_id %s", field, r, s.region)
	}
	return r, nil
}

// ReportUsage validates the batch, hands it to the group committer and
// answers once the transaction holding it has committed.
func (s *Server) ReportUsage(ctx context.Context, req *billingv1.ReportUsageRequest) (*billingv1.ReportUsageResponse, error) {
	n := len(req.GetRecords())
	if n > s.cfg.MaxBatchRecords {
		return nil, invalid("records: %d records, more than max_batch_records %d", n, s.cfg.MaxBatchRecords)
	}
	now := s.now()
	recs := make([]record, n)
	for i, r := range req.GetRecords() {
		stack, err := ledger.PubkeyFromBytes("stack_id", r.GetStackId())
		if err != nil {
			return nil, invalid("records[%d].%v", i, err)
		}
		unit, ok := ledger.UnitOf(r.GetKind())
		if !ok {
			return nil, invalid("records[%d].kind: %v is not a known usage kind", i, r.GetKind())
		}
		if err := checkKey(r.GetIdempotencyKey()); err != nil {
			return nil, invalid("records[%d].idempotency_key: %v", i, err)
		}
		region, err := s.regionOf("region_id", r.GetRegionId())
		if err != nil {
			return nil, invalid("records[%d].%v", i, err)
		}
		ns := now.UnixNano()
		if r.GetTime() != nil {
			if err := r.GetTime().CheckValid(); err != nil {
				return nil, invalid("records[%d].time: %v", i, err)
			}
			if t := r.GetTime().AsTime(); t.Before(time.Unix(0, 0)) || t.Year() > 2261 {
				return nil, invalid("records[%d].time: %s is outside 1970..2261", i, t.Format(time.RFC3339))
			}
			ns = r.GetTime().AsTime().UnixNano()
		}
		recs[i] = record{key: r.GetIdempotencyKey(), stack: stack, region: region, unit: unit, amount: r.GetAmount(), ns: ns}
	}
	if n == 0 {
		return &billingv1.ReportUsageResponse{}, nil
	}
	cr := &commitReq{recs: recs, done: make(chan commitResult, 1)}
	select {
	case s.commitCh <- cr:
	case <-s.quit:
		return nil, toStatus(ctx, "report usage", errClosing)
	case <-ctx.Done():
		return nil, toStatus(ctx, "report usage", ctx.Err())
	}
	select {
	case res := <-cr.done:
		if res.err != nil {
			return nil, toStatus(ctx, "report usage", res.err)
		}
		return &billingv1.ReportUsageResponse{AcceptedKeys: res.accepted, DuplicateKeys: res.duplicate}, nil
	case <-s.committerDone: // shut down after taking the call, or before reaching it
		select {
		case res := <-cr.done:
			if res.err == nil {
				return &billingv1.ReportUsageResponse{AcceptedKeys: res.accepted, DuplicateKeys: res.duplicate}, nil
			}
		default:
		}
		return nil, toStatus(ctx, "report usage", errClosing)
	case <-ctx.Done(): // the commit may still land: the sender's retry finds its keys known
		return nil, toStatus(ctx, "report usage", ctx.Err())
	}
}

// committer is the one goroutine that writes usage: it takes whatever
// calls are pending, up to MaxCommitRecords records, and commits them in
// one transaction.
func (s *Server) committer() {
	defer close(s.committerDone)
	for {
		var first *commitReq
		select {
		case first = <-s.commitCh:
		case <-s.quit:
			s.failPending()
			return
		}
		group, n := []*commitReq{first}, len(first.recs)
	drain:
		for n < s.cfg.MaxCommitRecords {
			select {
			case cr := <-s.commitCh:
				if n+len(cr.recs) > s.cfg.MaxCommitRecords {
					s.commit(group)
					group, n = nil, 0
				}
				group, n = append(group, cr), n+len(cr.recs)
			default:
				break drain
			}
		}
		s.commit(group)
	}
}

// failPending answers the calls still queued at shutdown.
func (s *Server) failPending() {
	for {
		select {
		case cr := <-s.commitCh:
			cr.done <- commitResult{err: errClosing}
		default:
			return
		}
	}
}

// stackAgg is what one commit adds to a stack's record.
type stackAgg struct {
	region ledger.Pubkey
	oldest int64
	sum    amounts
}

// commit writes one group of calls in one transaction and answers them.
func (s *Server) commit(group []*commitReq) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CommitTimeout)
	defer cancel()
	results := make([]commitResult, len(group))
	records := 0
	for _, cr := range group {
		records += len(cr.recs)
	}
	err := s.update(ctx, func(txn *transaction.KVTxn) error {
		keys := make([][]byte, 0, records)
		for _, cr := range group {
			for _, r := range cr.recs {
				keys = append(keys, idemKey(r.key))
			}
		}
		known, err := txn.BatchGet(ctx, keys)
		if err != nil {
			return fmt.Errorf("%w: read keys: %w", errStore, err)
		}
		seen := make(map[string]bool, records)
		buckets := map[string]ledger.Uint128{}
		stacks := map[ledger.Pubkey]*stackAgg{}
		nowNS := uint64(s.now().UnixNano())
		nowBytes := be64(nowNS)
		var list []byte
		chunk, inChunk := uint32(0), 0
		flush := func() error {
			if inChunk == 0 {
				return nil
			}
			if err := txn.Set(idemTimeKey(nowNS, chunk), list); err != nil {
				return fmt.Errorf("%w: %w", errStore, err)
			}
			list, inChunk, chunk = nil, 0, chunk+1
			return nil
		}
		bucketNS := s.cfg.BucketSize.Nanoseconds()
		for i, cr := range group {
			res := commitResult{}
			for _, r := range cr.recs {
				if _, ok := known[string(idemKey(r.key))]; ok || seen[r.key] {
					res.duplicate = append(res.duplicate, r.key)
					continue
				}
				seen[r.key] = true
				res.accepted = append(res.accepted, r.key)
				if err := txn.Set(idemKey(r.key), nowBytes); err != nil {
					return fmt.Errorf("%w: %w", errStore, err)
				}
				list, inChunk = appendKeyList(list, r.key), inChunk+1
				if inChunk == keysPerChunk {
					if err := flush(); err != nil {
						return err
					}
				}
				if r.amount == 0 {
					continue
				}
				bk := string(bucketKey(r.stack, uint64(r.ns-r.ns%bucketNS), r.unit))
				sum, over := buckets[bk].Add(ledger.U128(r.amount))
				if over {
					return fmt.Errorf("billing: bucket total overflows 128 bits")
				}
				buckets[bk] = sum
				a := stacks[r.stack]
				if a == nil {
					a = &stackAgg{region: r.region, oldest: r.ns}
					stacks[r.stack] = a
				}
				a.oldest = min(a.oldest, r.ns)
				var add amounts
				add[r.unit] = ledger.U128(r.amount)
				if err := a.sum.add(add); err != nil {
					return err
				}
			}
			results[i] = res
		}
		if err := flush(); err != nil {
			return err
		}
		if err := s.addBuckets(ctx, txn, buckets); err != nil {
			return err
		}
		return s.addUnsettled(ctx, txn, stacks)
	})
	s.metrics.commitSeconds.Observe(time.Since(start).Seconds())
	for i, cr := range group {
		if err != nil {
			cr.done <- commitResult{err: err}
			continue
		}
		s.metrics.persisted.Add(float64(len(results[i].accepted)))
		s.metrics.duplicates.Add(float64(len(results[i].duplicate)))
		cr.done <- results[i]
	}
	if err != nil {
		s.log.Warn("usage commit failed", "calls", len(group), "records", records, "err", err)
	}
}

func (s *Server) addBuckets(ctx context.Context, txn *transaction.KVTxn, buckets map[string]ledger.Uint128) error {
	if len(buckets) == 0 {
		return nil
	}
	keys := make([][]byte, 0, len(buckets))
	for k := range buckets {
		keys = append(keys, []byte(k))
	}
	old, err := txn.BatchGet(ctx, keys)
	if err != nil {
		return fmt.Errorf("%w: read buckets: %w", errStore, err)
	}
	for k, add := range buckets {
		sum := add
		if b, ok := old[k]; ok {
			prev, err := decodeU128(b)
			if err != nil {
				return err
			}
			var over bool
			if sum, over = prev.Add(add); over {
				return fmt.Errorf("billing: bucket total overflows 128 bits")
			}
		}
		if err := txn.Set([]byte(k), encodeU128(sum)); err != nil {
			return fmt.Errorf("%w: %w", errStore, err)
		}
	}
	return nil
}

func (s *Server) addUnsettled(ctx context.Context, txn *transaction.KVTxn, stacks map[ledger.Pubkey]*stackAgg) error {
	if len(stacks) == 0 {
		return nil
	}
	keys := make([][]byte, 0, len(stacks))
	for st := range stacks {
		keys = append(keys, stackKey(st))
	}
	old, err := txn.BatchGet(ctx, keys)
	if err != nil {
		return fmt.Errorf("%w: read stacks: %w", errStore, err)
	}
	for st, a := range stacks {
		rec := &stackRec{Region: a.region}
		if b, ok := old[string(stackKey(st))]; ok {
			if rec, err = decodeStack(b); err != nil {
				return err
			}
		}
		if rec.Region.IsZero() {
			rec.Region = a.region
		}
		if err := rec.Unsettled.add(a.sum); err != nil {
			return err
		}
		if rec.Oldest == 0 || a.oldest < rec.Oldest {
			rec.Oldest = a.oldest
		}
		if err := txn.Set(stackKey(st), rec.encode()); err != nil {
			return fmt.Errorf("%w: %w", errStore, err)
		}
	}
	return nil
}
