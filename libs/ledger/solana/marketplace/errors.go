package marketplace

import "fmt"

// ErrorCode is a custom program error code as a transaction's
// InstructionError reports it ({"Custom": code}) when the marketplace
// program fails: the program's own errors from 6000, and the Anchor 0.26
// framework errors its account constraints raise. The numbers are those
// of anchor-lang v0.26.0's lang/src/error.rs, the version the program
// builds with.
type ErrorCode uint32

// The program's own errors (its Error enum, from Anchor's offset 6000).
const (
	// ErrorProviderNotAuthorized: create_region or create_stack for a
	// provider not yet authorized.
	ErrorProviderNotAuthorized ErrorCode = 6000
	// ErrorCommissionRateOutOfBounds: initialize with a commission rate
	// over 10^6 micros.
	ErrorCommissionRateOutOfBounds ErrorCode = 6001
	// ErrorCannotOperateOnDeletedStack: update_stack or delete_stack on a
	// deleted stack.
	ErrorCannotOperateOnDeletedStack ErrorCode = 6002
)

// Anchor's errors that the program's instructions and constraints raise.
const (
	// Instruction dispatch.
	ErrorInstructionMissing           ErrorCode = 100 // data shorter than the discriminator
	ErrorInstructionFallbackNotFound  ErrorCode = 101 // unknown discriminator
	ErrorInstructionDidNotDeserialize ErrorCode = 102 // arguments do not decode

	// Constraints.
	ErrorConstraintMut        ErrorCode = 2000 // a mut account not writable
	ErrorConstraintHasOne     ErrorCode = 2001 // has_one: the stored key differs from the account given
	ErrorConstraintSigner     ErrorCode = 2002
	ErrorConstraintRaw        ErrorCode = 2003
	ErrorConstraintOwner      ErrorCode = 2004
	ErrorConstraintRentExempt ErrorCode = 2005
	ErrorConstraintSeeds      ErrorCode = 2006 // the address is not the PDA of the seeds (and bump)
	ErrorConstraintTokenMint  ErrorCode = 2014 // token::mint of an init token account
	ErrorConstraintTokenOwner ErrorCode = 2015 // token::authority of an init token account
	ErrorConstraintSpace      ErrorCode = 2019

	// Accounts.
	ErrorAccountDiscriminatorAlreadySet ErrorCode = 3000
	ErrorAccountDiscriminatorNotFound   ErrorCode = 3001 // data shorter than 8 bytes
	ErrorAccountDiscriminatorMismatch   ErrorCode = 3002 // data of another account type
	ErrorAccountDidNotDeserialize       ErrorCode = 3003
	ErrorAccountDidNotSerialize         ErrorCode = 3004
	ErrorAccountNotEnoughKeys           ErrorCode = 3005 // fewer accounts than the instruction takes
	ErrorAccountNotMutable              ErrorCode = 3006
	ErrorAccountOwnedByWrongProgram     ErrorCode = 3007 // Account<T> not owned by the program (or Token)
	ErrorInvalidProgramID               ErrorCode = 3008 // Program<System/Token> given another id
	ErrorInvalidProgramExecutable       ErrorCode = 3009
	ErrorAccountNotSigner               ErrorCode = 3010 // Signer<'info> that did not sign
	ErrorAccountNotSystemOwned          ErrorCode = 3011
	ErrorAccountNotInitialized          ErrorCode = 3012 // Account<T> with no data, owned by the system program
	ErrorAccountNotProgramData          ErrorCode = 3013
	ErrorAccountNotAssociatedToken      ErrorCode = 3014
	ErrorAccountSysvarMismatch          ErrorCode = 3015 // Sysvar<Rent> given another account
	ErrorAccountReallocExceedsLimit     ErrorCode = 3016
	ErrorAccountDuplicateReallocs       ErrorCode = 3017

	// Miscellaneous.
	ErrorTryingToInitPayerAsProgramAccount ErrorCode = 4101
)

// Custom error codes of the other programs the marketplace calls, as
// their failures inside a marketplace transaction report them. The same
// number means different things in different programs: read the code
// together with the program that failed.
const (
	// SystemErrorAccountAlreadyInUse is the system program's
	// AccountAlreadyInUse: an init of an account that exists (a second
	// create_provider, a replayed update seed).
	SystemErrorAccountAlreadyInUse uint32 = 0
	// SystemErrorResultWithNegativeLamports is the system program's
	// ResultWithNegativeLamports: a payer short of lamports.
	SystemErrorResultWithNegativeLamports uint32 = 1
	// TokenErrorInsufficientFunds is SPL token's InsufficientFunds: a
	// transfer larger than the source's balance.
	TokenErrorInsufficientFunds uint32 = 1
	// TokenErrorMintMismatch is SPL token's MintMismatch.
	TokenErrorMintMismatch uint32 = 3
	// TokenErrorOwnerMismatch is SPL token's OwnerMismatch: the transfer's
	// authority is not the source's owner.
	TokenErrorOwnerMismatch uint32 = 4
)

var errorNames = map[ErrorCode][2]string{
	ErrorProviderNotAuthorized:       {"ProviderNotAuthorized", "Provider is not authorized"},
	ErrorCommissionRateOutOfBounds:   {"CommissionRateOutOfBounds", "Commission rate is out of bounds"},
	ErrorCannotOperateOnDeletedStack: {"CannotOperateOnDeletedStack", "Cannot operate on a deleted stack"},

	ErrorInstructionMissing:           {"InstructionMissing", "8 byte instruction identifier not provided"},
	ErrorInstructionFallbackNotFound:  {"InstructionFallbackNotFound", "Fallback functions are not supported"},
	ErrorInstructionDidNotDeserialize: {"InstructionDidNotDeserialize", "The program could not deserialize the given instruction"},

	ErrorConstraintMut:        {"ConstraintMut", "A mut constraint was violated"},
	ErrorConstraintHasOne:     {"ConstraintHasOne", "A has one constraint was violated"},
	ErrorConstraintSigner:     {"ConstraintSigner", "A signer constraint was violated"},
	ErrorConstraintRaw:        {"ConstraintRaw", "A raw constraint was violated"},
	ErrorConstraintOwner:      {"ConstraintOwner", "An owner constraint was violated"},
	ErrorConstraintRentExempt: {"ConstraintRentExempt", "A rent exemption constraint was violated"},
	ErrorConstraintSeeds:      {"ConstraintSeeds", "A seeds constraint was violated"},
	ErrorConstraintTokenMint:  {"ConstraintTokenMint", "A token mint constraint was violated"},
	ErrorConstraintTokenOwner: {"ConstraintTokenOwner", "A token owner constraint was violated"},
	ErrorConstraintSpace:      {"ConstraintSpace", "A space constraint was violated"},

	ErrorAccountDiscriminatorAlreadySet: {"AccountDiscriminatorAlreadySet", "The account discriminator was already set on this account"},
	ErrorAccountDiscriminatorNotFound:   {"AccountDiscriminatorNotFound", "No 8 byte discriminator was found on the account"},
	ErrorAccountDiscriminatorMismatch:   {"AccountDiscriminatorMismatch", "8 byte discriminator did not match what was expected"},
	ErrorAccountDidNotDeserialize:       {"AccountDidNotDeserialize", "Failed to deserialize the account"},
	ErrorAccountDidNotSerialize:         {"AccountDidNotSerialize", "Failed to serialize the account"},
	ErrorAccountNotEnoughKeys:           {"AccountNotEnoughKeys", "Not enough account keys given to the instruction"},
	ErrorAccountNotMutable:              {"AccountNotMutable", "The given account is not mutable"},
	ErrorAccountOwnedByWrongProgram:     {"AccountOwnedByWrongProgram", "The given account is owned by a different program than expected"},
	ErrorInvalidProgramID:               {"InvalidProgramId", "Program ID was not as expected"},
	ErrorInvalidProgramExecutable:       {"InvalidProgramExecutable", "Program account is not executable"},
	ErrorAccountNotSigner:               {"AccountNotSigner", "The given account did not sign"},
	ErrorAccountNotSystemOwned:          {"AccountNotSystemOwned", "The given account is not owned by the system program"},
	ErrorAccountNotInitialized:          {"AccountNotInitialized", "The program expected this account to be already initialized"},
	ErrorAccountNotProgramData:          {"AccountNotProgramData", "The given account is not a program data account"},
	ErrorAccountNotAssociatedToken:      {"AccountNotAssociatedTokenAccount", "The given account is not the associated token account"},
	ErrorAccountSysvarMismatch:          {"AccountSysvarMismatch", "The given public key does not match the required sysvar"},
	ErrorAccountReallocExceedsLimit:     {"AccountReallocExceedsLimit", "The account reallocation exceeds the MAX_PERMITTED_DATA_INCREASE limit"},
	ErrorAccountDuplicateReallocs:       {"AccountDuplicateReallocs", "The account was duplicated for more than one reallocation"},

	ErrorTryingToInitPayerAsProgramAccount: {"TryingToInitPayerAsProgramAccount", "You cannot/should not initialize the payer account as a program account"},
}

// Name is the error's name in the program or in Anchor ("ConstraintSeeds"),
// or "" for a code not listed here.
func (c ErrorCode) Name() string { return errorNames[c][0] }

// Message is the error's message as the program logs it.
func (c ErrorCode) Message() string { return errorNames[c][1] }

// String is "Name (code)", or the bare number for an unlisted code.
func (c ErrorCode) String() string {
	if n := c.Name(); n != "" {
		return fmt.Sprintf("%s (%d)", n, uint32(c))
	}
	return fmt.Sprintf("custom program error %d", uint32(c))
}

// Error makes an ErrorCode an error: "Name: Message (code)".
func (c ErrorCode) Error() string {
	if n := c.Name(); n != "" {
		return fmt.Sprintf("marketplace: %s: %s (%d)", n, c.Message(), uint32(c))
	}
	return fmt.Sprintf("marketplace: custom program error %d", uint32(c))
}
