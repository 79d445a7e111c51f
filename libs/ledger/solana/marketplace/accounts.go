package marketplace

import (
	"errors"
	"fmt"

	bin "github.com/gagliardetto/binary"
	"github.com/gagliardetto/solana-go"

	"github.com/muprotocol/mu/libs/ledger"
)

// Discriminator is the 8 bytes that open an account's data or an
// instruction's data and say what it is.
type Discriminator [8]byte

// AccountDiscriminator is Anchor's discriminator of the account type name:
// sha256("account:" + name)[:8].
func AccountDiscriminator(name string) Discriminator {
	return Discriminator(bin.Sighash(bin.SIGHASH_ACCOUNT_NAMESPACE, name))
}

// The program's account type names, as its discriminators spell them.
const (
	AccountMuState               = "MuState"
	AccountProviderAuthorizer    = "ProviderAuthorizer"
	AccountProvider              = "Provider"
	AccountProviderRegion        = "ProviderRegion"
	AccountStack                 = "Stack"
	AccountAPIRequestSigner      = "ApiRequestSigner"
	AccountAuthorizedUsageSigner = "AuthorizedUsageSigner"
	AccountUsageUpdate           = "UsageUpdate"
)

// The discriminators of the program's accounts.
var (
	MuStateDiscriminator               = AccountDiscriminator(AccountMuState)
	ProviderAuthorizerDiscriminator    = AccountDiscriminator(AccountProviderAuthorizer)
	ProviderDiscriminator              = AccountDiscriminator(AccountProvider)
	ProviderRegionDiscriminator        = AccountDiscriminator(AccountProviderRegion)
	StackDiscriminator                 = AccountDiscriminator(AccountStack)
	APIRequestSignerDiscriminator      = AccountDiscriminator(AccountAPIRequestSigner)
	AuthorizedUsageSignerDiscriminator = AccountDiscriminator(AccountAuthorizedUsageSigner)
	UsageUpdateDiscriminator           = AccountDiscriminator(AccountUsageUpdate)
)

var accountKinds = map[Discriminator]string{
	MuStateDiscriminator:               AccountMuState,
	ProviderAuthorizerDiscriminator:    AccountProviderAuthorizer,
	ProviderDiscriminator:              AccountProvider,
	ProviderRegionDiscriminator:        AccountProviderRegion,
	StackDiscriminator:                 AccountStack,
	APIRequestSignerDiscriminator:      AccountAPIRequestSigner,
	AuthorizedUsageSignerDiscriminator: AccountAuthorizedUsageSigner,
	UsageUpdateDiscriminator:           AccountUsageUpdate,
}

// KindOf names the program account type whose discriminator opens data
// (one of the Account* constants), or returns "" when none does.
func KindOf(data []byte) string {
	if len(data) < len(Discriminator{}) {
		return ""
	}
	return accountKinds[Discriminator(data[:8])]
}

// Errors of the account decoders, matched with errors.Is. They are the
// cases Anchor reports as AccountDiscriminatorNotFound (3001),
// AccountDiscriminatorMismatch (3002) and AccountDidNotDeserialize (3003).
var (
	ErrDiscriminatorNotFound = errors.New("account data shorter than the 8-byte discriminator")
	ErrDiscriminatorMismatch = errors.New("account discriminator does not match")
	ErrDidNotDeserialize     = errors.New("account data does not decode")
)

// decodeAccount checks data's discriminator against kind's and reads the
// rest with body. Bytes after the encoding are ignored, as Anchor ignores
// them: the space the program allocates can exceed the encoding.
func decodeAccount(kind string, disc Discriminator, data []byte, body func(rd *reader)) error {
	if len(data) < len(disc) {
		return fmt.Errorf("marketplace: decode %s account: %d bytes: %w", kind, len(data), ErrDiscriminatorNotFound)
	}
	if got := Discriminator(data[:8]); got != disc {
		if other := accountKinds[got]; other != "" {
			return fmt.Errorf("marketplace: decode %s account: data is a %s account: %w", kind, other, ErrDiscriminatorMismatch)
		}
		return fmt.Errorf("marketplace: decode %s account: discriminator %x, want %x: %w", kind, got[:], disc[:], ErrDiscriminatorMismatch)
	}
	rd := newReader(bin.NewBorshDecoder(data[8:]), kind)
	body(rd)
	if rd.err != nil {
		return fmt.Errorf("marketplace: decode %s account (%d bytes): %w: %w", kind, len(data), ErrDidNotDeserialize, rd.err)
	}
	return nil
}

// Sizes of the accounts as the program allocates them (its space
// expressions); every one equals the Borsh encoding with discriminator of
// the value the program stores at that moment.
const (
	// MuStateSpace is the state account's size.
	MuStateSpace = 8 + 32 + 32 + 32 + 32 + 4 + 8 + 1
	// ProviderAuthorizerSpace is a provider authorizer's size.
	ProviderAuthorizerSpace = 8 + 32 + 1
	// APIRequestSignerSpace is an API request signer's size.
	APIRequestSignerSpace = 8 + 32 + 32 + 32 + 1 + 1
	// AuthorizedUsageSignerSpace is an authorized usage signer's size.
	AuthorizedUsageSignerSpace = 8 + 32 + 32
	// UsageUpdateSpace is a usage update's size.
	UsageUpdateSpace = 8 + 32 + 32 + 16 + ServiceUsageSize
	// StackDeletedSpace is a stack's size after delete_stack reallocates it.
	StackDeletedSpace = 8 + 32 + 32 + 8 + 1 + 1
	// TokenAccountSpace is an SPL token account's size (the deposit,
	// commission and escrow accounts the program creates).
	TokenAccountSpace = 165
)

// ProviderSpace is the size create_provider allocates for a provider whose
// name is nameLen bytes.
func ProviderSpace(nameLen int) int { return 8 + 32 + 1 + 4 + nameLen + 8 + 1 }

// RegionSpace is the size create_region allocates for a region whose name
// and base URL are nameLen and baseURLLen bytes.
func RegionSpace(nameLen, baseURLLen int) int {
	return 8 + 32 + 4 + ServiceRatesSize + 8 + 4 + 1 + 4 + nameLen + 4 + baseURLLen
}

// StackSpace is the size create_stack allocates, and update_stack
// reallocates to, for an active stack whose name and stack data are nameLen
// and dataLen bytes.
func StackSpace(nameLen, dataLen int) int {
	return 8 + 32 + 32 + 8 + 1 + 1 + 4 + 4 + nameLen + 4 + dataLen
}

// Byte offsets, from the start of the account data (discriminator
// included), of the fields getProgramAccounts memcmp filters compare.
const (
	// DiscriminatorOffset is where every account's discriminator sits.
	DiscriminatorOffset = 0

	MuStateAuthorityOffset       = 8
	MuStateMintOffset            = 40
	MuStateDepositTokenOffset    = 72
	MuStateCommissionTokenOffset = 104

	ProviderAuthorizerAuthorizerOffset = 8

	ProviderOwnerOffset      = 8
	ProviderAuthorizedOffset = 40

	RegionProviderOffset  = 8
	RegionRegionNumOffset = 40

	StackUserOffset   = 8
	StackRegionOffset = 40
	StackSeedOffset   = 72
	StackBumpOffset   = 80
	StackStateOffset  = 81 // the StackState variant index

	APIRequestSignerSignerOffset = 8
	APIRequestSignerUserOffset   = 40
	APIRequestSignerRegionOffset = 72

	AuthorizedUsageSignerSignerOffset       = 8
	AuthorizedUsageSignerTokenAccountOffset = 40

	UsageUpdateRegionOffset = 8
	UsageUpdateStackOffset  = 40
	UsageUpdateSeedOffset   = 72
)

// MuState is the program's global state (PDA "state").
type MuState struct {
	Authority            solana.PublicKey
	Mint                 solana.PublicKey
	DepositToken         solana.PublicKey
	CommissionToken      solana.PublicKey
	CommissionRateMicros uint32
	ProviderDeposit      uint64
	Bump                 uint8
}

// Encode is the account data: discriminator and Borsh body.
func (s MuState) Encode() []byte {
	return encode(MuStateSpace, func(w *writer) {
		w.raw(MuStateDiscriminator[:])
		w.pubkey(s.Authority)
		w.pubkey(s.Mint)
		w.pubkey(s.DepositToken)
		w.pubkey(s.CommissionToken)
		w.u32(s.CommissionRateMicros)
		w.u64(s.ProviderDeposit)
		w.u8(s.Bump)
	})
}

// DecodeMuState reads a MuState account's data.
func DecodeMuState(data []byte) (MuState, error) {
	var s MuState
	err := decodeAccount(AccountMuState, MuStateDiscriminator, data, func(rd *reader) {
		s.Authority = rd.pubkey("authority")
		s.Mint = rd.pubkey("mint")
		s.DepositToken = rd.pubkey("deposit_token")
		s.CommissionToken = rd.pubkey("commission_token")
		s.CommissionRateMicros = rd.u32("commission_rate_micros")
		s.ProviderDeposit = rd.u64("provider_deposit")
		s.Bump = rd.u8("bump")
	})
	return s, err
}

// ProviderAuthorizer is a key allowed to authorize providers (PDA
// "authorizer" + authorizer).
type ProviderAuthorizer struct {
	Authorizer solana.PublicKey
	Bump       uint8
}

// Encode is the account data: discriminator and Borsh body.
func (a ProviderAuthorizer) Encode() []byte {
	return encode(ProviderAuthorizerSpace, func(w *writer) {
		w.raw(ProviderAuthorizerDiscriminator[:])
		w.pubkey(a.Authorizer)
		w.u8(a.Bump)
	})
}

// DecodeProviderAuthorizer reads a ProviderAuthorizer account's data.
func DecodeProviderAuthorizer(data []byte) (ProviderAuthorizer, error) {
	var a ProviderAuthorizer
	err := decodeAccount(AccountProviderAuthorizer, ProviderAuthorizerDiscriminator, data, func(rd *reader) {
		a.Authorizer = rd.pubkey("authorizer")
		a.Bump = rd.u8("bump")
	})
	return a, err
}

// Provider is a provider (PDA "provider" + owner).
type Provider struct {
	Owner      solana.PublicKey
	Authorized bool
	Name       string
	Deposit    uint64
	Bump       uint8
}

// Encode is the account data: discriminator and Borsh body.
func (p Provider) Encode() []byte {
	return encode(ProviderSpace(len(p.Name)), func(w *writer) {
		w.raw(ProviderDiscriminator[:])
		w.pubkey(p.Owner)
		w.boolean(p.Authorized)
		w.str(p.Name)
		w.u64(p.Deposit)
		w.u8(p.Bump)
	})
}

// DecodeProvider reads a Provider account's data.
func DecodeProvider(data []byte) (Provider, error) {
	var p Provider
	err := decodeAccount(AccountProvider, ProviderDiscriminator, data, func(rd *reader) {
		p.Owner = rd.pubkey("owner")
		p.Authorized = rd.boolean("authorized")
		p.Name = rd.str("name")
		p.Deposit = rd.u64("deposit")
		p.Bump = rd.u8("bump")
	})
	return p, err
}

// ProviderRegion is a provider's region (PDA "region" + owner + region_num
// LE); Provider is the provider's account address (its PDA).
type ProviderRegion struct {
	Provider                   solana.PublicKey
	RegionNum                  uint32
	Rates                      ServiceRates
	MinEscrowBalance           uint64
	MaxGigaInstructionsPerCall uint32
	Bump                       uint8
	Name                       string
	BaseURL                    string
}

// Encode is the account data: discriminator and Borsh body.
func (r ProviderRegion) Encode() []byte {
	return encode(RegionSpace(len(r.Name), len(r.BaseURL)), func(w *writer) {
		w.raw(ProviderRegionDiscriminator[:])
		w.pubkey(r.Provider)
		w.u32(r.RegionNum)
		r.Rates.write(w)
		w.u64(r.MinEscrowBalance)
		w.u32(r.MaxGigaInstructionsPerCall)
		w.u8(r.Bump)
		w.str(r.Name)
		w.str(r.BaseURL)
	})
}

// DecodeProviderRegion reads a ProviderRegion account's data.
func DecodeProviderRegion(data []byte) (ProviderRegion, error) {
	var r ProviderRegion
	err := decodeAccount(AccountProviderRegion, ProviderRegionDiscriminator, data, func(rd *reader) {
		r.Provider = rd.pubkey("provider")
		r.RegionNum = rd.u32("region_num")
		r.Rates.read(rd, "rates")
		r.MinEscrowBalance = rd.u64("min_escrow_balance")
		r.MaxGigaInstructionsPerCall = rd.u32("max_giga_instructions_per_call")
		r.Bump = rd.u8("bump")
		r.Name = rd.str("name")
		r.BaseURL = rd.str("base_url")
	})
	return r, err
}

// Stack is a developer's stack in a region (PDA "stack" + user + region +
// seed LE); Region is the region's account address.
type Stack struct {
	User   solana.PublicKey
	Region solana.PublicKey
	Seed   uint64
	Bump   uint8
	State  StackState
}

// Encode is the account data: discriminator and Borsh body.
func (s Stack) Encode() []byte {
	return encode(8+32+32+8+1+s.State.size(), func(w *writer) {
		w.raw(StackDiscriminator[:])
		w.pubkey(s.User)
		w.pubkey(s.Region)
		w.u64(s.Seed)
		w.u8(s.Bump)
		s.State.write(w)
	})
}

// DecodeStack reads a Stack account's data.
func DecodeStack(data []byte) (Stack, error) {
	var s Stack
	err := decodeAccount(AccountStack, StackDiscriminator, data, func(rd *reader) {
		s.User = rd.pubkey("user")
		s.Region = rd.pubkey("region")
		s.Seed = rd.u64("seed")
		s.Bump = rd.u8("bump")
		s.State.read(rd, "state")
	})
	return s, err
}

// APIRequestSigner is a key a developer lets sign API requests in a region
// (PDA "request_signer" + user + signer + region).
type APIRequestSigner struct {
	Signer solana.PublicKey
	User   solana.PublicKey
	Region solana.PublicKey
	Bump   uint8
	Active bool
}

// Encode is the account data: discriminator and Borsh body.
func (a APIRequestSigner) Encode() []byte {
	return encode(APIRequestSignerSpace, func(w *writer) {
		w.raw(APIRequestSignerDiscriminator[:])
		w.pubkey(a.Signer)
		w.pubkey(a.User)
		w.pubkey(a.Region)
		w.u8(a.Bump)
		w.boolean(a.Active)
	})
}

// DecodeAPIRequestSigner reads an ApiRequestSigner account's data.
func DecodeAPIRequestSigner(data []byte) (APIRequestSigner, error) {
	var a APIRequestSigner
	err := decodeAccount(AccountAPIRequestSigner, APIRequestSignerDiscriminator, data, func(rd *reader) {
		a.Signer = rd.pubkey("signer")
		a.User = rd.pubkey("user")
		a.Region = rd.pubkey("region")
		a.Bump = rd.u8("bump")
		a.Active = rd.boolean("active")
	})
	return a, err
}

// AuthorizedUsageSigner is the key that may sign a region's usage updates
// and the token account its provider is paid into (PDA "authorized_signer"
// + region). It stores no bump.
type AuthorizedUsageSigner struct {
	Signer       solana.PublicKey
	TokenAccount solana.PublicKey
}

// Encode is the account data: discriminator and Borsh body.
func (a AuthorizedUsageSigner) Encode() []byte {
	return encode(AuthorizedUsageSignerSpace, func(w *writer) {
		w.raw(AuthorizedUsageSignerDiscriminator[:])
		w.pubkey(a.Signer)
		w.pubkey(a.TokenAccount)
	})
}

// DecodeAuthorizedUsageSigner reads an AuthorizedUsageSigner account's data.
func DecodeAuthorizedUsageSigner(data []byte) (AuthorizedUsageSigner, error) {
	var a AuthorizedUsageSigner
	err := decodeAccount(AccountAuthorizedUsageSigner, AuthorizedUsageSignerDiscriminator, data, func(rd *reader) {
		a.Signer = rd.pubkey("signer")
		a.TokenAccount = rd.pubkey("token_account")
	})
	return a, err
}

// UsageUpdate records one settled usage report (PDA "update" + stack +
// region + seed LE), so the same seed cannot be settled twice.
type UsageUpdate struct {
	Region solana.PublicKey
	Stack  solana.PublicKey
	Seed   ledger.Uint128
	Usage  ServiceUsage
}

// Encode is the account data: discriminator and Borsh body.
func (u UsageUpdate) Encode() []byte {
	return encode(UsageUpdateSpace, func(w *writer) {
		w.raw(UsageUpdateDiscriminator[:])
		w.pubkey(u.Region)
		w.pubkey(u.Stack)
		w.u128(u.Seed)
		u.Usage.write(w)
	})
}

// DecodeUsageUpdate reads a UsageUpdate account's data.
func DecodeUsageUpdate(data []byte) (UsageUpdate, error) {
	var u UsageUpdate
	err := decodeAccount(AccountUsageUpdate, UsageUpdateDiscriminator, data, func(rd *reader) {
		u.Region = rd.pubkey("region")
		u.Stack = rd.pubkey("stack")
		u.Seed = rd.u128("seed")
		u.Usage.read(rd, "usage")
	})
	return u, err
}

// DecodeAccount reads the data of any of the program's accounts, chosen
// by its discriminator, and returns the value (MuState, Provider, Stack,
// ...). Data no account type's discriminator opens fails with
// ErrDiscriminatorNotFound or ErrDiscriminatorMismatch.
func DecodeAccount(data []byte) (any, error) {
	if len(data) < len(Discriminator{}) {
		return nil, fmt.Errorf("marketplace: decode account: %d bytes: %w", len(data), ErrDiscriminatorNotFound)
	}
	switch KindOf(data) {
	case AccountMuState:
		return DecodeMuState(data)
	case AccountProviderAuthorizer:
		return DecodeProviderAuthorizer(data)
	case AccountProvider:
		return DecodeProvider(data)
	case AccountProviderRegion:
		return DecodeProviderRegion(data)
	case AccountStack:
		return DecodeStack(data)
	case AccountAPIRequestSigner:
		return DecodeAPIRequestSigner(data)
	case AccountAuthorizedUsageSigner:
		return DecodeAuthorizedUsageSigner(data)
	case AccountUsageUpdate:
		return DecodeUsageUpdate(data)
	}
	return nil, fmt.Errorf("marketplace: decode account: discriminator %x is no marketplace account's: %w", data[:8], ErrDiscriminatorMismatch)
}
