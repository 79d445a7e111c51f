package billing

import (
	"context"
	"errors"
	"fmt"

	tikverr "github.com/tikv/client-go/v2/error"
	"github.com/tikv/client-go/v2/txnkv/transaction"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errStore marks a failure of the TiKV store: the caller maps it to
// UNAVAILABLE so that senders retry.
var errStore = errors.New("billing: store unavailable")

// update runs fn in one optimistic transaction and commits it, re-running
// fn from the start after a write conflict up to MaxTxnRetries times. fn
// must set its results afresh on every run. Errors of fn are returned as
// they are; store failures wrap errStore.
func (s *Server) update(ctx context.Context, fn func(txn *transaction.KVTxn) error) error {
	for attempt := 0; ; attempt++ {
		txn, err := s.kv.Begin()
		if err != nil {
			return fmt.Errorf("%w: begin: %w", errStore, err)
		}
		if err := fn(txn); err != nil {
			txn.Rollback()
			return err
		}
		err = txn.Commit(ctx)
		if err == nil {
			return nil
		}
		if tikverr.IsErrWriteConflict(err) && attempt < s.cfg.MaxTxnRetries && ctx.Err() == nil {
			s.metrics.conflicts.Inc()
			continue
		}
		return fmt.Errorf("%w: commit: %w", errStore, err)
	}
}

// view runs fn on a snapshot taken now.
func (s *Server) view(fn func(txn *transaction.KVTxn) error) error {
	txn, err := s.kv.Begin()
	if err != nil {
		return fmt.Errorf("%w: begin: %w", errStore, err)
	}
	defer txn.Rollback()
	return fn(txn)
}

// get returns the value of k, nil when absent.
func get(ctx context.Context, txn *transaction.KVTxn, k []byte) ([]byte, error) {
	v, err := txn.Get(ctx, k)
	if tikverr.IsErrNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: get: %w", errStore, err)
	}
	return v, nil
}

// scan calls fn for the keys in [start, end) in order (reverse: from end
// down), until fn returns false.
func scan(txn *transaction.KVTxn, start, end []byte, reverse bool, fn func(k, v []byte) (bool, error)) error {
	var (
		it interface {
			Valid() bool
			Key() []byte
			Value() []byte
			Next() error
			Close()
		}
		err error
	)
	if reverse {
		it, err = txn.IterReverse(end)
	} else {
		it, err = txn.Iter(start, end)
	}
	if err != nil {
		return fmt.Errorf("%w: scan: %w", errStore, err)
	}
	defer it.Close()
	for it.Valid() {
		k := it.Key()
		if reverse && string(k) < string(start) {
			return nil
		}
		more, err := fn(k, it.Value())
		if err != nil || !more {
			return err
		}
		if err := it.Next(); err != nil {
			return fmt.Errorf("%w: scan: %w", errStore, err)
		}
	}
	return nil
}

// toStatus maps an internal error to the gRPC status the client sees.
func toStatus(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unknown {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return status.Errorf(codes.DeadlineExceeded, "billing: %s: %v", op, err)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return status.Errorf(codes.Canceled, "billing: %s: %v", op, err)
	case errors.Is(err, errStore), errors.Is(err, errClosing):
		return status.Errorf(codes.Unavailable, "billing: %s: %v", op, err)
	}
	return status.Errorf(codes.Internal, "billing: %s: %v", op, err)
}
