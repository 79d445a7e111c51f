package mudb

import (
	"bytes"
	"context"
	"time"

	"github.com/muprotocol/mu/services/mudb/internal/keyspace"
)

// sweepLoop runs the TTL sweeper every TTLSweepInterval until Close.
// Expired keys are already invisible to every call; the sweeper reclaims
// their space. Concurrent sweepers (several nodes on one cluster) are
// safe: they conflict, and the loser retries at its next tick.
func (s *Server) sweepLoop() {
	defer close(s.sweepDone)
	tick := time.NewTicker(s.cfg.TTLSweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.sweepCtx.Done():
			return
		case <-tick.C:
		}
		for {
			n, more, err := s.sweepDue(s.sweepCtx)
			if err != nil {
				if s.sweepCtx.Err() == nil {
					s.log.Warn("ttl sweep failed; retrying at the next tick", "err", err)
				}
				break
			}
			s.metrics.swept.Add(float64(n))
			if !more {
				break
			}
		}
	}
}

// sweepDue deletes up to TTLSweepBatch TTL index entries that are due,
// and each data key that still carries that entry's expiry, in one
// transaction. A key rewritten since its TTL was set carries another
// expiry (or none) and is kept; if the rewrite commits while the sweep
// runs, the sweep's commit conflicts and deletes nothing. It returns the
// data keys deleted and whether more entries may be due.
func (s *Server) sweepDue(ctx context.Context) (swept int, more bool, err error) {
	err = s.update(ctx, "ttl sweep", false, nil, func(w *writeTxn) error {
		swept, more = 0, false
		start, end := keyspace.TTLRangeUntil(w.nowMs)
		it, err := w.txn.Iter(start, end)
		if err != nil {
			return err
		}
		var entries [][]byte
		for it.Valid() && len(entries) < s.cfg.TTLSweepBatch {
			entries = append(entries, bytes.Clone(it.Key()))
			if err := it.Next(); err != nil {
				it.Close()
				return err
			}
		}
		more = it.Valid()
		it.Close()
		if len(entries) == 0 {
			return nil
		}
		dks := make([][]byte, 0, len(entries))
		exps := make([]uint64, 0, len(entries))
		for _, e := range entries {
			exp, dk, ok := keyspace.ParseTTLKey(e)
			if ok {
				dks = append(dks, dk)
				exps = append(exps, exp)
			}
		}
		got, err := w.txn.BatchGet(w.ctx, dks)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := w.txn.Delete(e); err != nil {
				return err
			}
		}
		for i, dk := range dks {
			stored, ok := got[string(dk)]
			if !ok {
				continue
			}
			if _, exp, err := keyspace.Unwrap(stored); err != nil || exp != exps[i] {
				continue // rewritten since: not this entry's to sweep
			}
			if err := w.txn.Delete(dk); err != nil {
				return err
			}
			swept++
		}
		return nil
	})
	return swept, more, err
}
