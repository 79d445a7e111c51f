package ledger

import "context"

// Writer is every write of a Ledger, and the reads a writer needs that
// the chain indexer does not serve (the state account, wallet balances
// and the slot). Every Ledger is a Writer, and so is the client of a ledger
// hosted in another process (libs/ledger/ledgerrpc), which sends each
// write with the signature its Signer made over the backend's message.
// Implementations are safe for concurrent use; every write is atomic and,
// once it returns nil, durable. Methods block until the write is applied
// or refused, or ctx ends.
type Writer interface {
	// Initialize creates the state account once; authority becomes the
	// marketplace authority and the mint authority of the token. A second
	// Initialize fails with ErrAlreadyInitialized.
	Initialize(ctx context.Context, authority Signer, p InitParams) error
	// Mint creates amount new tokens in the wallet of to (the token's
	// mint, signed by the authority; on Solana an SPL mint_to).
	Mint(ctx context.Context, authority Signer, to Pubkey, amount uint64) error
	// Transfer moves tokens between wallets.
	Transfer(ctx context.Context, from Signer, to Pubkey, amount uint64) error

	// CreateProvider registers the provider of owner, moving the state's
	// provider deposit from owner's wallet to the deposit vault. A new
	// provider is not authorized.
	CreateProvider(ctx context.Context, owner Signer, name string) (Provider, error)
	// AuthorizeProvider marks a provider authorized (after KYC, out of
	// band); signed by the state's authority.
	AuthorizeProvider(ctx context.Context, authority Signer, provider Pubkey) error
	// UpdateProviderDeposit sets the deposit that CreateProvider moves from
	// then on; signed by the state's authority.
	UpdateProviderDeposit(ctx context.Context, authority Signer, amount uint64) error

	// CreateRegion creates region number of the provider owned by owner;
	// the provider must be authorized.
	CreateRegion(ctx context.Context, owner Signer, number uint32, cfg RegionConfig) (Region, error)
	// UpdateRegion replaces a region's name, URL, rates and limits; signed
	// by its provider's owner. Stacks whose escrow falls under a raised
	// minimum become disabled.
	UpdateRegion(ctx context.Context, owner Signer, region Pubkey, cfg RegionConfig) (Region, error)
	// CreateUsageSigner sets the one key allowed to sign UpdateUsage for a
	// region (replacing any earlier one); signed by the provider's owner.
	CreateUsageSigner(ctx context.Context, owner Signer, region Pubkey, signer Pubkey) error

	// CreateEscrow opens developer's escrow with an authorized provider,
	// balance 0.
	CreateEscrow(ctx context.Context, developer Signer, provider Pubkey) (Escrow, error)
	// RechargeEscrow moves amount from developer's wallet into the escrow.
	// Stacks that were disabled for lack of escrow are enabled again once
	// the balance reaches every region's minimum.
	RechargeEscrow(ctx context.Context, developer Signer, provider Pubkey, amount uint64) (Escrow, error)
	// WithdrawEscrow moves amount from the escrow to developer's wallet. It
	// fails with ErrInsufficientEscrow if the balance is short, and with
	// ErrBelowMinimum if an active stack's region minimum would no longer
	// be met.
	WithdrawEscrow(ctx context.Context, developer Signer, provider Pubkey, amount uint64) (Escrow, error)

	// CreateStack posts a stack (revision 1) in region; its id is derived
	// from (owner, region, seed) and a second create with the same seed
	// fails with ErrAlreadyExists. The owner needs an escrow with the
	// region's provider holding at least the region's minimum.
	CreateStack(ctx context.Context, owner Signer, region Pubkey, seed uint64, manifest []byte) (Stack, error)
	// UpdateStack replaces the manifest of an active stack; the revision
	// goes up by one.
	UpdateStack(ctx context.Context, owner Signer, stack Pubkey, manifest []byte) (Stack, error)
	// DeleteStack marks a stack deleted (its data is to be removed by the
	// region); a deleted stack cannot be updated or used again.
	DeleteStack(ctx context.Context, owner Signer, stack Pubkey) (Stack, error)

	// UpdateUsage charges a stack's escrow for usage at its region's
	// rates, signed by the region's usage signer; seed makes the update
	// unique (ErrReplayedSeed for a seed used before for the stack). The
	// charge is computed in 128-bit integers per unit, sub-unit remainders
	// carried to the next update. Of the charge, the state's commission
	// goes to the commission account and the rest to the provider owner's
	// wallet. If the escrow cannot pay, what is there is charged, the
	// shortfall is reported, and every stack of the developer with that
	// provider is disabled (never deleted) until a recharge.
	UpdateUsage(ctx context.Context, signer Signer, stack Pubkey, seed Uint128, u Usage) (UsageResult, error)

	// State returns the state account (ErrNotInitialized before
	// Initialize).
	State(ctx context.Context) (State, error)
	// Balance returns the tokens in the wallet of account (0 if it never
	// held any).
	Balance(ctx context.Context, account Pubkey) (uint64, error)
	// Slot is the ledger's current position: the slot of the latest
	// applied write (0 before any). A reader of a follower (the chain
	// indexer) that waits for the follower to reach it sees every write
	// made before.
	Slot(ctx context.Context) (uint64, error)
}
