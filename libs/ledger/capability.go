package ledger

import (
	"fmt"
	"slices"
)

// Capability names one rule of design section 7 that a backend may not be
// able to keep. The local backend keeps them all; the Solana backend runs
// the marketplace program as deployed, which lacks some. What a backend
// lacks, its callers keep off the ledger (billing, the chain indexer) or
// cannot offer, and the contract suite checks that the backend refuses it
// with ErrUnsupported instead of silently doing something else.
type Capability string

const (
	// CapCarries: UpdateUsage carries each unit's sub-token remainder to
	// the stack's next update. A backend without it prices each unit by
	// truncation in every update, so it refuses (ErrUnsupported) an update
	// whose price in some unit is not a whole number of tokens rather than
	// drop the remainder silently; its caller sends only whole-token
	// amounts (WholeTokenUsage) and carries the rest itself.
	CapCarries Capability = "carries_remainders"
	// CapPartialCharge: an UpdateUsage the escrow cannot pay charges what
	// the escrow holds, reports the shortfall and marks it overdrawn.
	// Without it such an update fails with ErrInsufficientEscrow (also
	// matching ErrUnsupported) and charges nothing, and no escrow is ever
	// overdrawn.
	CapPartialCharge Capability = "partial_charge"
	// CapStorage: regions price storage (stored GiB-months and traffic)
	// and UpdateUsage charges storage usage. Without it a region's storage
	// rates must be 0 and an update's storage amounts 0; anything else
	// fails with ErrUnsupported.
	CapStorage Capability = "storage_billing"
	// CapMemoryBounds: a region keeps MinMemoryLimitBytes and
	// MaxMemoryLimitBytes. Without it both must be 0 (no bound of the
	// region's own); other values fail with ErrUnsupported.
	CapMemoryBounds Capability = "memory_bounds"
	// CapWideInstructionCap: a region's MaxGigaInstructionsPerCall may use
	// all 64 bits. Without it the cap must fit 32 bits (4,294,967,295 ×
	// 10^9 instructions); a wider one fails with ErrUnsupported.
	CapWideInstructionCap Capability = "wide_instruction_cap"
	// CapUpdateRegion: UpdateRegion replaces a region's settings. Without
	// it a region keeps the settings it was created with and UpdateRegion
	// fails with ErrUnsupported.
	CapUpdateRegion Capability = "update_region"
	// CapReplaceUsageSigner: CreateUsageSigner replaces a region's usage
	// signer. Without it a region's first usage signer stays, and a second
	// CreateUsageSigner fails with ErrUnsupported.
	CapReplaceUsageSigner Capability = "replace_usage_signer"
	// CapDeletedStackData: a deleted stack keeps its last manifest and
	// revision. Without it a deleted stack reads with no manifest and
	// revision 0 (the account's data is freed): whoever needs the last
	// manifest of a deleted stack (to remove what it deployed) keeps it
	// from before the deletion (the chain indexer has it).
	CapDeletedStackData Capability = "deleted_stack_data"
)

// Unsupported returns an error matching ErrUnsupported that names c and
// says what was asked (detail).
func Unsupported(c Capability, detail string) error {
	return fmt.Errorf("%w: %s (the backend lacks %s)", ErrUnsupported, detail, c)
}

// Lacking is implemented by a backend (or a client of one) that lacks
// some capabilities. A value that does not implement it lacks none.
type Lacking interface {
	// Lacks returns the capabilities the backend lacks; it does not block.
	Lacks() []Capability
}

// Lacks says whether v (a Ledger, Writer or UsageUpdater) lacks c.
func Lacks(v any, c Capability) bool {
	l, ok := v.(Lacking)
	return ok && slices.Contains(l.Lacks(), c)
}
