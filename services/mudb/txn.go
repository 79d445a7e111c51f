package mudb

import (
	"context"
	"sync/atomic"
	"time"

	tikverr "github.com/tikv/client-go/v2/error"
	tikvkv "github.com/tikv/client-go/v2/kv"
	"github.com/tikv/client-go/v2/oracle"
	"github.com/tikv/client-go/v2/txnkv/transaction"

	"github.com/muprotocol/mu/services/mudb/internal/keyspace"
)

// readTxn is a read-only view of the store at one snapshot.
type readTxn struct {
	ctx   context.Context
	txn   *transaction.KVTxn
	nowMs uint64 // expiry is judged against this instant for the whole call
}

// view runs fn on a snapshot taken now, so it sees every write
// acknowledged before the call.
func (s *Server) view(ctx context.Context, op string, fn func(r *readTxn) error) error {
	txn, err := s.kv.Begin()
	if err != nil {
		return s.storeError(ctx, op, err)
	}
	defer txn.Rollback()
	return s.storeError(ctx, op, fn(&readTxn{ctx: ctx, txn: txn, nowMs: nowMs()}))
}

func nowMs() uint64 { return uint64(time.Now().UnixMilli()) }

// requireTables fails with NOT_FOUND unless every table is live in the
// snapshot.
func (r *readTxn) requireTables(tables ...keyspace.Table) error {
	return requireTables(r.ctx, r.txn, tables)
}

func requireTables(ctx context.Context, txn *transaction.KVTxn, tables []keyspace.Table) error {
	seen := make(map[string]keyspace.Table, len(tables))
	keys := make([][]byte, 0, len(tables))
	for _, t := range tables {
		k := string(t.RegistryKey())
		if _, dup := seen[k]; !dup {
			seen[k] = t
			keys = append(keys, []byte(k))
		}
	}
	got, err := txn.BatchGet(ctx, keys)
	if err != nil {
		return err
	}
	for _, k := range keys {
		v, ok := got[string(k)]
		if !ok {
			return tableNotFound(seen[string(k)])
		}
		st, err := keyspace.DecodeTableState(v)
		if err != nil {
			return err
		}
		if st.Deleting {
			return tableNotFound(seen[string(k)])
		}
	}
	return nil
}

// get returns the live value of data key dk, or ok false when it is
// absent or expired.
func (r *readTxn) get(dk []byte) (value []byte, ok bool, err error) {
	stored, err := r.txn.Get(r.ctx, dk)
	if tikverr.IsErrNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return liveValue(stored, r.nowMs)
}

// liveValue unwraps stored and reports whether it is live at nowMs.
func liveValue(stored []byte, nowMs uint64) ([]byte, bool, error) {
	v, exp, err := keyspace.Unwrap(stored)
	if err != nil {
		return nil, false, err
	}
	if !keyspace.Live(exp, nowMs) {
		return nil, false, nil
	}
	return v, true, nil
}

// writeTxn is one write transaction: plain (optimistic: a concurrent
// commit of a key it writes makes its commit fail, and the whole
// transaction is retried) or atomic (pessimistic: it locks the keys it
// reads for writing, and reads them under the lock).
type writeTxn struct {
	readTxn
	s      *Server
	atomic bool
	// stored holds what each data key looks like to this transaction so
	// far (nil: absent), so repeated keys of a batch keep the TTL index
	// exact.
	stored map[string][]byte
}

// update runs fn in one write transaction and commits it. A plain one is
// retried from the start, up to MaxTxnRetries times, when it meets a write
// conflict (last writer wins). An atomic one waits for the locks of its
// keys instead (see lock) and decides on values read under them; it is
// re-run from the start (lock, read, decide again: never a blind retry)
// only when its commit conflicts, which real TiKV never reports for locked
// keys but the embedded store does when a key was committed between the
// transaction's start and its lock. Either fails once MaxTxnDuration has
// passed, and every attempt's commit is bounded by it too.
//
// keys are the data keys an atomic transaction will lock: it queues for
// them on this node first (see keyLocks).
func (s *Server) update(ctx context.Context, op string, isAtomic bool, keys [][]byte, fn func(w *writeTxn) error) error {
	if isAtomic && len(keys) > 0 {
		unlock, err := s.keyLocks.lock(ctx, keys)
		if err != nil {
			return s.storeError(ctx, op, err)
		}
		defer unlock()
	}
	deadline := time.Now().Add(s.cfg.MaxTxnDuration)
	for attempt := 0; ; attempt++ {
		err := s.updateOnce(ctx, isAtomic, fn)
		if err != nil && tikverr.IsErrWriteConflict(err) && ctx.Err() == nil {
			retry := attempt < s.cfg.MaxTxnRetries
			if isAtomic {
				retry = time.Now().Before(deadline)
			}
			if retry {
				s.metrics.conflicts.Inc()
				continue
			}
		}
		return s.storeError(ctx, op, err)
	}
}

func (s *Server) updateOnce(ctx context.Context, isAtomic bool, fn func(w *writeTxn) error) error {
	txn, err := s.kv.Begin()
	if err != nil {
		return err
	}
	txn.SetPessimistic(isAtomic)
	tooSlow := s.boundDuration(txn)
	w := &writeTxn{
		readTxn: readTxn{ctx: ctx, txn: txn, nowMs: nowMs()},
		s:       s,
		atomic:  isAtomic,
		stored:  map[string][]byte{},
	}
	if err := fn(w); err != nil {
		txn.Rollback()
		return err
	}
	if err := ctx.Err(); err != nil {
		txn.Rollback()
		return err
	}
	if err := txn.Commit(ctx); err != nil {
		if tooSlow.Load() {
			return errTxnTooSlow
		}
		return err
	}
	return nil
}

// boundDuration makes txn's commit fail when its commit timestamp is more
// than MaxTxnDuration after its start (DeleteTable relies on it). The
// returned flag tells that failure apart.
func (s *Server) boundDuration(txn *transaction.KVTxn) *atomic.Bool {
	var tooSlow atomic.Bool
	start := oracle.ExtractPhysical(txn.StartTS())
	limit := s.cfg.MaxTxnDuration.Milliseconds()
	txn.SetCommitTSUpperBoundCheck(func(commitTS uint64) bool {
		if oracle.ExtractPhysical(commitTS)-start > limit {
			tooSlow.Store(true)
			return false
		}
		return true
	})
	return &tooSlow
}

// current loads the stored values (envelopes) of data keys into w.stored
// and returns the map. A plain transaction reads its snapshot: if another
// transaction commits one of the keys meanwhile, this one's commit
// conflicts and is retried. An atomic one locks the keys first, waiting
// for other holders, and reads their latest committed values under the
// lock, so nothing can change them before it commits.
func (w *writeTxn) current(dks ...[]byte) (map[string][]byte, error) {
	var need [][]byte
	for _, dk := range dks {
		if _, ok := w.stored[string(dk)]; !ok {
			w.stored[string(dk)] = nil
			need = append(need, dk)
		}
	}
	if len(need) == 0 {
		return w.stored, nil
	}
	if !w.atomic {
		got, err := w.txn.BatchGet(w.ctx, need)
		if err != nil {
			return nil, err
		}
		for k, v := range got {
			w.stored[k] = v
		}
		return w.stored, nil
	}
	vals, err := w.s.lock(w.ctx, w.txn, need)
	if err != nil {
		return nil, err
	}
	for k, v := range vals {
		w.stored[k] = v
	}
	return w.stored, nil
}

// lock takes pessimistic locks on keys for txn and returns their latest
// committed values (absent keys left out). It waits for locks held by
// others; when a key was committed after the lock's timestamp (typically by
// the holder it waited for), it locks again with a newer timestamp, so the
// values returned are always read under the lock and nothing is decided
// on a stale value. It gives up when ctx ends or MaxTxnDuration has passed
// since txn began (its commit would be refused anyway).
func (s *Server) lock(ctx context.Context, txn *transaction.KVTxn, keys [][]byte) (map[string][]byte, error) {
	deadline := time.UnixMilli(oracle.ExtractPhysical(txn.StartTS())).Add(s.cfg.MaxTxnDuration)
	for {
		ts, err := s.kv.CurrentTimestamp(oracle.GlobalTxnScope)
		if err != nil {
			return nil, err
		}
		wait := time.Until(deadline).Milliseconds()
		if wait <= 0 {
			return nil, errTxnTooSlow
		}
		lc := tikvkv.NewLockCtx(ts, wait, time.Now())
		lc.InitReturnValues(len(keys))
		killed := new(uint32)
		lc.Killed = killed
		stop := context.AfterFunc(ctx, func() { atomic.StoreUint32(killed, 1) })
		err = txn.LockKeys(ctx, lc, keys...)
		stop()
		if err == nil {
			out := make(map[string][]byte, len(keys))
			for k, v := range lc.Values {
				if v.Exists {
					out[k] = v.Value
				}
			}
			return out, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !tikverr.IsErrWriteConflict(err) {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, errTxnTooSlow
		}
	}
}

// put stores value under dk with expiry (unix ms, 0 = none), keeping the
// TTL index exact: the entry of the value it replaces goes, a new one is
// added for an expiry. current must have loaded dk.
func (w *writeTxn) put(dk, value []byte, expiryMs uint64) error {
	if err := w.dropTTLEntry(dk); err != nil {
		return err
	}
	env := keyspace.Wrap(value, expiryMs)
	if err := w.txn.Set(dk, env); err != nil {
		return err
	}
	w.stored[string(dk)] = env
	if expiryMs != 0 {
		return w.txn.Set(keyspace.TTLKey(expiryMs, dk), ttlMark)
	}
	return nil
}

// ttlMark is the value of a TTL index entry (TiKV stores no empty values).
var ttlMark = []byte{1}

// del deletes dk (present or not) and its TTL index entry. current must
// have loaded dk.
func (w *writeTxn) del(dk []byte) error {
	if err := w.dropTTLEntry(dk); err != nil {
		return err
	}
	w.stored[string(dk)] = nil
	return w.txn.Delete(dk)
}

func (w *writeTxn) dropTTLEntry(dk []byte) error {
	old := w.stored[string(dk)]
	if old == nil {
		return nil
	}
	_, exp, err := keyspace.Unwrap(old)
	if err != nil || exp == 0 {
		return nil // a foreign value has no index entry to drop
	}
	return w.txn.Delete(keyspace.TTLKey(exp, dk))
}
