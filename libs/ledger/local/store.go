// Package local is the embedded marketplace ledger: the rules of design
// section 7 in Go, every write one optimistic transaction of the TiKV
// store (the embedded one of libs/kvstore, or a cluster shared by several
// processes), all keys under the prefix "ledger/". It implements
// ledger.Ledger and passes the contract suite of ledger/ledgertest.
//
// Every write reads the ledger's head (slot, supply) and writes it back
// with the slot bumped, so any two concurrent writes conflict and one of
// them is re-run: writes are serializable across processes by the store
// alone. Within a process, writers over the same client also queue on a
// mutex first, which spares them the conflicts (the embedded store handles
// heavy contention poorly) but grants nothing the store does not.
package local

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	tikverr "github.com/tikv/client-go/v2/error"
	"github.com/tikv/client-go/v2/txnkv"
	"github.com/tikv/client-go/v2/txnkv/transaction"

	"github.com/muprotocol/mu/libs/kvstore"
	"github.com/muprotocol/mu/libs/ledger"
)

// Ledger is the local ledger. It is safe for concurrent use; see the
// package doc for how writes are ordered.
type Ledger struct {
	cfg    Config
	kv     *txnkv.Client
	ownKV  bool
	hub    *hub
	closed atomic.Bool
	once   sync.Once
	err    error
}

var _ ledger.Ledger = (*Ledger)(nil)

// Open validates cfg and opens the ledger on its own store: the TiKV
// cluster of cfg.PDEndpoints, or the embedded store in cfg.DataDir
// (memory when empty). Close closes the store.
func Open(cfg Config) (*Ledger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kv, err := kvstore.Open(cfg.PDEndpoints, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("ledger: open store: %w: %w", ledger.ErrUnavailable, err)
	}
	l, err := New(kv, cfg)
	if err != nil {
		kv.Close()
		return nil, err
	}
	l.ownKV = true
	return l, nil
}

// New opens the ledger on a store the caller shares with others (muDB,
// billing); cfg's PDEndpoints and DataDir are ignored, and Close leaves
// the store open.
func New(kv *txnkv.Client, cfg Config) (*Ledger, error) {
	if kv == nil {
		return nil, errors.New("ledger: New: the store client is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Ledger{cfg: cfg, kv: kv, hub: acquireHub(kv)}, nil
}

// Close releases the ledger (and the store when Open opened it). Calls
// after Close fail with ErrUnavailable; Close is safe to call twice.
func (l *Ledger) Close() error {
	l.once.Do(func() {
		l.closed.Store(true)
		releaseHub(l.kv)
		if l.ownKV {
			l.err = l.kv.Close()
		}
	})
	return l.err
}

// hub is what the ledgers of one process share per store client: the
// write queue and the broadcast of new slots.
type hub struct {
	refs   int
	write  chan struct{} // a one-slot semaphore: the process's write queue
	mu     sync.Mutex
	notify chan struct{} // closed and replaced after every write
}

var hubs = struct {
	sync.Mutex
	m map[*txnkv.Client]*hub
}{m: map[*txnkv.Client]*hub{}}

func acquireHub(kv *txnkv.Client) *hub {
	hubs.Lock()
	defer hubs.Unlock()
	h := hubs.m[kv]
	if h == nil {
		h = &hub{write: make(chan struct{}, 1), notify: make(chan struct{})}
		hubs.m[kv] = h
	}
	h.refs++
	return h
}

func releaseHub(kv *txnkv.Client) {
	hubs.Lock()
	defer hubs.Unlock()
	if h := hubs.m[kv]; h != nil {
		if h.refs--; h.refs == 0 {
			delete(hubs.m, kv)
		}
	}
}

// wait returns the channel closed by the next write.
func (h *hub) wait() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.notify
}

func (h *hub) broadcast() {
	h.mu.Lock()
	close(h.notify)
	h.notify = make(chan struct{})
	h.mu.Unlock()
}

// ruleError is a write refused by the rules (it wraps a ledger sentinel);
// it is returned as is and never retried.
type ruleError struct{ err error }

func (e *ruleError) Error() string { return e.err.Error() }
func (e *ruleError) Unwrap() error { return e.err }

// fail makes the error of op refused with sentinel: "ledger: op:
// sentinel: detail".
func fail(op string, sentinel error, format string, args ...any) error {
	return &ruleError{fmt.Errorf("ledger: %s: %w: %s", op, sentinel, fmt.Sprintf(format, args...))}
}

// storeError maps an error of a transaction: rule errors and corrupt
// records pass, the context's end is reported as such, anything else is
// the store failing (ErrUnavailable).
func storeError(ctx context.Context, op string, err error) error {
	var re *ruleError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		return re
	case errors.Is(err, errCorrupt):
		return fmt.Errorf("ledger: %s: %w", op, err)
	case ctx.Err() != nil:
		return fmt.Errorf("ledger: %s: %w", op, ctx.Err())
	}
	return fmt.Errorf("ledger: %s: %w: %w", op, ledger.ErrUnavailable, err)
}

func (l *Ledger) checkOpen(op string) error {
	if l.closed.Load() {
		return fmt.Errorf("ledger: %s: %w: the ledger is closed", op, ledger.ErrUnavailable)
	}
	return nil
}

// rtx is a read of one snapshot (or, embedded in wtx, of a write's
// transaction, which sees its own writes).
type rtx struct {
	ctx context.Context
	op  string
	txn *transaction.KVTxn
}

// view runs fn on a snapshot taken now.
func (l *Ledger) view(ctx context.Context, op string, fn func(r *rtx) error) error {
	if err := l.checkOpen(op); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ledger: %s: %w", op, err)
	}
	txn, err := l.kv.Begin()
	if err != nil {
		return storeError(ctx, op, err)
	}
	defer txn.Rollback()
	return storeError(ctx, op, fn(&rtx{ctx: ctx, op: op, txn: txn}))
}

// get decodes the record under k into v; found is false when k is absent.
func (r *rtx) get(k []byte, kind byte, v any) (found bool, err error) {
	b, err := r.txn.Get(r.ctx, k)
	if tikverr.IsErrNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, decode(kind, b, v)
}

func (r *rtx) head() (headRec, error) {
	var h headRec
	_, err := r.get(keyHead, kindHead, &h)
	return h, err
}

// scan calls fn for every key with prefix p, in key order.
func (r *rtx) scan(p []byte, fn func(k, v []byte) error) error {
	it, err := r.txn.Iter(p, prefixEnd(p))
	if err != nil {
		return err
	}
	defer it.Close()
	for n := 0; it.Valid(); n++ {
		if n%256 == 0 && r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		if err := fn(it.Key(), it.Value()); err != nil {
			return err
		}
		if err := it.Next(); err != nil {
			return err
		}
	}
	return nil
}

// wtx is one write: its transaction, the head it will write back, and the
// changes it emits.
type wtx struct {
	rtx
	cfg     *Config
	head    headRec
	changes []changeEntry
	index   map[string]int // kind+id → position in changes
}

// write runs fn in one transaction and commits it with the slot bumped
// and fn's changes stored under the new slot. A write conflict with a
// concurrent writer re-runs fn from the start, up to MaxTxnRetries times
// (then ErrUnavailable); fn must therefore keep its results in variables
// it sets afresh on every run. It returns the new slot.
func (l *Ledger) write(ctx context.Context, op string, fn func(w *wtx) error) (uint64, error) {
	if err := l.checkOpen(op); err != nil {
		return 0, err
	}
	select {
	case l.hub.write <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("ledger: %s: %w", op, ctx.Err())
	}
	defer func() { <-l.hub.write }()
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("ledger: %s: %w", op, err)
		}
		slot, err := l.writeOnce(ctx, op, fn)
		if err == nil {
			l.hub.broadcast()
			return slot, nil
		}
		if tikverr.IsErrWriteConflict(err) && ctx.Err() == nil {
			if attempt < l.cfg.MaxTxnRetries {
				continue
			}
			return 0, fmt.Errorf("ledger: %s: %w: write conflicts with concurrent writers persisted through max_txn_retries %d: %w",
				op, ledger.ErrUnavailable, l.cfg.MaxTxnRetries, err)
		}
		return 0, storeError(ctx, op, err)
	}
}

func (l *Ledger) writeOnce(ctx context.Context, op string, fn func(w *wtx) error) (uint64, error) {
	txn, err := l.kv.Begin()
	if err != nil {
		return 0, err
	}
	w := &wtx{rtx: rtx{ctx: ctx, op: op, txn: txn}, cfg: &l.cfg, index: map[string]int{}}
	if w.head, err = w.rtx.head(); err != nil {
		txn.Rollback()
		return 0, err
	}
	if err := fn(w); err != nil {
		txn.Rollback()
		return 0, err
	}
	if err := w.finish(); err != nil {
		txn.Rollback()
		return 0, err
	}
	if err := txn.Commit(ctx); err != nil {
		return 0, err
	}
	return w.head.Slot, nil
}

// finish bumps the slot, stores the changes and the head, and deletes
// changes that fell out of retention.
func (w *wtx) finish() error {
	w.head.Slot++
	if len(w.changes) > 0 {
		if err := w.put(changeKey(w.head.Slot), kindChanges, &changesRec{Entries: w.changes}); err != nil {
			return err
		}
	}
	keep := uint64(w.cfg.ChangeRetention)
	if w.head.Slot > keep {
		through := w.head.Slot - keep
		for n := 0; w.head.CompactedThrough < through && n < w.cfg.MaxCompactPerWrite; n++ {
			w.head.CompactedThrough++
			if err := w.txn.Delete(changeKey(w.head.CompactedThrough)); err != nil {
				return err
			}
		}
	}
	return w.put(keyHead, kindHead, &w.head)
}

// fail is fail with the write's op.
func (w *wtx) fail(sentinel error, format string, args ...any) error {
	return fail(w.op, sentinel, format, args...)
}

func (w *wtx) put(k []byte, kind byte, v any) error {
	b, err := encode(kind, v)
	if err != nil {
		return err
	}
	return w.txn.Set(k, b)
}

// emit records the new state of one account (replacing an earlier change
// of the same account in this write, so each appears once, in the order
// first touched).
func (w *wtx) emit(kind byte, id ledger.Pubkey, enabled bool, rec any) error {
	b, err := encode(kind, rec)
	if err != nil {
		return err
	}
	e := changeEntry{Kind: kind, ID: id, Enabled: enabled, Data: b}
	k := string(append([]byte{kind}, id[:]...))
	if i, ok := w.index[k]; ok {
		w.changes[i] = e
		return nil
	}
	w.index[k] = len(w.changes)
	w.changes = append(w.changes, e)
	return nil
}
