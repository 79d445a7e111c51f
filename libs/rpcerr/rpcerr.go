// Package rpcerr gives mu's gRPC errors a machine-readable reason: a
// google.rpc.ErrorInfo in the status details, with Domain "mu.dev" and one
// of the Reason constants below. Callers decide on the code and the reason,
// never on the message text, which is for people.
package rpcerr

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain is the ErrorInfo domain of every reason mu sets.
const Domain = "mu.dev"

// Reason says why a call failed, beyond its status code. The values are
// part of the services' API: UPPER_SNAKE_CASE, never renamed.
type Reason string

// The reasons mu's services set.
const (
	// StackNotDeployed: the node does not serve the stack (NOT_FOUND).
	StackNotDeployed Reason = "STACK_NOT_DEPLOYED"
	// FunctionNotFound: the stack has no such function (NOT_FOUND).
	FunctionNotFound Reason = "FUNCTION_NOT_FOUND"
	// InvalidRequest: a field of the request is malformed; the message
	// names it (INVALID_ARGUMENT).
	InvalidRequest Reason = "INVALID_REQUEST"
	// RequestTooLarge: the request does not fit a limit of the node, such
	// as the function protocol's frame size (INVALID_ARGUMENT).
	RequestTooLarge Reason = "REQUEST_TOO_LARGE"
	// ResultTooLarge: the answer, or the work one call would do, passes a
	// limit of the node (muDB: a reply over max_response_bytes, a
	// DeleteByPrefix over max_delete_prefix_keys); the same request fails
	// the same way, so narrow it instead of retrying (RESOURCE_EXHAUSTED).
	ResultTooLarge Reason = "RESULT_TOO_LARGE"
	// CapacityExhausted: the node is busy (every instance slot of the
	// function is taken); retrying later may succeed (RESOURCE_EXHAUSTED).
	CapacityExhausted Reason = "CAPACITY_EXHAUSTED"
	// StackDisabled: the stack is disabled on the ledger (its owner's
	// escrow with the provider is under the region's minimum balance); its
	// calls are refused until it is enabled again, which a top-up does
	// (FAILED_PRECONDITION).
	StackDisabled Reason = "STACK_DISABLED"
	// ShuttingDown: the node is closing (UNAVAILABLE).
	ShuttingDown Reason = "SHUTTING_DOWN"
	// NotReady: the node cannot tell yet whether the stack exists (it has
	// not caught up with the chain); another node may serve the call
	// (UNAVAILABLE).
	NotReady Reason = "NOT_READY"
	// NotDeployable: the node tried to deploy the stack for the call and
	// the stack cannot be deployed (its manifest or binaries are refused);
	// no other node would do better (FAILED_PRECONDITION).
	NotDeployable Reason = "NOT_DEPLOYABLE"
	// CallerNotAuthorized: the caller's certificate identity (or its
	// absence) does not allow the method (PERMISSION_DENIED).
	CallerNotAuthorized Reason = "CALLER_NOT_AUTHORIZED"

	// Reasons of mu.ledger.v1.LedgerService, one per typed ledger error
	// (package libs/ledger) a write can end with; the client maps them
	// back to the same sentinels.

	// StackNotFound: the ledger has no such stack; what UpdateUsage
	// answers for the ledger's ErrNotFound (NOT_FOUND).
	StackNotFound Reason = "STACK_NOT_FOUND"
	// AccountNotFound: the account a write names (provider, escrow,
	// stack) does not exist (NOT_FOUND; ErrNotFound).
	AccountNotFound Reason = "ACCOUNT_NOT_FOUND"
	// AccountExists: the account a write creates exists already: the
	// signer's provider, a region number, a stack seed, an escrow
	// (ALREADY_EXISTS; ErrAlreadyExists).
	AccountExists Reason = "ACCOUNT_EXISTS"
	// UnknownRegion: the region named does not exist (NOT_FOUND;
	// ErrUnknownRegion).
	UnknownRegion Reason = "UNKNOWN_REGION"
	// ProviderNotAuthorized: the provider is not authorized yet
	// (FAILED_PRECONDITION; ErrUnauthorizedProvider).
	ProviderNotAuthorized Reason = "PROVIDER_NOT_AUTHORIZED"
	// InsufficientFunds: a wallet cannot pay a deposit, recharge or
	// transfer (FAILED_PRECONDITION; ErrInsufficientFunds).
	InsufficientFunds Reason = "INSUFFICIENT_FUNDS"
	// InsufficientEscrow: an escrow holds less than a withdrawal asks
	// for, or less than a region's minimum at stack creation
	// (FAILED_PRECONDITION; ErrInsufficientEscrow).
	InsufficientEscrow Reason = "INSUFFICIENT_ESCROW"
	// BelowRegionMinimum: a withdrawal would leave active stacks under
	// their region's minimum escrow balance (FAILED_PRECONDITION;
	// ErrBelowMinimum).
	BelowRegionMinimum Reason = "BELOW_REGION_MINIMUM"
	// StackDeleted: the stack was deleted and cannot be changed
	// (FAILED_PRECONDITION; ErrStackDeleted).
	StackDeleted Reason = "STACK_DELETED"
	// LedgerAlreadyInitialized: the ledger's state account exists
	// (ALREADY_EXISTS; ErrAlreadyInitialized).
	LedgerAlreadyInitialized Reason = "LEDGER_ALREADY_INITIALIZED"
	// ChangesCompacted: the ledger no longer keeps the changes asked for;
	// read the accounts again (OUT_OF_RANGE; ErrCompacted).
	ChangesCompacted Reason = "CHANGES_COMPACTED"
	// LedgerUnavailable: the ledger's store failed or it is closing; the
	// call may be retried (UNAVAILABLE; ErrUnavailable).
	LedgerUnavailable Reason = "LEDGER_UNAVAILABLE"
	// BadSigner: a signature is missing or does not verify, or the key
	// that signed is not the one the rules require, such as the region's
	// usage signer (PERMISSION_DENIED; ErrBadSigner).
	BadSigner Reason = "BAD_SIGNER"
	// ReplayedSeed: the update's seed was used before for the stack; the
	// earlier update stands (ALREADY_EXISTS; ErrReplayedSeed).
	ReplayedSeed Reason = "REPLAYED_SEED"
	// LedgerOverflow: an amount would exceed the token's 64-bit range
	// (INVALID_ARGUMENT; ErrOverflow).
	LedgerOverflow Reason = "LEDGER_OVERFLOW"
	// LedgerNotInitialized: the ledger's state account does not exist yet
	// (FAILED_PRECONDITION; ErrNotInitialized).
	LedgerNotInitialized Reason = "LEDGER_NOT_INITIALIZED"
	// LedgerUnsupported: the hosted backend lacks the capability the call
	// needs, such as storage rates on the Solana program
	// (UNIMPLEMENTED; ErrUnsupported).
	LedgerUnsupported Reason = "LEDGER_UNSUPPORTED"
)

// Errorf returns a status error with code, the formatted message and an
// ErrorInfo carrying reason.
func Errorf(code codes.Code, reason Reason, format string, args ...any) error {
	st := status.New(code, fmt.Sprintf(format, args...))
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: string(reason), Domain: Domain})
	if err != nil {
		return st.Err() // only on a detail that cannot marshal: never for ErrorInfo
	}
	return withInfo.Err()
}

// ReasonOf returns the mu reason of a status error, or "" when err carries
// none (errors of gRPC itself, such as a message over the size limit, and
// errors of other domains).
func ReasonOf(err error) Reason {
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return ""
	}
	for _, d := range se.GRPCStatus().Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain {
			return Reason(info.GetReason())
		}
	}
	return ""
}
