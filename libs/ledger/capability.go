package ledger

import "slices"

// Capability names one rule of design section 7 that a backend may not be
// able to keep. The local backend keeps them all; the Solana backend runs
// the marketplace program as deployed, which lacks some. What a backend
// lacks, its callers keep off the ledger (billing, the chain indexer) or
// cannot offer, and the contract suite checks that the backend refuses it
// with ErrUnsupported instead of silently doing something else.
type Capability string

const (
	// CapCarries: UpdateUsage carries each unit's sub-token remainder to
	// the stack's next update. A backend without it truncates each unit's
	// price in every update; its caller must send only whole-token amounts
	// (WholeTokenUsage) and carry the rest itself.
	CapCarries Capability = "carries_remainders"
	// CapPartialCharge: an UpdateUsage the escrow cannot pay charges what
	// the escrow holds, reports the shortfall and marks it overdrawn.
	// Without it such an update fails with ErrInsufficientEscrow and
	// charges nothing.
	CapPartialCharge Capability = "partial_charge"
)

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
