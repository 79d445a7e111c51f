// Package ledgerrpc carries the local ledger's signed writes over gRPC
// (mu.ledger.v1.LedgerService): NewServer serves a ledger hosted in one
// process (the chain indexer), NewClient gives any other process (billing)
// a ledger.UsageUpdater that writes to it.
//
// The signature travels, not the key: the client builds the exact message
// the local ledger verifies (local.UpdateUsageMessage), has its Signer sign
// it and sends the public key and the signature; the server hands the
// ledger a Signer that answers with that signature, so the hosted ledger
// checks the write exactly as it checks one made in process. A forged,
// altered or replayed write fails as it would locally.
//
// Errors cross the wire as a status code plus a google.rpc.ErrorInfo
// reason (libs/rpcerr); the client turns them back into the ledger's
// sentinels, so errors.Is(err, ledger.ErrReplayedSeed) holds on both
// sides. A call that does not reach the ledger (transport failure,
// UNAVAILABLE, DEADLINE_EXCEEDED) is ledger.ErrUnavailable: retry it with
// the same seed.
package ledgerrpc

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/local"
	"github.com/muprotocol/mu/libs/rpcerr"
	ledgerv1 "github.com/muprotocol/mu/proto/mu/ledger/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// errorMap is the one table of ledger errors and their wire form, used
// both ways.
var errorMap = []struct {
	err    error
	code   codes.Code
	reason rpcerr.Reason
}{
	{ledger.ErrNotFound, codes.NotFound, rpcerr.StackNotFound},
	{ledger.ErrBadSigner, codes.PermissionDenied, rpcerr.BadSigner},
	{ledger.ErrReplayedSeed, codes.AlreadyExists, rpcerr.ReplayedSeed},
	{ledger.ErrOverflow, codes.InvalidArgument, rpcerr.LedgerOverflow},
	{ledger.ErrInvalidArgument, codes.InvalidArgument, rpcerr.InvalidRequest},
	{ledger.ErrNotInitialized, codes.FailedPrecondition, rpcerr.LedgerNotInitialized},
}

// toStatus maps an error of the hosted ledger to a status error.
func toStatus(ctx context.Context, err error) error {
	for _, m := range errorMap {
		if errors.Is(err, m.err) {
			return rpcerr.Errorf(m.code, m.reason, "%v", err)
		}
	}
	switch {
	case errors.Is(err, ledger.ErrUnavailable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	return status.Error(codes.Internal, err.Error())
}

// fromStatus maps a failed call back to the ledger's sentinels; the
// status error stays wrapped too, so status.Code still works.
func fromStatus(ctx context.Context, op string, err error) error {
	reason := rpcerr.ReasonOf(err)
	for _, m := range errorMap {
		if reason == m.reason {
			return fmt.Errorf("%s: %w: %w", op, m.err, err)
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
	case codes.InvalidArgument:
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

// Client writes to a ledger hosted in another process through
// mu.ledger.v1.LedgerService. It is a ledger.UsageUpdater; safe for
// concurrent use.
type Client struct {
	c ledgerv1.LedgerServiceClient
}

// NewClient returns a Client over cc (a *grpc.ClientConn to the chain
// indexer's gRPC address). The caller owns cc.
func NewClient(cc grpc.ClientConnInterface) *Client {
	return &Client{c: ledgerv1.NewLedgerServiceClient(cc)}
}

var _ ledger.UsageUpdater = (*Client)(nil)

// UpdateUsage has signer sign the local ledger's update_usage message for
// (stack, seed, u) and sends it; see ledger.Ledger.UpdateUsage. Errors are
// the ledger's sentinels (ErrBadSigner, ErrReplayedSeed, ErrNotFound,
// ErrOverflow, ErrInvalidArgument), ErrUnavailable when the call did not
// get an answer from the ledger, or the context's error. It blocks until
// the host answers or ctx ends.
func (c *Client) UpdateUsage(ctx context.Context, signer ledger.Signer, stack ledger.Pubkey, seed ledger.Uint128, u ledger.Usage) (ledger.UsageResult, error) {
	op := fmt.Sprintf("ledgerrpc: update usage of stack %s seed %s", stack, seed)
	if signer == nil {
		return ledger.UsageResult{}, fmt.Errorf("%s: %w: no signer given", op, ledger.ErrBadSigner)
	}
	pk := signer.Pubkey()
	msg, err := local.UpdateUsageMessage(stack, seed, u, pk)
	if err != nil {
		return ledger.UsageResult{}, fmt.Errorf("%s: %w", op, err)
	}
	sig, err := signer.Sign(msg)
	if err != nil {
		return ledger.UsageResult{}, fmt.Errorf("%s: %w: signer %s failed to sign: %v", op, ledger.ErrBadSigner, pk, err)
	}
	req := &ledgerv1.UpdateUsageRequest{
		StackId: stack.Bytes(),
		Seed:    toU128(seed),
		Signer:  &ledgerv1.Signature{Pubkey: pk.Bytes(), Signature: sig},
	}
	for unit := ledger.Unit(0); unit < ledger.NumUnits; unit++ {
		if a := u.Amount(unit); !a.IsZero() {
			req.Usage = append(req.Usage, &ledgerv1.UsageAmount{Kind: unit.Kind(), Amount: toU128(a)})
		}
	}
	resp, err := c.c.UpdateUsage(ctx, req)
	if err != nil {
		return ledger.UsageResult{}, fromStatus(ctx, op, err)
	}
	return ledger.UsageResult{
		Due:        fromU128(resp.GetDue()),
		Charged:    resp.GetCharged(),
		Commission: resp.GetCommission(),
		Shortfall:  fromU128(resp.GetShortfall()),
		Slot:       resp.GetSlot(),
	}, nil
}

// server serves a hosted ledger.
type server struct {
	ledgerv1.UnimplementedLedgerServiceServer
	l ledger.UsageUpdater
}

// NewServer returns the LedgerService of l, for registering on a gRPC
// server. Every write is checked by l itself against the signature the
// caller sent, as a chain checks a transaction: the server holds no key.
func NewServer(l ledger.UsageUpdater) ledgerv1.LedgerServiceServer {
	return &server{l: l}
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

// UpdateUsage validates the request and applies it to the hosted ledger.
func (s *server) UpdateUsage(ctx context.Context, req *ledgerv1.UpdateUsageRequest) (*ledgerv1.UpdateUsageResponse, error) {
	stack, u, signer, err := parseUpdateUsage(req)
	if err != nil {
		return nil, err
	}
	res, err := s.l.UpdateUsage(ctx, signer, stack, fromU128(req.GetSeed()), u)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &ledgerv1.UpdateUsageResponse{
		Due:        toU128(res.Due),
		Charged:    res.Charged,
		Commission: res.Commission,
		Shortfall:  toU128(res.Shortfall),
		Slot:       res.Slot,
	}, nil
}

func invalid(format string, args ...any) error {
	return rpcerr.Errorf(codes.InvalidArgument, rpcerr.InvalidRequest, format, args...)
}

// parseUpdateUsage checks the fields of req, naming the first bad one.
func parseUpdateUsage(req *ledgerv1.UpdateUsageRequest) (ledger.Pubkey, ledger.Usage, presigned, error) {
	var u ledger.Usage
	if n := len(req.GetStackId()); n != len(ledger.Pubkey{}) {
		return ledger.Pubkey{}, u, presigned{}, invalid("stack_id: %d bytes, want %d", n, len(ledger.Pubkey{}))
	}
	stack := ledger.Pubkey(req.GetStackId())
	if req.GetSeed() == nil {
		return ledger.Pubkey{}, u, presigned{}, invalid("seed: missing")
	}
	var first [ledger.NumUnits]int
	for i, a := range req.GetUsage() {
		unit, ok := ledger.UnitOf(a.GetKind())
		if !ok {
			return ledger.Pubkey{}, u, presigned{}, invalid("usage[%d].kind: unknown usage kind %v", i, a.GetKind())
		}
		if first[unit] != 0 {
			return ledger.Pubkey{}, u, presigned{}, invalid("usage[%d].kind: %v listed twice (first at usage[%d])", i, a.GetKind(), first[unit]-1)
		}
		first[unit] = i + 1
		u.Set(unit, fromU128(a.GetAmount()))
	}
	sg := req.GetSigner()
	if sg == nil {
		return ledger.Pubkey{}, u, presigned{}, invalid("signer: missing")
	}
	if n := len(sg.GetPubkey()); n != ed25519.PublicKeySize {
		return ledger.Pubkey{}, u, presigned{}, invalid("signer.pubkey: %d bytes, want %d", n, ed25519.PublicKeySize)
	}
	if n := len(sg.GetSignature()); n != ed25519.SignatureSize {
		return ledger.Pubkey{}, u, presigned{}, invalid("signer.signature: %d bytes, want %d", n, ed25519.SignatureSize)
	}
	return stack, u, presigned{pk: ledger.Pubkey(sg.GetPubkey()), sig: sg.GetSignature()}, nil
}
