package billing

import (
	"fmt"
	"time"

	"github.com/tikv/client-go/v2/txnkv/transaction"
)

// sweepLoop deletes idempotency keys older than KeyRetention every
// SweepInterval until Close.
func (s *Server) sweepLoop() {
	defer close(s.sweepDone)
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.loopCtx.Done():
			return
		case <-t.C:
			for {
				n, err := s.sweepOnce()
				if err != nil {
					s.log.Warn("key sweep failed", "err", err)
				}
				if err != nil || n == 0 || s.loopCtx.Err() != nil {
					break
				}
			}
		}
	}
}

// sweepOnce deletes the expired keys of sweeper index entries in one
// transaction, entry by entry until SweepBatch keys or more, and returns
// how many it deleted.
func (s *Server) sweepOnce() (int, error) {
	ctx, cancel := s.storeCtx()
	defer cancel()
	cutoff := uint64(max(s.now().Add(-s.cfg.KeyRetention).UnixNano(), 0))
	n := 0
	err := s.update(ctx, func(txn *transaction.KVTxn) error {
		n = 0
		var entries [][]byte
		var dead []string
		err := scan(txn, prefixKeyTime, cat(prefixKeyTime, be64(cutoff)), false, func(k, v []byte) (bool, error) {
			keys, err := splitKeyList(v)
			if err != nil {
				return false, err
			}
			entries = append(entries, append([]byte(nil), k...))
			dead = append(dead, keys...)
			return len(dead) < s.cfg.SweepBatch, nil
		})
		if err != nil {
			return err
		}
		for _, k := range entries {
			if err := txn.Delete(k); err != nil {
				return fmt.Errorf("%w: %w", errStore, err)
			}
		}
		for _, k := range dead {
			if err := txn.Delete(idemKey(k)); err != nil {
				return fmt.Errorf("%w: %w", errStore, err)
			}
		}
		n = len(dead)
		return nil
	})
	if err == nil {
		s.metrics.swept.Add(float64(n))
	}
	return n, err
}
