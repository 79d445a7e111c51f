package mudb

import (
	"bytes"
	"context"
	"fmt"

	"github.com/muprotocol/mu/libs/ids"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
	"github.com/muprotocol/mu/services/mudb/internal/keyspace"
)

// scanSpec is one checked scan of a request.
type scanSpec struct {
	field  string // request field, for errors: "" or scans[i].
	table  keyspace.Table
	prefix []byte
	limit  int
	pos    keyspace.Position
}

// page is one page of one scan.
type page struct {
	keys   [][]byte
	values [][]byte // nil for key scans
	next   []byte
}

// checkScan validates one scan's table, prefix, limit and cursor.
func (s *Server) checkScan(stack ids.StackID, field, table string, prefix []byte, limit uint32, cursor []byte) (scanSpec, error) {
	t, err := s.table(stack, field+"table", table)
	if err != nil {
		return scanSpec{}, err
	}
	if err := s.prefix(field+"key_prefix", prefix); err != nil {
		return scanSpec{}, err
	}
	pos, err := keyspace.DecodeCursor(t, prefix, cursor, s.cfg.MaxKeyBytes)
	if err != nil {
		return scanSpec{}, invalidf("%scursor: %v", field, err)
	}
	return scanSpec{field: field, table: t, prefix: prefix, limit: s.pageSize(limit), pos: pos}, nil
}

// cursorCost bounds the encoded size of a cursor holding key k.
func cursorCost(k []byte) int { return len(k) + 32 }

// scan reads one page of sp from r's snapshot, from its position on and
// inside its table and prefix only. Expired keys are skipped and do not
// count. budget is what is left of MaxResponseBytes; every entry taken is
// charged its key twice (as an entry and as the cursor it may become) and
// its value. The page ends at sp.limit entries or before the entry that
// would pass the budget, and then has a cursor to resume strictly after
// its last key (or at its start position when it took nothing).
func (s *Server) scan(r *readTxn, sp scanSpec, values bool, budget *int) (page, error) {
	var p page
	start, end, err := keyspace.ScanRange(sp.table, sp.prefix, sp.pos)
	if err != nil {
		return p, invalidf("%scursor: %v", sp.field, err)
	}
	it, err := r.txn.Iter(start, end)
	if err != nil {
		return p, err
	}
	defer it.Close()
	last := sp.pos
	more := false
	for n := 0; it.Valid(); n++ {
		if n%256 == 0 && r.ctx.Err() != nil {
			return p, r.ctx.Err()
		}
		uk, ok := sp.table.UserKey(it.Key())
		if !ok || !bytes.HasPrefix(uk, sp.prefix) {
			break // cannot happen: the range lies inside the table and prefix
		}
		v, live, err := liveValue(it.Value(), r.nowMs)
		if err != nil {
			return p, wrapf(err, "key %q", uk)
		}
		if live {
			cost := 2*len(uk) + entryOverhead
			if values {
				cost += len(v)
			}
			if len(p.keys) == sp.limit || cost > *budget {
				more = true
				break
			}
			*budget -= cost
			p.keys = append(p.keys, bytes.Clone(uk))
			if values {
				p.values = append(p.values, nonNil(bytes.Clone(v)))
			}
			last = keyspace.Position{After: p.keys[len(p.keys)-1], Started: true}
		}
		if err := it.Next(); err != nil {
			return p, err
		}
	}
	if more {
		p.next = keyspace.EncodeCursor(sp.table, sp.prefix, last)
	}
	return p, nil
}

// scanBudget is the bytes of entries a reply may hold after its fixed
// parts.
func (s *Server) scanBudget() int { return s.cfg.MaxResponseBytes - replyOverhead }

// Scan implements MudbService: one page of a prefix scan on a snapshot.
func (s *Server) Scan(ctx context.Context, req *mudbv1.ScanRequest) (*mudbv1.ScanResponse, error) {
	stack, p, err := s.scanOne(ctx, "scan", req.GetStackId(), req.GetTable(), req.GetKeyPrefix(), req.GetLimit(), req.GetCursor(), true)
	if err != nil {
		return nil, err
	}
	resp := &mudbv1.ScanResponse{NextCursor: p.next, Items: make([]*mudbv1.KeyValue, len(p.keys))}
	for i := range p.keys {
		resp.Items[i] = &mudbv1.KeyValue{Key: p.keys[i], Value: p.values[i]}
	}
	resp.Ops = s.meter(stack, readOps(len(p.keys)), 0)
	return resp, nil
}

// ScanKeys implements MudbService: Scan without the values.
func (s *Server) ScanKeys(ctx context.Context, req *mudbv1.ScanKeysRequest) (*mudbv1.ScanKeysResponse, error) {
	stack, p, err := s.scanOne(ctx, "scan keys", req.GetStackId(), req.GetTable(), req.GetKeyPrefix(), req.GetLimit(), req.GetCursor(), false)
	if err != nil {
		return nil, err
	}
	return &mudbv1.ScanKeysResponse{Keys: p.keys, NextCursor: p.next, Ops: s.meter(stack, readOps(len(p.keys)), 0)}, nil
}

func (s *Server) scanOne(ctx context.Context, op string, stackBytes []byte, table string, prefix []byte, limit uint32, cursor []byte, values bool) (ids.StackID, page, error) {
	stack, err := stackID(stackBytes)
	if err != nil {
		return stack, page{}, err
	}
	sp, err := s.checkScan(stack, "", table, prefix, limit, cursor)
	if err != nil {
		return stack, page{}, err
	}
	var p page
	err = s.view(ctx, op, func(r *readTxn) error {
		if err := r.requireTables(sp.table); err != nil {
			return err
		}
		budget := s.scanBudget() - cursorCost(sp.pos.After)
		p, err = s.scan(r, sp, values, &budget)
		return err
	})
	return stack, p, err
}

// batchScans checks the scans of a batch and charges their fixed parts
// (table name, framing and the cursor each may hand back) to the budget.
func (s *Server) batchScans(stack ids.StackID, scans []*mudbv1.ScanSpec) ([]scanSpec, int, error) {
	if err := s.batch("scans", len(scans)); err != nil {
		return nil, 0, err
	}
	specs := make([]scanSpec, len(scans))
	budget := s.scanBudget()
	for i, sc := range scans {
		var err error
		specs[i], err = s.checkScan(stack, fmt.Sprintf("scans[%d].", i), sc.GetTable(), sc.GetKeyPrefix(), sc.GetLimit(), sc.GetCursor())
		if err != nil {
			return nil, 0, err
		}
		budget -= len(sc.GetTable()) + entryOverhead + cursorCost(specs[i].pos.After)
	}
	if budget < 0 {
		return nil, 0, resultTooLarge("the %d scans' tables and cursors alone would pass max_response_bytes %d; send fewer scans", len(scans), s.cfg.MaxResponseBytes)
	}
	return specs, budget, nil
}

// runBatchScan runs every scan on one snapshot, sharing one budget.
func (s *Server) runBatchScan(ctx context.Context, op string, specs []scanSpec, budget int, values bool) ([]page, int, error) {
	pages := make([]page, len(specs))
	total := 0
	err := s.view(ctx, op, func(r *readTxn) error {
		tables := make([]keyspace.Table, len(specs))
		for i, sp := range specs {
			tables[i] = sp.table
		}
		if err := r.requireTables(tables...); err != nil {
			return err
		}
		total = 0
		for i, sp := range specs {
			p, err := s.scan(r, sp, values, &budget)
			if err != nil {
				return err
			}
			pages[i] = p
			total += len(p.keys)
		}
		for _, p := range pages {
			if total == 0 && p.next != nil {
				// Only the budget stops a scan before its first entry:
				// the same request would never make progress.
				return resultTooLarge("the scans' fixed parts leave too little of max_response_bytes %d for the next entry; send fewer scans", s.cfg.MaxResponseBytes)
			}
		}
		return nil
	})
	return pages, total, err
}

// BatchScan implements MudbService: every scan on one snapshot, the
// response size limit shared by all.
func (s *Server) BatchScan(ctx context.Context, req *mudbv1.BatchScanRequest) (*mudbv1.BatchScanResponse, error) {
	stack, err := stackID(req.GetStackId())
	if err != nil {
		return nil, err
	}
	specs, budget, err := s.batchScans(stack, req.GetScans())
	if err != nil {
		return nil, err
	}
	pages, total, err := s.runBatchScan(ctx, "batch scan", specs, budget, true)
	if err != nil {
		return nil, err
	}
	resp := &mudbv1.BatchScanResponse{Results: make([]*mudbv1.BatchScanResult, len(pages))}
	for i, p := range pages {
		res := &mudbv1.BatchScanResult{Table: specs[i].table.Name, NextCursor: p.next, Items: make([]*mudbv1.KeyValue, len(p.keys))}
		for j := range p.keys {
			res.Items[j] = &mudbv1.KeyValue{Key: p.keys[j], Value: p.values[j]}
		}
		resp.Results[i] = res
	}
	resp.Ops = s.meter(stack, readOps(total), 0)
	return resp, nil
}

// BatchScanKeys implements MudbService: BatchScan without the values.
func (s *Server) BatchScanKeys(ctx context.Context, req *mudbv1.BatchScanKeysRequest) (*mudbv1.BatchScanKeysResponse, error) {
	stack, err := stackID(req.GetStackId())
	if err != nil {
		return nil, err
	}
	specs, budget, err := s.batchScans(stack, req.GetScans())
	if err != nil {
		return nil, err
	}
	pages, total, err := s.runBatchScan(ctx, "batch scan keys", specs, budget, false)
	if err != nil {
		return nil, err
	}
	resp := &mudbv1.BatchScanKeysResponse{Results: make([]*mudbv1.BatchScanKeysResult, len(pages))}
	for i, p := range pages {
		resp.Results[i] = &mudbv1.BatchScanKeysResult{Table: specs[i].table.Name, Keys: p.keys, NextCursor: p.next}
	}
	resp.Ops = s.meter(stack, readOps(total), 0)
	return resp, nil
}
