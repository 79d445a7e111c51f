// Package ledger is the marketplace ledger of design section 7 behind one
// interface, Ledger, with typed errors. Backends: local (package
// ledger/local: the rules in Go, persisted transactionally in the KV store;
// the default for `mu run` and tests) and, later, Solana. Every backend
// passes the contract suite of package ledger/ledgertest.
//
// Accounts: the state (authority, required provider deposit, commission
// rate), providers, regions (rates and limits), one authorized usage
// signer per region, escrows per (developer, provider), stacks and
// usage updates (one per seed, so a replay fails). Tokens live in token
// accounts: every signer's wallet, the deposit vault, every escrow, and the
// commission account. Tokens are only created by Mint and only move
// between token accounts, so the sum of all balances equals the supply.
//
// Writes take the keys that must sign them as Signers; a backend checks
// each signature over the instruction it applies, and that the key is the
// one the rules require (the state's authority, the provider's owner, the
// region's usage signer, the stack's owner), as a chain program would.
package ledger

import (
	"context"
	"time"
)

// Ledger is one marketplace ledger: its writes (Writer), the reads of
// every account, and the change feed. Implementations are safe for
// concurrent use; every write is atomic (it applies completely or not at
// all) and, once it returns nil, durable.
type Ledger interface {
	Writer

	// TokenAccounts returns every token account with a balance, and the
	// supply: the sum of the balances always equals it.
	TokenAccounts(ctx context.Context) (accounts []TokenAccount, supply uint64, err error)
	// Provider returns one provider (ErrNotFound).
	Provider(ctx context.Context, id Pubkey) (Provider, error)
	// Providers returns every provider, ordered by id.
	Providers(ctx context.Context) ([]Provider, error)
	// Region returns one region (ErrNotFound).
	Region(ctx context.Context, id Pubkey) (Region, error)
	// Regions returns every region, ordered by id.
	Regions(ctx context.Context) ([]Region, error)
	// Escrow returns one escrow (ErrNotFound).
	Escrow(ctx context.Context, developer, provider Pubkey) (Escrow, error)
	// Escrows returns every escrow, ordered by (developer, provider).
	Escrows(ctx context.Context) ([]Escrow, error)
	// Stack returns one stack, deleted ones included (ErrNotFound).
	Stack(ctx context.Context, id Pubkey) (Stack, error)
	// Stacks returns every stack, deleted ones included, ordered by id.
	Stacks(ctx context.Context) ([]Stack, error)

	// Changes returns up to limit changes with Slot > after, in slot
	// order. Every write produces changes carrying the complete new state
	// of every account it touched, including stacks whose Enabled flag it
	// changed (an escrow or region write). ErrCompacted if changes after
	// after are no longer kept: read the accounts again then.
	Changes(ctx context.Context, after uint64, limit int) ([]Change, error)
	// Wait blocks until the ledger's slot exceeds after, ctx ends (its
	// error), or poll has passed (nil, to let callers re-read). Backends
	// notify in-process waiters at once.
	Wait(ctx context.Context, after uint64, poll time.Duration) error

	// Close releases the backend; the Ledger is unusable afterwards.
	Close() error
}

// InitParams are the state's settings.
type InitParams struct {
	// ProviderDeposit is what CreateProvider moves into the deposit vault,
	// token base units.
	ProviderDeposit uint64
	// CommissionMicros is the marketplace's share of every usage charge,
	// in millionths (0..1,000,000).
	CommissionMicros uint32
}

// State is the marketplace's state account.
type State struct {
	Authority        Pubkey
	ProviderDeposit  uint64
	CommissionMicros uint32
	// DepositVault and CommissionAccount are the token accounts holding
	// providers' deposits and the marketplace's commission.
	DepositVault      Pubkey
	CommissionAccount Pubkey
}

// Provider is a provider account.
type Provider struct {
	// ID is the provider account's address, derived from its owner.
	ID    Pubkey
	Owner Pubkey
	Name  string
	// Deposit is what the provider paid into the deposit vault.
	Deposit    uint64
	Authorized bool
}

// Rates are a region's prices, token base units per stated quantity (the
// quantities of Quantity). See proto mu.types.v1.Rates.
type Rates struct {
	FunctionPerTeraMBInstructions uint64
	DBPerMillionReads             uint64
	DBPerMillionWrites            uint64
	DBPerGiBMonthStored           uint64
	GatewayPerMillionRequests     uint64
	GatewayPerGiBTraffic          uint64
	StoragePerGiBMonthStored      uint64
	StoragePerGiBTraffic          uint64
}

// RegionConfig is what a provider sets on a region.
type RegionConfig struct {
	Name    string
	BaseURL string
	Rates   Rates
	// MinEscrowBalance: a developer's escrow with the provider must hold
	// at least this, or their stacks in the region are disabled.
	MinEscrowBalance uint64
	// MaxGigaInstructionsPerCall bounds one function call's fuel, in 10^9
	// instructions (0: the runtime's own limit).
	MaxGigaInstructionsPerCall uint64
	// MinMemoryLimitBytes and MaxMemoryLimitBytes bound a function's
	// memory_limit (0: no bound of the region's own).
	MinMemoryLimitBytes uint64
	MaxMemoryLimitBytes uint64
}

// Region is a region account.
type Region struct {
	// ID is the region's address, derived from its provider and number.
	ID       Pubkey
	Provider Pubkey
	Number   uint32
	RegionConfig
	// UsageSigner is the key allowed to sign UpdateUsage; zero when none.
	UsageSigner Pubkey
}

// Escrow is a developer's escrow with one provider.
type Escrow struct {
	Developer Pubkey
	Provider  Pubkey
	Balance   uint64
	// Overdrawn is set when an UpdateUsage could not be paid in full, and
	// cleared by a recharge that meets every active stack's minimum.
	Overdrawn bool
}

// StackState is a stack's lifecycle state.
type StackState uint8

const (
	// StackActive is a deployed stack (served when also Enabled).
	StackActive StackState = 1
	// StackDeleted is a stack its owner deleted.
	StackDeleted StackState = 2
)

func (s StackState) String() string {
	switch s {
	case StackActive:
		return "active"
	case StackDeleted:
		return "deleted"
	}
	return "unknown"
}

// Stack is a stack account.
type Stack struct {
	// ID is the stack's address, derived from (Owner, Region, Seed); it is
	// the stack id of design section 5.
	ID       Pubkey
	Owner    Pubkey
	Region   Pubkey
	Seed     uint64
	Revision uint64
	Manifest []byte
	State    StackState
	// Enabled is false while the owner's escrow with the region's provider
	// is under the region's minimum or overdrawn, and for a deleted stack.
	Enabled bool
}

// Usage is one usage update's amounts, in the units of design section 8
// (the UsageKinds of proto mu.types.v1).
type Usage struct {
	FunctionMBInstructions   Uint128
	DBReads                  Uint128
	DBWrites                 Uint128
	DBStoredByteSeconds      Uint128
	GatewayRequests          Uint128
	GatewayTrafficBytes      Uint128
	StorageStoredByteSeconds Uint128
	StorageTrafficBytes      Uint128
}

// UsageResult is what an UpdateUsage charged.
type UsageResult struct {
	// Due is the whole-unit price of the usage (with earlier remainders).
	Due Uint128
	// Charged is what the escrow paid: Due, or the balance when short.
	Charged uint64
	// Commission went to the commission account, Charged - Commission to
	// the provider's owner.
	Commission uint64
	// Shortfall is Due - Charged; non-zero means the escrow is overdrawn
	// and the developer's stacks at the provider are disabled.
	Shortfall Uint128
	// Slot is the slot of the write.
	Slot uint64
}

// TokenAccount is one token account and its balance.
type TokenAccount struct {
	Address Pubkey
	// Kind says what holds the tokens: "wallet", "escrow", "deposit_vault"
	// or "commission".
	Kind    string
	Balance uint64
}

// Change is one account's new state after a write. Exactly one of the
// pointers is set.
type Change struct {
	Slot     uint64
	State    *State
	Provider *Provider
	Region   *Region
	Escrow   *Escrow
	Stack    *Stack
}
