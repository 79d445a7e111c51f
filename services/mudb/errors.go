package mudb

import (
	"context"
	"errors"
	"fmt"

	tikverr "github.com/tikv/client-go/v2/error"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/rpcerr"
	"github.com/muprotocol/mu/services/mudb/internal/keyspace"
)

// invalidf is INVALID_ARGUMENT for a malformed field (INVALID_REQUEST).
func invalidf(format string, args ...any) error {
	return rpcerr.Errorf(codes.InvalidArgument, rpcerr.InvalidRequest, "mudb: "+format, args...)
}

// tooLarge is INVALID_ARGUMENT for a field over a limit
// (REQUEST_TOO_LARGE), naming field, size and limit.
func tooLarge(field string, size int, unit, limit string, max int) error {
	return rpcerr.Errorf(codes.InvalidArgument, rpcerr.RequestTooLarge,
		"mudb: %s is %d %s, more than %s %d", field, size, unit, limit, max)
}

// resultTooLarge is RESOURCE_EXHAUSTED (RESULT_TOO_LARGE).
func resultTooLarge(format string, args ...any) error {
	return rpcerr.Errorf(codes.ResourceExhausted, rpcerr.ResultTooLarge, "mudb: "+format, args...)
}

// tableNotFound is NOT_FOUND for a table the stack has not created.
func tableNotFound(t keyspace.Table) error {
	return status.Errorf(codes.NotFound, "mudb: table %q is not declared by stack %s", t.Name, t.Stack)
}

// errTxnTooSlow marks a transaction that outlived max_txn_duration.
var errTxnTooSlow = errors.New("transaction outlived max_txn_duration")

// storeError maps an error of a transaction to a gRPC status: status
// errors (of our own checks) pass unchanged.
func (s *Server) storeError(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok || errors.Is(err, errTakenOver) {
		return err
	}
	switch {
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "mudb: %s: deadline exceeded", op)
	case ctx.Err() != nil:
		return status.Errorf(codes.Canceled, "mudb: %s: canceled", op)
	case errors.Is(err, errTxnTooSlow):
		return status.Errorf(codes.Aborted, "mudb: %s: the transaction took longer than max_txn_duration %v; retry", op, s.cfg.MaxTxnDuration)
	case tikverr.IsErrWriteConflict(err):
		return status.Errorf(codes.Aborted, "mudb: %s: write conflict with concurrent writers persisted through max_txn_retries %d (plain) or max_txn_duration %v (atomic); retry", op, s.cfg.MaxTxnRetries, s.cfg.MaxTxnDuration)
	case errors.Is(err, tikverr.ErrLockWaitTimeout), isDeadlock(err):
		return status.Errorf(codes.Aborted, "mudb: %s: %v; retry", op, err)
	case isTooLarge(err):
		return resultTooLarge("%s: the transaction is too large for the store: %v", op, err)
	case errors.Is(err, keyspace.ErrBadEnvelope):
		return status.Errorf(codes.DataLoss, "mudb: %s: %v", op, err)
	case s.run.IsClosing():
		return rpcerr.Errorf(codes.Unavailable, rpcerr.ShuttingDown, "mudb: %s: node is shutting down: %v", op, err)
	}
	return status.Errorf(codes.Unavailable, "mudb: %s: store: %v", op, err)
}

func isDeadlock(err error) bool {
	var d *tikverr.ErrDeadlock
	return errors.As(err, &d)
}

func isTooLarge(err error) bool {
	var t *tikverr.ErrTxnTooLarge
	var e *tikverr.ErrEntryTooLarge
	return errors.As(err, &t) || errors.As(err, &e)
}

// wrapf adds context to an internal error.
func wrapf(err error, format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, err)...)
}
