// Package ledgerrpc carries the local ledger's signed writes over gRPC
// (mu.ledger.v1.LedgerService): NewServer serves a ledger hosted in one
// process (the chain indexer), NewClient gives any other process (billing,
// the CLI) a ledger.Writer that writes to it.
//
// The signature travels, not the key: the client builds the exact message
// the local ledger verifies (local.MintMessage, local.UpdateUsageMessage,
// ... one builder per write), has its Signer sign it and sends the public
// key and the signature; the server hands the ledger a Signer that answers
// with that signature, so the hosted ledger checks the write exactly as it
// checks one made in process. A forged, altered or replayed write fails as
// it would locally.
//
// Errors cross the wire as a status code plus a google.rpc.ErrorInfo
// reason (libs/rpcerr) and the ledger's own error text; the client turns
// them back into the ledger's sentinels with that text, so
// errors.Is(err, ledger.ErrReplayedSeed) holds on both sides and a person
// reads what the ledger said. A call that does not reach the ledger
// (transport failure, UNAVAILABLE, DEADLINE_EXCEEDED) is
// ledger.ErrUnavailable: retry it (UpdateUsage with the same seed).
package ledgerrpc

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/rpcerr"
	ledgerv1 "github.com/muprotocol/mu/proto/mu/ledger/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// errorMap is the one table of ledger errors and their wire form, used
// both ways: every sentinel of package ledger has its own reason.
var errorMap = []struct {
	err    error
	code   codes.Code
	reason rpcerr.Reason
}{
	{ledger.ErrNotInitialized, codes.FailedPrecondition, rpcerr.LedgerNotInitialized},
	{ledger.ErrAlreadyInitialized, codes.AlreadyExists, rpcerr.LedgerAlreadyInitialized},
	{ledger.ErrNotFound, codes.NotFound, rpcerr.AccountNotFound},
	{ledger.ErrAlreadyExists, codes.AlreadyExists, rpcerr.AccountExists},
	{ledger.ErrUnknownRegion, codes.NotFound, rpcerr.UnknownRegion},
	{ledger.ErrUnauthorizedProvider, codes.FailedPrecondition, rpcerr.ProviderNotAuthorized},
	{ledger.ErrBadSigner, codes.PermissionDenied, rpcerr.BadSigner},
	{ledger.ErrReplayedSeed, codes.AlreadyExists, rpcerr.ReplayedSeed},
	{ledger.ErrInsufficientFunds, codes.FailedPrecondition, rpcerr.InsufficientFunds},
	{ledger.ErrInsufficientEscrow, codes.FailedPrecondition, rpcerr.InsufficientEscrow},
	{ledger.ErrBelowMinimum, codes.FailedPrecondition, rpcerr.BelowRegionMinimum},
	{ledger.ErrStackDeleted, codes.FailedPrecondition, rpcerr.StackDeleted},
	{ledger.ErrInvalidArgument, codes.InvalidArgument, rpcerr.InvalidRequest},
	{ledger.ErrOverflow, codes.InvalidArgument, rpcerr.LedgerOverflow},
	{ledger.ErrCompacted, codes.OutOfRange, rpcerr.ChangesCompacted},
	{ledger.ErrUnavailable, codes.Unavailable, rpcerr.LedgerUnavailable},
	{ledger.ErrUnsupported, codes.Unimplemented, rpcerr.LedgerUnsupported},
	// Decoding only: UpdateUsage names a missing stack so (as it did
	// before ACCOUNT_NOT_FOUND existed).
	{ledger.ErrNotFound, codes.NotFound, rpcerr.StackNotFound},
}

// toStatus maps an error of the hosted ledger to a status error carrying
// its text.
func toStatus(ctx context.Context, err error) error {
	for _, m := range errorMap {
		if errors.Is(err, m.err) {
			return rpcerr.Errorf(m.code, m.reason, "%v", err)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	return status.Error(codes.Internal, err.Error())
}

// remoteError is a ledger error that came over the wire: its text is the
// ledger's own, it matches the ledger's sentinel, and status.Code and
// rpcerr.ReasonOf read the status it came as.
type remoteError struct {
	sentinel error
	st       *status.Status
}

func (e *remoteError) Error() string              { return e.st.Message() }
func (e *remoteError) Unwrap() []error            { return []error{e.sentinel, e.st.Err()} }
func (e *remoteError) GRPCStatus() *status.Status { return e.st }

// fromStatus maps a failed call back to the ledger's sentinels; the
// status stays reachable too, so status.Code still works.
func fromStatus(ctx context.Context, op string, err error) error {
	reason := rpcerr.ReasonOf(err)
	for _, m := range errorMap {
		if reason == m.reason {
			st, _ := status.FromError(err)
			return &remoteError{sentinel: m.err, st: st}
		}
	}
	code := status.Code(err)
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded:
		return fmt.Errorf("%s: %w: %w", op, ledger.ErrUnavailable, err)
	case codes.Canceled:
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, ctx.Err())
		}
		return fmt.Errorf("%s: %w: %w", op, ledger.ErrUnavailable, err)
	case codes.InvalidArgument, codes.ResourceExhausted:
		// RESOURCE_EXHAUSTED without a reason is gRPC's own: the request
		// is over the host's message size limit.
		return fmt.Errorf("%s: %w: %w", op, ledger.ErrInvalidArgument, err)
	}
	if _, ok := status.FromError(err); !ok {
		// Not a status at all: the connection failed before an answer.
		return fmt.Errorf("%s: %w: %w", op, ledger.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func toU128(x ledger.Uint128) *typesv1.Uint128 { return &typesv1.Uint128{Hi: x.Hi, Lo: x.Lo} }

func fromU128(x *typesv1.Uint128) ledger.Uint128 {
	return ledger.Uint128{Hi: x.GetHi(), Lo: x.GetLo()}
}

// presigned is the caller's signature standing in for its key: the ledger
// asks it to sign the message and gets the signature the caller made,
// which verifies only if the caller signed that very message.
type presigned struct {
	pk  ledger.Pubkey
	sig []byte
}

func (p presigned) Pubkey() ledger.Pubkey       { return p.pk }
func (p presigned) Sign([]byte) ([]byte, error) { return p.sig, nil }

// fields reads the fields of one message, keeping the first problem; a
// problem names the field, what it holds and what it should. After a
// problem its methods still return (zero) values, so a request is read
// in one go and checked once.
type fields struct{ err error }

func (f *fields) fail(format string, args ...any) {
	if f.err == nil {
		f.err = fmt.Errorf(format, args...)
	}
}

// size checks that field has want bytes.
func (f *fields) size(field string, b []byte, want int) {
	if len(b) != want {
		f.fail("%s: %d bytes, want %d", field, len(b), want)
	}
}

// key reads a 32-byte key or account address.
func (f *fields) key(field string, b []byte) ledger.Pubkey {
	var k ledger.Pubkey
	if f.size(field, b, len(k)); len(b) == len(k) {
		copy(k[:], b)
	}
	return k
}

// present checks that a required message is set.
func (f *fields) present(field string, set bool) bool {
	if !set {
		f.fail("%s: missing", field)
	}
	return set
}

// signer reads a Signature as the presigned Signer of its key.
func (f *fields) signer(field string, s *ledgerv1.Signature) presigned {
	if !f.present(field, s != nil) {
		return presigned{}
	}
	pk := f.key(field+".pubkey", s.GetPubkey())
	f.size(field+".signature", s.GetSignature(), ed25519.SignatureSize)
	return presigned{pk: pk, sig: s.GetSignature()}
}

// invalid is the INVALID_ARGUMENT of a request whose fields f found
// wrong.
func (f *fields) invalid() error {
	return rpcerr.Errorf(codes.InvalidArgument, rpcerr.InvalidRequest, "%v", f.err)
}

// Client writes to a ledger hosted in another process through
// mu.ledger.v1.LedgerService. It is a ledger.Writer: each write has the
// Signer sign the local ledger's message for it (so the Signer must be
// the key the ledger rules require, as in process) and blocks until the
// host answers or ctx ends. Errors are the ledger's sentinels with the
// ledger's own text, ErrBadSigner when the Signer cannot sign (nil, Sign
// fails, a signature that is not 64 bytes), ErrUnavailable when the call
// got no answer from the ledger, or the context's error. Safe for
// concurrent use.
type Client struct {
	c ledgerv1.LedgerServiceClient

	capMu    sync.Mutex
	capKnown bool // FetchLacks has answered
	lacks    []ledger.Capability
}

// NewClient returns a Client over cc (a *grpc.ClientConn to the chain
// indexer's gRPC address). The caller owns cc.
func NewClient(cc grpc.ClientConnInterface) *Client {
	return &Client{c: ledgerv1.NewLedgerServiceClient(cc)}
}

var (
	_ ledger.Writer       = (*Client)(nil)
	_ ledger.UsageUpdater = (*Client)(nil)
	_ ledger.Lacking      = (*Client)(nil)
)

// sign has s sign the message msg builds for its key, checking what the
// ledger would check before a byte is sent.
func sign(op string, s ledger.Signer, msg func(ledger.Pubkey) ([]byte, error)) (*ledgerv1.Signature, error) {
	if s == nil {
		return nil, fmt.Errorf("%s: %w: no signer given", op, ledger.ErrBadSigner)
	}
	pk := s.Pubkey()
	m, err := msg(pk)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	sig, err := s.Sign(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: signer %s failed to sign: %v", op, ledger.ErrBadSigner, pk, err)
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%s: %w: signature of %s is %d bytes, want %d", op, ledger.ErrBadSigner, pk, len(sig), ed25519.SignatureSize)
	}
	return &ledgerv1.Signature{Pubkey: pk.Bytes(), Signature: sig}, nil
}

// call signs a write, sends the request req builds around the signature
// with rpc, and maps a failure back to the ledger's errors.
func call[Req, Resp any](ctx context.Context, op string, s ledger.Signer, msg func(ledger.Pubkey) ([]byte, error),
	req func(*ledgerv1.Signature) Req, rpc func(context.Context, Req, ...grpc.CallOption) (Resp, error)) (Resp, error) {
	var zero Resp
	sig, err := sign(op, s, msg)
	if err != nil {
		return zero, err
	}
	resp, err := rpc(ctx, req(sig))
	if err != nil {
		return zero, fromStatus(ctx, op, err)
	}
	return resp, nil
}

// answer converts the account m of a call's response, unless the call
// failed with err; it names the call when the host sent something that
// does not parse.
func answer[M, A any](op string, m M, err error, parse func(M) (A, error)) (A, error) {
	if err != nil {
		var zero A
		return zero, err
	}
	a, err := parse(m)
	if err != nil {
		return a, fmt.Errorf("%s: the ledger host answered a malformed %w", op, err)
	}
	return a, nil
}

// server serves a hosted ledger.
type server struct {
	ledgerv1.UnimplementedLedgerServiceServer
	l ledger.Writer
}

// NewServer returns the LedgerService of l, for registering on a gRPC
// server. Every write is checked by l itself against the signature the
// caller sent, as a chain checks a transaction: the server holds no key.
// It checks each request's fields first (keys 32 bytes, signatures 64,
// required messages set), naming the first bad one.
func NewServer(l ledger.Writer) ledgerv1.LedgerServiceServer {
	return &server{l: l}
}

// apply runs do once f found the request's fields sound, mapping the
// ledger's error to its status.
func apply[Resp any](ctx context.Context, f *fields, do func() (Resp, error)) (Resp, error) {
	var zero Resp
	if f.err != nil {
		return zero, f.invalid()
	}
	resp, err := do()
	if err != nil {
		return zero, toStatus(ctx, err)
	}
	return resp, nil
}
