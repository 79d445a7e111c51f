package ledger

import "errors"

// Errors every backend returns, wrapped with detail; match them with
// errors.Is.
var (
	// ErrNotInitialized: the state account does not exist yet.
	ErrNotInitialized = errors.New("ledger: not initialized")
	// ErrAlreadyInitialized: Initialize ran before.
	ErrAlreadyInitialized = errors.New("ledger: already initialized")
	// ErrNotFound: the account named does not exist.
	ErrNotFound = errors.New("ledger: no such account")
	// ErrAlreadyExists: the account to create exists (a provider of the
	// same owner, a region number taken, a stack seed used, an escrow).
	ErrAlreadyExists = errors.New("ledger: account already exists")
	// ErrUnknownRegion: the region named does not exist.
	ErrUnknownRegion = errors.New("ledger: unknown region")
	// ErrUnauthorizedProvider: the provider is not authorized (yet).
	ErrUnauthorizedProvider = errors.New("ledger: provider not authorized")
	// ErrBadSigner: a signature is missing or invalid, or the key that
	// signed is not the one the instruction needs.
	ErrBadSigner = errors.New("ledger: bad signer")
	// ErrReplayedSeed: an UpdateUsage seed was used before for the stack.
	ErrReplayedSeed = errors.New("ledger: replayed usage seed")
	// ErrInsufficientFunds: a wallet cannot pay (deposit, recharge,
	// transfer).
	ErrInsufficientFunds = errors.New("ledger: insufficient funds")
	// ErrInsufficientEscrow: an escrow holds less than a withdrawal asks
	// for, or less than a region's minimum at stack creation.
	ErrInsufficientEscrow = errors.New("ledger: insufficient escrow")
	// ErrBelowMinimum: a withdrawal would leave active stacks under their
	// region's minimum escrow balance.
	ErrBelowMinimum = errors.New("ledger: withdrawal would leave active stacks under the region minimum")
	// ErrStackDeleted: the stack was deleted and cannot be changed.
	ErrStackDeleted = errors.New("ledger: stack deleted")
	// ErrInvalidArgument: a field is out of bounds (the error names it).
	ErrInvalidArgument = errors.New("ledger: invalid argument")
	// ErrOverflow: an amount would exceed the token's 64-bit range.
	ErrOverflow = errors.New("ledger: amount overflows")
	// ErrCompacted: Changes no longer holds the changes asked for.
	ErrCompacted = errors.New("ledger: changes compacted")
	// ErrUnsupported: the backend lacks the capability the call needs
	// (the error names it; see Capability).
	ErrUnsupported = errors.New("ledger: not supported by this backend")
	// ErrUnavailable: the backend cannot be reached; the call may be
	// retried.
	ErrUnavailable = errors.New("ledger: unavailable")
)
